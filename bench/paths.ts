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
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import type { GuestVcpu, GuestVm } from "../src/backends/types.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { Vm } from "../src/vm.ts";
import { RESERVED_SIZE } from "../src/x86/setup.ts";
import { type KvmRun, setMsrData } from "../src/exits/decode.ts";
import { fillBytes } from "../src/devices/bus.ts";

/**
 * What a rate counts: exits, guest instructions, or (coalesced paths) writes
 * delivered to the TS device — most of which never exit.
 */
export type Unit = "exits" | "instructions" | "writes";

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
  | {
    readonly kind: "pio-out";
    readonly port: number;
    readonly expectByte: number;
    readonly fn: (data: Uint8Array, sink: Sink) => void;
  }
  /** A write to `addr`, outside every memslot (KVM_EXIT_MMIO). */
  | {
    readonly kind: "mmio-write";
    readonly addr: number;
    readonly expectByte: number;
    readonly fn: (data: Uint8Array, sink: Sink) => void;
  }
  /** KVM_EXIT_HLT: the handler runs and the vCPU is resumed. */
  | { readonly kind: "hlt"; readonly fn: (sink: Sink) => void }
  /** IN from `port` (KVM_EXIT_IO, one byte): `fn` fills the data view; the guest adds al into ebx (checked). */
  | {
    readonly kind: "pio-in";
    readonly port: number;
    readonly expectByte: number;
    readonly fn: (data: Uint8Array, sink: Sink) => void;
  }
  /**
   * REP INSB from `port` into guest RAM at `buf` (within one page): one
   * KVM_EXIT_IO (in) with `count` = `bytesPerExit`; `fn` fills all the bytes
   * with the next ones of the {@link streamByte} stream (KVM stores them at
   * `buf` on the next KVM_RUN). Checked: the byte sum of the stream, and the
   * guest's buffer holding the last transfer it received ({@link stringInCheck}).
   */
  | {
    readonly kind: "pio-ins";
    readonly port: number;
    readonly buf: number;
    readonly bytesPerExit: number;
    readonly fn: (data: Uint8Array, sink: Sink) => void;
  }
  /**
   * REP OUTSB to `port` from guest RAM at `buf` (the {@link STRING_OUT_SOURCE}
   * bytes, written there by the path's setup): one KVM_EXIT_IO (out, size 1,
   * count 1) per byte, RSI/RCX already moved, RIP at the REP (KVM's em_out).
   * `fn` gets each byte and returns whether it is the next source byte (exit
   * k carries byte k mod `bytesPerRep`); a wrong byte fails the run at that
   * exit. Checked after a run: the byte sum and RSI/RCX at the last exit
   * ({@link stringOutCheck}).
   */
  | {
    readonly kind: "pio-outs";
    readonly port: number;
    readonly buf: number;
    readonly bytesPerRep: number;
    readonly fn: (data: Uint8Array, sink: Sink) => boolean;
  }
  /** A one-byte read of `addr` (KVM_EXIT_MMIO): `fn` fills the data view; the guest adds al into ebx (checked). */
  | {
    readonly kind: "mmio-read";
    readonly addr: number;
    readonly expectByte: number;
    readonly fn: (data: Uint8Array, sink: Sink) => void;
  }
  /**
   * An instruction the core handles without leaving WASM (CPUID, RDMSR of an
   * in-kernel MSR): loop "budget", unit "exits" (in-kernel exits); the guest
   * counts iterations in rsi (checked against the units).
   */
  | { readonly kind: "in-kernel" }
  /**
   * RDMSR of `index` with user-space MSR exits: KVM_EXIT_X86_RDMSR, `fn` answers through the
   * allocation-free kvm_run accessors (decode.ts setMsrData); the guest adds eax into ebx (checked).
   */
  | {
    readonly kind: "msr-user";
    readonly index: number;
    readonly expectByte: number;
    readonly fn: (run: KvmRun, sink: Sink) => void;
  }
  /** INT3 with KVM_GUESTDBG_USE_SW_BP: KVM_EXIT_DEBUG (#BP at the INT3); `fn` moves RIP past it. The guest counts in rsi (checked). */
  | { readonly kind: "debug-sw-bp"; readonly fn: (vcpu: GuestVcpu, sink: Sink) => void }
  /**
   * One-byte writes to a coalesced zone (KVM_REGISTER_COALESCED_MMIO) of
   * `size` bytes at port / GPA `addr` (`pio`: the PIO bus, else MMIO). The
   * guest goes on after a write without exiting; vm.runUntil drains the ring
   * into the bus device, whose write calls `fn`. Only a write that finds the
   * ring full exits (KVM_EXIT_IO / KVM_EXIT_MMIO) and reaches the device as
   * an ordinary exit. Loop "runUntil", unit "writes" (coalesced + exited).
   */
  | {
    readonly kind: "coalesced-write";
    readonly pio: boolean;
    readonly addr: number;
    readonly size: number;
    readonly expectByte: number;
    readonly fn: (data: Uint8Array, sink: Sink) => void;
  };

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
  readonly setup?: (vm: GuestVm, vcpu: GuestVcpu) => void;
  readonly handler: PathHandler;
  /** Guest instructions per unit in the steady state (checked against the retired count); may be a fraction. */
  readonly instructionsPerUnit: number;
  /**
   * Units per iteration of the guest loop (default 1): string-out's one REP
   * OUTSB of 16 bytes is 16 exits. The retired-instruction check allows one
   * iteration of slack either side.
   */
  readonly unitsPerIteration?: number;
  /** The project's target rate for this path (tracking issue §8), if it has one. */
  readonly target?: number;
  /** Payload bytes moved per unit (string IO), reported as bytes/s. */
  readonly bytesPerUnit?: number;
  /**
   * The guest's own result, checked after every run: given the VM and vCPU
   * after `vcpu.instructions` retired instructions (since creation), returns
   * what differs from what the loop computes, or undefined. A "none" path
   * without one is the dec/jnz loop (its ecx is checked).
   */
  readonly check?: (vm: Vm, vcpu: Vcpu) => string | undefined;
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

