/**
 * A vCPU: its kvm_run mapping and state block in the VM's shared memory, the
 * KVM_RUN entry point, and the register ioctls (kvm_util's vcpu_* helpers:
 * regs, sregs, MSRs, mp_state, events, guest debug, args).
 *
 * Every state write sets `vcpu_state.dirty |= 1` (core-contract.md: the core
 * recomputes the mode and flushes its TLB at the next entry), except KVM_SET_REGS,
 * which sets `|= 2` (the core only reloads RFLAGS and the mode).
 *
 * @module
 */
import { field, layOut } from "./abi/layout.ts";
import { GPR_NAMES, type GprName, MAX_VCPUS, VCPU_STATE } from "./abi/vcpu_state.ts";
import { VCPU_STATE_OFFSET } from "./abi/memory_map.ts";
import { exitReasonName, KVM_CONSTANTS as K } from "./abi/constants.ts";
import { msrByIndex, MSRS } from "./abi/msrs.ts";
import { InvalidArgumentError, NoSuchVcpuError, UnknownMsrError } from "./errors.ts";
import { u64RecordCodec } from "./abi/u64_record.ts";
import type { CpuidEntry } from "./x86/cpuid.ts";
import { checkSregs, cr8Accepted } from "./x86/sregs_check.ts";
import { msrWrite } from "./x86/msr_check.ts";
import { runRefused } from "./exits/sync_regs.ts";
import { decodeExit, exitReasonOf, immediateExit, KvmRun, setImmediateExit } from "./exits/decode.ts";
import type { VcpuExit } from "./exits/exit.ts";
import type { CoreExports } from "./wasm.ts";
import {
  KVM_REGS_NAMES,
  type KvmDebugRegs,
  type KvmRegs,
  type KvmSegment,
  type KvmSregs,
  type KvmVcpuEvents,
  SREGS_SEGMENTS,
} from "./x86/regs.ts";

const VS = layOut(VCPU_STATE);
const vs = (p: string) => field(VS, p).offset;
const SEG_SIZE = field(VS, "seg_cs").size;
const SEG_OFF = {
  base: vs("seg_es.base") - vs("seg_es"),
  limit: vs("seg_es.limit") - vs("seg_es"),
  selector: vs("seg_es.selector") - vs("seg_es"),
  type: vs("seg_es.type") - vs("seg_es"),
  present: vs("seg_es.present") - vs("seg_es"),
  dpl: vs("seg_es.dpl") - vs("seg_es"),
  db: vs("seg_es.db") - vs("seg_es"),
  s: vs("seg_es.s") - vs("seg_es"),
  l: vs("seg_es.l") - vs("seg_es"),
  g: vs("seg_es.g") - vs("seg_es"),
  avl: vs("seg_es.avl") - vs("seg_es"),
  unusable: vs("seg_es.unusable") - vs("seg_es"),
};
const SREG_TO_STATE: Record<(typeof SREGS_SEGMENTS)[number], string> = {
  cs: "seg_cs",
  ds: "seg_ds",
  es: "seg_es",
  fs: "seg_fs",
  gs: "seg_gs",
  ss: "seg_ss",
  tr: "seg_tr",
  ldt: "seg_ldtr",
};
const GPR = vs("gpr");
/** KVM_GET_REGS / KVM_SET_REGS over the state block: each kvm_regs field at its state-block offset. */
const REGS = u64RecordCodec<keyof KvmRegs>(
  KVM_REGS_NAMES.map((n) =>
    [n, n === "rip" || n === "rflags" ? vs(n) : GPR + 8 * GPR_NAMES.indexOf(n as GprName)] as const
  ),
);
/** State-block offsets the register ioctls use, looked up once. */
const O = {
  vcpuId: vs("vcpu_id"),
  gdtBase: vs("gdt.base"),
  gdtLimit: vs("gdt.limit"),
  idtBase: vs("idt.base"),
  idtLimit: vs("idt.limit"),
  cr0: vs("cr0"),
  cr2: vs("cr2"),
  cr3: vs("cr3"),
  cr4: vs("cr4"),
  cr8: vs("cr8"),
  efer: vs("efer"),
  apicBase: vs("apic_base"),
  dr: vs("dr"),
  xcr0: vs("xcr0"),
  mpState: vs("mp_state"),
  excPending: vs("exc_pending"),
  excNr: vs("exc_nr"),
  excHasError: vs("exc_has_error"),
  excErrorCode: vs("exc_error_code"),
  interruptShadow: vs("interrupt_shadow"),
  nmiPending: vs("nmi_pending"),
  nmiMasked: vs("nmi_masked"),
  tripleFaultPending: vs("triple_fault_pending"),
  guestDebugControl: vs("guest_debug_control"),
  guestDebugDr: vs("guest_debug_dr"),
} as const;
/** State-block offset of each kvm_sregs segment. */
const SEG_AT = Object.fromEntries(
  SREGS_SEGMENTS.map((n) => [n, vs(SREG_TO_STATE[n])]),
) as Record<(typeof SREGS_SEGMENTS)[number], number>;
/** State-block offset of the field behind each in-kernel MSR (src/abi/msrs.ts), by index. */
const MSR_AT = new Map(MSRS.map((m) => [m.index, vs(m.field)]));
const DIRTY = vs("dirty");
const RFLAGS = vs("rflags");
/**
 * `vcpu_state.dirty` bits (docs/core-contract.md "State ownership"): STATE for any write
 * but KVM_SET_REGS (the core's full refresh: mode, TLB, fetch window, ...), REGS for
 * kvm_regs alone (GPRs, RIP, RFLAGS: the core reloads RFLAGS and the mode only).
 */
