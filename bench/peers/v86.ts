/**
 * Peer "v86" (npm `v86@0.5.462`, JIT on): guest loops in a hand-made
 * 64 KiB BIOS whose reset vector jumps to the loop
 * (/work/shared/spec/toolchain.md §5).
 *
 * - io-out: `out dx, al; jmp` to {@link BENCH_PORT}; the "exit" is v86's
 *   call of the JS handler registered with `cpu.io.register_write`.
 * - mmio-write: `mov [ebx], al; jmp` to {@link BENCH_MMIO} (0xd0000000, the
 *   kvmsim address) in unreal mode (bench/peers/chunked.ts's prologue: DS
 *   with a 4 GiB limit, then back to real mode); the "exit" is the write8
 *   handler of `cpu.io.mmap_register` on the 128 KiB block holding it
 *   ({@link V86_MMIO_BLOCK}: v86 maps in 128 KiB blocks; above
 *   `memory_size` every block is otherwise v86's "unmapped" handler).
 * - io-in / mmio-read: `in al, dx` / `mov al, [edi]` (unreal mode) with
 *   `add ebx, eax`: the register_read / mmap read8 handler answers
 *   BENCH_BYTE, and the guest's ebx sum is checked against the answers.
 * - string-in: `rep insb` of {@link STRING_IO_BYTES} bytes into RAM; v86
 *   calls the register_read handler once per byte (it has no batched string
 *   IO), so a unit — one REP INSB, the counterpart of kvmsim's one exit of
 *   count 16 — is 16 handler calls. The handler supplies the same byte-counter
 *   stream as kvmsim's ({@link streamByte}); the guest buffer is checked
 *   against it after every window.
 * - string-out: `rep outsb` of {@link STRING_IO_BYTES} bytes from RAM (filled
 *   by the BIOS's prologue with kvmsim's source bytes, {@link STRING_OUT_FILL})
 *   to {@link BENCH_PORT}; v86 calls the register_write handler once per
 *   byte, which checks it is the next source byte. A unit is one byte
 *   written (one handler call), the counterpart of one kvmsim exit (KVM
 *   exits once per OUTS element), so 16 units per REP OUTSB.
 * - cpuid-inkernel / msr-inkernel: `cpuid` and `rdmsr` of IA32_PAT (a
 *   register v86 implements: its debug build asserts on unknown MSRs, not
 *   on this one) answered inside v86; the guest counts iterations in esi.
 * - raw: `dec ecx; jnz` (32-bit operands in real mode); the rate is
 *   `get_instruction_counter()` per second.
 * - raw/alu-mem: the ALU/memory/stack mix in real mode (bench/peers/v86_alu_mem.ts),
 *   its registers and memory checked against the closed forms after every window.
 *
 * Not compared ({@link V86_NOT_COMPARED}, logged with the reason): hlt,
 * debug-int3, msr-user, and the coalesced paths (io-out/coalesced,
 * mmio-write/coalesced: no coalesced-write ring).
 *
 * v86 runs asynchronously in slices, so a run is a sampling window: counts
 * at the start and the end of `durationMs` of wall time; between windows
 * the emulator is stopped (bench/peers/pairing.ts puts a kvmsim sample
 * there). Checks per window ({@link v86WindowUnits}): every byte the
 * handlers saw is {@link BENCH_BYTE} at the expected address (string-out: the
 * source byte next in order); units agree
 * with v86's retired-instruction count (instructions per unit ± 2 units);
 * no port or MMIO write on a loop that does none.
 *
 * @module
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { assemble } from "../../src/asm/x86.ts";
import {
  BENCH_BYTE,
  BENCH_MMIO,
  BENCH_PORT,
  type BenchPath,
  MSR_PAT,
  streamByte,
  STRING_IO_BUF,
  STRING_IO_BYTES,
  STRING_OUT_BUF,
  stringOutByte,
} from "../paths.ts";
import type { PeerRowSpec } from "../report.ts";
import { ratePerSecond } from "../stats.ts";
import { STRING_OUT_FILL, UNREAL_DATA, UNREAL_PROLOGUE } from "./chunked.ts";
import { type Peer, PeerCheckError, type PeerLoop, type PeerSampler, type PeerSettings } from "./peer.ts";
import { V86_ALU_MEM_ASM, v86AluMemCheck, type V86CpuView } from "./v86_alu_mem.ts";

const BUILD = new URL("../../node_modules/v86/build/", import.meta.url);
const BIOS_SIZE = 0x10000;
/** Far jump F000:0000 at the reset vector F000:FFF0. */
const RESET_VECTOR = [0xea, 0x00, 0x00, 0x00, 0xf0];