/** The IN/MMIO-read handler: fill the data with {@link BENCH_BYTE} and count it. */
export function fillByte(data: Uint8Array, sink: Sink): void {
  fillBytes(data, BENCH_BYTE);
  sink.calls++;
  sink.sum = (sink.sum + BENCH_BYTE) | 0;
}

/** Byte `j` (0-based) of the stream the string-in device supplies: a byte counter, `j mod 256`. */
export function streamByte(j: number): number {
  return j & 0xff;
}

/** Σ {@link streamByte}(j) for j < n (32-bit wrap): 32640 per full 256 bytes. */
export function streamSum(n: number): number {
  const full = Math.floor(n / 256), r = n % 256;
  return (Math.imul(full, 32640) + (r * (r - 1)) / 2) | 0;
}

/**
 * The string-in device (REP INSB handler): exit k (0-based, = calls so far)
 * of `data.length` bytes gets stream bytes k × length … (k + 1) × length - 1;
 * counts the exit and folds the bytes into the sum. The switch loop only
 * calls it with `count` = bytesPerExit, so every exit has the same length.
 */
export function streamBytes(data: Uint8Array, sink: Sink): void {
  const base = sink.calls * data.length;
  let s = sink.sum;
  for (let i = 0; i < data.length; i++) {
    const b = streamByte(base + i);
    data[i] = b;
    s = (s + b) | 0;
  }
  sink.calls++;
  sink.sum = s;
}

/**
 * The string-in check: after `calls` exits of `bytesPerExit` bytes (the
 * vCPU stopped right after the last one, whose data KVM stores only on the
 * next KVM_RUN), the guest buffer read by `read` holds exit `calls - 2`'s
 * stream bytes. Returns what differs, or undefined.
 */
export function stringInCheck(
  read: (gpa: number, len: number) => Uint8Array,
  buf: number,
  bytesPerExit: number,
  calls: number,
): string | undefined {
  if (calls < 2) return `${calls} exits: expected at least 2 (a completed transfer)`;
  const got = [...read(buf, bytesPerExit)];
  const base = (calls - 2) * bytesPerExit;
  const want = got.map((_, i) => streamByte(base + i));
  if (got.every((b, i) => b === want[i])) return undefined;
  const hex = (a: number[]) => a.map((b) => b.toString(16).padStart(2, "0")).join(" ");
  return `buffer at 0x${buf.toString(16)} holds ${hex(got)} after ${calls} exits: expected exit ${
    calls - 2
  }'s stream bytes ${hex(want)} (the last exit's are stored on the next KVM_RUN)`;
}

