// The one-byte opcode map (Intel SDM vol. 2 Table A-2), one dense switch.
// Prefixes are consumed by decode.ts before we get here.
import { VS_GPR, VS_SEG_CS, VS_SEG_ES, VS_SEG_ES_SELECTOR } from "../abi.generated";
import {
  RAX, RBP, RBX, RCX, RDX, RSP, S, SEG_CS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS, ST_OK, reg64, setReg64, setRip,
  status,
} from "./cpu";
import {
  addrSize, ea, eaSeg, lockPrefix, modrmMod, modrmReg, modrmRm, nextIp, opSize, rex, segOverride, setEa, setNextIp,
} from "./decode_state";
import { LK_DEC, LK_INC, LK_NEG, LK_NOT, LK_XCHG, lockedOld, lockedRmw } from "./atomic_rmw";
import {
  ALU_AND, ALU_CMP, alu, aluDec, aluInc, aluNeg, divide128, divQuot, divRem, idivide128, imulTrunc, mulhs, mulhu,
  setMulFlags, shift,
} from "./alu";
import { EXC_DE, EXC_GP, EXC_UD, raise, raiseErr } from "./exceptions";
import {
  addrMask, decodeModrm, fetchImm, fetchImmS8, getReg, immLenZ, readG, readRM, readRMrmw, setReg, writeG, writeRM,
} from "./exec_operands";
import { exec0F } from "./exec_0f";
import {
  AF, CF, DF, IF, OSZAPC, PF, SF, ZF, cond, flagsOther, getCF, getFlags, getOszapc, restoreFlags, saveFlags, setEager,
  setOtherFlag, sext, sizeMask,
} from "./flags";
import { fetch16, fetch64, fetch8, pop, push, readMem, writeMem, writeMemFinal } from "./mem";
import { is64, mode, MODE_REAL, stackSize } from "./mode";
import {
  sysCli, sysFarCall, sysFarJmp, sysFarRet, sysHlt, sysIn, sysInt, sysInt3, sysInto, sysIret, sysLoadSeg, sysOut,
  sysPopf, sysSti, sysUnsupported, sysIns, sysOuts,
} from "./exec_system";
import { execString } from "./string";

/** Commit: RIP = the next instruction. */
@inline export function done(): void { setRip(nextIp); }

@inline export function ud(): void { raise(EXC_UD); }

@inline function ok(): bool { return status == ST_OK; }

/** Operand size of near branches and of PUSH/POP: 64 in 64-bit mode (66 → 16 for PUSH/POP). */
@inline export function stackOpSize(): i32 {
  return is64() ? (opSize == 2 ? 2 : 8) : opSize;
}
@inline export function branchSize(): i32 {
  return is64() ? 8 : opSize;
}

/** Canonical 48-bit address. */
@inline function canonical(v: u64): bool {
  return <u64>((<i64>(v << 16)) >> 16) == v;
}

/** Near transfer to `target` (already computed with full 64-bit arithmetic). */
export function jumpTo(target: u64): void {
  const bs = branchSize();
  let t = target;
  if (bs == 2) t &= 0xffff;
  else if (bs == 4) t &= 0xffffffff;
  else if (!canonical(t)) { raiseErr(EXC_GP, 0); return; }
  setRip(t);
}

/** Near CALL: push the return address, then transfer; a #GP on the target leaves RSP as it was. */
export function callNear(target: u64): void {
  const bs = branchSize();
  const sp = reg64(RSP);
  push(bs, nextIp & sizeMask(bs));
  if (!ok()) return;
  jumpTo(target);
  if (!ok()) setReg64(RSP, sp);
}

/** Segment selector of segment register `seg` (0–5). */
@inline export function segSelector(seg: i32): u64 {
  return <u64>load<u16>(S + VS_SEG_ES_SELECTOR + seg * (VS_SEG_CS - VS_SEG_ES));
}

/** Add `delta` to the stack pointer at the current stack size. */
export function addSp(delta: u64): void {
  const ss = stackSize();
  const sp = reg64(RSP);
  if (ss == 8) setReg64(RSP, sp + delta);
  else if (ss == 4) setReg64(RSP, (sp + delta) & 0xffffffff);
  else setReg64(RSP, (sp & ~<u64>0xffff) | ((sp + delta) & 0xffff));
}

// ---- ALU helpers ----