/**
 * What a unit of a v86 loop is, and how the window checks it against v86's
 * retired-instruction counter (`insnsPerUnit` per unit, ± 2 units of slack:
 * a window starts and ends mid-iteration).
 */
export type V86Count =
  /** Raw loops: instructions; no port or MMIO write allowed. */
  | { readonly kind: "instructions" }
  /** One `out` to {@link BENCH_PORT} per unit (the register_write handler's calls). */
  | { readonly kind: "port-writes"; readonly insnsPerUnit: number }
  /** One byte write to {@link BENCH_MMIO} per unit (the mmap_register write8 handler's calls). */
  | { readonly kind: "mmio-writes"; readonly insnsPerUnit: number }
  /**
   * One `in` from {@link BENCH_PORT} (`port`) or one byte read of {@link BENCH_MMIO} (`mmio`) per unit: the
   * handler answers {@link BENCH_BYTE}, the guest adds it into ebx (checked: units × the byte, ± one answer).
   */
  | { readonly kind: "reads"; readonly from: "port" | "mmio"; readonly insnsPerUnit: number }
  /**
   * One `rep insb` of `bytesPerUnit` bytes into {@link STRING_IO_BUF} per unit: v86 calls the register_read
   * handler once per byte, which answers the {@link streamByte} stream; the buffer must hold the stream's latest
   * bytes ({@link stringInBuffer}).
   */
  | { readonly kind: "port-in-bytes"; readonly bytesPerUnit: number; readonly insnsPerUnit: number }
  /**
   * One byte written to {@link BENCH_PORT} per unit by `rep outsb`s of `bytesPerRep` bytes from
   * {@link STRING_OUT_BUF}: the register_write handler's calls, each checked to be the next source byte
   * ({@link stringOutByte} of the write's index mod `bytesPerRep`); `insnsPerRep` instructions per REP OUTSB.
   */
  | { readonly kind: "port-out-bytes"; readonly bytesPerRep: number; readonly insnsPerRep: number }
  /** Instructions handled inside v86 (CPUID, RDMSR): the guest counts iterations in esi. */
  | { readonly kind: "esi"; readonly insnsPerUnit: number };

/** One v86 loop and the kvmsim path it is compared with. */
interface V86Loop {
  readonly spec: PeerRowSpec;
  /** 16-bit code placed at BIOS offset 0 (F000:0000); the loop is at `top`. */
  readonly asm: string;
  readonly count: V86Count;
  /** The guest's result after `retired` instructions (v86's counter since boot): what differs, or undefined. */
  readonly check?: (cpu: V86CpuView, retired: number) => string | undefined;
}

/** The v86 block (128 KiB, the granularity of cpu.io.mmap_register) holding {@link BENCH_MMIO}. */
export const V86_MMIO_BLOCK = 0x20000;