/** Byte `i` of the string-out source buffer: `(i × 7 + 3) & 0xff` (all 16 distinct). */
export function stringOutByte(i: number): number {
  return (i * 7 + 3) & 0xff;
}

/**
 * The string-out device (REP OUTSB handler): exit k (0-based, = calls so
 * far) must carry source byte k mod {@link STRING_IO_BYTES}; counts the exit,
 * folds the byte into the sum, and returns whether it was that byte.
 */
export function checkSourceByte(data: Uint8Array, sink: Sink): boolean {
  const b = data[0]!;
  const ok = b === stringOutByte(sink.calls % STRING_IO_BYTES);
  sink.calls++;
  sink.sum = (sink.sum + b) | 0;
  return ok;
}

/** Σ of the bytes of exits 0 … n-1 of the string-out path (byte k = source byte k mod 16; 32-bit wrap). */
export function stringOutSum(n: number): number {
  const full = Math.floor(n / STRING_IO_BYTES), r = n % STRING_IO_BYTES;
  let s = 0, part = 0;
  for (let i = 0; i < STRING_IO_BYTES; i++) {
    s += stringOutByte(i);
    if (i < r) part += stringOutByte(i);
  }
  return (Math.imul(full, s) + part) | 0;
}

/**
 * The string-out check of the guest registers after `calls` exits (the vCPU
 * stopped at exit `calls - 1`, whose element KVM has committed): RSI is
 * `buf` + (that exit's index in its REP) + 1 and RCX counts the elements
 * still to go. Returns what differs, or undefined.
 */
export function stringOutCheck(
  regs: { readonly rsi: bigint; readonly rcx: bigint },
  buf: number,
  bytesPerRep: number,
  calls: number,
): string | undefined {
  if (calls < 1) return `${calls} exits: expected at least 1`;
  const i = (calls - 1) % bytesPerRep;
  const rsi = BigInt(buf + i + 1), rcx = BigInt(bytesPerRep - i - 1);
  if (regs.rsi === rsi && regs.rcx === rcx) return undefined;
  return `at exit ${calls - 1} (byte ${i} of its REP OUTSB) rsi 0x${
    regs.rsi.toString(16)
  } rcx ${regs.rcx}: expected rsi 0x${rsi.toString(16)} rcx ${rcx} (the element committed at its exit)`;
}

/** The user-space RDMSR handler: answer {@link BENCH_BYTE} and count it. */
export function answerMsr(run: KvmRun, sink: Sink): void {
  setMsrData(run, BENCH_BYTE, 0);
  sink.calls++;
  sink.sum = (sink.sum + BENCH_BYTE) | 0;
}

/** The INT3 handler: KVM reports #BP with RIP at the INT3; step over its one byte. */
export function skipInt3(vcpu: GuestVcpu, sink: Sink): void {
  vcpu.setRegs({ rip: vcpu.getRegs().rip + 1n });
  sink.calls++;
  sink.sum = (sink.sum + 1) | 0;
}

/** Bytes per REP INSB (one exit of count 16) on the string-in path, and per REP OUTSB (16 exits) on string-out. */
export const STRING_IO_BYTES = 16;
/** The string-out source buffer's {@link STRING_IO_BYTES} bytes (the path's setup writes them at {@link STRING_OUT_BUF}). */
export const STRING_OUT_SOURCE: readonly number[] = Array.from({ length: STRING_IO_BYTES }, (_, i) => stringOutByte(i));
/** Guest buffer of the string-in path (identity-mapped RAM, above the code; page-aligned, so 16 bytes are one exit). */
export const STRING_IO_BUF = 0x8000;
/** Source buffer of the string-out path (identity-mapped RAM, above the code; also below 64 KiB for the real-mode peers). */
export const STRING_OUT_BUF = 0xa000;
/** string-out instructions per REP OUTSB (16 exits): `mov esi`, `mov ecx`, `rep outsb` (retires once, on the entry after its last exit), `jmp`. */
const INSNS_STRING_OUT_REP = 4;
/** An MSR index no in-kernel MSR uses (RDMSR of it is KVM_MSR_EXIT_REASON_UNKNOWN). */
export const BENCH_UNKNOWN_MSR = 0x1234;
/** string-in instructions per exit: `mov edi`, `mov ecx`, `rep insb` (retires once, when its one exit completes), `jmp`. */
const INSNS_STRING_IO = 4;
/** debug-int3 instructions per exit: `inc rsi`, `jmp` (the INT3 is reported before it executes and never retires). */
const INSNS_INT3 = 2;
/** IA32_PAT, an in-kernel MSR. */
export const MSR_PAT = 0x277;

