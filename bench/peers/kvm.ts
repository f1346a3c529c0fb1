/**
 * Peer "kvm": the same guest loops as the kvmsim exit paths (bench/paths.ts:
 * same 64-bit code, same long-mode setup and setup hook, and bench/run_path.ts's
 * own runUntil / switch loops and handlers), run on the host's /dev/kvm
 * through the KVM backend.
 *
 * Not measured, each logged with its reason: the raw loops (on this host
 * /dev/kvm is kvm_pvm, which runs CPL0 guest code through KVM's instruction
 * emulator, ~1.4 µs per instruction, /work/shared/spec/perf_anchors.md §0: a
 * CPL0 raw rate is an emulator figure, not a hardware one), the in-kernel
 * RDMSR path (RDMSR at CPL3 raises #GP(0), and at CPL0 the loop would time
 * the emulator) and INT3 debug exits (not emulated at CPL0 here). The
 * in-kernel CPUID path has its own loop at CPL3, counted by the guest
 * (bench/peers/kvm_cpuid_cpl3.ts). String IO in is the REP INSB path: KVM's
 * pio_in_emulated reads ahead up to a page edge / 1024 bytes, so a 16-byte
 * REP INSB is one exit of count 16 on KVM as on kvmsim (its switch loop
 * checks the count of every exit). String IO out is REP OUTSB: KVM's
 * em_out exits once per byte (count 1), as kvmsim does; the switch loop
 * checks every byte against the source buffer. The coalesced paths run with a real
 * KVM_REGISTER_COALESCED_MMIO zone: KVM appends the writes to its ring
 * page (in the vCPU mmap) and exits only when the ring is full; their unit
 * is writes delivered to the device, as on kvmsim.
 *
 * Checks after every run: handler calls = exits, byte sum = exits × byte
 * (string in: the stream's bytes, and the guest buffer holds the last
 * completed transfer; string out: the source bytes, and RSI/RCX at the last
 * exit) (KVM does not count retired instructions, so that
 * check is the kvmsim runner's only).
 *
 * @module
 */
import { assemble } from "../../src/asm/x86.ts";
import type { BackendVcpu, BackendVm } from "../../src/backends/front.ts";
import { kvmUnavailableReason } from "../../src/backends/kvm/system.ts";
import { type BenchPath, LOAD, type Sink } from "../paths.ts";
import type { PeerRowSpec } from "../report.ts";
import { ratePerSecond } from "../stats.ts";
import { runUntilStep, stringInVerify, stringOutVerify, switchStep } from "../run_path.ts";
import { kvmCpuidCpl3Loop } from "./kvm_cpuid_cpl3.ts";
import { openKvmLoopVm } from "./kvm_vm.ts";
import { type Peer, PeerCheckError, type PeerLoop, type PeerSampler } from "./peer.ts";

/** Why the raw paths have no kvm row. */
export const KVM_RAW_SKIP = "CPL0 guest code is emulated by kvm_pvm on this host (~0.7 M instr/s), not comparable";

/**
 * `step(n)` does n exits of path `p` on the KVM vCPU: bench/run_path.ts's own
 * runUntil / switch loops, which take either backend's VM and vCPU, so both
 * engines run literally the same loop and handler.
 */
function stepper(p: BenchPath, vm: BackendVm, vcpu: BackendVcpu, sink: Sink): (n: number) => number {
  switch (p.loop) {
    case "runUntil":
      return runUntilStep(p, vm, vcpu, sink);
    case "switch":
      return switchStep(p, vcpu, sink);
    case "budget":
      throw new PeerCheckError("kvm", p.path, `loop budget is not run on kvm (${KVM_RAW_SKIP})`);
    default: {
      const never: never = p.loop;
      throw new PeerCheckError("kvm", p.path, `unknown loop ${String(never)}`);
    }
  }
}

/**
 * One timed run: chunks of units (starting at 64, doubled while a chunk takes
 * < 5 ms) until `ms` is up; returns units/s (exits, or a coalesced path's
 * writes: its step returns the writes it delivered).
 */
function timedRun(
  p: BenchPath,
  vm: BackendVm,
  vcpu: BackendVcpu,
  step: (n: number) => number,
  sink: Sink,
  ms: number,
): number {
  const calls0 = sink.calls, sum0 = sink.sum;
  let chunk = 64, units = 0;
  const t0 = performance.now();
  let t = t0;
  for (;;) {
    const c0 = t;
    units += step(chunk);
    t = performance.now();
    if (t - t0 >= ms) break;
    if (t - c0 < 5) chunk *= 2;
  }
  const calls = sink.calls - calls0, sum = (sink.sum - sum0) | 0;
  if (calls !== units) {
    throw new PeerCheckError("kvm", p.path, `handler called ${calls} times for ${units} ${p.unit}`);
  }
  const h = p.handler;
  if (h.kind === "pio-ins") {
    const problem = stringInVerify(h, sink.calls, calls, sum, (gpa, len) => vm.readGuest(gpa, len));
    if (problem !== undefined) throw new PeerCheckError("kvm", p.path, problem);
  }
  if (h.kind === "pio-outs") {
    const problem = stringOutVerify(h, sink.calls, calls, sum, vcpu.getRegs());
    if (problem !== undefined) throw new PeerCheckError("kvm", p.path, problem);
  }
  const want = h.kind === "pio-out" || h.kind === "mmio-write" || h.kind === "pio-in" || h.kind === "mmio-read" ||
      h.kind === "msr-user" || h.kind === "coalesced-write"
    ? Math.imul(calls, h.expectByte) | 0
    : undefined;
  if (want !== undefined && sum !== want) {
    throw new PeerCheckError(
      "kvm",
      p.path,
      `handler saw byte sum ${sum >>> 0} over ${calls} ${p.unit}: expected ${want >>> 0}`,
    );
  }
  return ratePerSecond(units, t - t0);
}

