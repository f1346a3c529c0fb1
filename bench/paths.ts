/**
 * The measured paths: one declarative entry per path (guest code, setup,
 * handler, unit, run loop). bench/run_path.ts turns an entry into a VM and
 * a timed loop; a later suite adds peers (real KVM, v86, QEMU) per entry.
 *
 * Guest code is Intel syntax for src/asm (64-bit, loaded at {@link LOAD}),
 * run by a long-mode vCPU from `createVmWithOneVcpu`. The loop label must be
 * called `top`.
 *
 * @module
 */
import type { Vcpu } from "../src/vcpu.ts";
import type { Vm } from "../src/vm.ts";

/** What a rate counts. */
export type Unit = "exits" | "instructions";

/**
 * How the runner drives the vCPU:
 * - `budget`: `vcpu.runRaw(budget)` returning KVM_EXIT_INTR when the budget is used (no other exit allowed);
 * - `runUntil`: the library loop `vm.runUntil` with the handler installed on vm.pio / vm.mmio or as `handlers.hlt`;
 * - `switch`: a plain `runRaw()` loop with a `switch` on the exit reason calling the handler.
 */
export type Loop = "budget" | "runUntil" | "switch";

/** Per-run state a handler updates; the runner checks `calls` against the exits it counted. */
export interface Sink {
  calls: number;
  /** Sum of the bytes the handler saw (32-bit wrap); checked against `calls × expectByte`. */
  sum: number;
}

/** The TS handler a path puts in the loop. */
export type PathHandler =
  /** No exits expected: the path measures instructions. */
  | { readonly kind: "none" }
  /** OUT to `port` (KVM_EXIT_IO, one byte): `fn` gets the data byte view. */
  | { readonly kind: "pio-out"; readonly port: number; readonly expectByte: number; readonly fn: (data: Uint8Array, sink: Sink) => void }
  /** A write to `addr`, outside every memslot (KVM_EXIT_MMIO). */
  | { readonly kind: "mmio-write"; readonly addr: number; readonly expectByte: number; readonly fn: (data: Uint8Array, sink: Sink) => void }
  /** KVM_EXIT_HLT: the handler runs and the vCPU is resumed. */
  | { readonly kind: "hlt"; readonly fn: (sink: Sink) => void };

/** One measured path. */
export interface BenchPath {
  /** Unique id, `family/variant` (used by --filter and in latest.json). */
  readonly path: string;
  readonly description: string;
  /** 64-bit Intel-syntax guest code; the loop starts at label `top`. */
  readonly asm: string;
  readonly unit: Unit;
  readonly loop: Loop;
  /** Extra setup after the VM and vCPU exist (registers, devices). */
  readonly setup?: (vm: Vm, vcpu: Vcpu) => void;
  readonly handler: PathHandler;
  /** Guest instructions per unit in the steady state (checked against the retired count). */
  readonly instructionsPerUnit: number;
  /** The project's target rate for this path (tracking issue §8), if it has one. */
  readonly target?: number;
}

/** Guest load address and initial RIP (createVmWithOneVcpu's default). */
export const LOAD = 0x1000;
/** Port of the IO paths (unused by any device model). */
export const BENCH_PORT = 0x10;
/** MMIO address of the MMIO paths: below 4 GiB (identity-mapped) and outside guest RAM. */
export const BENCH_MMIO = 0xd000_0000;
/** The byte the guest writes on the IO/MMIO paths. */
export const BENCH_BYTE = 0x5a;

/** The real handler of the data paths: count the exit and fold in the byte written. */
export function countByte(data: Uint8Array, sink: Sink): void {
  sink.calls++;
  sink.sum = (sink.sum + data[0]!) | 0;
}

/** The HLT handler: count the exit (the vCPU is resumed by the loop). */
export function countHlt(sink: Sink): void {
  sink.calls++;
  sink.sum = (sink.sum + 1) | 0;
}

const DEC_JNZ = `
  xor ecx, ecx
top:
  dec ecx
  jnz top
  jmp top
`;

const IO_OUT = `
  mov edx, ${BENCH_PORT}
  mov eax, ${BENCH_BYTE}
top:
  out dx, al
  jmp top
`;

const MMIO_WRITE = `
  mov ebx, ${BENCH_MMIO}
  mov eax, ${BENCH_BYTE}
top:
  mov [rbx], al
  jmp top
`;

const HLT = `
top:
  hlt
  jmp top
`;