const DEC_JNZ = `
  xor ecx, ecx
top:
  dec ecx
  jnz top
  jmp top
`;

/** The 8-dword array of the raw/alu-mem loop (identity-mapped RAM, above the code). */
export const ALU_MEM_ARRAY = 0x9000;
/** The raw/alu-mem loop's multiplier (`imul edx, esi, K`; a positive imm32). */
export const ALU_MEM_K = 0x2545f491;
/** Instructions before `top:` in {@link ALU_MEM}. */
export const ALU_MEM_PROLOGUE = 4;
/** Instructions per iteration of {@link ALU_MEM}. */
export const ALU_MEM_ITERATION = 16;

/**
 * ALU/memory/stack mix. Iteration i (esi = i) does, at instruction index:
 * 2: a[i & 7] += i (indexed read-modify-write); 3: load it back; 4: edi += a[i & 7];
 * 6: r8d += i × K; 9: r9d = ((i × K) ^ i) >>> 3; 10: push a[i & 7] (the stack slot
 * keeps it); 11: pop into edx; 13: `jne bad` if edx ≠ ecx (a HLT exit fails the run);
 * 14: esi = i + 1. Every effect has a closed form ({@link aluMemExpected}).
 */
const ALU_MEM = `
  mov ebx, ${ALU_MEM_ARRAY}
  xor esi, esi
  xor edi, edi
  xor r8d, r8d
top:
  mov eax, esi
  and eax, 7
  add [rbx+rax*4], esi
  mov ecx, [rbx+rax*4]
  add edi, ecx
  imul edx, esi, ${ALU_MEM_K}
  add r8d, edx
  xor edx, esi
  shr edx, 3
  mov r9d, edx
  push rcx
  pop rdx
  cmp edx, ecx
  jne bad
  inc esi
  jmp top
bad:
  hlt
`;

/** What the raw/alu-mem guest holds after `retired` instructions (u32 values; `stack` is the pushed qword's low half). */
export interface AluMemState {
  readonly a: readonly number[];
  readonly esi: number;
  readonly edi: number;
  readonly r8d: number;
  readonly r9d: number;
  /** The qword 8 bytes below the initial RSP (0 before the first push). */
  readonly stack: number;
  /** RSP relative to its initial value (-8 between the push and the pop). */
  readonly rspDelta: number;
}

const U32 = (1n << 32n) - 1n;
/** Σ j for j < n, j ≡ k (mod 8), and that class's count. */
function classCount(n: bigint, k: bigint): bigint {
  return n > k ? (n - k + 7n) / 8n : 0n;
}
/** a[k] after iterations 0 … j (inclusive) of class k = j & 7: Σ_{t ≤ (j-k)/8} (k + 8t). */
function prefixSum(j: bigint): bigint {
  const k = j & 7n, t = (j - k) / 8n;
  return (k * (t + 1n) + 4n * t * (t + 1n)) & U32;
}
const f9 = (j: bigint): number => ((Math.imul(Number(j & U32) | 0, ALU_MEM_K) ^ Number(j & U32)) >>> 3) >>> 0;

/**
 * The raw/alu-mem state after `retired` instructions since the vCPU started
 * at the prologue (closed forms). `prologue`: instructions before `top:` (a
 * peer's variant of the loop may set up more). `rspDelta` is -8 (the
 * 64-bit push) between the push and the pop.
 */
export function aluMemExpected(retired: number, prologue = ALU_MEM_PROLOGUE): AluMemState {
  if (!Number.isSafeInteger(retired) || retired < 0) {
    throw new RangeError(`aluMemExpected: ${retired} retired instructions: expected a count >= 0`);
  }
  const t = BigInt(Math.max(0, retired - prologue));
  const L = BigInt(ALU_MEM_ITERATION);
  const n = t / L, r = t % L;
  // Iterations whose instruction at `index` has retired.
  const done = (index: number) => (retired < prologue ? 0n : n + (r > BigInt(index) ? 1n : 0n));
  const na = done(2), ne = done(4), n8 = done(6), n9 = done(9), np = done(10);
  const a: number[] = [];
  for (let k = 0n; k < 8n; k++) {
    const m = classCount(na, k);
    a.push(Number((k * m + 4n * m * (m - 1n)) & U32));
  }
  let edi = 0n;
  for (let k = 0n; k < 8n; k++) {
    const m = classCount(ne, k);
    // Σ_{t < m} (k (t + 1) + 4 t (t + 1)) = k m (m + 1) / 2 + 4 (m - 1) m (m + 1) / 3.
    edi += (k * m * (m + 1n)) / 2n + (4n * (m - 1n) * m * (m + 1n)) / 3n;
  }
  return {
    a,
    esi: Number(done(14) & U32),
    edi: Number(edi & U32),
    r8d: Number((BigInt(ALU_MEM_K) * ((n8 * (n8 - 1n)) / 2n)) & U32),
    r9d: n9 === 0n ? 0 : f9(n9 - 1n),
    stack: np === 0n ? 0 : Number(prefixSum(np - 1n)),
    rspDelta: retired >= prologue && r === 11n ? -8 : 0,
  };
}