/** r/m = r/m OP src (or compare), ModRM already decoded. */
export function aluE(op: i32, size: i32, src: u64): void {
  if (modrmMod == 3) {
    const r = alu(op, getReg(modrmRm, size), src, size);
    if (op != ALU_CMP) setReg(modrmRm, size, r);
    done();
    return;
  }
  if (op == ALU_CMP) {
    const a = readMem(eaSeg, ea, size);
    if (!ok()) return;
    alu(op, a, src, size);
    done();
    return;
  }
  if (lockPrefix != 0 && lockedRmw(eaSeg, ea, size, op, src, 0)) { if (ok()) done(); return; }
  const a = readRMrmw(size);
  if (!ok()) return;
  saveFlags();
  const r = alu(op, a, src, size);
  writeMem(eaSeg, ea, size, r);
  if (!ok()) { restoreFlags(); return; }
  done();
}

function aluForm(op: i32, form: i32): void {
  switch (form) {
    case 0: case 1: { // Eb,Gb / Ev,Gv
      const size = form == 0 ? 1 : opSize;
      decodeModrm(0);
      if (!ok()) return;
      aluE(op, size, readG(size));
      return;
    }
    case 2: case 3: { // Gb,Eb / Gv,Ev
      const size = form == 2 ? 1 : opSize;
      decodeModrm(0);
      if (!ok()) return;
      const b = readRM(size);
      if (!ok()) return;
      const r = alu(op, readG(size), b, size);
      if (op != ALU_CMP) writeG(size, r);
      done();
      return;
    }
    case 4: { // AL,Ib
      const b = <u64>fetch8();
      if (!ok()) return;
      const r = alu(op, getReg(RAX, 1), b, 1);
      if (op != ALU_CMP) setReg(RAX, 1, r);
      done();
      return;
    }
    default: { // eAX,Iz
      const b = fetchImm(opSize);
      if (!ok()) return;
      const r = alu(op, getReg(RAX, opSize), b, opSize);
      if (op != ALU_CMP) setReg(RAX, opSize, r);
      done();
      return;
    }
  }
}

/** Group 1 (80/81/82/83): ModRM.reg selects the op. */
function group1(size: i32, immLen: i32, imm8s: bool): void {
  decodeModrm(immLen);
  if (!ok()) return;
  const imm = imm8s ? fetchImmS8(size) : fetchImm(size);
  if (!ok()) return;
  aluE(modrmReg & 7, size, imm);
}

/** Group 2 shifts/rotates on r/m with a count. */
export function shiftE(size: i32, count: u32): void {
  const kind = modrmReg & 7;
  if (modrmMod == 3) {
    setReg(modrmRm, size, shift(kind, getReg(modrmRm, size), count, size));
    done();
    return;
  }
  const v = readRMrmw(size);
  if (!ok()) return;
  if ((count & (size == 8 ? 63 : 31)) == 0) { done(); return; }
  saveFlags();
  const r = shift(kind, v, count, size);
  writeMem(eaSeg, ea, size, r);
  if (!ok()) { restoreFlags(); return; }
  done();
}

function group2(size: i32, countKind: i32): void {
  decodeModrm(countKind == 0 ? 1 : 0);
  if (!ok()) return;
  let count: u32;
  if (countKind == 0) { count = fetch8(); if (!ok()) return; }
  else if (countKind == 1) count = 1;
  else count = <u32>getReg(RCX, 1);
  shiftE(size, count);
}

/** INC/DEC r/m (FE /0 /1, FF /0 /1). */
function incDecE(size: i32, dec: bool): void {
  if (modrmMod == 3) {
    const v = getReg(modrmRm, size);
    setReg(modrmRm, size, dec ? aluDec(v, size) : aluInc(v, size));
    done();
    return;
  }
  if (lockPrefix != 0 && lockedRmw(eaSeg, ea, size, dec ? LK_DEC : LK_INC, 0, 0)) { if (ok()) done(); return; }
  const v = readRMrmw(size);
  if (!ok()) return;
  saveFlags();
  const r = dec ? aluDec(v, size) : aluInc(v, size);
  writeMem(eaSeg, ea, size, r);
  if (!ok()) { restoreFlags(); return; }
  done();
}

/** Group 3 (F6/F7). */
function group3(size: i32): void {
  const sub = modrmReg & 7;
  if (sub <= 1) { // TEST r/m, imm (/1 is an alias of /0)
    // ModRM already decoded with the immediate length.
    const imm = fetchImm(size);
    if (!ok()) return;
    const v = readRM(size);
    if (!ok()) return;
    alu(ALU_AND, v, imm, size);
    done();
    return;
  }
  if (sub == 2 || sub == 3) { // NOT / NEG
    if (lockPrefix != 0 && modrmMod != 3 && lockedRmw(eaSeg, ea, size, sub == 2 ? LK_NOT : LK_NEG, 0, 0)) {
      if (ok()) done();
      return;
    }
    const v = readRMrmw(size);
    if (!ok()) return;
    if (sub == 2) {
      writeRM(size, ~v & sizeMask(size));
      if (!ok()) return;
      done();
      return;
    }
    saveFlags();
    const r = aluNeg(v, size);
    writeRM(size, r);
    if (!ok()) { restoreFlags(); return; }
    done();
    return;
  }
  const src = readRM(size);
  if (!ok()) return;
  switch (sub) {
    case 4: mulA(size, src, false); return;
    case 5: mulA(size, src, true); return;
    case 6: divA(size, src, false); return;
    default: divA(size, src, true); return;
  }
}

