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
const SEG_BYTE_FIELDS = ["type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable"] as const;
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
/** State-block offset of each kvm_regs field, in KVM_REGS_NAMES order. */
const REG_OFFSETS: readonly number[] = KVM_REGS_NAMES.map((n) =>
  n === "rip" || n === "rflags" ? vs(n) : GPR + 8 * GPR_NAMES.indexOf(n as GprName)
);
const DIRTY = vs("dirty");
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
}

/** Default instructions per `run()` before KVM_EXIT_INTR (the core takes an i32). */
export const DEFAULT_BUDGET = 1 << 24;

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
  #removed = false;

  constructor(readonly host: VcpuHost, readonly id: number, readonly block: number, runBase: number) {
    this.runBase = runBase;
    this.stateBase = runBase + VCPU_STATE_OFFSET;
    this.kvmRun = new KvmRun(host.buffer, runBase);
    this.#dv = new DataView(host.buffer);
    this.#u8 = new Uint8Array(host.buffer);
    this.#dv.setUint32(this.stateBase + vs("vcpu_id"), id, true);
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
    return this.host.core.run(this.runBase, budget);
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

  #getSeg(name: string): KvmSegment {
    const b = this.stateBase + vs(name);
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
  #setSeg(name: string, s: KvmSegment): void {
    const b = this.stateBase + vs(name);
    this.#u8.fill(0, b, b + SEG_SIZE);
    this.#dv.setBigUint64(b + SEG_OFF.base, BigInt.asUintN(64, s.base), true);
    this.#dv.setUint32(b + SEG_OFF.limit, s.limit >>> 0, true);
    this.#dv.setUint16(b + SEG_OFF.selector, s.selector & 0xffff, true);
    for (const f of SEG_BYTE_FIELDS) this.#u8[b + SEG_OFF[f]] = s[f] & 0xff;
  }

  // ---- KVM_GET/SET_REGS ----

  /** KVM_GET_REGS. */
  getRegs(): KvmRegs {
    this.#live();
    const r = {} as KvmRegs;
    for (let i = 0; i < KVM_REGS_NAMES.length; i++) r[KVM_REGS_NAMES[i]!] = this.#get64(REG_OFFSETS[i]!);
    return r;
  }

  /** KVM_SET_REGS; fields left out keep their value. */
  setRegs(regs: Partial<KvmRegs>): void {
    this.#live();
    for (let i = 0; i < KVM_REGS_NAMES.length; i++) {
      const n = KVM_REGS_NAMES[i]!;
      const v = regs[n];
      if (v === undefined) continue;
      if (typeof v !== "bigint") throw new InvalidArgumentError(`regs.${n}`, `${String(v)}: expected a bigint`);
      this.#set64(REG_OFFSETS[i]!, v);
    }
    this.#markDirty(DIRTY_REGS);
  }

  // ---- KVM_GET/SET_SREGS ----

  /** KVM_GET_SREGS. */
  getSregs(): KvmSregs {
    this.#live();
    const seg = (n: (typeof SREGS_SEGMENTS)[number]) => this.#getSeg(SREG_TO_STATE[n]);
    const dt = (n: string) => ({
      base: this.#get64(vs(`${n}.base`)),
      limit: this.#dv.getUint16(this.stateBase + vs(`${n}.limit`), true),
    });
    return {
      cs: seg("cs"),
      ds: seg("ds"),
      es: seg("es"),
      fs: seg("fs"),
      gs: seg("gs"),
      ss: seg("ss"),
      tr: seg("tr"),
      ldt: seg("ldt"),
      gdt: dt("gdt"),
      idt: dt("idt"),
      cr0: this.#get64(vs("cr0")),
      cr2: this.#get64(vs("cr2")),
      cr3: this.#get64(vs("cr3")),
      cr4: this.#get64(vs("cr4")),
      cr8: this.#get64(vs("cr8")),
      efer: this.#get64(vs("efer")),
      apic_base: this.#get64(vs("apic_base")),
      interrupt_bitmap: [0n, 0n, 0n, 0n],
    };
  }

  /** KVM_SET_SREGS; fields left out keep their value. A pending-interrupt bit is rejected (no interrupt injection). */
  setSregs(sregs: Partial<KvmSregs>): void {
    this.#live();
    for (const n of SREGS_SEGMENTS) {
      const s = sregs[n];
      if (s) this.#setSeg(SREG_TO_STATE[n], s);
    }
    for (const n of ["gdt", "idt"] as const) {
      const d = sregs[n];
      if (!d) continue;
      this.#set64(vs(`${n}.base`), d.base);
      this.#dv.setUint16(this.stateBase + vs(`${n}.limit`), d.limit & 0xffff, true);
    }
    for (const n of ["cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"] as const) {
      const v = sregs[n];
      if (v !== undefined) this.#set64(vs(n), v);
    }
    if (sregs.interrupt_bitmap?.some((w) => w !== 0n)) {
      throw new InvalidArgumentError(
        "sregs.interrupt_bitmap",
        "kvmsim cannot inject external interrupts: expected all zero",
      );
    }
    this.#markDirty(DIRTY_STATE);
  }

  // ---- KVM_GET/SET_MSRS ----

  #msrDef(index: number) {
    const def = msrByIndex(index);
    if (!def) throw new UnknownMsrError(index, MSRS.map((m) => `${m.name}=0x${m.index.toString(16)}`));
    return def;
  }

  /** KVM_GET_MSRS for `indices` (in-kernel MSR table, src/abi/msrs.ts). */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    this.#live();
    return indices.map((index) => ({ index, data: this.#get64(vs(this.#msrDef(index).field)) }));
  }

  /** KVM_SET_MSRS. All indices are checked before anything is written. */
  setMsrs(entries: readonly MsrEntry[]): void {
    this.#live();
    const defs = entries.map((e) => this.#msrDef(e.index));
    entries.forEach((e, i) => this.#set64(vs(defs[i]!.field), e.data));
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
    const dr = (i: number) => this.#get64(vs("dr") + 8 * i);
    return { db: [dr(0), dr(1), dr(2), dr(3)], dr6: dr(6), dr7: dr(7) };
  }
  /** KVM_SET_DEBUGREGS. */
  setDebugRegs(d: Partial<KvmDebugRegs>): void {
    this.#live();
    d.db?.forEach((v, i) => this.#set64(vs("dr") + 8 * i, v));
    if (d.dr6 !== undefined) this.#set64(vs("dr") + 48, d.dr6);
    if (d.dr7 !== undefined) this.#set64(vs("dr") + 56, d.dr7);
    this.#markDirty(DIRTY_STATE);
  }
  /** KVM_GET_XCRS (XCR0 only). */
  getXcr0(): bigint {
    return this.#get64(vs("xcr0"));
  }
  /** KVM_SET_XCRS (XCR0 only; bit 0, x87, must be set). */
  setXcr0(v: bigint): void {
    if ((v & 1n) === 0n) throw new InvalidArgumentError("xcr0", `0x${v.toString(16)}: expected bit 0 (x87) set`);
    this.#set64(vs("xcr0"), v);
    this.#markDirty(DIRTY_STATE);
  }

  // ---- mp_state, events, guest debug ----

  /** KVM_GET_MP_STATE (KVM_MP_STATE_*). */
  getMpState(): number {
    this.#live();
    return this.#dv.getUint32(this.stateBase + vs("mp_state"), true);
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
    this.#dv.setUint32(this.stateBase + vs("mp_state"), state, true);
    this.#markDirty(DIRTY_STATE);
  }

  /** KVM_GET_VCPU_EVENTS (without KVM_CAP_EXCEPTION_PAYLOAD a pending exception reads as injected). */
  getEvents(): KvmVcpuEvents {
    this.#live();
    const b = (p: string) => this.#u8[this.stateBase + vs(p)]!;
    return {
      exception: {
        injected: b("exc_pending"),
        nr: b("exc_nr"),
        has_error_code: b("exc_has_error"),
        pending: 0,
        error_code: this.#dv.getUint32(this.stateBase + vs("exc_error_code"), true),
      },
      interrupt: { injected: 0, nr: 0, soft: 0, shadow: b("interrupt_shadow") },
      nmi: { injected: 0, pending: b("nmi_pending"), masked: b("nmi_masked") },
      triple_fault: { pending: b("triple_fault_pending") },
    };
  }

  /** KVM_SET_VCPU_EVENTS; sections left out keep their value. Interrupt/NMI injection is rejected. */
  setEvents(ev: Partial<KvmVcpuEvents>): void {
    this.#live();
    const set8 = (p: string, v: number) => (this.#u8[this.stateBase + vs(p)] = v & 0xff);
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
      set8("exc_pending", e.injected || e.pending ? 1 : 0);
      set8("exc_nr", e.nr);
      set8("exc_has_error", e.has_error_code);
      this.#dv.setUint32(this.stateBase + vs("exc_error_code"), e.error_code >>> 0, true);
    }
    if (ev.interrupt) set8("interrupt_shadow", ev.interrupt.shadow);
    if (ev.nmi) {
      set8("nmi_pending", ev.nmi.pending);
      set8("nmi_masked", ev.nmi.masked);
    }
    if (ev.triple_fault) set8("triple_fault_pending", ev.triple_fault.pending);
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
    this.#dv.setUint32(this.stateBase + vs("guest_debug_control"), dbg.control >>> 0, true);
    for (let i = 0; i < 8; i++) this.#set64(vs("guest_debug_dr") + 8 * i, regs[i] ?? 0n);
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