/** Compare the raw/alu-mem guest with {@link aluMemExpected} at its retired count. */
export function aluMemCheck(vm: Vm, vcpu: Vcpu): string | undefined {
  const want = aluMemExpected(vcpu.instructions);
  const regs = vcpu.getRegs();
  const top = vm.memoryRegion(0).size - RESERVED_SIZE;
  const mem = new DataView(vm.readGuest(ALU_MEM_ARRAY, 32).buffer);
  const stack = vm.read64(top - 8);
  const got: AluMemState = {
    a: Array.from({ length: 8 }, (_, k) => mem.getUint32(4 * k, true)),
    esi: Number(regs.rsi & U32),
    edi: Number(regs.rdi & U32),
    r8d: Number(regs.r8 & U32),
    r9d: Number(regs.r9 & U32),
    stack: stack >> 32n === 0n ? Number(stack) : -1,
    rspDelta: Number(regs.rsp - BigInt(top)),
  };
  const bad: string[] = [];
  for (const key of ["esi", "edi", "r8d", "r9d", "stack", "rspDelta"] as const) {
    if (got[key] !== want[key]) bad.push(`${key} ${got[key]} (expected ${want[key]})`);
  }
  got.a.forEach((v, k) => v !== want.a[k] && bad.push(`a[${k}] ${v} (expected ${want.a[k]})`));
  return bad.length === 0 ? undefined : `after ${vcpu.instructions} instructions: ${bad.join(", ")}`;
}

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

const IO_IN = `
  mov edx, ${BENCH_PORT}
  xor eax, eax
  xor ebx, ebx
top:
  in al, dx
  add ebx, eax
  jmp top
`;

const STRING_IN = `
  mov edx, ${BENCH_PORT}
top:
  mov edi, ${STRING_IO_BUF}
  mov ecx, ${STRING_IO_BYTES}
  rep insb
  jmp top
`;

const STRING_OUT = `
  mov edx, ${BENCH_PORT}
top:
  mov esi, ${STRING_OUT_BUF}
  mov ecx, ${STRING_IO_BYTES}
  rep outsb
  jmp top
`;

const MMIO_READ = `
  mov edi, ${BENCH_MMIO}
  xor eax, eax
  xor ebx, ebx
top:
  mov al, [rdi]
  add ebx, eax
  jmp top
`;

const CPUID = `
  xor esi, esi
top:
  xor eax, eax
  cpuid
  inc rsi
  jmp top
`;

const MSR_INKERNEL = `
  xor esi, esi
  mov ecx, ${MSR_PAT}
top:
  rdmsr
  inc rsi
  jmp top
`;

const MSR_USER = `
  xor ebx, ebx
  mov ecx, ${BENCH_UNKNOWN_MSR}
top:
  rdmsr
  add ebx, eax
  jmp top
`;

const INT3 = `
  xor esi, esi
top:
  int3
  inc rsi
  jmp top
`;

/**
 * Coalesced writes per ring-full exit at least: the unsigned arithmetic of
 * coalesced_mmio_has_room that kvmsim's core copies reports the ring full
 * after 85 pending entries while first <= last, else 169; this machine's
 * /dev/kvm (Linux 6.18) exits after 169 every time. The runUntil loop checks
 * a coalesced path against it, so a zone that stopped coalescing (every
 * write an exit) fails.
 */
