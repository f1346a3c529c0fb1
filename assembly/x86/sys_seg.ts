// Segment loads (MOV sreg / POP sreg: loadSeg), descriptor reads from the GDT/LDT,
// and far JMP/CALL/RET (real and protected/long mode; call gates and task
// switches end in an internal error). Each exec* completes its instruction,
// including RIP; loadSeg only loads the segment (the caller commits).
import {
  SEG_BASE, SEG_DB, SEG_DPL, SEG_G, SEG_L, SEG_LIMIT, SEG_PRESENT, SEG_S, SEG_SELECTOR, SEG_AVL, SEG_TYPE,
  SEG_UNUSABLE, VS_GDT_BASE, VS_GDT_LIMIT, VS_INTERRUPT_SHADOW, VS_SEG_LDTR_BASE, VS_SEG_LDTR_LIMIT,
  VS_SEG_LDTR_UNUSABLE,
} from "../abi.generated";
import { RSP, S, SEG_CS, SEG_ES, SEG_GS, SEG_SS, ST_OK, reg64, setReg64, setRip, status } from "./cpu";
import { nextIp, opSize } from "./decode_state";
import { EXC_GP, EXC_NP, EXC_SS, raiseErr } from "./exceptions";
import { invalidateFetch } from "./fetchwin";
import { MODE_LONG, MODE_REAL, cpl, mode, recomputeMode, stackSize } from "./mode";
import { pop, push, readSys, writeSys } from "./mem";
import { segAddr } from "./segments";
import { breakLoop } from "./core_link";
import { internalErrorEmulation } from "../kvm/exits";

/** The descriptor read by readDesc(): low and high dwords, and its linear address. */
export let descLo: u32 = 0;
export let descHi: u32 = 0;
export let descAddr: u64 = 0;
/** Upper 8 bytes of a 16-byte system descriptor (long mode), when read. */
export let descHi2: u32 = 0;

@inline export function dType(hi: u32): u32 { return (hi >> 8) & 0xf; }
@inline export function dS(hi: u32): bool { return (hi & 0x1000) != 0; }
@inline export function dDpl(hi: u32): i32 { return <i32>((hi >> 13) & 3); }
@inline export function dPresent(hi: u32): bool { return (hi & 0x8000) != 0; }
@inline export function dCode(hi: u32): bool { return (hi & 0x1800) == 0x1800; }
@inline export function dConforming(hi: u32): bool { return (hi & 0x1c00) == 0x1c00; }

/** Read the 8-byte descriptor for `sel` (GDT or LDT); #GP(sel) past the limit. */
export function readDesc(sel: u32, errVec: i32): bool {
  const idx = <u64>(sel & 0xfff8);
  let base: u64, limit: u64;
  if ((sel & 4) != 0) {
    if (load<u8>(S + VS_SEG_LDTR_UNUSABLE) != 0) { raiseErr(errVec, sel & 0xfffc); return false; }
    base = load<u64>(S + VS_SEG_LDTR_BASE);
    limit = <u64>load<u32>(S + VS_SEG_LDTR_LIMIT);
  } else {
    base = load<u64>(S + VS_GDT_BASE);
    limit = <u64>load<u16>(S + VS_GDT_LIMIT);
  }
  if (idx + 7 > limit) { raiseErr(errVec, sel & 0xfffc); return false; }
  descAddr = base + idx;
  const v = readSys(descAddr, 8);
  if (status != ST_OK) return false;
  descLo = <u32>v;
  descHi = <u32>(v >> 32);
  return true;
}

/** Fill segment cache `seg` from a descriptor. */
export function setSegFromDesc(seg: i32, sel: u32, lo: u32, hi: u32): void {
  const a = segAddr(seg);
  const base = <u64>((lo >> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000));
  let limit = (lo & 0xffff) | (hi & 0xf0000);
  const g = (hi >> 23) & 1;
  if (g != 0) limit = (limit << 12) | 0xfff;
  store<u64>(a + SEG_BASE, base);
  store<u32>(a + SEG_LIMIT, limit);
  store<u16>(a + SEG_SELECTOR, <u16>sel);
  store<u8>(a + SEG_TYPE, <u8>((hi >> 8) & 0xf));
  store<u8>(a + SEG_S, <u8>((hi >> 12) & 1));
  store<u8>(a + SEG_DPL, <u8>((hi >> 13) & 3));
  store<u8>(a + SEG_PRESENT, <u8>((hi >> 15) & 1));
  store<u8>(a + SEG_AVL, <u8>((hi >> 20) & 1));
  store<u8>(a + SEG_L, <u8>((hi >> 21) & 1));
  store<u8>(a + SEG_DB, <u8>((hi >> 22) & 1));
  store<u8>(a + SEG_G, <u8>g);
  store<u8>(a + SEG_UNUSABLE, 0);
}

