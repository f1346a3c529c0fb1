/**
 * The kvm row of `cpuid-inkernel/budget`: in-kernel CPUID exits on the
 * host's /dev/kvm, counted by the guest.
 *
 * kvmsim's path counts CPUIDs the core answers inside WASM with the
 * instruction budget; KVM has no budget, so the guest counts and leaves to
 * user space only once per chunk of {@link CPUID_CHUNK} CPUIDs:
 *
 * ```
 *   xor esi, esi
 * outer:
 *   mov edi, CPUID_CHUNK
 * l: xor eax, eax; cpuid; inc rsi; dec edi; jnz l   ; CPUID writes EAX-EDX: the counter is EDI
 *   out BENCH_PORT, al                             ; KVM_EXIT_IO, once per chunk
 *   jmp outer
 * ```
 *
 * It runs at CPL3 (bench/peers/kvm_cpl3.ts, IOPL 3 for the OUT): /dev/kvm is
 * kvm_pvm here, which runs CPL0 guest code through KVM's instruction
 * emulator (~1.4 µs per instruction), CPL3 code natively. A chunk takes
 * milliseconds (4096 CPUIDs at ~1–5 µs), its one user-space exit ~16 µs
 * (/work/shared/spec/perf_anchors.md §1), so the exit is under 1% of it.
 *
 * Who answers a CPL3 CPUID on this host: the VM gets kvmsim's own CPUID
 * table (leaf 0 EAX 0xd) through KVM_SET_CPUID2; the max leaf the guest sees
 * at each exit (EAX) is logged with whether it is that table's. On this
 * host it is not (kvm_pvm does not intercept CPUID at CPL3; the layer below
 * answers it, perf_anchors.md §0.3), so the rate is the cost of a CPUID
 * trap answered in a kernel without a user-space exit on this host's
 * virtualization stack, not kvm_emulate_cpuid's.
 *
 * Checks: every exit is a one-byte OUT to BENCH_PORT; after every window RSI
 * advanced by exactly exits × CPUID_CHUNK, EDI is 0, RIP is just past the
 * OUT, and EAX (the max leaf) is non-zero and the same at every exit.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../../src/abi/constants.ts";
import { assemble } from "../../src/asm/x86.ts";
import type { BackendVcpu } from "../../src/backends/front.ts";
import { ioCount, ioIsOut, ioPort, ioSize } from "../../src/exits/decode.ts";
import { defaultCpuid } from "../../src/x86/cpuid.ts";
import { BENCH_PORT, LOAD } from "../paths.ts";
import type { PeerRowSpec } from "../report.ts";
import { ratePerSecond } from "../stats.ts";
import { enterRing3Long } from "./kvm_cpl3.ts";
import { openKvmLoopVm } from "./kvm_vm.ts";
import { PeerCheckError, type PeerLoop, type PeerSampler, type PeerSettings } from "./peer.ts";

/** CPUIDs per user-space exit. */
export const CPUID_CHUNK = 4096;
/** The kvmsim path this row is compared with. */
export const CPUID_KVMSIM_PATH = "cpuid-inkernel/budget";
const PATH = "cpuid-inkernel/cpl3-loop";

const ASM = `
  xor esi, esi
outer:
  mov edi, ${CPUID_CHUNK}
l:
  xor eax, eax
  cpuid
  inc rsi
  dec edi
  jnz l
  out 0x${BENCH_PORT.toString(16)}, al
done:
  jmp outer
`;

export const KVM_CPUID_CPL3_SPEC: PeerRowSpec = {
  path: PATH,
  engine: "kvm",
  unit: "exits",
  loop: "sampled",
  description:
    `64-bit CPL3 \`xor eax, eax; cpuid; inc rsi; dec edi; jnz\` on /dev/kvm: CPUIDs answered in the kernel, one \`out\` to user space per ${CPUID_CHUNK}; CPUIDs counted in RSI per second`,
  compared_to: CPUID_KVMSIM_PATH,
  note:
    "loop at CPL3, as kvm_pvm emulates CPL0 code here; under kvm_pvm a CPL3 CPUID is answered below it, not from KVM_SET_CPUID2's table (each run logs which table answered); unit = one CPUID",
};

/** What one window saw. */
interface Window {
  readonly exits: number;
  readonly ms: number;
}

function check(cond: boolean, detail: () => string): void {
  if (!cond) throw new PeerCheckError("kvm", PATH, detail());
}

/** The registers of the loop at a chunk's exit that the window check reads. */
export interface CpuidLoopRegs {
  readonly rax: bigint;
  readonly rsi: bigint;
  readonly rdi: bigint;
  readonly rip: bigint;
}

