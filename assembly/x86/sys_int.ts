// Event delivery (SDM vol. 3 §6.12): the real-mode IVT, 32-bit and 64-bit IDT
// interrupt/trap gates with the TSS stack switch on a privilege change
// (16-bit gates, task gates and IST only partly: IST is honoured, task gates end
// in an internal error), the #DF / triple-fault escalation, INT n / INT3 / INTO,
// and IRET/IRETD/IRETQ. Every exec* completes its instruction, including RIP.
import {
  KVM_EXIT_SHUTDOWN, KVM_INTERNAL_ERROR_DELIVERY_EV, SEG_BASE, SEG_DPL, SEG_SELECTOR, SEG_SIZEOF, SEG_TYPE,
  SEG_S, SEG_UNUSABLE, VS_IDT_BASE, VS_IDT_LIMIT, VS_INTERRUPT_SHADOW, VS_RFLAGS, VS_RIP, VS_SEG_CS,
  VS_SEG_TR_BASE, VS_SEG_TR_LIMIT, VS_SEG_TR_SELECTOR,
} from "../abi.generated";
import { RSP, S, SEG_CS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS, ST_EXIT, ST_FAULT, ST_OK, reg64, rip, setReg64, setRip, setStatus, status } from "./cpu";
import { nextIp, opSize } from "./decode_state";
import {
  EXC_BP, EXC_DF, EXC_GP, EXC_NP, EXC_OF, EXC_PF, EXC_SS, EXC_TS, excError, excHasError, excVector, hasErrorCode,
  raiseErr, raiseTrap,
} from "./exceptions";
import { invalidateFetch } from "./fetchwin";
import {
  MODE_LONG, MODE_PROT, MODE_REAL, RFLAGS_AC, RFLAGS_IF, RFLAGS_IOPL, RFLAGS_NT, RFLAGS_RF, RFLAGS_TF,
  RFLAGS_VM, cpl, mode, recomputeMode,
} from "./mode";
import { pop, readSys, writeSys } from "./mem";
import { segAddr } from "./segments";
import { dConforming, dCode, dDpl, descHi, loadCs, loadNullSsForInterrupt, loadSsFor, nullifyDataSegs, readDesc } from "./sys_seg";
import { breakLoop, getFlags, setFlags } from "./core_link";
import { exitTo, internalError, internalErrorEmulation } from "../kvm/exits";
import { OF as FLAG_OF } from "./flags";
import { debugExit, swBpDebug, DR6_FIXED } from "./debug";

// Snapshot of what a failed delivery must restore (CS, SS, RSP, RFLAGS, RIP).
let snapRsp: u64 = 0;
let snapFlags: u64 = 0;
let snapRip: u64 = 0;
// Stored in the state block's replay area would collide; keep the two segment caches in globals.
let sCs0: u64 = 0; let sCs1: u64 = 0; let sCs2: u64 = 0;
let sSs0: u64 = 0; let sSs1: u64 = 0; let sSs2: u64 = 0;

function snapshot(): void {
  const c = segAddr(SEG_CS); const s = segAddr(SEG_SS);
  sCs0 = load<u64>(c); sCs1 = load<u64>(c + 8); sCs2 = load<u64>(c + 16);
  sSs0 = load<u64>(s); sSs1 = load<u64>(s + 8); sSs2 = load<u64>(s + 16);
  snapRsp = reg64(RSP); snapFlags = getFlags(); snapRip = rip();
}
function restore(): void {
  const c = segAddr(SEG_CS); const s = segAddr(SEG_SS);
  store<u64>(c, sCs0); store<u64>(c + 8, sCs1); store<u64>(c + 16, sCs2);
  store<u64>(s, sSs0); store<u64>(s + 8, sSs1); store<u64>(s + 16, sSs2);
  setReg64(RSP, snapRsp); setFlags(snapFlags); setRip(snapRip);
  recomputeMode();
  invalidateFetch();
}

/** Fault-class exceptions (KVM exception_type() == EXCPT_FAULT; #DB counts as a trap there). */
@inline function faultClass(v: i32): bool {
  return v == 0 || (v >= 5 && v <= 7) || (v >= EXC_TS && v <= EXC_PF) || v == 16 || v == 17 || (v >= 19 && v <= 21);
}

/** Contributory exceptions (SDM Table 6-4). */
@inline function contributory(v: i32): bool { return v == 0 || (v >= EXC_TS && v <= EXC_GP); }

/** Exit KVM_EXIT_SHUTDOWN (triple fault). */
export function tripleFault(): void { exitTo(KVM_EXIT_SHUTDOWN); }

