/**
 * The one reader (and writer) of raw `struct kvm_run` offsets. Offsets come
 * from the layout table (src/abi/kvm_structs.ts), computed once at load.
 *
 * - {@link decodeExit} turns the run page into a {@link VcpuExit}; unknown
 *   reasons and malformed payloads become `{reason: "unknown", raw}` — it
 *   never throws.
 * - The `io*` / `mmio*` accessors read single fields without allocating, for
 *   the run loop's bus fast path.
 * - Payload views and completion setters of a decoded exit check the run
 *   generation and throw {@link StaleExitError} after the next `run()`.
 *
 * @module
 */
import { field, layOut } from "../abi/layout.ts";
import { KVM_RUN } from "../abi/kvm_structs.ts";
import { exitReasonName, KVM_CONSTANTS as K } from "../abi/constants.ts";
import { PAGE_SIZE, RUN_MMAP_SIZE } from "../abi/memory_map.ts";
import { StaleExitError } from "../errors.ts";
import type { VcpuExit } from "./exit.ts";
import type { IoExit } from "./io.ts";
import type { MmioExit } from "./mmio.ts";
import { INTERNAL_ERROR_SUBERRORS } from "./internal_error.ts";
import { MSR_EXIT_REASONS } from "./msr.ts";
import { SYSTEM_EVENT_TYPES } from "./system_event.ts";
import { KVM_MEMORY_EXIT_FLAG_PRIVATE } from "./memory_fault.ts";
import { putLe } from "../devices/bytes.ts";

const L = layOut(KVM_RUN);
const at = (p: string) => field(L, p).offset;

// INVARIANT: every offset below is within the 4 KiB run page (checked by the layout table).
const EXIT_REASON = at("exit_reason");
const IMMEDIATE_EXIT = at("immediate_exit");
const FLAGS = at("flags");
const UNION = at("hw");
const UNION_SIZE = field(L, "padding").count;
const IO_DIRECTION = at("io.direction");
const IO_SIZE = at("io.size");
const IO_PORT = at("io.port");
const IO_COUNT = at("io.count");
const IO_DATA_OFFSET = at("io.data_offset");
const MMIO_PHYS_ADDR = at("mmio.phys_addr");
const MMIO_DATA = at("mmio.data");
const MMIO_LEN = at("mmio.len");
const MMIO_IS_WRITE = at("mmio.is_write");
const DEBUG_EXCEPTION = at("debug.arch.exception");
const DEBUG_PC = at("debug.arch.pc");
const DEBUG_DR6 = at("debug.arch.dr6");
const DEBUG_DR7 = at("debug.arch.dr7");
const HC_NR = at("hypercall.nr");
const HC_ARGS = at("hypercall.args");
const HC_RET = at("hypercall.ret");
const HC_FLAGS = at("hypercall.flags");
const INT_SUBERROR = at("internal.suberror");
const INT_NDATA = at("internal.ndata");
const INT_DATA = at("internal.data");
const INT_DATA_MAX = field(L, "internal.data").count;
const EMU_FLAGS = at("emulation_failure.flags");
const EMU_INSN_SIZE = at("emulation_failure.insn_size");
const EMU_INSN_BYTES = at("emulation_failure.insn_bytes");
const EMU_INSN_MAX = field(L, "emulation_failure.insn_bytes").count;
const SE_TYPE = at("system_event.type");
const SE_NDATA = at("system_event.ndata");
const SE_DATA = at("system_event.data");
const SE_DATA_MAX = field(L, "system_event.data").count;
const MSR_ERROR = at("msr.error");
const MSR_REASON = at("msr.reason");
const MSR_INDEX = at("msr.index");
const MSR_DATA = at("msr.data");
const MF_FLAGS = at("memory_fault.flags");
const MF_GPA = at("memory_fault.gpa");
const MF_SIZE = at("memory_fault.size");
const FE_REASON = at("fail_entry.hardware_entry_failure_reason");
const FE_CPU = at("fail_entry.cpu");
const MMIO_DATA_MAX = field(L, "mmio.data").count;
// Constants as plain module bindings (no property lookups on the hot path).
const IO_OUT = K.KVM_EXIT_IO_OUT;
const PIO_PAGE = K.KVM_PIO_PAGE_OFFSET * PAGE_SIZE;