export const V86_LOOPS: readonly V86Loop[] = [
  {
    spec: {
      path: "raw/dec-jnz",
      engine: "v86",
      unit: "instructions",
      loop: "sampled",
      description: "real mode `dec ecx; jnz` loop in a 64 KiB BIOS; get_instruction_counter() per second",
      compared_to: "raw/dec-jnz",
      note: "v86 JIT, real mode (kvmsim: long mode)",
    },
    asm: `
  xor ecx, ecx
top:
  dec ecx
  jnz top
  jmp top
`,
    count: { kind: "instructions" },
  },
  {
    spec: {
      path: "io-out/port-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description: "real mode `out dx, al; jmp` → cpu.io.register_write handler (JS)",
      compared_to: "io-out/switch",
      note: "v86 JIT, real mode; an exit = a WASM→JS handler call",
    },
    asm: `
  mov dx, ${BENCH_PORT}
  mov al, ${BENCH_BYTE}
top:
  out dx, al
  jmp top
`,
    count: { kind: "port-writes", insnsPerUnit: 2 },
  },
  {
    spec: {
      path: "mmio-write/mmap-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description: `unreal mode \`mov [ebx], al; jmp\` to 0x${
        BENCH_MMIO.toString(16)
      } → cpu.io.mmap_register write8 handler (JS) of its 128 KiB block`,
      compared_to: "mmio-write/switch",
      note: "v86 JIT, unreal mode (DS limit 4 GiB, same address as kvmsim); an exit = a WASM→JS mmap handler call",
    },
    asm: `${UNREAL_PROLOGUE}
  mov ebx, 0x${BENCH_MMIO.toString(16)}
  mov al, ${BENCH_BYTE}
top:
  mov [ebx], al
  jmp top
${UNREAL_DATA}`,
    count: { kind: "mmio-writes", insnsPerUnit: 2 },
  },
  {
    spec: {
      path: "io-in/port-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description: "real mode `in al, dx; add ebx, eax; jmp` → cpu.io.register_read handler (JS) answers the byte",
      compared_to: "io-in/switch",
      note: "v86 JIT, real mode; an exit = a WASM→JS handler call; the guest's ebx sum checked",
    },
    asm: `
  mov dx, ${BENCH_PORT}
  xor eax, eax
  xor ebx, ebx
top:
  in al, dx
  add ebx, eax
  jmp top
`,
    count: { kind: "reads", from: "port", insnsPerUnit: 3 },
  },
  {
    spec: {
      path: "mmio-read/mmap-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description: `unreal mode \`mov al, [edi]; add ebx, eax; jmp\` from 0x${
        BENCH_MMIO.toString(16)
      } → cpu.io.mmap_register read8 handler (JS) answers the byte`,
      compared_to: "mmio-read/switch",
      note: "v86 JIT, unreal mode (same address as kvmsim); an exit = a WASM→JS mmap handler call; ebx sum checked",
    },
    asm: `${UNREAL_PROLOGUE}
  mov edi, 0x${BENCH_MMIO.toString(16)}
  xor eax, eax
  xor ebx, ebx
top:
  mov al, [edi]
  add ebx, eax
  jmp top
${UNREAL_DATA}`,
    count: { kind: "reads", from: "mmio", insnsPerUnit: 3 },
  },
  {
    spec: {
      path: "string-in/port-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description:
        `real mode \`rep insb\` of ${STRING_IO_BYTES} bytes into RAM → cpu.io.register_read handler (JS) answers the byte-counter stream, once per byte`,
      compared_to: "string-in/switch",
      note:
        `v86 JIT, real mode; an exit = one ${STRING_IO_BYTES}-byte REP INSB = one kvmsim exit (count ${STRING_IO_BYTES}) = ${STRING_IO_BYTES} handler calls (v86 has no batched string IO); guest buffer checked`,
    },
    asm: `
  mov dx, ${BENCH_PORT}
top:
  mov di, ${STRING_IO_BUF}
  mov cx, ${STRING_IO_BYTES}
  rep insb
  jmp top
`,
    count: { kind: "port-in-bytes", bytesPerUnit: STRING_IO_BYTES, insnsPerUnit: 4 },
  },
  {
    spec: {
      path: "string-out/port-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description:
        `real mode \`rep outsb\` of ${STRING_IO_BYTES} bytes from RAM → cpu.io.register_write handler (JS) checks each byte against the source buffer`,
      compared_to: "string-out/switch",
      note:
        `v86 JIT, real mode; unit = bytes written: an exit = one byte = one WASM→JS handler call = one kvmsim exit (count 1), ${STRING_IO_BYTES} per REP OUTSB; every byte checked`,
    },
    asm: `${STRING_OUT_FILL}
  mov dx, ${BENCH_PORT}
top:
  mov si, 0x${STRING_OUT_BUF.toString(16)}
  mov cx, ${STRING_IO_BYTES}
  rep outsb
  jmp top
`,
    count: { kind: "port-out-bytes", bytesPerRep: STRING_IO_BYTES, insnsPerRep: 4 },
  },
  {
    spec: {
      path: "cpuid-inkernel/loop",
      engine: "v86",
      unit: "exits",
      loop: "sampled",
      description: "real mode `xor eax, eax; cpuid; inc esi; jmp`: CPUID inside v86; iterations (esi) per second",
      compared_to: "cpuid-inkernel/budget",
      note: "v86 JIT, real mode; an exit = a CPUID v86 handles itself",
    },
    asm: `
  xor esi, esi
top:
  xor eax, eax
  cpuid
  inc esi
  jmp top
`,
    count: { kind: "esi", insnsPerUnit: 4 },
  },
  {
    spec: {
      path: "msr-inkernel/loop",
      engine: "v86",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rdmsr\` of IA32_PAT (0x${
        MSR_PAT.toString(16)
      }); inc esi; jmp: RDMSR inside v86; iterations (esi) per second`,
      compared_to: "msr-inkernel/budget",
      note: "v86 JIT, real mode; an exit = an RDMSR v86 handles itself",
    },
    asm: `
  xor esi, esi
  mov ecx, 0x${MSR_PAT.toString(16)}
top:
  rdmsr
  inc esi
  jmp top
`,
    count: { kind: "esi", insnsPerUnit: 3 },
  },
  {
    spec: {
      path: "raw/alu-mem",
      engine: "v86",
      unit: "instructions",
      loop: "sampled",
      description:
        "real mode variant of the ALU/memory/stack mix (ebp for r8d, a dword for r9d); get_instruction_counter() per second",
      compared_to: "raw/alu-mem",
      note: "v86 JIT, real mode (kvmsim: long mode); result checked per window",
    },
    asm: V86_ALU_MEM_ASM,
    count: { kind: "instructions" },
    check: v86AluMemCheck,
  },
];