/**
 * Deliver an event with `retIp` as the saved RIP. `soft`: INT n/INT3/INTO (gate DPL
 * is checked against CPL). Faults during delivery escalate to #DF, then to a triple
 * fault; status ends ST_OK (delivered) or ST_EXIT (shutdown / internal error).
 */
export function deliverEvent(vector: i32, hasErr: bool, err: u32, retIp: u64, soft: bool): void {
  let v = vector; let he = hasErr; let e = err; let sw = soft;
  for (let attempt = 0; attempt < 3; attempt++) {
    setStatus(ST_OK);
    snapshot();
    // SDM vol. 3 §17.3.1.1: a fault-class exception other than #DB pushes RF = 1 (so the
    // handler's IRET does not re-trigger an instruction breakpoint); KVM does the same when it
    // injects one (kvm_check_and_inject_events: EXCPT_FAULT → RFLAGS.RF). restore() undoes it.
    if (!sw && faultClass(v)) setFlags(getFlags() | RFLAGS_RF);
    deliverOnce(v, he, e, retIp, sw);
    if (status == ST_OK) return;
    if (status == ST_EXIT) {
      // A userspace exit while delivering (IDT/stack in MMIO): KVM cannot do that either.
      restore();
      internalError(KVM_INTERNAL_ERROR_DELIVERY_EV, 1, <u64>(0x80000000 | 0x300 | (v & 0xff)), 0, 0, 0);
      return;
    }
    restore();
    const nv = excVector;
    if (v == EXC_DF) { tripleFault(); return; }
    const pf = v == EXC_PF;
    if ((contributory(v) && contributory(nv)) || (pf && (contributory(nv) || nv == EXC_PF))) {
      v = EXC_DF; he = true; e = 0;
    } else {
      v = nv; he = excHasError; e = excError;
    }
    sw = false;
    retIp = rip();
  }
  tripleFault();
}

function deliverOnce(v: i32, hasErr: bool, err: u32, retIp: u64, soft: bool): void {
  if (mode == MODE_REAL) { deliverReal(v, retIp); return; }
  if (mode == MODE_LONG || mode == 2) { deliverLong(v, hasErr, err, retIp, soft); return; }
  if (mode == MODE_PROT) { deliverProt(v, hasErr, err, retIp, soft); return; }
  internalErrorEmulation();
}

function deliverReal(v: i32, retIp: u64): void {
  const idt = load<u64>(S + VS_IDT_BASE);
  const limit = <u64>load<u16>(S + VS_IDT_LIMIT);
  if (<u64>v * 4 + 3 > limit) { raiseErr(EXC_GP, <u32>(v * 8 + 2)); return; }
  const ent = readSys(idt + <u64>v * 4, 4);
  if (status != ST_OK) return;
  const f = getFlags();
  push16Real(f);
  if (status != ST_OK) return;
  push16Real(<u64>load<u16>(segAddr(SEG_CS) + SEG_SELECTOR));
  if (status != ST_OK) return;
  push16Real(retIp);
  if (status != ST_OK) return;
  setFlags(f & ~(RFLAGS_IF | RFLAGS_TF | RFLAGS_AC | RFLAGS_RF));
  const sel = <u32>(ent >> 16);
  const c = segAddr(SEG_CS);
  store<u16>(c + SEG_SELECTOR, <u16>sel);
  store<u64>(c + SEG_BASE, <u64>sel << 4);
  setRip(ent & 0xffff);
  invalidateFetch();
}

function push16Real(v: u64): void {
  const rsp = reg64(RSP);
  const nsp = (rsp - 2) & 0xffff;
  writeSys((load<u64>(segAddr(SEG_SS) + SEG_BASE) + nsp) & 0xffffffff, 2, v);
  if (status != ST_OK) return;
  setReg64(RSP, (rsp & ~(<u64>0xffff)) | nsp);
}

/** Read the gate for `v`; checks limit, type, soft-INT DPL and presence. Returns false on a fault. */
let gateLo: u64 = 0;
let gateHi: u64 = 0;
function readGate(v: i32, size: i32, soft: bool): bool {
  const idt = load<u64>(S + VS_IDT_BASE);
  const limit = <u64>load<u16>(S + VS_IDT_LIMIT);
  const errIdt: u32 = <u32>(v * 8 + 2) | (soft ? 0 : 1);
  if (<u64>(v * size + size - 1) > limit) { raiseErr(EXC_GP, errIdt); return false; }
  gateLo = readSys(idt + <u64>(v * size), 8);
  if (status != ST_OK) return false;
  gateHi = size == 16 ? readSys(idt + <u64>(v * size) + 8, 8) : 0;
  if (status != ST_OK) return false;
  const type = <i32>((gateLo >> 40) & 0x1f);
  const dpl = <i32>((gateLo >> 45) & 3);
  const okType = size == 16 ? (type == 0xe || type == 0xf) : (type == 0xe || type == 0xf || type == 6 || type == 7);
  if (size == 8 && type == 5) { internalErrorEmulation(); return false; }
  if (!okType) { raiseErr(EXC_GP, errIdt); return false; }
  if (soft && dpl < cpl()) { raiseErr(EXC_GP, errIdt); return false; }
  if ((gateLo & (<u64>1 << 47)) == 0) { raiseErr(EXC_NP, errIdt); return false; }
  return true;
}