/**
 * A vCPU's kvm_run mapping (`RUN_MMAP_SIZE` bytes: run page, PIO data page,
 * coalesced-MMIO page) inside a buffer, plus the vCPU's run generation.
 */
export class KvmRun {
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly dv: DataView;
  /** Run generation: bumped by every `run()` before it enters the core. */
  generation = 0;
  /** Cached 1/2/4-byte views at the PIO data page (`KVM_PIO_PAGE_OFFSET * 4096`, where KVM puts IO data). */
  readonly pio1: Uint8Array;
  readonly pio2: Uint8Array;
  readonly pio4: Uint8Array;
  readonly #mmioViews: Uint8Array[];

  /** The mapping at byte offset `base` (a multiple of 8) of `buffer`. */
  constructor(buffer: ArrayBufferLike, readonly base = 0) {
    if (base % 8 !== 0 || base + RUN_MMAP_SIZE > buffer.byteLength) {
      throw new RangeError(`kvm_run mapping at ${base} does not fit a ${buffer.byteLength}-byte buffer 8-aligned`);
    }
    this.u8 = new Uint8Array(buffer);
    this.u16 = new Uint16Array(buffer, 0, buffer.byteLength >>> 1);
    this.u32 = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    this.dv = new DataView(buffer);
    const pio = base + PIO_PAGE;
    this.pio1 = this.u8.subarray(pio, pio + 1);
    this.pio2 = this.u8.subarray(pio, pio + 2);
    this.pio4 = this.u8.subarray(pio, pio + 4);
    this.#mmioViews = [];
    for (let len = 0; len <= MMIO_DATA_MAX; len++) {
      this.#mmioViews.push(this.u8.subarray(base + MMIO_DATA, base + MMIO_DATA + len));
    }
  }

  /** A zeroed mapping of its own (for tests with fabricated exits). */
  static fabricate(): KvmRun {
    return new KvmRun(new ArrayBuffer(RUN_MMAP_SIZE));
  }

  /** Throw {@link StaleExitError} unless `generation` is current. */
  check(reason: string, generation: number): void {
    if (generation !== this.generation) throw new StaleExitError(reason, generation, this.generation);
  }