const pioOut = { kind: "pio-out", port: BENCH_PORT, expectByte: BENCH_BYTE, fn: countByte } as const;
const mmioWrite = { kind: "mmio-write", addr: BENCH_MMIO, expectByte: BENCH_BYTE, fn: countByte } as const;
const hlt = { kind: "hlt", fn: countHlt } as const;

/** All paths, in report order. */
export const PATHS: readonly BenchPath[] = [
  {
    path: "raw/dec-jnz",
    description: "long mode `dec ecx; jnz` loop, budget exits only",
    asm: DEC_JNZ,
    unit: "instructions",
    loop: "budget",
    handler: { kind: "none" },
    instructionsPerUnit: 1,
    target: 200e6,
  },
  {
    path: "io-out/runUntil",
    description: "`out dx, al; jmp` → KVM_EXIT_IO → vm.runUntil → PIO bus device (TS)",
    asm: IO_OUT,
    unit: "exits",
    loop: "runUntil",
    handler: pioOut,
    instructionsPerUnit: 2,
    target: 40e6,
  },
  {
    path: "io-out/switch",
    description: "`out dx, al; jmp` → KVM_EXIT_IO → runRaw + switch → TS handler",
    asm: IO_OUT,
    unit: "exits",
    loop: "switch",
    handler: pioOut,
    instructionsPerUnit: 2,
    target: 40e6,
  },
  {
    path: "mmio-write/runUntil",
    description: "`mov [unmapped], al; jmp` → KVM_EXIT_MMIO → vm.runUntil → MMIO bus device (TS)",
    asm: MMIO_WRITE,
    unit: "exits",
    loop: "runUntil",
    handler: mmioWrite,
    instructionsPerUnit: 2,
  },
  {
    path: "mmio-write/switch",
    description: "`mov [unmapped], al; jmp` → KVM_EXIT_MMIO → runRaw + switch → TS handler",
    asm: MMIO_WRITE,
    unit: "exits",
    loop: "switch",
    handler: mmioWrite,
    instructionsPerUnit: 2,
  },
  {
    path: "hlt/runUntil",
    description: "`hlt; jmp` → KVM_EXIT_HLT → vm.runUntil with handlers.hlt (TS) → resume",
    asm: HLT,
    unit: "exits",
    loop: "runUntil",
    handler: hlt,
    // `hlt` and `jmp`: HLT retires like any instruction.
    instructionsPerUnit: 2,
  },
  {
    path: "hlt/switch",
    description: "`hlt; jmp` → KVM_EXIT_HLT → runRaw + switch → TS handler → resume",
    asm: HLT,
    unit: "exits",
    loop: "switch",
    handler: hlt,
    // `hlt` and `jmp`: HLT retires like any instruction.
    instructionsPerUnit: 2,
  },
];

/** The paths whose id matches `filter` (all when undefined). */
export function selectPaths(paths: readonly BenchPath[], filter: RegExp | undefined): BenchPath[] {
  return filter ? paths.filter((p) => filter.test(p.path)) : [...paths];
}

/** Check a path table: unique ids, unit/loop/handler consistent. Returns the problems (empty when valid). */
export function checkPaths(paths: readonly BenchPath[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    if (seen.has(p.path)) problems.push(`${p.path}: duplicate path id`);
    seen.add(p.path);
    if (!/^[a-z0-9-]+\/[A-Za-z0-9-]+$/.test(p.path)) problems.push(`${p.path}: expected an id of the form family/variant`);
    if (!/^top:/m.test(p.asm)) problems.push(`${p.path}: guest code has no \`top:\` label`);
    if (p.target !== undefined && !(p.target > 0)) problems.push(`${p.path}: target ${p.target}: expected a positive rate`);
    if (!(p.instructionsPerUnit >= 1)) problems.push(`${p.path}: instructionsPerUnit ${p.instructionsPerUnit}: expected >= 1`);
    const k = p.handler.kind;
    switch (k) {
      case "none":
        if (p.unit !== "instructions" || p.loop !== "budget") {
          problems.push(`${p.path}: handler "none" measures instructions with loop "budget", got unit ${p.unit} loop ${p.loop}`);
        }
        break;
      case "pio-out":
      case "mmio-write":
      case "hlt":
        if (p.unit !== "exits" || p.loop === "budget") {
          problems.push(`${p.path}: handler "${k}" measures exits with loop runUntil or switch, got unit ${p.unit} loop ${p.loop}`);
        }
        break;
      default: {
        const never: never = k;
        problems.push(`${p.path}: unknown handler kind ${String(never)}`);
      }
    }
  }
  return problems;
}