/** Why these kvmsim paths (by id, or by family) have no v86 row. */
export const V86_NOT_COMPARED: Readonly<Record<string, string>> = {
  "io-out/coalesced":
    "v86 has no coalesced-write ring: every port write calls its handler at once (io-out/port-handler)",
  "mmio-write/coalesced":
    "v86 has no coalesced-write ring: every MMIO write calls its handler at once (mmio-write/mmap-handler)",
  "hlt": "v86 has no HLT exit (with IF=0 the CPU halts until an interrupt)",
  "debug-int3":
    "v86 has no debug exit: INT3 is delivered to the guest's IVT vector 3, no host hook sees it (an interrupt, not a trap to the VMM)",
  "msr-user": "v86 has no user-space MSR exit: every RDMSR is answered inside v86",
};

/** The BIOS image: `asm` at offset 0, the reset vector at 0xFFF0. */
export function biosImage(asm: string): Uint8Array<ArrayBuffer> {
  const { bytes } = assemble(asm, { bits: 16, origin: 0 });
  if (bytes.length > 0xfff0) throw new RangeError(`v86 BIOS code is ${bytes.length} bytes: expected at most 0xfff0`);
  const img = new Uint8Array(BIOS_SIZE);
  img.set(bytes, 0);
  img.set(RESET_VECTOR, 0xfff0);
  return img;
}

// deno-lint-ignore no-explicit-any
type V86Ctor = new (opts: Record<string, unknown>) => any;

/** The V86 constructor and the wasm bytes, or why they cannot be loaded. */
export async function loadV86(): Promise<{ V86: V86Ctor; wasm: Uint8Array<ArrayBuffer> } | { missing: string }> {
  const lib = new URL("libv86.mjs", BUILD), wasmUrl = new URL("v86.wasm", BUILD);
  let wasm: Uint8Array<ArrayBuffer>;
  try {
    wasm = Deno.readFileSync(fromFileUrl(wasmUrl)) as Uint8Array<ArrayBuffer>;
  } catch (e) {
    return {
      missing: `npm package v86 not installed (${fromFileUrl(wasmUrl)}: ${
        (e as Error).message
      }); run npm i -D v86@0.5.462`,
    };
  }
  try {
    const mod = await import(lib.href);
    if (typeof mod.V86 !== "function") return { missing: `${fromFileUrl(lib)} exports no V86 constructor` };
    return { V86: mod.V86 as V86Ctor, wasm };
  } catch (e) {
    return { missing: `cannot import ${fromFileUrl(lib)}: ${(e as Error).message}` };
  }
}