/** MUL/IMUL with the accumulator (F6/F7 /4 /5). */
function mulA(size: i32, src: u64, signed: bool): void {
  if (size == 1) {
    const a = getReg(RAX, 1);
    let p: u64;
    let ovf: bool;
    if (signed) { p = (sext(a, 1) * sext(src, 1)) & 0xffff; ovf = sext(p, 2) != sext(p, 1); }
    else { p = a * src; ovf = (p >> 8) != 0; }
    setReg(RAX, 2, p);
    setMulFlags(ovf, p, 1);
  } else if (size == 8) {
    const a = reg64(RAX);
    const lo = a * src;
    const hi = signed ? mulhs(a, src) : mulhu(a, src);
    setReg64(RAX, lo);
    setReg64(RDX, hi);
    setMulFlags(signed ? hi != <u64>(<i64>lo >> 63) : hi != 0, lo, 8);
  } else {
    const a = getReg(RAX, size);
    const bits = <u64>(size << 3);
    let p: u64;
    let ovf: bool;
    if (signed) {
      p = sext(a, size) * sext(src, size);
      ovf = sext(p & sizeMask(size), size) != p;
    } else {
      p = a * src;
      ovf = (p >> bits) != 0;
    }
    setReg(RAX, size, p);
    setReg(RDX, size, p >> bits);
    setMulFlags(ovf, p, size);
  }
  done();
}

/** DIV/IDIV (F6/F7 /6 /7): #DE on a zero divisor or a quotient that does not fit. */
function divA(size: i32, d: u64, signed: bool): void {
  if (d == 0) { raise(EXC_DE); return; }
  if (size == 8) {
    const hi = reg64(RDX), lo = reg64(RAX);
    if (signed) {
      if (!idivide128(hi, lo, d)) { raise(EXC_DE); return; }
    } else {
      if (hi >= d) { raise(EXC_DE); return; }
      divide128(hi, lo, d);
    }
    setReg64(RAX, divQuot);
    setReg64(RDX, divRem);
    done();
    return;
  }
  const bits = <u64>(size << 3);
  const m = sizeMask(size);
  let n: u64;
  if (size == 1) n = getReg(RAX, 2);
  else n = (getReg(RDX, size) << bits) | getReg(RAX, size);
  let q: u64, r: u64;
  if (signed) {
    const sn = <i64>sext(n, size * 2);
    const sd = <i64>sext(d, size);
    // (wasm traps on INT64_MIN / -1: that dividend only occurs for 32-bit IDIV, where it overflows)
    if (sd == -1 && sn == i64.MIN_VALUE) { raise(EXC_DE); return; }
    const sq = sn / sd;
    const sr = sn % sd;
    const lim = <i64>(<u64>1 << (bits - 1));
    if (sq >= lim || sq < -lim) { raise(EXC_DE); return; }
    q = <u64>sq & m; r = <u64>sr & m;
  } else {
    q = n / d; r = n % d;
    if (q > m) { raise(EXC_DE); return; }
  }
  if (size == 1) { setReg(RAX, 2, (r << 8) | q); }
  else { setReg(RAX, size, q); setReg(RDX, size, r); }
  done();
}

/** Group 5 (FF). */
function group5(): void {
  const sub = modrmReg & 7;
  switch (sub) {
    case 0: incDecE(opSize, false); return;
    case 1: incDecE(opSize, true); return;
    case 2: { // CALL near r/m
      const bs = branchSize();
      const t = readRM(bs);
      if (!ok()) return;
      callNear(t);
      return;
    }
    case 4: { // JMP near r/m
      const bs = branchSize();
      const t = readRM(bs);
      if (!ok()) return;
      jumpTo(t);
      return;
    }
    case 3: case 5: { // CALL/JMP far m16:16/32/64
      if (modrmMod == 3) { ud(); return; }
      const off = readMem(eaSeg, ea, opSize);
      if (!ok()) return;
      const sel = readMem(eaSeg, (ea + <u64>opSize) & addrMask(), 2);
      if (!ok()) return;
      if (sub == 3) sysFarCall(<u32>sel, off); else sysFarJmp(<u32>sel, off);
      return;
    }
    case 6: { // PUSH r/m
      const s = stackOpSize();
      const v = readRM(s);
      if (!ok()) return;
      push(s, v);
      if (!ok()) return;
      done();
      return;
    }
    default: ud(); return;
  }
}