/** Mark a data/code descriptor accessed (as the CPU does on a load). */
function setAccessed(): void {
  if ((descHi & 0x100) != 0) return;
  descHi |= 0x100;
  writeSys(descAddr + 5, 1, <u64>((descHi >> 8) & 0xff));
}

/** Null selector in a data segment register: unusable. */
function setNullSeg(seg: i32, sel: u32): void {
  const a = segAddr(seg);
  store<u16>(a + SEG_SELECTOR, <u16>sel);
  store<u64>(a + SEG_BASE, 0);
  store<u32>(a + SEG_LIMIT, 0);
  store<u8>(a + SEG_TYPE, 0);
  store<u8>(a + SEG_S, 0);
  store<u8>(a + SEG_PRESENT, 0);
  store<u8>(a + SEG_UNUSABLE, 1);
  if (seg == SEG_SS) store<u8>(a + SEG_DPL, <u8>(sel & 3));
}

/** Real-mode style load: selector and base = selector * 16, attributes kept. */
function loadReal(seg: i32, sel: u32): void {
  const a = segAddr(seg);
  store<u16>(a + SEG_SELECTOR, <u16>sel);
  store<u64>(a + SEG_BASE, <u64>(sel & 0xffff) << 4);
  if (seg == SEG_CS) invalidateFetch();
}

/**
 * MOV Sreg / POP Sreg / LDS-family: load ES/SS/DS/FS/GS with `sel` (SDM "MOV"
 * protected-mode checks). Loading SS sets the one-instruction interrupt shadow.
 */
export function loadSeg(seg: i32, sel: u32): void {
  sel &= 0xffff;
  if (mode == MODE_REAL) {
    loadReal(seg, sel);
    if (seg == SEG_SS) { store<u8>(S + VS_INTERRUPT_SHADOW, 1); breakLoop(); }
    return;
  }
  const c = cpl();
  const rpl = <i32>(sel & 3);
  if ((sel & 0xfffc) == 0) {
    if (seg == SEG_SS && !(mode == MODE_LONG && c != 3 && rpl == c)) { raiseErr(EXC_GP, 0); return; }
    setNullSeg(seg, sel);
    if (seg == SEG_SS) { store<u8>(S + VS_INTERRUPT_SHADOW, 1); recomputeMode(); breakLoop(); }
    return;
  }
  if (!readDesc(sel, EXC_GP)) return;
  const hi = descHi;
  const err = sel & 0xfffc;
  if (seg == SEG_SS) {
    const writableData = (hi & 0x1a00) == 0x1200;
    if (rpl != c || dDpl(hi) != c || !writableData) { raiseErr(EXC_GP, err); return; }
    if (!dPresent(hi)) { raiseErr(EXC_SS, err); return; }
  } else {
    const readable = !dCode(hi) || (hi & 0x200) != 0;
    if (!dS(hi) || !readable) { raiseErr(EXC_GP, err); return; }
    if (!dConforming(hi) && (dDpl(hi) < c || dDpl(hi) < rpl)) { raiseErr(EXC_GP, err); return; }
    if (!dPresent(hi)) { raiseErr(EXC_NP, err); return; }
  }
  setAccessed();
  if (status != ST_OK) return;
  setSegFromDesc(seg, sel, descLo, descHi);
  if (seg == SEG_SS) { store<u8>(S + VS_INTERRUPT_SHADOW, 1); recomputeMode(); breakLoop(); }
}

/**
 * Check a code-segment descriptor for a far JMP/CALL/RET/IRET or an interrupt
 * gate target and load CS with RPL = `newCpl`. Returns false with a fault raised.
 */