const DIRTY_STATE = 1, DIRTY_REGS = 2;
const INSTRUCTIONS = vs("instructions");

/** Known KVM_GUESTDBG_* control bits. */
const GUESTDBG_VALID = K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP | K.KVM_GUESTDBG_USE_SW_BP |
  K.KVM_GUESTDBG_USE_HW_BP | K.KVM_GUESTDBG_INJECT_DB | K.KVM_GUESTDBG_INJECT_BP;

/** `struct kvm_msr_entry`. */
export interface MsrEntry {
  index: number;
  data: bigint;
}

/** `struct kvm_guest_debug` (x86). */
export interface GuestDebug {
  /** KVM_GUESTDBG_* bits. */
  control: number;
  /** DR0–DR7 for hardware breakpoints (KVM_GUESTDBG_USE_HW_BP). */
  debugreg?: readonly bigint[];
}

/** What a vCPU needs from its VM. */
export interface VcpuHost {
  readonly core: CoreExports;
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  /** CPUID.1.EAX of the VM's table (RDX at reset). */
  cpuidSignature(): number;
  /** The VM's CPUID table (what KVM_SET_SREGS checks CR4, CR3 and APIC_BASE against). */
  cpuidTable(): readonly CpuidEntry[];
}

/** Default instructions per `run()` before KVM_EXIT_INTR (the core takes an i32). */
export const DEFAULT_BUDGET = 1 << 24;

/** setRegs' error for a field that is not a bigint. */
function badReg(name: keyof KvmRegs, v: unknown): never {
  throw new InvalidArgumentError(`regs.${name}`, `${String(v)}: expected a bigint`);
}

const h = (v: bigint | number, w = 16) => `0x${v.toString(16).padStart(w, "0")}`;

export class Vcpu {
  /** The kvm_run mapping (decodeExit reads it). */
  readonly kvmRun: KvmRun;
  /** Byte offset of the kvm_run page in the shared memory. */
  readonly runBase: number;
  /** Byte offset of the state block. */
  readonly stateBase: number;
  /** Instructions per `run()` before the core returns KVM_EXIT_INTR (1 … 2^31-1). */
  #budget = DEFAULT_BUDGET;
  readonly #dv: DataView;
  readonly #u8: Uint8Array;
  readonly #u64: BigUint64Array;
  #removed = false;

  constructor(readonly host: VcpuHost, readonly id: number, readonly block: number, runBase: number) {
    this.runBase = runBase;
    this.stateBase = runBase + VCPU_STATE_OFFSET;
    this.kvmRun = new KvmRun(host.buffer, runBase);
    this.#dv = new DataView(host.buffer);
    this.#u8 = new Uint8Array(host.buffer);
    this.#u64 = new BigUint64Array(host.buffer, 0, host.buffer.byteLength >>> 3);
    this.#dv.setUint32(this.stateBase + O.vcpuId, id, true);
  }