/** Write `size` bytes below the working stack pointer `sp` at linear `base + sp`. */
let wsp: u64 = 0;
function framePush(base: u64, size: i32, v: u64, mask: u64): void {
  wsp = (wsp - <u64>size) & mask;
  const lin = base + wsp;
  writeSys(mode == MODE_LONG || mode == 2 ? lin : lin & 0xffffffff, size, v);
}

function deliverProt(v: i32, hasErr: bool, err: u32, retIp: u64, soft: bool): void {
  if (!readGate(v, 8, soft)) return;
  const type = <i32>((gateLo >> 40) & 0x1f);
  const gate32 = (type & 8) != 0;
  const sel = <u32>((gateLo >> 16) & 0xffff);
  const off = (gateLo & 0xffff) | ((gateLo >> 32) & 0xffff0000);
  const f = getFlags();
  const oldCs = <u64>load<u16>(segAddr(SEG_CS) + SEG_SELECTOR);
  const oldSs = <u64>load<u16>(segAddr(SEG_SS) + SEG_SELECTOR);
  const oldSp = reg64(RSP);
  const c = cpl();
  // Target code segment.
  if (!peekCode(sel)) return;
  const newCpl = dConforming(cdHi) ? c : dDpl(cdHi);
  const sz = gate32 ? 4 : 2;
  if (newCpl < c) {
    // Inner stack from the 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n.
    const tr = load<u64>(S + VS_SEG_TR_BASE);
    const trLimit = <u64>load<u32>(S + VS_SEG_TR_LIMIT);
    const o = <u64>(4 + newCpl * 8);
    if (o + 5 > trLimit) { raiseErr(EXC_TS, <u32>load<u16>(S + VS_SEG_TR_SELECTOR) & 0xfffc); return; }
    const nesp = readSys(tr + o, 4);
    if (status != ST_OK) return;
    const nss = <u32>readSys(tr + o + 4, 2);
    if (status != ST_OK) return;
    if (!loadSsFor(nss, newCpl)) { if (excVector == EXC_GP) raiseErr(EXC_TS, nss & 0xfffc); return; }
    wsp = nesp;
    const base = load<u64>(segAddr(SEG_SS) + SEG_BASE);
    const m: u64 = 0xffffffff;
    framePush(base, sz, oldSs, m); if (status != ST_OK) return;
    framePush(base, sz, oldSp, m); if (status != ST_OK) return;
    framePush(base, sz, f, m); if (status != ST_OK) return;
    framePush(base, sz, oldCs, m); if (status != ST_OK) return;
    framePush(base, sz, retIp, m); if (status != ST_OK) return;
    if (hasErr) { framePush(base, sz, <u64>err, m); if (status != ST_OK) return; }
  } else {
    const base = load<u64>(segAddr(SEG_SS) + SEG_BASE);
    const m: u64 = load<u8>(segAddr(SEG_SS) + 17) != 0 ? 0xffffffff : 0xffff;
    wsp = oldSp & m;
    framePush(base, sz, f, m); if (status != ST_OK) return;
    framePush(base, sz, oldCs, m); if (status != ST_OK) return;
    framePush(base, sz, retIp, m); if (status != ST_OK) return;
    if (hasErr) { framePush(base, sz, <u64>err, m); if (status != ST_OK) return; }
    if (m == 0xffff) wsp = (oldSp & ~m) | wsp;
  }
  if (!loadCs(sel, newCpl, false)) return;
  setReg64(RSP, wsp);
  setRip(gate32 ? off : off & 0xffff);
  let nf = f & ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM);
  if ((type & 1) == 0) nf &= ~RFLAGS_IF;
  setFlags(nf);
}