export function loadCs(sel: u32, newCpl: i32, checkPriv: bool): bool {
  if ((sel & 0xfffc) == 0) { raiseErr(EXC_GP, 0); return false; }
  if (!readDesc(sel, EXC_GP)) return false;
  const hi = descHi;
  const err = sel & 0xfffc;
  if (!dCode(hi)) {
    // System descriptors (call gates, TSS, task gates) are not supported.
    if (!dS(hi) && (dType(hi) == 4 || dType(hi) == 12 || dType(hi) == 5 || dType(hi) == 9 || dType(hi) == 1)) {
      internalErrorEmulation();
      return false;
    }
    raiseErr(EXC_GP, err);
    return false;
  }
  if (checkPriv) {
    const c = cpl();
    const rpl = <i32>(sel & 3);
    if (dConforming(hi)) { if (dDpl(hi) > c) { raiseErr(EXC_GP, err); return false; } }
    else if (rpl > c || dDpl(hi) != c) { raiseErr(EXC_GP, err); return false; }
  }
  if (!dPresent(hi)) { raiseErr(EXC_NP, err); return false; }
  if (mode == MODE_LONG || mode == 2) {
    if ((hi & 0x200000) != 0 && (hi & 0x400000) != 0) { raiseErr(EXC_GP, err); return false; }
  }
  setAccessed();
  if (status != ST_OK) return false;
  setSegFromDesc(SEG_CS, (sel & 0xfffc) | <u32>newCpl, descLo, descHi);
  store<u8>(segAddr(SEG_CS) + SEG_DPL, dConforming(hi) ? <u8>dDpl(hi) : <u8>newCpl);
  recomputeMode();
  invalidateFetch();
  breakLoop();
  return true;
}

@inline function ipMask(): u64 { return opSize == 8 ? <u64>-1 : opSize == 4 ? <u64>0xffffffff : <u64>0xffff; }

/** JMP ptr16:16/32 and JMP m16:16/32/64 (far). */
export function execFarJmp(sel: u32, off: u64): void {
  off &= ipMask();
  if (mode == MODE_REAL) {
    loadReal(SEG_CS, sel);
    setRip(off);
    return;
  }
  if (!loadCs(sel, cpl(), true)) return;
  setRip(off);
}

/** CALL ptr16:16/32 and CALL m16:16/32/64 (far): pushes CS then the return IP. */
export function execFarCall(sel: u32, off: u64): void {
  off &= ipMask();
  const sz = opSize;
  const oldCs = <u64>load<u16>(segAddr(SEG_CS) + SEG_SELECTOR);
  const ret = nextIp;
  const rsp0 = reg64(RSP);
  // Probe the two pushes first so a stack fault leaves CS untouched.
  push(sz, oldCs);
  if (status != ST_OK) return;
  push(sz, ret);
  if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  if (mode == MODE_REAL) {
    loadReal(SEG_CS, sel);
    setRip(off);
    return;
  }
  if (!loadCs(sel, cpl(), true)) { setReg64(RSP, rsp0); return; }
  setRip(off);
}

/** RETF / RETF imm16: pops IP and CS (and SS:SP on a return to an outer level). */
export function execFarRet(popImm: i32): void {
  const sz = opSize;
  const rsp0 = reg64(RSP);
  const ip = pop(sz);
  if (status != ST_OK) return;
  const sel = <u32>(pop(sz) & 0xffff);
  if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  if (mode == MODE_REAL) {
    loadReal(SEG_CS, sel);
    setRip(ip & ipMask());
    adjustSp(popImm);
    return;
  }
  const rpl = <i32>(sel & 3);
  const c = cpl();
  if (rpl < c) { setReg64(RSP, rsp0); raiseErr(EXC_GP, sel & 0xfffc); return; }
  if (rpl == c) {
    if (!loadCs(sel, c, true)) { setReg64(RSP, rsp0); return; }
    setRip(ip & ipMask());
    adjustSp(popImm);
    return;
  }
  // Return to an outer privilege level: skip the parameters, pop SS:SP.
  adjustSp(popImm);
  const nsp = pop(sz);
  if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  const nss = <u32>(pop(sz) & 0xffff);
  if (status != ST_OK) { setReg64(RSP, rsp0); return; }
  // A fault on the SS load must leave CS as it was: keep its cache to put back.
  const ca = segAddr(SEG_CS);
  const cs0 = load<u64>(ca); const cs1 = load<u64>(ca + 8); const cs2 = load<u64>(ca + 16);
  if (!loadCsOuter(sel, rpl)) { setReg64(RSP, rsp0); return; }
  if (!loadSsFor(nss, rpl)) {
    store<u64>(ca, cs0); store<u64>(ca + 8, cs1); store<u64>(ca + 16, cs2);
    recomputeMode();
    invalidateFetch();
    setReg64(RSP, rsp0);
    return;
  }
  setReg64(RSP, nsp);
  setRip(ip & ipMask());
  adjustSp(popImm);
  nullifyDataSegs(rpl);
}