export const MIN_COALESCED_PER_EXIT = 85;

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
    path: "io-out/coalesced",
    description:
      "`out dx, al; jmp` to a coalesced PIO zone (KVM_REGISTER_COALESCED_MMIO, pio) → ring → vm.runUntil drains it into the PIO bus device (TS); unit: writes delivered to the device, not exits (a write exits only when it finds the ring full)",
    asm: IO_OUT,
    unit: "writes",
    loop: "runUntil",
    handler: { kind: "coalesced-write", pio: true, addr: BENCH_PORT, size: 1, expectByte: BENCH_BYTE, fn: countByte },
    instructionsPerUnit: 2,
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
    path: "mmio-write/coalesced",
    description:
      "`mov [unmapped], al; jmp` to a coalesced MMIO zone (KVM_REGISTER_COALESCED_MMIO) → ring → vm.runUntil drains it into the MMIO bus device (TS); unit: writes delivered to the device, not exits (a write exits only when it finds the ring full)",
    asm: MMIO_WRITE,
    unit: "writes",
    loop: "runUntil",
    handler: {
      kind: "coalesced-write",
      pio: false,
      addr: BENCH_MMIO,
      size: 8,
      expectByte: BENCH_BYTE,
      fn: countByte,
    },
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
  {
    path: "io-in/switch",
    description: "`in al, dx; add; jmp` → KVM_EXIT_IO (in) → runRaw + switch → TS handler fills the data",
    asm: IO_IN,
    unit: "exits",
    loop: "switch",
    handler: { kind: "pio-in", port: BENCH_PORT, expectByte: BENCH_BYTE, fn: fillByte },
    instructionsPerUnit: 3,
  },
  {
    path: "string-in/switch",
    description:
      `REP INSB of ${STRING_IO_BYTES} bytes → one KVM_EXIT_IO (in, count ${STRING_IO_BYTES}) → runRaw + switch → TS handler fills the ${STRING_IO_BYTES} bytes (a byte-counter stream; the guest buffer checked)`,
    asm: STRING_IN,
    unit: "exits",
    loop: "switch",
    handler: {
      kind: "pio-ins",
      port: BENCH_PORT,
      buf: STRING_IO_BUF,
      bytesPerExit: STRING_IO_BYTES,
      fn: streamBytes,
    },
    instructionsPerUnit: INSNS_STRING_IO,
    bytesPerUnit: STRING_IO_BYTES,
  },
  {
    path: "string-out/switch",
    description:
      `REP OUTSB of ${STRING_IO_BYTES} bytes from RAM → ${STRING_IO_BYTES} KVM_EXIT_IO (out, count 1), one per byte → runRaw + switch → TS handler checks each byte against the source buffer`,
    asm: STRING_OUT,
    unit: "exits",
    loop: "switch",
    setup: (vm) => vm.writeGuest(STRING_OUT_BUF, STRING_OUT_SOURCE),
    handler: {
      kind: "pio-outs",
      port: BENCH_PORT,
      buf: STRING_OUT_BUF,
      bytesPerRep: STRING_IO_BYTES,
      fn: checkSourceByte,
    },
    instructionsPerUnit: INSNS_STRING_OUT_REP / STRING_IO_BYTES,
    unitsPerIteration: STRING_IO_BYTES,
    bytesPerUnit: 1,
  },
  {
    path: "mmio-read/switch",
    description: "`mov al, [unmapped]; add; jmp` → KVM_EXIT_MMIO (read) → runRaw + switch → TS handler fills the data",
    asm: MMIO_READ,
    unit: "exits",
    loop: "switch",
    handler: { kind: "mmio-read", addr: BENCH_MMIO, expectByte: BENCH_BYTE, fn: fillByte },
    instructionsPerUnit: 3,
  },
  {
    path: "cpuid-inkernel/budget",
    description: "`xor eax, eax; cpuid; inc; jmp`: CPUID handled inside the core (in-kernel exits, never leaves WASM)",
    asm: CPUID,
    unit: "exits",
    loop: "budget",
    handler: { kind: "in-kernel" },
    instructionsPerUnit: 4,
  },
  {
    path: "msr-inkernel/budget",
    description: "`rdmsr` of IA32_PAT (0x277); inc; jmp: in-kernel MSR inside the core (in-kernel exits)",
    asm: MSR_INKERNEL,
    unit: "exits",
    loop: "budget",
    handler: { kind: "in-kernel" },
    instructionsPerUnit: 3,
  },
  {
    path: "msr-user/switch",
    description: `\`rdmsr\` of unknown MSR 0x${
      BENCH_UNKNOWN_MSR.toString(16)
    } → KVM_EXIT_X86_RDMSR (user-space MSR, UNKNOWN) → runRaw + switch → TS setData`,
    asm: MSR_USER,
    unit: "exits",
    loop: "switch",
    setup: (vm) => vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN),
    handler: { kind: "msr-user", index: BENCH_UNKNOWN_MSR, expectByte: BENCH_BYTE, fn: answerMsr },
    // `rdmsr` (retired when user space completes it), `add`, `jmp`.
    instructionsPerUnit: 3,
  },
  {
    path: "debug-int3/switch",
    description: "`int3` with KVM_GUESTDBG_USE_SW_BP → KVM_EXIT_DEBUG → runRaw + switch → TS handler setRegs(rip + 1)",
    asm: INT3,
    unit: "exits",
    loop: "switch",
    setup: (_vm, vcpu) => vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_SW_BP }),
    handler: { kind: "debug-sw-bp", fn: skipInt3 },
    instructionsPerUnit: INSNS_INT3,
  },
  {
    path: "raw/alu-mem",
    description:
      "long mode ALU/memory/stack mix (indexed RMW and load of an 8-dword array, imul/xor/shr, push/pop, cmp/jne, inc, jmp), budget exits only",
    asm: ALU_MEM,
    unit: "instructions",
    loop: "budget",
    handler: { kind: "none" },
    instructionsPerUnit: 1,
    check: aluMemCheck,
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
    if (!/^[a-z0-9-]+\/[A-Za-z0-9-]+$/.test(p.path)) {
      problems.push(`${p.path}: expected an id of the form family/variant`);
    }
    if (!/^top:/m.test(p.asm)) problems.push(`${p.path}: guest code has no \`top:\` label`);
    if (p.target !== undefined && !(p.target > 0)) {
      problems.push(`${p.path}: target ${p.target}: expected a positive rate`);
    }
    const perIteration = p.unitsPerIteration ?? 1;
    if (!Number.isInteger(perIteration) || perIteration < 1) {
      problems.push(`${p.path}: unitsPerIteration ${perIteration}: expected an integer >= 1`);
    } else if (!(p.instructionsPerUnit * perIteration >= 1)) {
      problems.push(
        `${p.path}: instructionsPerUnit ${p.instructionsPerUnit} × unitsPerIteration ${perIteration}: expected >= 1 instruction per loop iteration`,
      );
    }
    const k = p.handler.kind;
    switch (k) {
      case "none":
        if (p.unit !== "instructions" || p.loop !== "budget") {
          problems.push(
            `${p.path}: handler "none" measures instructions with loop "budget", got unit ${p.unit} loop ${p.loop}`,
          );
        }
        break;
      case "in-kernel":
        if (p.unit !== "exits" || p.loop !== "budget") {
          problems.push(
            `${p.path}: handler "in-kernel" measures exits with loop "budget", got unit ${p.unit} loop ${p.loop}`,
          );
        }
        break;
      case "pio-in":
      case "pio-ins":
      case "pio-outs":
      case "mmio-read":
      case "msr-user":
      case "debug-sw-bp":
        if (p.unit !== "exits" || p.loop !== "switch") {
          problems.push(
            `${p.path}: handler "${k}" measures exits with loop "switch", got unit ${p.unit} loop ${p.loop}`,
          );
        }
        break;
      case "coalesced-write":
        if (p.unit !== "writes" || p.loop !== "runUntil") {
          problems.push(
            `${p.path}: handler "coalesced-write" measures writes with loop "runUntil", got unit ${p.unit} loop ${p.loop}`,
          );
        }
        break;
      case "pio-out":
      case "mmio-write":
      case "hlt":
        if (p.unit !== "exits" || p.loop === "budget") {
          problems.push(
            `${p.path}: handler "${k}" measures exits with loop runUntil or switch, got unit ${p.unit} loop ${p.loop}`,
          );
        }
        break;
      default: {
        const never: never = k;
        problems.push(`${p.path}: unknown handler kind ${String(never)}`);
      }
    }
    if (p.handler.kind === "pio-outs" && perIteration !== p.handler.bytesPerRep) {
      problems.push(
        `${p.path}: handler "pio-outs" exits once per byte: unitsPerIteration ${perIteration}, expected bytesPerRep ${p.handler.bytesPerRep}`,
      );
    }
  }
  return problems;
}