  get budget(): number {
    return this.#budget;
  }
  set budget(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) {
      throw new InvalidArgumentError("instruction budget", `${n}: expected an integer in 1..0x7fffffff`);
    }
    this.#budget = n;
  }

  /** Mark removed; later calls throw. */
  markRemoved(): void {
    this.#removed = true;
  }
  #live(): void {
    if (this.#removed) throw new NoSuchVcpuError(this.id, "the vcpu was removed");
  }

  // ---- KVM_RUN ----

  /**
   * KVM_RUN, returning the raw exit reason (allocation-free). Bumps the run
   * generation first, so exits decoded before this call are stale.
   */
  runRaw(budget = this.#budget): number {
    this.#live();
    this.kvmRun.generation++;
    const r = this.host.core.run(this.runBase, budget);
    if (r < 0) throw runRefused(this.kvmRun, r); // KVM_CAP_SYNC_REGS bits kvmsim does not sync
    return r;
  }

  /** KVM_RUN: run until the next exit and decode it. */
  run(budget = this.#budget): VcpuExit {
    this.runRaw(budget);
    return decodeExit(this.kvmRun);
  }

  /** `kvm_run.immediate_exit`: when set, the next run() completes pending IO and returns KVM_EXIT_INTR. */
  get immediateExit(): boolean {
    return immediateExit(this.kvmRun) !== 0;
  }
  set immediateExit(v: boolean) {
    setImmediateExit(this.kvmRun, v ? 1 : 0);
  }

  /** Instructions retired since creation (`vcpu_state.instructions`). */
  get instructions(): number {
    const p = this.stateBase + INSTRUCTIONS;
    return this.#dv.getUint32(p + 4, true) * 0x1_0000_0000 + this.#dv.getUint32(p, true);
  }

  // ---- raw state access ----

  #get64(off: number): bigint {
    return this.#dv.getBigUint64(this.stateBase + off, true);
  }
  #set64(off: number, v: bigint): void {
    this.#dv.setBigUint64(this.stateBase + off, BigInt.asUintN(64, v), true);
  }
  /** Set `vcpu_state.dirty` bit `what` (DIRTY_STATE or DIRTY_REGS). */
  #markDirty(what: number): void {
    const p = this.stateBase + DIRTY;
    this.#dv.setUint32(p, this.#dv.getUint32(p, true) | what, true);
  }
  /** Read a state-block u64 by field path (`"cr3"`, `"seg_fs.base"`). */
  stateField(path: string): bigint {
    return this.#get64(vs(path));
  }

  #getSeg(at: number): KvmSegment {
    const b = this.stateBase + at;
    const u8 = this.#u8;
    return {
      base: this.#dv.getBigUint64(b + SEG_OFF.base, true),
      limit: this.#dv.getUint32(b + SEG_OFF.limit, true),
      selector: this.#dv.getUint16(b + SEG_OFF.selector, true),
      type: u8[b + SEG_OFF.type]!,
      present: u8[b + SEG_OFF.present]!,
      dpl: u8[b + SEG_OFF.dpl]!,
      db: u8[b + SEG_OFF.db]!,
      s: u8[b + SEG_OFF.s]!,
      l: u8[b + SEG_OFF.l]!,
      g: u8[b + SEG_OFF.g]!,
      avl: u8[b + SEG_OFF.avl]!,
      unusable: u8[b + SEG_OFF.unusable]!,
    };
  }
  #setSeg(at: number, s: KvmSegment): void {
    const b = this.stateBase + at;
    const u8 = this.#u8;
    u8.fill(0, b, b + SEG_SIZE);
    this.#dv.setBigUint64(b + SEG_OFF.base, BigInt.asUintN(64, s.base), true);
    this.#dv.setUint32(b + SEG_OFF.limit, s.limit >>> 0, true);
    this.#dv.setUint16(b + SEG_OFF.selector, s.selector & 0xffff, true);
    u8[b + SEG_OFF.type] = s.type;
    u8[b + SEG_OFF.present] = s.present;
    u8[b + SEG_OFF.dpl] = s.dpl;
    u8[b + SEG_OFF.db] = s.db;
    u8[b + SEG_OFF.s] = s.s;
    u8[b + SEG_OFF.l] = s.l;
    u8[b + SEG_OFF.g] = s.g;
    u8[b + SEG_OFF.avl] = s.avl;
    u8[b + SEG_OFF.unusable] = s.unusable;
  }

  // ---- KVM_GET/SET_REGS ----

  /** KVM_GET_REGS. */
  getRegs(): KvmRegs {
    this.#live();
    return REGS.read(this.#u64, this.stateBase);
  }

  /** KVM_SET_REGS; fields left out keep their value. */
  setRegs(regs: Partial<KvmRegs>): void {
    this.#live();
    REGS.write(this.#u64, this.stateBase, regs, badReg);
    // RFLAGS bit 1 is always set (KVM_SET_REGS: kvm_set_rflags(regs->rflags | X86_EFLAGS_FIXED)).
    if (regs.rflags !== undefined) this.#set64(RFLAGS, this.#get64(RFLAGS) | 2n);
    this.#markDirty(DIRTY_REGS);
  }

  // ---- KVM_GET/SET_SREGS ----

  /** KVM_GET_SREGS. */
  getSregs(): KvmSregs {
    this.#live();
    const dv = this.#dv, b = this.stateBase;
    return {
      cs: this.#getSeg(SEG_AT.cs),
      ds: this.#getSeg(SEG_AT.ds),
      es: this.#getSeg(SEG_AT.es),
      fs: this.#getSeg(SEG_AT.fs),
      gs: this.#getSeg(SEG_AT.gs),
      ss: this.#getSeg(SEG_AT.ss),
      tr: this.#getSeg(SEG_AT.tr),
      ldt: this.#getSeg(SEG_AT.ldt),
      gdt: { base: this.#get64(O.gdtBase), limit: dv.getUint16(b + O.gdtLimit, true) },
      idt: { base: this.#get64(O.idtBase), limit: dv.getUint16(b + O.idtLimit, true) },
      cr0: this.#get64(O.cr0),
      cr2: this.#get64(O.cr2),
      cr3: this.#get64(O.cr3),
      cr4: this.#get64(O.cr4),
      cr8: this.#get64(O.cr8),
      efer: this.#get64(O.efer),
      apic_base: this.#get64(O.apicBase),
      interrupt_bitmap: [0n, 0n, 0n, 0n],
    };
  }

  /**
   * KVM_SET_SREGS; fields left out keep their value. What KVM refuses with EINVAL
   * (x86/sregs_check.ts) and a pending-interrupt bit (no interrupt injection) are
   * refused before anything is written; a CR8 with reserved bits is ignored, as KVM does.
   */
  setSregs(sregs: Partial<KvmSregs>): void {
    this.#live();
    if (sregs.interrupt_bitmap?.some((w) => w !== 0n)) {
      throw new InvalidArgumentError(
        "sregs.interrupt_bitmap",
        "kvmsim cannot inject external interrupts: expected all zero",
      );
    }
    const next: Record<string, unknown> = { ...this.getSregs() };
    for (const [k, v] of Object.entries(sregs)) if (v !== undefined) next[k] = v;
    checkSregs(next as unknown as KvmSregs, this.host.cpuidTable());
    for (const n of SREGS_SEGMENTS) {
      const seg = sregs[n];
      if (seg) this.#setSeg(SEG_AT[n], seg);
    }
    const dv = this.#dv, b = this.stateBase;
    if (sregs.gdt) {
      this.#set64(O.gdtBase, sregs.gdt.base);
      dv.setUint16(b + O.gdtLimit, sregs.gdt.limit & 0xffff, true);
    }
    if (sregs.idt) {
      this.#set64(O.idtBase, sregs.idt.base);
      dv.setUint16(b + O.idtLimit, sregs.idt.limit & 0xffff, true);
    }
    if (sregs.cr0 !== undefined) this.#set64(O.cr0, sregs.cr0);
    if (sregs.cr2 !== undefined) this.#set64(O.cr2, sregs.cr2);
    if (sregs.cr3 !== undefined) this.#set64(O.cr3, sregs.cr3);
    if (sregs.cr4 !== undefined) this.#set64(O.cr4, sregs.cr4);
    if (sregs.cr8 !== undefined && cr8Accepted(sregs.cr8)) this.#set64(O.cr8, sregs.cr8);
    if (sregs.efer !== undefined) this.#set64(O.efer, sregs.efer);
    if (sregs.apic_base !== undefined) this.#set64(O.apicBase, sregs.apic_base);
    this.#markDirty(DIRTY_STATE);
  }

  // ---- KVM_GET/SET_MSRS ----

  /** State-block offset of in-kernel MSR `index`; UnknownMsrError if it is not one. */
  #msrAt(index: number): number {
    const at = MSR_AT.get(index >>> 0);
    if (at === undefined) throw new UnknownMsrError(index, MSRS.map((m) => `${m.name}=0x${m.index.toString(16)}`));
    return at;
  }

  /** KVM_GET_MSRS for `indices` (in-kernel MSR table, src/abi/msrs.ts). */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    this.#live();
    return indices.map((index) => ({ index, data: this.#get64(this.#msrAt(index)) }));
  }

  /**
   * KVM_SET_MSRS. Every index and value is checked (x86/msr_check.ts: what KVM refuses,
   * drops or keeps) before anything is written; KVM writes the entries before a bad one.
   */
  setMsrs(entries: readonly MsrEntry[]): void {
    this.#live();
    const at = entries.map((e) => this.#msrAt(e.index));
    const cpuid = this.host.cpuidTable();
    const values = entries.map((e, i) => {
      const name = `${msrByIndex(e.index)!.name} (0x${(e.index >>> 0).toString(16)})`;
      if (typeof e.data !== "bigint") throw new InvalidArgumentError(name, `${String(e.data)}: expected a bigint`);
      const w = msrWrite(e.index, e.data, this.#get64(at[i]!), cpuid);
      if (!w.ok) {
        throw new InvalidArgumentError(
          name,
          `0x${BigInt.asUintN(64, e.data).toString(16)}: ${w.why} (KVM_SET_MSRS refuses it; nothing was written)`,
        );
      }
      return w.value;
    });
    values.forEach((v, i) => this.#set64(at[i]!, v));
    this.#markDirty(DIRTY_STATE);
  }

  /** vcpu_get_msr. */
  getMsr(index: number): bigint {
    return this.getMsrs([index])[0]!.data;
  }
  /** vcpu_set_msr. */
  setMsr(index: number, data: bigint): void {
    this.setMsrs([{ index, data }]);
  }

  // ---- debug registers, XCR0 ----

  /** KVM_GET_DEBUGREGS. */
  getDebugRegs(): KvmDebugRegs {
    this.#live();
    const dr = (i: number) => this.#get64(O.dr + 8 * i);
    return { db: [dr(0), dr(1), dr(2), dr(3)], dr6: dr(6), dr7: dr(7) };
  }
  /** KVM_SET_DEBUGREGS. */
  setDebugRegs(d: Partial<KvmDebugRegs>): void {
    this.#live();
    // KVM refuses (EINVAL) a DR6 or DR7 with bits 63:32 set (kvm_dr6_valid / kvm_dr7_valid),
    // before anything is written; more than DR0-DR3 does not fit struct kvm_debugregs.
    for (const n of ["dr6", "dr7"] as const) {
      const v = d[n];
      if (v !== undefined && BigInt.asUintN(64, v) >> 32n !== 0n) {
        throw new InvalidArgumentError(
          `debugregs.${n}`,
          `0x${BigInt.asUintN(64, v).toString(16)}: bits 63:32 are reserved (KVM_SET_DEBUGREGS fails with EINVAL)`,
        );
      }
    }
    if (d.db !== undefined && d.db.length > 4) {
      throw new InvalidArgumentError("debugregs.db", `${d.db.length} entries: expected at most 4 (DR0-DR3)`);
    }
    d.db?.forEach((v, i) => this.#set64(O.dr + 8 * i, v));
    if (d.dr6 !== undefined) this.#set64(O.dr + 48, d.dr6);
    if (d.dr7 !== undefined) this.#set64(O.dr + 56, d.dr7);
    this.#markDirty(DIRTY_STATE);
  }
  /** KVM_GET_XCRS (XCR0 only). */
  getXcr0(): bigint {
    return this.#get64(O.xcr0);
  }
  /** KVM_SET_XCRS (XCR0 only; bit 0, x87, must be set). */
  setXcr0(v: bigint): void {
    if ((v & 1n) === 0n) throw new InvalidArgumentError("xcr0", `0x${v.toString(16)}: expected bit 0 (x87) set`);
    this.#set64(O.xcr0, v);
    this.#markDirty(DIRTY_STATE);
  }

  // ---- mp_state, events, guest debug ----

  /** KVM_GET_MP_STATE (KVM_MP_STATE_*). */
  getMpState(): number {
    this.#live();
    return this.#dv.getUint32(this.stateBase + O.mpState, true);
  }
  /** KVM_SET_MP_STATE: RUNNABLE, UNINITIALIZED, INIT_RECEIVED or HALTED. */
  setMpState(state: number): void {
    this.#live();
    if (!Number.isInteger(state) || state < K.KVM_MP_STATE_RUNNABLE || state > K.KVM_MP_STATE_HALTED) {
      throw new InvalidArgumentError(
        "mp_state",
        `${state}: expected KVM_MP_STATE_RUNNABLE (0) … KVM_MP_STATE_HALTED (3)`,
      );
    }
    this.#dv.setUint32(this.stateBase + O.mpState, state, true);
    this.#markDirty(DIRTY_STATE);
  }

  /** KVM_GET_VCPU_EVENTS (without KVM_CAP_EXCEPTION_PAYLOAD a pending exception reads as injected). */
  getEvents(): KvmVcpuEvents {
    this.#live();
    const u8 = this.#u8, b = this.stateBase;
    return {
      exception: {
        injected: u8[b + O.excPending]!,
        nr: u8[b + O.excNr]!,
        has_error_code: u8[b + O.excHasError]!,
        pending: 0,
        error_code: this.#dv.getUint32(b + O.excErrorCode, true),
      },
      interrupt: { injected: 0, nr: 0, soft: 0, shadow: u8[b + O.interruptShadow]! },
      nmi: { injected: 0, pending: u8[b + O.nmiPending]!, masked: u8[b + O.nmiMasked]! },
      triple_fault: { pending: u8[b + O.tripleFaultPending]! },
    };
  }

  /** KVM_SET_VCPU_EVENTS; sections left out keep their value. Interrupt/NMI injection is rejected. */
  setEvents(ev: Partial<KvmVcpuEvents>): void {
    this.#live();
    const set8 = (at: number, v: number) => (this.#u8[this.stateBase + at] = v & 0xff);
    if (ev.interrupt?.injected) {
      throw new InvalidArgumentError(
        "events.interrupt.injected",
        "kvmsim cannot inject external interrupts: expected 0",
      );
    }
    if (ev.nmi?.injected) {
      throw new InvalidArgumentError("events.nmi.injected", "NMI injection is not modelled: expected 0");
    }
    if (ev.exception) {
      const e = ev.exception;
      if (e.nr > 31) {
        throw new InvalidArgumentError("events.exception.nr", `${e.nr}: expected an exception vector 0-31`);
      }
      set8(O.excPending, e.injected || e.pending ? 1 : 0);
      set8(O.excNr, e.nr);
      set8(O.excHasError, e.has_error_code);
      this.#dv.setUint32(this.stateBase + O.excErrorCode, e.error_code >>> 0, true);
    }
    if (ev.interrupt) set8(O.interruptShadow, ev.interrupt.shadow);
    if (ev.nmi) {
      set8(O.nmiPending, ev.nmi.pending);
      set8(O.nmiMasked, ev.nmi.masked);
    }
    if (ev.triple_fault) set8(O.tripleFaultPending, ev.triple_fault.pending);
    this.#markDirty(DIRTY_STATE);
  }

  /** KVM_SET_GUEST_DEBUG. */
  setGuestDebug(dbg: GuestDebug): void {
    this.#live();
    if ((dbg.control & ~GUESTDBG_VALID) !== 0) {
      throw new InvalidArgumentError(
        "guest debug control",
        `0x${dbg.control.toString(16)} has unknown bits 0x${(dbg.control & ~GUESTDBG_VALID).toString(16)} (valid: 0x${
          GUESTDBG_VALID.toString(16)
        })`,
      );
    }
    const regs = dbg.debugreg ?? [];
    if (regs.length > 8) {
      throw new InvalidArgumentError("guest debug debugreg", `${regs.length} entries: expected at most 8`);
    }
    this.#dv.setUint32(this.stateBase + O.guestDebugControl, dbg.control >>> 0, true);
    for (let i = 0; i < 8; i++) this.#set64(O.guestDebugDr + 8 * i, regs[i] ?? 0n);
    this.#markDirty(DIRTY_STATE);
  }

  /** vcpu_args_set: the first 1–6 SysV arguments (rdi, rsi, rdx, rcx, r8, r9). */
  argsSet(...args: (bigint | number)[]): void {
    if (args.length < 1 || args.length > 6) {
      throw new InvalidArgumentError(
        "argsSet",
        `${args.length} arguments: expected 1 to 6 (rdi, rsi, rdx, rcx, r8, r9)`,
      );
    }
    const names = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"] as const;
    const regs: Partial<KvmRegs> = {};
    args.forEach((a, i) => (regs[names[i]!] = BigInt.asUintN(64, BigInt(a))));
    this.setRegs(regs);
  }

  // ---- dump ----

  /** vcpu_dump: registers and system registers as text. */
  dump(indent = 0): string {
    const pad = " ".repeat(indent);
    const r = this.getRegs();
    const s = this.getSregs();
    const lines = [
      `${pad}vcpu ${this.id}: mp_state ${this.getMpState()} instructions ${this.instructions}`,
      `${pad}  regs:`,
    ];
    const regLine = (names: readonly (keyof KvmRegs)[]) =>
      `${pad}    ${names.map((n) => `${n.padEnd(3)}: ${h(r[n])}`).join("  ")}`;
    lines.push(
      regLine(["rax", "rbx", "rcx", "rdx"]),
      regLine(["rsi", "rdi", "rsp", "rbp"]),
      regLine(["r8", "r9", "r10", "r11"]),
      regLine(["r12", "r13", "r14", "r15"]),
      regLine(["rip", "rflags"]),
      `${pad}  sregs:`,
    );
    for (const n of SREGS_SEGMENTS) {
      const g = s[n];
      lines.push(
        `${pad}    ${n.padEnd(3)}: base: ${h(g.base)} limit: ${h(g.limit, 8)} selector: ${h(g.selector, 4)} type: ${
          h(g.type, 2)
        }` +
          ` p: ${g.present} dpl: ${g.dpl} db: ${g.db} s: ${g.s} l: ${g.l} g: ${g.g} avl: ${g.avl} unusable: ${g.unusable}`,
      );
    }
    lines.push(
      `${pad}    gdt: base: ${h(s.gdt.base)} limit: ${h(s.gdt.limit, 4)}`,
      `${pad}    idt: base: ${h(s.idt.base)} limit: ${h(s.idt.limit, 4)}`,
      `${pad}    cr0: ${h(s.cr0)} cr2: ${h(s.cr2)} cr3: ${h(s.cr3)}`,
      `${pad}    cr4: ${h(s.cr4)} cr8: ${h(s.cr8)} efer: ${h(s.efer)} apic_base: ${h(s.apic_base)}`,
      `${pad}  last exit: ${exitReasonName(exitReasonOf(this.kvmRun))}`,
    );
    return lines.join("\n");
  }
}

/** Check a vCPU id (KVM_CREATE_VCPU accepts ids below KVM_MAX_VCPU_IDS; kvmsim has MAX_VCPUS blocks). */
export function checkVcpuId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= MAX_VCPUS) {
    throw new NoSuchVcpuError(id, `expected an id in 0..${MAX_VCPUS - 1}`);
  }
}