/** Descriptor of a gate's target CS (readDesc + code-segment checks). */
let cdHi: u32 = 0;
function peekCode(sel: u32): bool {
  if ((sel & 0xfffc) == 0) { raiseErr(EXC_GP, 0); return false; }
  if (!readDesc(sel, EXC_GP)) return false;
  cdHi = descHi;
  if (!dCode(cdHi) || dDpl(cdHi) > cpl()) { raiseErr(EXC_GP, sel & 0xfffc); return false; }
  if ((cdHi & 0x8000) == 0) { raiseErr(EXC_NP, sel & 0xfffc); return false; }
  return true;
}

function deliverLong(v: i32, hasErr: bool, err: u32, retIp: u64, soft: bool): void {
  if (!readGate(v, 16, soft)) return;
  const type = <i32>((gateLo >> 40) & 0x1f);
  const sel = <u32>((gateLo >> 16) & 0xffff);
  const off = (gateLo & 0xffff) | ((gateLo >> 32) & 0xffff0000) | (gateHi << 32);
  const ist = <i32>((gateLo >> 32) & 7);
  const f = getFlags();
  const oldCs = <u64>load<u16>(segAddr(SEG_CS) + SEG_SELECTOR);
  const oldSs = <u64>load<u16>(segAddr(SEG_SS) + SEG_SELECTOR);
  const oldSp = reg64(RSP);
  const c = cpl();
  if (!peekCode(sel)) return;
  if ((cdHi & 0x200000) == 0 || (cdHi & 0x400000) != 0) { raiseErr(EXC_GP, sel & 0xfffc); return; }
  const newCpl = dConforming(cdHi) ? c : dDpl(cdHi);
  let nsp = oldSp;
  if (newCpl < c || ist != 0) {
    const tr = load<u64>(S + VS_SEG_TR_BASE);
    const trLimit = <u64>load<u32>(S + VS_SEG_TR_LIMIT);
    const o: u64 = ist != 0 ? <u64>(0x24 + (ist - 1) * 8) : <u64>(4 + newCpl * 8);
    if (o + 7 > trLimit) { raiseErr(EXC_TS, <u32>load<u16>(S + VS_SEG_TR_SELECTOR) & 0xfffc); return; }
    nsp = readSys(tr + o, 8);
    if (status != ST_OK) return;
  }
  wsp = nsp & ~(<u64>15);
  const m: u64 = <u64>-1;
  framePush(0, 8, oldSs, m); if (status != ST_OK) return;
  framePush(0, 8, oldSp, m); if (status != ST_OK) return;
  framePush(0, 8, f, m); if (status != ST_OK) return;
  framePush(0, 8, oldCs, m); if (status != ST_OK) return;
  framePush(0, 8, retIp, m); if (status != ST_OK) return;
  if (hasErr) { framePush(0, 8, <u64>err, m); if (status != ST_OK) return; }
  if (newCpl < c) {
    // IA-32e delivery loads a NULL SS with RPL = new CPL on a privilege change
    // (from 64-bit and from compatibility mode alike).
    loadNullSsForInterrupt(newCpl);
  }
  if (!loadCs(sel, newCpl, false)) return;
  setReg64(RSP, wsp);
  setRip(off);
  let nf = f & ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM);
  if ((type & 1) == 0) nf &= ~RFLAGS_IF;
  setFlags(nf);
}

/** INT imm8 (CD ib): a software interrupt with RIP after the instruction. */
export function execInt(vector: i32): void {
  if (mode != MODE_REAL && mode != MODE_PROT && mode != MODE_LONG && mode != 2) { internalErrorEmulation(); return; }
  // INT 3 (CD 03) raises #BP like INT3: KVM's #BP intercept turns it into the same debug exit.
  if ((vector & 0xff) == EXC_BP && swBpDebug()) { swBpExit(); return; }
  deliverSoft(vector & 0xff);
}

/** KVM_EXIT_DEBUG for #BP under KVM_GUESTDBG_USE_SW_BP: exception 3, pc = CS base + RIP of the instruction. */
function swBpExit(): void {
  const lin = (mode == MODE_LONG ? 0 : load<u64>(S + VS_SEG_CS + SEG_BASE)) + rip();
  debugExit(EXC_BP, lin, DR6_FIXED);
}

function deliverSoft(v: i32): void {
  deliverEvent(v, false, 0, nextIp, true);
}

/** INT3 (CC): #BP as a trap, or KVM_EXIT_DEBUG with exception 3 under KVM_GUESTDBG_USE_SW_BP (RIP stays). */
export function execInt3(): void {
  if (swBpDebug()) { swBpExit(); return; }
  deliverEvent(EXC_BP, false, 0, nextIp, true);
}

/** INTO (CE): #OF trap when OF is set; #UD in 64-bit mode. */
export function execInto(): void {
  if (mode == MODE_LONG) { raiseErr(6, 0); return; }
  if ((getFlags() & FLAG_OF) == 0) { setRip(nextIp); return; }
  deliverEvent(EXC_OF, false, 0, nextIp, true);
}