/** Untimed run before the windows, so that the JIT has compiled the loop. */
const V86_JIT_WARMUP_MS = 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What the handlers saw so far. */
interface V86Counters {
  writes: number;
  mmioWrites: number;
  reads: number;
  mmioReads: number;
  /** Writes with a byte other than BENCH_BYTE (string-out: the next source byte), or an MMIO write elsewhere than BENCH_MMIO. */
  bad: string[];
}

/** Counter values at one moment. */
export interface V86Snapshot {
  readonly writes: number;
  readonly mmioWrites: number;
  readonly reads: number;
  readonly mmioReads: number;
  readonly insns: number;
  readonly esi: number;
  readonly ebx: number;
  /** The {@link STRING_IO_BYTES} bytes at {@link STRING_IO_BUF} (port-in-bytes loops; empty otherwise). */
  readonly buf: readonly number[];
}

/**
 * The string-in buffer after `reads` handler reads of the stream, each REP
 * INSB filling offsets 0 … n-1 in order: offset i holds the latest read j < reads
 * with j ≡ i (mod n), or 0 (fresh RAM) when there is none.
 */
export function stringInBuffer(reads: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (reads > i ? streamByte(reads - 1 - ((reads - 1 - i) % n)) : 0));
}

/**
 * What is wrong with write `k` (0-based, since boot) of byte `v` to
 * {@link BENCH_PORT}, or undefined: {@link BENCH_BYTE} on the io-out loop;
 * on a string-out loop (`port-out-bytes`) the source byte k mod the REP's
 * bytes, as the REP OUTSBs send the buffer in order.
 */
export function v86PortWriteProblem(count: V86Count, k: number, v: number): string | undefined {
  if (count.kind === "port-out-bytes") {
    const i = k % count.bytesPerRep, want = stringOutByte(i);
    return v === want
      ? undefined
      : `port write ${k} of 0x${v.toString(16)}: expected source byte ${i} (0x${want.toString(16)})`;
  }
  return v === BENCH_BYTE ? undefined : `port write of 0x${v.toString(16)}`;
}

/**
 * Units in a window from its two snapshots, or what is wrong (a write the
 * loop does not do, a unit count the retired instructions contradict).
 */