/**
 * What is wrong with a window of `exits` chunk exits that ended with `r`
 * (RSI was `rsi0` before it; `afterOut` is the address just past the OUT;
 * `maxLeaf` the EAX of earlier windows, if any), or undefined when RSI
 * advanced by exactly exits × CPUID_CHUNK, EDI is 0, RIP is past the OUT and
 * EAX is a non-zero max leaf equal to the earlier one.
 */
export function cpuidWindowProblem(
  r: CpuidLoopRegs,
  rsi0: bigint,
  exits: number,
  afterOut: bigint,
  maxLeaf: bigint | undefined,
): string | undefined {
  const want = BigInt(exits) * BigInt(CPUID_CHUNK);
  if (exits < 1) return `${exits} exits in a window: expected at least 1`;
  if (r.rsi - rsi0 !== want) return `RSI advanced by ${r.rsi - rsi0} over ${exits} exits: expected ${want}`;
  if (r.rdi !== 0n) return `EDI ${r.rdi} at the exit: expected 0 (a whole chunk)`;
  if (r.rip !== afterOut) return `RIP 0x${r.rip.toString(16)} at the exit: expected 0x${afterOut.toString(16)}`;
  const leaf = r.rax & 0xffffffffn;
  if (leaf === 0n) return "EAX 0 after CPUID leaf 0: expected the max leaf";
  if (maxLeaf !== undefined && leaf !== maxLeaf) {
    return `EAX 0x${leaf.toString(16)} after CPUID leaf 0: earlier windows saw 0x${maxLeaf.toString(16)}`;
  }
  return undefined;
}

/** The ring-3 CPUID loop on a fresh KVM VM, checked after every window (see the module note). */
export function kvmCpuidCpl3Loop(): PeerLoop {
  return {
    spec: KVM_CPUID_CPL3_SPEC,
    open: (settings: PeerSettings) =>
      new Promise<PeerSampler>((resolve) => {
        const { bytes, labels } = assemble(ASM, { bits: 64, origin: LOAD });
        const table = defaultCpuid();
        const tableMaxLeaf = table.find((e) => e.function === 0)!.eax;
        const { vm, vcpu, layout, close } = openKvmLoopVm(bytes, table);
        try {
          enterRing3Long(vm, vcpu, layout);
          const afterOut = BigInt(labels.get("done")!);
          let rsi = 0n, maxLeaf: bigint | undefined;
          const runWindow = (ms: number): Window => {
            const exits = timedExits(vcpu, ms);
            const r = vcpu.getRegs();
            const problem = cpuidWindowProblem(r, rsi, exits.exits, afterOut, maxLeaf);
            if (problem !== undefined) throw new PeerCheckError("kvm", PATH, problem);
            const leaf = r.rax & 0xffffffffn;
            if (maxLeaf === undefined) {
              maxLeaf = leaf;
              settings.log?.(
                `  kvm: ${PATH}: CPUID.0 at CPL3 returned EAX 0x${leaf.toString(16)}; KVM_SET_CPUID2 gave 0x${
                  tableMaxLeaf.toString(16)
                }: ${
                  leaf === BigInt(tableMaxLeaf)
                    ? "answered from KVM_SET_CPUID2's table"
                    : "not that table: answered below kvm_pvm"
                }`,
              );
            }
            rsi = r.rsi;
            return exits;
          };
          const rate = (w: Window) => ratePerSecond(w.exits * CPUID_CHUNK, w.ms);
          // One chunk untimed (the first entry), then the warm-up windows.
          runWindow(0);
          for (let i = 0; i < settings.warmup; i++) runWindow(settings.durationMs);
          resolve({
            sample: () => new Promise<number>((done) => done(rate(runWindow(settings.durationMs)))),
            close,
          });
        } catch (e) {
          close();
          throw e;
        }
      }),
  };
}

/** KVM_RUN until `ms` is up (at least once): the chunks run (exits), each checked to be the chunk's OUT. */
function timedExits(vcpu: BackendVcpu, ms: number): Window {
  const run = vcpu.kvmRun;
  let exits = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    const reason = vcpu.runRaw();
    check(
      reason === K.KVM_EXIT_IO && ioIsOut(run) && ioPort(run) === BENCH_PORT && ioSize(run) === 1 &&
        ioCount(run) === 1,
      () =>
        `exit ${reason}${
          reason === K.KVM_EXIT_IO
            ? ` (io ${ioIsOut(run) ? "out" : "in"} port 0x${ioPort(run).toString(16)} size ${ioSize(run)} count ${
              ioCount(run)
            })`
            : ""
        }: expected KVM_EXIT_IO (${K.KVM_EXIT_IO}), a one-byte OUT to port 0x${BENCH_PORT.toString(16)}`,
    );
    exits++;
    t = performance.now();
  } while (t - t0 < ms);
  return { exits, ms: t - t0 };
}