/** Jcc / JMP with a relative displacement already sign-extended. */
@inline function jumpRel(d: u64): void { jumpTo(nextIp + d); }

function loopOp(b: u32): void {
  const d = <u64><i64><i8>fetch8();
  if (!ok()) return;
  const as = addrSize;
  let cnt = getReg(RCX, as);
  let take: bool;
  if (b == 0xe3) take = cnt == 0;
  else {
    cnt = (cnt - 1) & addrMask();
    take = cnt != 0;
    if (b == 0xe1) take = take && (getOszapc() & ZF) != 0;
    else if (b == 0xe0) take = take && (getOszapc() & ZF) == 0;
    if (take) {
      const bs = branchSize();
      let t = nextIp + d;
      if (bs == 2) t &= 0xffff; else if (bs == 4) t &= 0xffffffff;
      else if (!canonical(t)) { raiseErr(EXC_GP, 0); return; }
      setReg(RCX, as, cnt);
      setRip(t);
      return;
    }
    setReg(RCX, as, cnt);
    done();
    return;
  }
  if (take) jumpRel(d); else done();
}

/** PUSH sreg (06/0E/16/1E and 0F A0/A8). */
export function pushSeg(seg: i32): void {
  push(stackOpSize(), segSelector(seg));
  if (!ok()) return;
  done();
}

/** POP sreg (07/17/1F and 0F A1/A9): RSP is restored when the load faults. */
export function popSeg(seg: i32): void {
  const s = stackOpSize();
  const sp = reg64(RSP);
  const v = pop(s);
  if (!ok()) return;
  sysLoadSeg(seg, <u32>(v & 0xffff));
  if (!ok()) { setReg64(RSP, sp); return; }
  done();
}

function pusha(): void {
  const s = opSize;
  const sp = reg64(RSP);
  const orig = getReg(RSP, s);
  for (let r = 0; r < 8; r++) {
    push(s, r == RSP ? orig : getReg(r, s));
    if (!ok()) { setReg64(RSP, sp); return; }
  }
  done();
}

function popa(): void {
  const s = opSize;
  const sp = reg64(RSP);
  // Read all eight first so a fault leaves the registers untouched.
  let v0: u64 = 0, v1: u64 = 0, v2: u64 = 0, v3: u64 = 0, v5: u64 = 0, v6: u64 = 0, v7: u64 = 0;
  v7 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  v6 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  v5 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  v3 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  v2 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  v1 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  v0 = pop(s); if (!ok()) { setReg64(RSP, sp); return; }
  setReg(7, s, v7); setReg(6, s, v6); setReg(5, s, v5); setReg(3, s, v3);
  setReg(2, s, v2); setReg(1, s, v1); setReg(0, s, v0);
  done();
}

function enter(): void {
  const alloc = <u64>fetch16();
  if (!ok()) return;
  const level = fetch8() & 31;
  if (!ok()) return;
  const s = stackOpSize();
  const ss = stackSize();
  const sp = reg64(RSP), bp = reg64(RBP);
  push(s, getReg(RBP, s));
  if (!ok()) return;
  const frame = getReg(RSP, ss);
  let fbp = getReg(RBP, ss);
  const ssMask = sizeMask(ss);
  for (let i: u32 = 1; i < level; i++) {
    fbp = (fbp - <u64>s) & ssMask;
    const v = readMem(SEG_SS, fbp, s);
    if (!ok()) { setReg64(RSP, sp); return; }
    push(s, v);
    if (!ok()) { setReg64(RSP, sp); return; }
  }
  if (level > 0) {
    push(s, frame);
    if (!ok()) { setReg64(RSP, sp); return; }
  }
  // Probe the lowest byte of the new frame (the CPU checks the final RSP).
  const newSp = (frame - alloc) & ssMask;
  if (alloc != 0) {
    readMem(SEG_SS, newSp, 1);
    if (!ok()) { setReg64(RSP, sp); setReg64(RBP, bp); return; }
  }
  setReg(RBP, s == 2 ? 2 : ss, frame);
  addSp(0 - alloc);
  done();
}

function leave(): void {
  const s = stackOpSize();
  const ss = stackSize();
  const sp = reg64(RSP);
  setReg(RSP, ss, getReg(RBP, ss));
  const v = pop(s);
  if (!ok()) { setReg64(RSP, sp); return; }
  setReg(RBP, s, v);
  done();
}