export function v86WindowUnits(
  count: V86Count,
  a: V86Snapshot,
  b: V86Snapshot,
): { units: number } | { problem: string } {
  const insns = (b.insns - a.insns) >>> 0;
  const writes = b.writes - a.writes, mmio = b.mmioWrites - a.mmioWrites;
  const reads = (b.reads - a.reads) + (b.mmioReads - a.mmioReads);
  const expectNo = (what: string, n: number) => (n === 0 ? undefined : `${n} ${what} on a loop that does none`);
  if (count.kind !== "reads" && count.kind !== "port-in-bytes" && reads !== 0) {
    return { problem: `${reads} reads on a loop that does none` };
  }
  const perUnit = (units: number, k: number): { units: number } | { problem: string } => {
    if (units === 0) return { problem: `no unit done (${insns} instructions retired)` };
    if (Math.abs(insns - k * units) > 2 * k) {
      return { problem: `${insns} instructions retired for ${units} units: expected ${k * units} ± ${2 * k}` };
    }
    return { units };
  };
  let problem: string | undefined;
  switch (count.kind) {
    case "instructions":
      problem = expectNo("port writes", writes) ?? expectNo("MMIO writes", mmio);
      if (problem === undefined && insns === 0) problem = "no instruction retired";
      return problem === undefined ? { units: insns } : { problem };
    case "port-writes":
      problem = expectNo("MMIO writes", mmio);
      return problem === undefined ? perUnit(writes, count.insnsPerUnit) : { problem };
    case "mmio-writes":
      problem = expectNo("port writes", writes);
      return problem === undefined ? perUnit(mmio, count.insnsPerUnit) : { problem };
    case "port-in-bytes": {
      problem = expectNo("port writes", writes) ?? expectNo("MMIO writes", mmio) ??
        expectNo("MMIO reads", b.mmioReads - a.mmioReads);
      if (problem !== undefined) return { problem };
      const want = stringInBuffer(b.reads, count.bytesPerUnit);
      if (b.buf.length !== want.length || b.buf.some((x, i) => x !== want[i])) {
        return {
          problem: `guest buffer holds [${b.buf.join(", ")}] after ${b.reads} stream reads: expected [${
            want.join(", ")
          }]`,
        };
      }
      // A window may end inside a REP INSB: whole units only, the rest counts in the next window.
      return perUnit(Math.round((b.reads - a.reads) / count.bytesPerUnit), count.insnsPerUnit);
    }
    case "port-out-bytes": {
      problem = expectNo("MMIO writes", mmio);
      if (problem !== undefined) return { problem };
      if (writes === 0) return { problem: `no byte written (${insns} instructions retired)` };
      // A window starts and ends inside a REP OUTSB: one REP of slack either side.
      const reps = writes / count.bytesPerRep, k = count.insnsPerRep;
      if (Math.abs(insns - k * reps) > 2 * k) {
        return {
          problem: `${insns} instructions retired for ${writes} bytes (${reps.toFixed(1)} REP OUTSBs): expected ${
            (k * reps).toFixed(1)
          } ± ${2 * k}`,
        };
      }
      return { units: writes };
    }
    case "esi":
      problem = expectNo("port writes", writes) ?? expectNo("MMIO writes", mmio);
      return problem === undefined ? perUnit((b.esi - a.esi) >>> 0, count.insnsPerUnit) : { problem };
    case "reads": {
      const [mine, other] = count.from === "port"
        ? [b.reads - a.reads, b.mmioReads - a.mmioReads]
        : [b.mmioReads - a.mmioReads, b.reads - a.reads];
      problem = expectNo("port writes", writes) ?? expectNo("MMIO writes", mmio) ??
        expectNo(count.from === "port" ? "MMIO reads" : "port reads", other);
      if (problem !== undefined) return { problem };
      // The window may start or end between a read and the guest's add of it: ± one answer.
      const off = (b.ebx - a.ebx - Math.imul(mine, BENCH_BYTE)) | 0;
      if (Math.abs(off) > BENCH_BYTE) {
        return {
          problem: `guest's ebx grew by ${(b.ebx - a.ebx) >>> 0} over ${mine} answers of 0x${
            BENCH_BYTE.toString(16)
          }: expected ${Math.imul(mine, BENCH_BYTE) >>> 0} ± one answer`,
        };
      }
      return perUnit(mine, count.insnsPerUnit);
    }
    default: {
      const never: never = count;
      return { problem: `unknown count ${JSON.stringify(never)}` };
    }
  }
}

/**
 * Boot v86 on the loop's BIOS, let its JIT compile the loop, run the
 * warm-up windows and stop it: each `sample()` then runs it for one window
 * and stops it again (v86 does no work between samples).
 */