/** The kvm row of exit (or coalesced-write) path `p`: the VM is created and warmed up by `open`, one window per `sample`. */
export function kvmLoop(p: BenchPath): PeerLoop {
  const spec: PeerRowSpec = {
    path: p.path,
    engine: "kvm",
    unit: p.unit,
    loop: p.loop,
    description: `${p.description} — on /dev/kvm (KVM backend), 64-bit CPL0`,
    compared_to: p.path,
    note: "/dev/kvm is kvm_pvm here: CPL0 loop instructions are emulated",
  };
  return {
    spec,
    open: (settings) =>
      new Promise<PeerSampler>((resolve) => {
        const { bytes } = assemble(p.asm, { bits: 64, origin: LOAD });
        const { vm, vcpu, close } = openKvmLoopVm(bytes);
        try {
          p.setup?.(vm, vcpu);
          const sink: Sink = { calls: 0, sum: 0 };
          const step = stepper(p, vm, vcpu, sink);
          for (let i = 0; i < settings.warmup; i++) timedRun(p, vm, vcpu, step, sink, settings.durationMs);
          resolve({
            sample: () => new Promise<number>((done) => done(timedRun(p, vm, vcpu, step, sink, settings.durationMs))),
            close,
          });
        } catch (e) {
          close();
          throw e;
        }
      }),
  };
}

/** Why msr-inkernel/budget has no kvm row. */
export const KVM_MSR_INKERNEL_SKIP =
  "RDMSR at CPL3 raises #GP(0), and CPL0 guest code is emulated by kvm_pvm on this host (the rate would be the emulator's)";

/** kvmsim paths whose kvm row is a loop of its own (not the path's code at CPL0). */
const KVM_PATH_LOOPS: Readonly<Record<string, () => PeerLoop>> = {
  "cpuid-inkernel/budget": kvmCpuidCpl3Loop,
};

/** Why a path has no kvm row, by path id (ahead of {@link KVM_SKIPS}). */
const KVM_PATH_SKIPS: Readonly<Record<string, string>> = {
  "msr-inkernel/budget": KVM_MSR_INKERNEL_SKIP,
};

/** Why a handler kind has no kvm row (logged; every other kind outside KVM_HANDLERS is "no kvm loop yet"). */
const KVM_SKIPS: Readonly<Record<string, string>> = {
  "in-kernel":
    "no CPL3 loop for this in-kernel path (its budget loop would run at CPL0, which kvm_pvm emulates on this host)",
  "debug-sw-bp":
    "kvm_pvm's emulator does not emulate INT3 at CPL0 here (KVM_EXIT_INTERNAL_ERROR; tests/conformance/kvm_divergences.ts)",
};

/** The handler kinds the kvm peer has loops for; other paths are skipped with a log line. */
const KVM_HANDLERS: ReadonlySet<string> = new Set([
  "pio-out",
  "mmio-write",
  "hlt",
  "pio-in",
  "pio-ins",
  "pio-outs",
  "mmio-read",
  "msr-user",
  "coalesced-write",
]);

export const kvmPeer: Peer = {
  name: "kvm",
  unavailable() {
    const why = kvmUnavailableReason();
    return Promise.resolve(why === undefined ? undefined : `/dev/kvm unusable: ${why}`);
  },
  plan(paths) {
    const loops: PeerLoop[] = [];
    const notes: string[] = [];
    for (const p of paths) {
      const own = KVM_PATH_LOOPS[p.path];
      if (own !== undefined) loops.push(own());
      else if (p.unit !== "exits" && p.handler.kind === "none") notes.push(`${p.path} not run on kvm: ${KVM_RAW_SKIP}`);
      else if (!KVM_HANDLERS.has(p.handler.kind)) {
        const why = KVM_PATH_SKIPS[p.path] ?? KVM_SKIPS[p.handler.kind] ??
          `handler "${p.handler.kind}" has no kvm loop yet`;
        notes.push(`${p.path} not run on kvm: ${why}`);
      } else loops.push(kvmLoop(p));
    }
    return { loops, notes };
  },
};