export function retNear(imm: u64): void {
  const bs = branchSize();
  const sp = reg64(RSP);
  const t = pop(bs);
  if (!ok()) return;
  if (imm != 0) addSp(imm);
  jumpTo(t);
  if (!ok()) setReg64(RSP, sp);
}

function pushf(): void {
  const s = stackOpSize();
  // The image has RF and VM clear.
  push(s, getFlags() & 0x3cffff & sizeMask(s));
  if (!ok()) return;
  done();
}

function popf(): void {
  const s = stackOpSize();
  const sp = reg64(RSP);
  const v = pop(s);
  if (!ok()) return;
  sysPopf(v, s);
  if (!ok()) { setReg64(RSP, sp); return; }
  done();
}

/** MOV to/from moffs (A0–A3). */
function movMoffs(b: u32): void {
  let off: u64;
  if (addrSize == 8) off = fetch64();
  else if (addrSize == 4) off = <u64>fetch32_();
  else off = <u64>fetch16();
  if (!ok()) return;
  const seg = segOverride >= 0 ? segOverride : SEG_DS;
  const size = (b & 1) == 0 ? 1 : opSize;
  if (b < 0xa2) {
    const v = readMem(seg, off, size);
    if (!ok()) return;
    setReg(RAX, size, v);
  } else {
    writeMem(seg, off, size, getReg(RAX, size));
    if (!ok()) return;
  }
  done();
}

@inline function fetch32_(): u32 { return <u32>fetchImm(4); }

/** LES/LDS (C4/C5 outside 64-bit mode with a memory operand). */
function loadFarPtr(seg: i32): void {
  const off = readMem(eaSeg, ea, opSize);
  if (!ok()) return;
  const sel = readMem(eaSeg, (ea + <u64>opSize) & addrMask(), 2);
  if (!ok()) return;
  sysLoadSeg(seg, <u32>sel);
  if (!ok()) return;
  writeG(opSize, off);
  done();
}
export { loadFarPtr };

function xchgE(size: i32): void {
  decodeModrm(0);
  if (!ok()) return;
  const g = readG(size);
  if (modrmMod == 3) {
    const v = getReg(modrmRm, size);
    setReg(modrmRm, size, g);
    writeG(size, v);
    done();
    return;
  }
  // XCHG with memory is locked with or without the prefix.
  if (lockedRmw(eaSeg, ea, size, LK_XCHG, g, 0)) {
    if (!ok()) return;
    writeG(size, lockedOld);
    done();
    return;
  }
  const v = readRMrmw(size);
  if (!ok()) return;
  writeMem(eaSeg, ea, size, g);
  if (!ok()) return;
  writeG(size, v);
  done();
}

/**
 * An unimplemented instruction with a ModRM: decode it first so the internal-error
 * exit reports the instruction bytes through the displacement.
 */
export function unsupportedModrm(): void {
  decodeModrm(0);
  if (!ok()) return;
  sysUnsupported();
}