async function openLoop(
  V86: V86Ctor,
  wasm: Uint8Array<ArrayBuffer>,
  loop: V86Loop,
  s: PeerSettings,
): Promise<PeerSampler> {
  const path = loop.spec.path;
  const emulator = new V86({
    wasm_fn: (imports: WebAssembly.Imports) => WebAssembly.instantiate(wasm, imports).then((r) => r.instance.exports),
    bios: { buffer: biosImage(loop.asm).buffer },
    memory_size: 16 << 20,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    acpi: false,
  });
  let open = true;
  const close = async () => {
    if (open) await emulator.destroy();
    open = false;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PeerCheckError("v86", path, "emulator-loaded did not fire within 20 s")),
        20_000,
      );
      emulator.add_listener("emulator-loaded", () => (clearTimeout(timer), resolve()));
    });
    const c: V86Counters = { writes: 0, mmioWrites: 0, reads: 0, mmioReads: 0, bad: [] };
    const note = (what: string) => c.bad.length < 4 && c.bad.push(what);
    const cpu = emulator.v86.cpu;
    cpu.io.register_write(BENCH_PORT, {}, (v: number) => {
      const bad = v86PortWriteProblem(loop.count, c.writes++, v);
      if (bad !== undefined) note(bad);
    });
    const stream = loop.count.kind === "port-in-bytes";
    cpu.io.register_read(BENCH_PORT, {}, () => {
      const j = c.reads++;
      return stream ? streamByte(j) : BENCH_BYTE;
    });
    const block = BENCH_MMIO - (BENCH_MMIO % V86_MMIO_BLOCK);
    cpu.io.mmap_register(block, V86_MMIO_BLOCK, (addr: number) => {
      c.mmioReads++;
      if ((addr >>> 0) !== BENCH_MMIO) note(`MMIO read at 0x${(addr >>> 0).toString(16)}`);
      return BENCH_BYTE;
    }, (addr: number, v: number) => {
      c.mmioWrites++;
      if ((addr >>> 0) !== BENCH_MMIO || v !== BENCH_BYTE) {
        note(`MMIO write of 0x${v.toString(16)} at 0x${(addr >>> 0).toString(16)}`);
      }
    });
    // v86's counter is 32 bits: `retired` accumulates it (windows are far shorter than a wrap).
    let retired = 0, lastCount = 0;
    const snapshot = (): V86Snapshot => {
      const insns = (emulator.get_instruction_counter() as number) >>> 0;
      retired += (insns - lastCount) >>> 0;
      lastCount = insns;
      return {
        writes: c.writes,
        mmioWrites: c.mmioWrites,
        reads: c.reads,
        mmioReads: c.mmioReads,
        insns,
        esi: cpu.reg32[6] >>> 0,
        ebx: cpu.reg32[3] >>> 0,
        buf: stream ? [...(cpu.mem8 as Uint8Array).subarray(STRING_IO_BUF, STRING_IO_BUF + STRING_IO_BYTES)] : [],
      };
    };
    /** One window while v86 runs: its rate, checked. */
    const window = async (): Promise<number> => {
      const a = snapshot();
      const t0 = performance.now();
      await sleep(s.durationMs);
      const b = snapshot();
      const ms = performance.now() - t0;
      if (c.bad.length) throw new PeerCheckError("v86", path, `unexpected guest accesses: ${c.bad.join("; ")}`);
      const got = v86WindowUnits(loop.count, a, b);
      if ("problem" in got) throw new PeerCheckError("v86", path, `${got.problem} in ${ms.toFixed(0)} ms`);
      const problem = loop.check?.(cpu as V86CpuView, retired);
      if (problem !== undefined) throw new PeerCheckError("v86", path, `guest result: ${problem}`);
      return ratePerSecond(got.units, ms);
    };
    emulator.run();
    // The JIT compiles the loop during the first few hundred ms: one fixed warm-up window first.
    await sleep(V86_JIT_WARMUP_MS);
    snapshot();
    for (let i = 0; i < s.warmup; i++) await window();
    await emulator.stop();
    return {
      async sample() {
        if (!open) throw new PeerCheckError("v86", path, "sample() after close()");
        emulator.run();
        try {
          return await window();
        } finally {
          await emulator.stop();
        }
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The v86 loops whose kvmsim counterpart is among `paths`. */
export function v86LoopsFor(paths: readonly BenchPath[]): V86Loop[] {
  return V86_LOOPS.filter((l) => paths.some((p) => p.path === l.spec.compared_to));
}

/** Loaded once per bench run. */
let loading: ReturnType<typeof loadV86> | undefined;
const loaded = () => (loading ??= loadV86());

export const v86Peer: Peer = {
  name: "v86",
  async unavailable() {
    const l = await loaded();
    return "missing" in l ? l.missing : undefined;
  },
  plan(paths) {
    const notes = paths.flatMap((p) => {
      const why = V86_NOT_COMPARED[p.path] ?? V86_NOT_COMPARED[p.path.slice(0, p.path.indexOf("/"))];
      return why === undefined ? [] : [`${p.path} not run on v86: ${why}`];
    });
    const loops: PeerLoop[] = v86LoopsFor(paths).map((loop) => ({
      spec: loop.spec,
      async open(settings) {
        const l = await loaded();
        if ("missing" in l) throw new PeerCheckError("v86", loop.spec.path, l.missing);
        return openLoop(l.V86, l.wasm, loop, settings);
      },
    }));
    return { loops, notes };
  },
};