  #lastPayload: Uint8Array | undefined;
  #lastPayloadOff = -1;
  /**
   * The `len`-byte view at byte `off` of the mapping (an io exit's payload):
   * the cached PIO-page views for 1/2/4 bytes, else the last one made when it
   * fits, else a new one (REP INS repeats the same batch size).
   */
  payloadView(off: number, len: number): Uint8Array {
    if (off === PIO_PAGE) {
      if (len === 1) return this.pio1;
      if (len === 2) return this.pio2;
      if (len === 4) return this.pio4;
    }
    const last = this.#lastPayload;
    if (last !== undefined && this.#lastPayloadOff === off && last.length === len) return last;
    const v = this.u8.subarray(this.base + off, this.base + off + len);
    this.#lastPayload = v;
    this.#lastPayloadOff = off;
    return v;
  }

  /** The `len`-byte view of `mmio.data` (cached). */
  mmioView(len: number): Uint8Array {
    return this.#mmioViews[len]!;
  }

  // Raw little-endian field access (offsets relative to the run page).
  get8(off: number): number {
    return this.u8[this.base + off]!;
  }
  get32(off: number): number {
    return this.dv.getUint32(this.base + off, true);
  }
  get64(off: number): bigint {
    return this.dv.getBigUint64(this.base + off, true);
  }
  set8(off: number, v: number): void {
    this.u8[this.base + off] = v;
  }
  set32(off: number, v: number): void {
    this.dv.setUint32(this.base + off, v >>> 0, true);
  }
  set64(off: number, v: bigint): void {
    this.dv.setBigUint64(this.base + off, BigInt.asUintN(64, v), true);
  }
}

// ---- Allocation-free accessors (hot path). ----

/** `kvm_run.exit_reason`. */
export function exitReasonOf(run: KvmRun): number {
  return run.u32[(run.base + EXIT_REASON) >>> 2]!;
}
/** `kvm_run.io.direction === KVM_EXIT_IO_OUT`. */
export function ioIsOut(run: KvmRun): boolean {
  return run.u8[run.base + IO_DIRECTION] === IO_OUT;
}
/** `kvm_run.io.port`. */
export function ioPort(run: KvmRun): number {
  return run.u16[(run.base + IO_PORT) >>> 1]!;
}
/** `kvm_run.io.size`. */
export function ioSize(run: KvmRun): number {
  return run.u8[run.base + IO_SIZE]!;
}
/** `kvm_run.io.count`. */
export function ioCount(run: KvmRun): number {
  return run.u32[(run.base + IO_COUNT) >>> 2]!;
}
/** `kvm_run.io.data_offset`; -1 when it is ≥ 2^31 (out of the mapping anyway). Always an int32. */
export function ioDataOffset(run: KvmRun): number {
  const i = (run.base + IO_DATA_OFFSET) >>> 2;
  const lo = run.u32[i]! | 0;
  return (run.u32[i + 1]! | 0) !== 0 || lo < 0 ? -1 : lo;
}
/**
 * The payload view of a one-element IO exit whose data sits at the PIO data
 * page (where KVM and the core put it), or undefined for anything else
 * (string IO, another data_offset, a bad size): decode those with decodeExit.
 */
export function ioSingleData(run: KvmRun): Uint8Array | undefined {
  const b = run.base;
  const i = (b + IO_DATA_OFFSET) >>> 2;
  if (run.u32[(b + IO_COUNT) >>> 2] !== 1 || run.u32[i] !== PIO_PAGE || run.u32[i + 1] !== 0) return undefined;
  const size = run.u8[b + IO_SIZE];
  return size === 1 ? run.pio1 : size === 2 ? run.pio2 : size === 4 ? run.pio4 : undefined;
}
/** `kvm_run.mmio.phys_addr` as a number. */
export function mmioPhysAddr(run: KvmRun): number {
  const i = (run.base + MMIO_PHYS_ADDR) >>> 2;
  return run.u32[i + 1]! * 0x1_0000_0000 + run.u32[i]!;
}
/** `kvm_run.mmio.len`. */
export function mmioLen(run: KvmRun): number {
  return run.u32[(run.base + MMIO_LEN) >>> 2]!;
}
/** `kvm_run.mmio.is_write != 0`. */
export function mmioIsWrite(run: KvmRun): boolean {
  return run.u8[run.base + MMIO_IS_WRITE] !== 0;
}
/** The `mmio.data` view cut to `mmio.len`, or undefined when `len` is not 1–8. */
export function mmioData(run: KvmRun): Uint8Array | undefined {
  const len = mmioLen(run);
  return len >= 1 && len <= MMIO_DATA_MAX ? run.mmioView(len) : undefined;
}
/** `kvm_run.msr.index` of a KVM_EXIT_X86_RDMSR / WRMSR exit. */
export function msrIndex(run: KvmRun): number {
  return run.u32[(run.base + MSR_INDEX) >>> 2]!;
}
/** `kvm_run.msr.reason` (KVM_MSR_EXIT_REASON_*). */
export function msrReason(run: KvmRun): number {
  return run.u32[(run.base + MSR_REASON) >>> 2]!;
}
/** The low and high 32 bits of `kvm_run.msr.data` (a WRMSR's value). */
export function msrDataLo(run: KvmRun): number {
  return run.u32[(run.base + MSR_DATA) >>> 2]!;
}
export function msrDataHi(run: KvmRun): number {
  return run.u32[((run.base + MSR_DATA) >>> 2) + 1]!;
}
/** Answer an RDMSR exit with `hi:lo` (each taken mod 2^32), as the decoded exit's setData does. */
export function setMsrData(run: KvmRun, lo: number, hi: number): void {
  const i = (run.base + MSR_DATA) >>> 2;
  run.u32[i] = lo;
  run.u32[i + 1] = hi;
}
/** Make an MSR exit fail (`kvm_run.msr.error = 1`): the next KVM_RUN injects #GP. */
export function setMsrError(run: KvmRun): void {
  run.u8[run.base + MSR_ERROR] = 1;
}
/** `kvm_run.debug.arch.exception` of a KVM_EXIT_DEBUG (1: #DB, 3: #BP). */
export function debugException(run: KvmRun): number {
  return run.u32[(run.base + DEBUG_EXCEPTION) >>> 2]!;
}
/** The low and high 32 bits of `kvm_run.debug.arch.pc` (the linear address of the instruction). */
export function debugPcLo(run: KvmRun): number {
  return run.u32[(run.base + DEBUG_PC) >>> 2]!;
}
export function debugPcHi(run: KvmRun): number {
  return run.u32[((run.base + DEBUG_PC) >>> 2) + 1]!;
}
/** `kvm_run.immediate_exit`. */
export function immediateExit(run: KvmRun): number {
  return run.u8[run.base + IMMEDIATE_EXIT]!;
}
/** Set `kvm_run.immediate_exit` (KVM_RUN then completes pending IO and returns KVM_EXIT_INTR). */
export function setImmediateExit(run: KvmRun, v: number): void {
  run.u8[run.base + IMMEDIATE_EXIT] = v;
}
/** `kvm_run.flags`. */
export function runFlags(run: KvmRun): number {
  return run.u16[(run.base + FLAGS) >>> 1]!;
}

// ---- Full decode. ----

function u64s(run: KvmRun, off: number, n: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(run.get64(off + 8 * i));
  return out;
}

/**
 * The io exit as decodeExit returns it: a class (prototype accessors) rather
 * than an object literal with a getter, which V8 builds an order of magnitude
 * slower — this object is made once per exit on the hot path.
 */
class IoExitView implements IoExit {
  readonly reason = "io" as const;
  readonly #run: KvmRun;
  readonly #view: Uint8Array;
  constructor(
    run: KvmRun,
    readonly generation: number,
    readonly direction: "in" | "out",
    readonly port: number,
    readonly size: number,
    readonly count: number,
    readonly dataOffset: number,
  ) {
    this.#run = run;
    this.#view = run.payloadView(dataOffset, count * size);
  }
  get data(): Uint8Array {
    this.#run.check("io", this.generation);
    return this.#view;
  }
  fill(value: number | bigint): void {
    this.#run.check("io", this.generation);
    const size = this.size;
    for (let i = 0; i < this.count; i++) putLe(this.#view.subarray(i * size, (i + 1) * size), value);
  }
}

/** The mmio exit as decodeExit returns it (a class for the reason given at {@link IoExitView}). */
class MmioExitView implements MmioExit {
  readonly reason = "mmio" as const;
  readonly #run: KvmRun;
  readonly #view: Uint8Array;
  constructor(
    run: KvmRun,
    readonly generation: number,
    readonly physAddr: number,
    readonly len: number,
    readonly isWrite: boolean,
  ) {
    this.#run = run;
    this.#view = run.mmioView(len);
  }
  get data(): Uint8Array {
    this.#run.check("mmio", this.generation);
    return this.#view;
  }
  fill(value: number | bigint): void {
    this.#run.check("mmio", this.generation);
    putLe(this.#view, value);
  }
}

function unknown(run: KvmRun, raw: number, malformed?: string): VcpuExit {
  const generation = run.generation;
  const view = run.u8.subarray(run.base + UNION, run.base + UNION + UNION_SIZE);
  const base = { reason: "unknown" as const, generation, raw, name: exitReasonName(raw) };
  const withWhy = malformed === undefined ? base : { ...base, malformed };
  return Object.defineProperty(withWhy, "payload", {
    enumerable: true,
    get() {
      run.check("unknown", generation);
      return view;
    },
  }) as VcpuExit;
}

function decodeIo(run: KvmRun): VcpuExit {
  const generation = run.generation;
  const dir = run.get8(IO_DIRECTION);
  const size = ioSize(run);
  const count = ioCount(run);
  const dataOffset = ioDataOffset(run);
  if (dir !== K.KVM_EXIT_IO_IN && dir !== K.KVM_EXIT_IO_OUT) return unknown(run, K.KVM_EXIT_IO, `direction ${dir}`);
  if (size !== 1 && size !== 2 && size !== 4) return unknown(run, K.KVM_EXIT_IO, `size ${size}: expected 1, 2 or 4`);
  if (count < 1 || dataOffset < 0 || dataOffset + count * size > RUN_MMAP_SIZE) {
    return unknown(
      run,
      K.KVM_EXIT_IO,
      `count ${count} × size ${size} at data_offset ${dataOffset} exceeds the ${RUN_MMAP_SIZE}-byte mapping`,
    );
  }
  return new IoExitView(run, generation, dir === K.KVM_EXIT_IO_IN ? "in" : "out", ioPort(run), size, count, dataOffset);
}

function decodeMmio(run: KvmRun): VcpuExit {
  const generation = run.generation;
  const len = mmioLen(run);
  if (len < 1 || len > MMIO_DATA_MAX) return unknown(run, K.KVM_EXIT_MMIO, `len ${len}: expected 1-${MMIO_DATA_MAX}`);
  return new MmioExitView(run, generation, mmioPhysAddr(run), len, mmioIsWrite(run));
}

function decodeInternal(run: KvmRun): VcpuExit {
  const generation = run.generation;
  const suberror = run.get32(INT_SUBERROR);
  const ndata = Math.min(run.get32(INT_NDATA), INT_DATA_MAX);
  const base = {
    reason: "internal_error" as const,
    generation,
    suberror,
    suberrorName: INTERNAL_ERROR_SUBERRORS[suberror] ?? `KVM_INTERNAL_ERROR_${suberror} (unknown)`,
    ndata,
    data: u64s(run, INT_DATA, ndata),
  };
  const flags = run.get64(EMU_FLAGS);
  if (
    suberror !== K.KVM_INTERNAL_ERROR_EMULATION ||
    (flags & BigInt(K.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) === 0n
  ) {
    return base;
  }
  const n = Math.min(run.get8(EMU_INSN_SIZE), EMU_INSN_MAX);
  const start = run.base + EMU_INSN_BYTES;
  return { ...base, emulationFlags: flags, insnBytes: run.u8.slice(start, start + n) };
}

function decodeMsr(run: KvmRun, reason: "x86_rdmsr" | "x86_wrmsr"): VcpuExit {
  const generation = run.generation;
  const msrReason = run.get32(MSR_REASON);
  return {
    reason,
    generation,
    msrReason,
    msrReasonName: MSR_EXIT_REASONS[msrReason] ?? `KVM_MSR_EXIT_REASON_${msrReason} (unknown)`,
    index: run.get32(MSR_INDEX),
    data: run.get64(MSR_DATA),
    setData(value: bigint) {
      run.check(reason, generation);
      run.set64(MSR_DATA, value);
    },
    setError() {
      run.check(reason, generation);
      run.set8(MSR_ERROR, 1);
    },
  };
}

function decodeHypercall(run: KvmRun): VcpuExit {
  const generation = run.generation;
  const flags = run.get64(HC_FLAGS);
  return {
    reason: "hypercall",
    generation,
    nr: run.get64(HC_NR),
    args: u64s(run, HC_ARGS, 6),
    flags,
    longMode: (flags & BigInt(K.KVM_EXIT_HYPERCALL_LONG_MODE)) !== 0n,
    setReturn(value: bigint) {
      run.check("hypercall", generation);
      run.set64(HC_RET, value);
    },
  };
}

function decodeSystemEvent(run: KvmRun): VcpuExit {
  const type = run.get32(SE_TYPE);
  const ndata = Math.min(run.get32(SE_NDATA), SE_DATA_MAX);
  return {
    reason: "system_event",
    generation: run.generation,
    type,
    typeName: SYSTEM_EVENT_TYPES[type] ?? `KVM_SYSTEM_EVENT_${type} (unknown)`,
    ndata,
    data: u64s(run, SE_DATA, ndata),
    flags: run.get64(SE_DATA),
  };
}

/**
 * Decode the exit in `run`. Never throws: unknown reasons and malformed
 * payloads come back as `{reason: "unknown", raw, malformed?}`.
 */
export function decodeExit(run: KvmRun): VcpuExit {
  const raw = exitReasonOf(run);
  const generation = run.generation;
  switch (raw) {
    case K.KVM_EXIT_IO:
      return decodeIo(run);
    case K.KVM_EXIT_HYPERCALL:
      return decodeHypercall(run);
    case K.KVM_EXIT_DEBUG:
      return {
        reason: "debug",
        generation,
        exception: run.get32(DEBUG_EXCEPTION),
        pc: run.get64(DEBUG_PC),
        dr6: run.get64(DEBUG_DR6),
        dr7: run.get64(DEBUG_DR7),
      };
    case K.KVM_EXIT_HLT:
      return { reason: "hlt", generation };
    case K.KVM_EXIT_MMIO:
      return decodeMmio(run);
    case K.KVM_EXIT_SHUTDOWN:
      return { reason: "shutdown", generation };
    case K.KVM_EXIT_FAIL_ENTRY:
      return {
        reason: "fail_entry",
        generation,
        hardwareEntryFailureReason: run.get64(FE_REASON),
        cpu: run.get32(FE_CPU),
      };
    case K.KVM_EXIT_INTR:
      return { reason: "intr", generation };
    case K.KVM_EXIT_INTERNAL_ERROR:
      return decodeInternal(run);
    case K.KVM_EXIT_SYSTEM_EVENT:
      return decodeSystemEvent(run);
    case K.KVM_EXIT_X86_RDMSR:
      return decodeMsr(run, "x86_rdmsr");
    case K.KVM_EXIT_X86_WRMSR:
      return decodeMsr(run, "x86_wrmsr");
    case K.KVM_EXIT_MEMORY_FAULT: {
      const flags = run.get64(MF_FLAGS);
      return {
        reason: "memory_fault",
        generation,
        flags,
        gpa: run.get64(MF_GPA),
        size: run.get64(MF_SIZE),
        private: (flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0n,
      };
    }
    default:
      return unknown(run, raw);
  }
}

/** A recorded exit: the decoded fields with payloads copied (safe to keep after later runs). */
export type RecordedExit = { readonly reason: VcpuExit["reason"]; readonly [field: string]: unknown };

/** Copy an exit for recording (call before the next run()): methods dropped, payload views copied. */
export function snapshotExit(exit: VcpuExit): RecordedExit {
  switch (exit.reason) {
    case "io":
      return {
        reason: "io",
        direction: exit.direction,
        port: exit.port,
        size: exit.size,
        count: exit.count,
        data: exit.data.slice(),
      };
    case "mmio":
      return { reason: "mmio", physAddr: exit.physAddr, len: exit.len, isWrite: exit.isWrite, data: exit.data.slice() };
    case "x86_rdmsr":
    case "x86_wrmsr":
      return { reason: exit.reason, msrReason: exit.msrReason, index: exit.index, data: exit.data };
    case "hypercall":
      return { reason: "hypercall", nr: exit.nr, args: exit.args, flags: exit.flags, longMode: exit.longMode };
    case "unknown": {
      const base = { reason: "unknown" as const, raw: exit.raw, name: exit.name };
      return exit.malformed === undefined ? base : { ...base, malformed: exit.malformed };
    }
    case "debug":
    case "hlt":
    case "shutdown":
    case "fail_entry":
    case "intr":
    case "internal_error":
    case "system_event":
    case "memory_fault": {
      const { generation: _g, ...rest } = exit;
      return rest;
    }
    default: {
      const never: never = exit;
      throw new TypeError(`snapshotExit: unhandled exit ${String((never as VcpuExit).reason)}`);
    }
  }
}