/** Execute the instruction whose first opcode byte (after prefixes) is b. */
export function execOneByte(b: u32): void {
  switch (b) {
    case 0x00: case 0x01: case 0x02: case 0x03: case 0x04: case 0x05:
    case 0x08: case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d:
    case 0x10: case 0x11: case 0x12: case 0x13: case 0x14: case 0x15:
    case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d:
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25:
    case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35:
    case 0x38: case 0x39: case 0x3a: case 0x3b: case 0x3c: case 0x3d:
      aluForm(<i32>(b >> 3), <i32>(b & 7));
      return;
    case 0x06: case 0x0e: case 0x16: case 0x1e:
      if (is64()) { ud(); return; }
      pushSeg(<i32>(b >> 3));
      return;
    case 0x07: case 0x17: case 0x1f:
      if (is64()) { ud(); return; }
      popSeg(<i32>(b >> 3));
      return;
    case 0x0f: {
      const b2 = fetch8();
      if (!ok()) return;
      exec0F(b2);
      return;
    }
    case 0x27: case 0x2f: case 0x37: case 0x3f: // DAA DAS AAA AAS
    case 0xd4: case 0xd5: // AAM AAD
      if (is64()) { ud(); return; }
      sysUnsupported();
      return;
    case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47: {
      const r = <i32>(b & 7);
      setReg(r, opSize, aluInc(getReg(r, opSize), opSize));
      done();
      return;
    }
    case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f: {
      const r = <i32>(b & 7);
      setReg(r, opSize, aluDec(getReg(r, opSize), opSize));
      done();
      return;
    }
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: {
      const s = stackOpSize();
      push(s, getReg(<i32>(b & 7) | ((rex & 1) << 3), s));
      if (!ok()) return;
      done();
      return;
    }
    case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
      const s = stackOpSize();
      const v = pop(s);
      if (!ok()) return;
      setReg(<i32>(b & 7) | ((rex & 1) << 3), s, v);
      done();
      return;
    }
    case 0x60:
      if (is64()) { ud(); return; }
      pusha();
      return;
    case 0x61:
      if (is64()) { ud(); return; }
      popa();
      return;
    case 0x62: // BOUND / EVEX
      sysUnsupported();
      return;
    case 0x63:
      if (is64()) { // MOVSXD
        decodeModrm(0);
        if (!ok()) return;
        const v = readRM(4);
        if (!ok()) return;
        writeG(opSize, opSize == 8 ? sext(v, 4) : v);
        done();
        return;
      }
      if (mode == MODE_REAL) { ud(); return; }
      sysUnsupported(); // ARPL
      return;
    case 0x68: {
      const s = stackOpSize();
      const v = fetchImm(s);
      if (!ok()) return;
      push(s, v);
      if (!ok()) return;
      done();
      return;
    }
    case 0x6a: {
      const s = stackOpSize();
      const v = fetchImmS8(s);
      if (!ok()) return;
      push(s, v);
      if (!ok()) return;
      done();
      return;
    }
    case 0x69: case 0x6b: {
      const s = opSize;
      decodeModrm(b == 0x69 ? immLenZ(s) : 1);
      if (!ok()) return;
      const imm = b == 0x69 ? fetchImm(s) : fetchImmS8(s);
      if (!ok()) return;
      const v = readRM(s);
      if (!ok()) return;
      writeG(s, imulTrunc(v, imm, s));
      done();
      return;
    }
    case 0x6c: case 0x6d: sysIns(); return;
    case 0x6e: case 0x6f: sysOuts(); return;
    case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
    case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f: {
      const d = <u64><i64><i8>fetch8();
      if (!ok()) return;
      if (cond(<i32>(b & 15))) jumpRel(d);
      else done();
      return;
    }
    case 0x80: case 0x82:
      if (b == 0x82 && is64()) { ud(); return; }
      group1(1, 1, false);
      return;
    case 0x81: group1(opSize, immLenZ(opSize), false); return;
    case 0x83: group1(opSize, 1, true); return;
    case 0x84: case 0x85: {
      const s = b == 0x84 ? 1 : opSize;
      decodeModrm(0);
      if (!ok()) return;
      const v = readRM(s);
      if (!ok()) return;
      alu(ALU_AND, v, readG(s), s);
      done();
      return;
    }
    case 0x86: xchgE(1); return;
    case 0x87: xchgE(opSize); return;
    case 0x88: case 0x89: {
      const s = b == 0x88 ? 1 : opSize;
      decodeModrm(0);
      if (!ok()) return;
      if (modrmMod == 3) setReg(modrmRm, s, readG(s));
      else writeMemFinal(eaSeg, ea, s, readG(s)); // MMIO: completes by moving RIP
      if (!ok()) return;
      done();
      return;
    }
    case 0x8a: case 0x8b: {
      const s = b == 0x8a ? 1 : opSize;
      decodeModrm(0);
      if (!ok()) return;
      const v = readRM(s);
      if (!ok()) return;
      writeG(s, v);
      done();
      return;
    }
    case 0x8c: { // MOV r/m, Sreg
      decodeModrm(0);
      if (!ok()) return;
      const sr = modrmReg & 7;
      if (sr > 5) { ud(); return; }
      const v = segSelector(sr);
      if (modrmMod == 3) setReg(modrmRm, opSize, v);
      else { writeMem(eaSeg, ea, 2, v); if (!ok()) return; }
      done();
      return;
    }
    case 0x8d: { // LEA
      decodeModrm(0);
      if (!ok()) return;
      if (modrmMod == 3) { ud(); return; }
      writeG(opSize, ea);
      done();
      return;
    }
    case 0x8e: { // MOV Sreg, r/m16
      decodeModrm(0);
      if (!ok()) return;
      const sr = modrmReg & 7;
      if (sr > 5 || sr == SEG_CS) { ud(); return; }
      const v = readRM(2);
      if (!ok()) return;
      sysLoadSeg(sr, <u32>v);
      if (!ok()) return;
      done();
      return;
    }
    case 0x8f: { // POP r/m (group 1A /0)
      const modrmAt = nextIp;
      decodeModrm(0);
      if (!ok()) return;
      if ((modrmReg & 7) != 0) { sysUnsupported(); return; } // XOP
      const s = stackOpSize();
      const sp = reg64(RSP);
      const v = pop(s);
      if (!ok()) return;
      // SDM POP: an RSP-based destination address is computed after RSP is
      // incremented, so decode ModRM again with the new RSP (the bytes were
      // fetched once already: this cannot fault).
      if (modrmMod != 3) { setNextIp(modrmAt); decodeModrm(0); }
      writeRM(s, v);
      if (!ok()) { setReg64(RSP, sp); return; }
      done();
      return;
    }
    case 0x90: {
      if ((rex & 1) == 0) { done(); return; } // NOP, PAUSE (F3 90)
      const s = opSize;
      const v = getReg(8, s);
      setReg(8, s, getReg(RAX, s));
      setReg(RAX, s, v);
      done();
      return;
    }
    case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97: {
      const r = <i32>(b & 7) | ((rex & 1) << 3);
      const s = opSize;
      const v = getReg(r, s);
      setReg(r, s, getReg(RAX, s));
      setReg(RAX, s, v);
      done();
      return;
    }
    case 0x98: // CBW / CWDE / CDQE
      if (opSize == 2) setReg(RAX, 2, sext(getReg(RAX, 1), 1));
      else if (opSize == 4) setReg(RAX, 4, sext(getReg(RAX, 2), 2));
      else setReg64(RAX, sext(reg64(RAX), 4));
      done();
      return;
    case 0x99: { // CWD / CDQ / CQO
      const s = opSize;
      const neg = (getReg(RAX, s) & (<u64>1 << (<u64>(s << 3) - 1))) != 0;
      setReg(RDX, s, neg ? <u64>-1 : 0);
      done();
      return;
    }
    case 0x9a: case 0xea: { // CALL/JMP far ptr16:16/32
      if (is64()) { ud(); return; }
      const off = fetchImm(opSize);
      if (!ok()) return;
      const sel = fetch16();
      if (!ok()) return;
      if (b == 0x9a) sysFarCall(sel, off); else sysFarJmp(sel, off);
      return;
    }
    case 0x9b: sysUnsupported(); return; // FWAIT (x87)
    case 0x9c: pushf(); return;
    case 0x9d: popf(); return;
    case 0x9e: { // SAHF
      setEager((getOszapc() & ~(SF | ZF | AF | PF | CF)) | (ahValue() & (SF | ZF | AF | PF | CF)));
      done();
      return;
    }
    case 0x9f: // LAHF
      store<u8>(S + VS_GPR + 1, <u8>((getOszapc() & (SF | ZF | AF | PF | CF)) | 2));
      done();
      return;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: movMoffs(b); return;
    case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab: case 0xac: case 0xad: case 0xae: case 0xaf:
      execString(b);
      return;
    case 0xa8: {
      const v = <u64>fetch8();
      if (!ok()) return;
      alu(ALU_AND, getReg(RAX, 1), v, 1);
      done();
      return;
    }
    case 0xa9: {
      const v = fetchImm(opSize);
      if (!ok()) return;
      alu(ALU_AND, getReg(RAX, opSize), v, opSize);
      done();
      return;
    }
    case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7: {
      const v = <u64>fetch8();
      if (!ok()) return;
      setReg(<i32>(b & 7) | ((rex & 1) << 3), 1, v);
      done();
      return;
    }
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf: {
      const v = opSize == 8 ? fetch64() : fetchImm(opSize);
      if (!ok()) return;
      setReg(<i32>(b & 7) | ((rex & 1) << 3), opSize, v);
      done();
      return;
    }
    case 0xc0: group2(1, 0); return;
    case 0xc1: group2(opSize, 0); return;
    case 0xd0: group2(1, 1); return;
    case 0xd1: group2(opSize, 1); return;
    case 0xd2: group2(1, 2); return;
    case 0xd3: group2(opSize, 2); return;
    case 0xc2: {
      const imm = <u64>fetch16();
      if (!ok()) return;
      retNear(imm);
      return;
    }
    case 0xc3: retNear(0); return;
    case 0xc4: case 0xc5: {
      if (is64()) { sysUnsupported(); return; } // VEX
      decodeModrm(0);
      if (!ok()) return;
      if (modrmMod == 3) { sysUnsupported(); return; } // VEX
      loadFarPtr(b == 0xc4 ? SEG_ES : SEG_DS);
      return;
    }
    case 0xc6: case 0xc7: {
      const s = b == 0xc6 ? 1 : opSize;
      decodeModrm(s == 1 ? 1 : immLenZ(s));
      if (!ok()) return;
      if ((modrmReg & 7) != 0) { ud(); return; } // XABORT/XBEGIN: no RTM
      const v = fetchImm(s);
      if (!ok()) return;
      if (modrmMod == 3) setReg(modrmRm, s, v);
      else writeMemFinal(eaSeg, ea, s, v); // MMIO: completes by moving RIP
      if (!ok()) return;
      done();
      return;
    }
    case 0xc8: enter(); return;
    case 0xc9: leave(); return;
    case 0xca: {
      const imm = fetch16();
      if (!ok()) return;
      sysFarRet(imm);
      return;
    }
    case 0xcb: sysFarRet(0); return;
    case 0xcc: sysInt3(); return;
    case 0xcd: {
      const v = fetch8();
      if (!ok()) return;
      sysInt(<i32>v);
      return;
    }
    case 0xce:
      if (is64()) { ud(); return; }
      sysInto();
      return;
    case 0xcf: sysIret(); return;
    case 0xd6: // SALC (undocumented)
      if (is64()) { ud(); return; }
      setReg(RAX, 1, getCF() ? 0xff : 0);
      done();
      return;
    case 0xd7: { // XLAT
      const seg = segOverride >= 0 ? segOverride : SEG_DS;
      const off = (getReg(RBX, addrSize) + getReg(RAX, 1)) & addrMask();
      const v = readMem(seg, off, 1);
      if (!ok()) return;
      setReg(RAX, 1, v);
      done();
      return;
    }
    case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd: case 0xde: case 0xdf:
      unsupportedModrm(); // x87
      return;
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: loopOp(b); return;
    case 0xe4: case 0xe5: case 0xec: case 0xed: {
      let port: i32;
      if (b < 0xe8) { port = <i32>fetch8(); if (!ok()) return; }
      else port = <i32>getReg(RDX, 2);
      sysIn(port, (b & 1) == 0 ? 1 : (opSize == 2 ? 2 : 4));
      return;
    }
    case 0xe6: case 0xe7: case 0xee: case 0xef: {
      let port: i32;
      if (b < 0xe8) { port = <i32>fetch8(); if (!ok()) return; }
      else port = <i32>getReg(RDX, 2);
      sysOut(port, (b & 1) == 0 ? 1 : (opSize == 2 ? 2 : 4));
      return;
    }
    case 0xe8: { // CALL rel16/32
      const bs = branchSize();
      const d = bs == 2 ? sext(<u64>fetch16(), 2) : sext(fetchImm(4), 4);
      if (!ok()) return;
      callNear(nextIp + d);
      return;
    }
    case 0xe9: {
      const bs = branchSize();
      const d = bs == 2 ? sext(<u64>fetch16(), 2) : sext(fetchImm(4), 4);
      if (!ok()) return;
      jumpRel(d);
      return;
    }
    case 0xeb: {
      const d = <u64><i64><i8>fetch8();
      if (!ok()) return;
      jumpRel(d);
      return;
    }
    case 0xf1: sysUnsupported(); return; // INT1 / ICEBP
    case 0xf4: sysHlt(); return;
    case 0xf5: setEager(getOszapc() ^ CF); done(); return;
    case 0xf6: case 0xf7: {
      const s = b == 0xf6 ? 1 : opSize;
      decodeModrm(0);
      if (!ok()) return;
      if ((modrmReg & 6) == 0) {
        // TEST has an immediate: redo RIP-relative addressing with its length.
        if (modrmMod == 0 && (modrmRm & 7) == 5 && is64() && addrSize != 2) fixRipRel(s == 1 ? 1 : immLenZ(s));
      }
      group3(s);
      return;
    }
    case 0xf8: setEager(getOszapc() & ~CF); done(); return;
    case 0xf9: setEager(getOszapc() | CF); done(); return;
    case 0xfa: sysCli(); return;
    case 0xfb: sysSti(); return;
    case 0xfc: setOtherFlag(DF, false); done(); return;
    case 0xfd: setOtherFlag(DF, true); done(); return;
    case 0xfe: {
      decodeModrm(0);
      if (!ok()) return;
      const sub = modrmReg & 7;
      if (sub > 1) { ud(); return; }
      incDecE(1, sub == 1);
      return;
    }
    case 0xff: {
      decodeModrm(0);
      if (!ok()) return;
      group5();
      return;
    }
    default:
      // 26 2E 36 3E 64 65 66 67 F0 F2 F3 never reach here (decode.ts eats them).
      ud();
      return;
  }
}

/** AH (byte 1 of RAX). */
@inline function ahValue(): u64 { return <u64>load<u8>(S + VS_GPR + 1); }

/** Adjust a RIP-relative ea computed with immLen 0 for an immediate of `n` bytes. */
@inline function fixRipRel(n: i32): void { setEa(eaSeg, (ea + <u64>n) & addrMask()); }