/** IRET / IRETD / IRETQ (CF). */
export function execIret(): void {
  const sz = opSize;
  const c = cpl();
  const f0 = getFlags();
  if (mode == MODE_REAL) {
    const rsp0 = reg64(RSP);
    const ip = pop(sz); if (status != ST_OK) return;
    const cs = pop(sz); if (status != ST_OK) { setReg64(RSP, rsp0); return; }
    const fl = pop(sz); if (status != ST_OK) { setReg64(RSP, rsp0); return; }
    const a = segAddr(SEG_CS);
    store<u16>(a + SEG_SELECTOR, <u16>cs);
    store<u64>(a + SEG_BASE, (cs & 0xffff) << 4);
    invalidateFetch();
    setRip(ip & (sz == 4 ? 0xffffffff : 0xffff));
    writeFlags(fl, sz, 0, 0, true);
    return;
  }
  if ((f0 & RFLAGS_NT) != 0 && mode == MODE_PROT) { internalErrorEmulation(); return; }
  const rsp0 = reg64(RSP);
  const ip = pop(sz); if (status != ST_OK) return;
  const csSel = <u32>(pop(sz) & 0xffff); if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  const fl = pop(sz); if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  if (mode == MODE_PROT && sz == 4 && (fl & RFLAGS_VM) != 0 && c == 0) { setReg64(RSP, rsp0); internalErrorEmulation(); return; }
  const rpl = <i32>(csSel & 3);
  if (rpl < c) { setReg64(RSP, rsp0); raiseErr(EXC_GP, csSel & 0xfffc); return; }
  const outer = rpl > c || mode == MODE_LONG;
  let nsp: u64 = 0; let nss: u32 = 0;
  if (outer) {
    nsp = pop(sz); if (status != ST_OK) { setReg64(RSP, rsp0); return; }
    nss = <u32>(pop(sz) & 0xffff); if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  }
  snapshot();
  snapRsp = rsp0;
  if (!readDesc(csSel, EXC_GP)) { restore(); return; }
  const hi = descHi;
  if (!dCode(hi) || (dConforming(hi) ? dDpl(hi) > rpl : dDpl(hi) != rpl)) { restore(); raiseErr(EXC_GP, csSel & 0xfffc); return; }
  if (!loadCs(csSel, rpl, false)) { restore(); return; }
  if (outer) {
    if (rpl != c || mode != MODE_LONG || (nss & 0xfffc) != 0 || rpl == 3) {
      if (!loadSsFor(nss, rpl)) { restore(); return; }
    } else if (!loadSsFor(nss, rpl)) { restore(); return; }
    setReg64(RSP, nsp);
  }
  setRip(sz == 8 ? ip : ip & (sz == 4 ? 0xffffffff : 0xffff));
  writeFlags(fl, sz, c, <i32>((f0 & RFLAGS_IOPL) >> 12), true);
  if (rpl > c) nullifyDataSegs(rpl);
}

/**
 * Write RFLAGS from POPF/IRET with the privilege rules: IOPL only at CPL 0, IF only
 * when CPL <= IOPL, VM/VIP/VIF never through POPF; RF is restored by IRET only.
 * `size` 2 changes only the low 16 bits.
 */
export function writeFlags(v: u64, size: i32, c: i32, iopl: i32, iret: bool): void {
  const old = getFlags();
  let mask: u64 = 0x3f7fd5 & ~(RFLAGS_VM | (<u64>0x180000));
  if (!iret) mask &= ~RFLAGS_RF;
  if (mode != MODE_REAL) {
    if (c != 0) mask &= ~RFLAGS_IOPL;
    if (c > iopl) mask &= ~RFLAGS_IF;
  }
  if (size == 2) mask &= 0xffff;
  const nf = (old & ~mask) | (v & mask);
  setFlags(iret ? nf : nf & ~RFLAGS_RF);
  if ((nf & (RFLAGS_TF | RFLAGS_IF | RFLAGS_RF)) != (old & (RFLAGS_TF | RFLAGS_IF | RFLAGS_RF))) breakLoop();
}

/** POPF's flag write (Core pops the value, then calls this; commits nothing else). */
export function popfWrite(v: u64, size: i32): void {
  writeFlags(v, size, cpl(), <i32>((getFlags() & RFLAGS_IOPL) >> 12), false);
}

/** The one-instruction interrupt shadow of STI / MOV SS. */
export function setInterruptShadow(): void { store<u8>(S + VS_INTERRUPT_SHADOW, 1); breakLoop(); }