function loadCsOuter(sel: u32, rpl: i32): bool {
  if (!readDesc(sel, EXC_GP)) return false;
  const hi = descHi;
  if (!dCode(hi) || (!dConforming(hi) && dDpl(hi) != rpl) || (dConforming(hi) && dDpl(hi) > rpl)) {
    raiseErr(EXC_GP, sel & 0xfffc);
    return false;
  }
  return loadCs(sel, rpl, false);
}

/**
 * IA-32e interrupt delivery with a privilege change: SS becomes NULL with RPL =
 * the new CPL, whether the interrupted code ran in 64-bit or compatibility mode
 * (SDM vol. 3 §6.14.4); `mov ss, 0` in compatibility mode still raises #GP.
 */
export function loadNullSsForInterrupt(pl: i32): void {
  setNullSeg(SEG_SS, <u32>pl);
  recomputeMode();
}

/** Load SS for privilege level `pl` (interrupt stack switch, outer returns). */
export function loadSsFor(sel: u32, pl: i32): bool {
  if ((sel & 0xfffc) == 0) {
    if (mode == MODE_LONG && pl != 3) { setNullSeg(SEG_SS, (sel & 0xfffc) | <u32>pl); recomputeMode(); return true; }
    raiseErr(EXC_GP, 0);
    return false;
  }
  if (!readDesc(sel, EXC_GP)) return false;
  const hi = descHi;
  const err = sel & 0xfffc;
  if (<i32>(sel & 3) != pl || dDpl(hi) != pl || (hi & 0x1a00) != 0x1200) { raiseErr(EXC_GP, err); return false; }
  if (!dPresent(hi)) { raiseErr(EXC_SS, err); return false; }
  setAccessed();
  if (status != ST_OK) return false;
  setSegFromDesc(SEG_SS, sel, descLo, descHi);
  recomputeMode();
  return true;
}

function adjustSp(n: i32): void {
  if (n == 0) return;
  const ss = stackSize();
  const rsp = reg64(RSP);
  if (ss == 8) setReg64(RSP, rsp + <u64>n);
  else if (ss == 4) setReg64(RSP, (rsp + <u64>n) & 0xffffffff);
  else setReg64(RSP, (rsp & ~(<u64>0xffff)) | ((rsp + <u64>n) & 0xffff));
}


/**
 * After a return to an outer level (RETF, IRET): ES/DS/FS/GS holding a data or
 * non-conforming code segment with DPL < the new CPL are loaded with a null
 * selector (SDM RET / IRET pseudo-code "FOR each SegReg in (ES, FS, GS, DS)").
 */
export function nullifyDataSegs(pl: i32): void {
  for (let s = SEG_ES; s <= SEG_GS; s++) {
    if (s == SEG_CS || s == SEG_SS) continue;
    const a = segAddr(s);
    if (load<u8>(a + SEG_UNUSABLE) != 0) continue;
    const type = load<u8>(a + SEG_TYPE);
    const conformingCode = (type & 0xc) == 0xc;
    if (!conformingCode && <i32>load<u8>(a + SEG_DPL) < pl && load<u8>(a + SEG_S) != 0) {
      store<u16>(a + SEG_SELECTOR, 0);
      store<u8>(a + SEG_UNUSABLE, 1);
      store<u8>(a + SEG_PRESENT, 0);
    }
  }
}
