// RFLAGS with lazily evaluated arithmetic flags (CF PF AF ZF SF OF).
//
// The last flag-producing instruction records its kind (`ccOp`), operand size
// and operands/result; a flag is computed only when something reads it. Ops
// whose flags are awkward to recompute (shifts, rotates, MUL, BSF, ...) store
// the six bits eagerly (`ccOp = CC_EAGER`, `ccFlags`). Every other RFLAGS bit
// (TF IF DF IOPL NT RF VM AC VIF VIP ID, bit 1) lives in `flagsOther`.
//
// Inside run() the value in VS_RFLAGS is stale: the run loop calls flagsIn()
// at entry and flagsOut() before returning; system code in between uses
// getFlags()/setFlags() (never the state block's rflags directly).
import { rflags, setRflags } from "./cpu";

export const CF: u64 = 0x1;
export const PF: u64 = 0x4;
export const AF: u64 = 0x10;
export const ZF: u64 = 0x40;
export const SF: u64 = 0x80;
export const TF: u64 = 0x100;
export const IF: u64 = 0x200;
export const DF: u64 = 0x400;
export const OF: u64 = 0x800;
export const OSZAPC: u64 = 0x8d5;

/** Flags held in ccFlags. */
export const CC_EAGER: i32 = 0;
/** res = a + b */
export const CC_ADD: i32 = 1;
/** res = a + b + carry */
export const CC_ADC: i32 = 2;
/** res = a - b */
export const CC_SUB: i32 = 3;
/** res = a - b - carry */
export const CC_SBB: i32 = 4;
/** AND/OR/XOR/TEST: CF = OF = AF = 0. */
export const CC_LOGIC: i32 = 5;
/** INC: ccRes only (operands implied), CF kept in ccCarry. */
export const CC_INC: i32 = 6;
/** DEC: ccRes only (operands implied), CF kept in ccCarry. */
export const CC_DEC: i32 = 7;

export let ccOp: i32 = CC_EAGER;
/** Operand size in bytes of the last lazy op (1, 2, 4, 8). */
export let ccSize: i32 = 4;
/** Result truncated to ccSize. */
export let ccRes: u64 = 0;
/** First operand (destination before the op), truncated. */
export let ccA: u64 = 0;
/** Second operand, truncated. */
export let ccB: u64 = 0;
/** Carry-in for ADC/SBB; the preserved CF (0/1) for INC/DEC. */
export let ccCarry: u64 = 0;
/** OSZAPC bits when ccOp == CC_EAGER. */
export let ccFlags: u64 = 0;
/** All non-OSZAPC bits of RFLAGS (bit 1 always set). */
export let flagsOther: u64 = 2;

@inline export function sizeMask(size: i32): u64 {
  return size == 8 ? <u64>-1 : ((<u64>1 << (<u64>size << 3)) - 1);
}
@inline export function signBit(size: i32): u64 {
  return <u64>1 << ((<u64>size << 3) - 1);
}
/** Sign-extend the low `size` bytes of v to 64 bits. */
@inline export function sext(v: u64, size: i32): u64 {
  const sh = <u64>(64 - (size << 3));
  return <u64>((<i64>(v << sh)) >> sh);
}

@inline export function setLazy(op: i32, size: i32, res: u64, a: u64, b: u64): void {
  ccOp = op; ccSize = size; ccRes = res; ccA = a; ccB = b;
}
@inline export function setLazyCarry(op: i32, size: i32, res: u64, a: u64, b: u64, carry: u64): void {
  ccOp = op; ccSize = size; ccRes = res; ccA = a; ccB = b; ccCarry = carry;
}
/** INC/DEC: CF is preserved (read before ccOp changes). */
@inline export function setLazyIncDec(op: i32, size: i32, res: u64): void {
  if (ccOp < CC_INC) ccCarry = getCF() ? 1 : 0;
  ccOp = op; ccSize = size; ccRes = res;
}
@inline export function setEager(f: u64): void {
  ccOp = CC_EAGER; ccFlags = f & OSZAPC;
}

/** PF for the low byte of v (PF set when the number of 1 bits is even). */
@inline export function parity(v: u64): u64 {
  return (~<u64>popcnt<u32>(<u32>v & 0xff) & 1) << 2;
}

// One formula per flag and op kind, shared by the single-flag readers (getCF, getOF, getAF:
// Jcc, ADC, ...) and by getOszapc (every exit), which computes all six in one switch.
@inline function cfAdc(r: u64, a: u64, c: u64): bool { return c != 0 ? r <= a : r < a; }
@inline function cfSbb(a: u64, b: u64, c: u64): bool { return c != 0 ? a <= b : a < b; }
@inline function ofAdd(a: u64, b: u64, r: u64, sb: u64): bool { return ((a ^ r) & (b ^ r) & sb) != 0; }
@inline function ofSub(a: u64, b: u64, r: u64, sb: u64): bool { return ((a ^ b) & (a ^ r) & sb) != 0; }
/** OF of INC: 0x7f.. + 1; of DEC: 0x80.. - 1. */
@inline function ofInc(r: u64, sb: u64): bool { return r == sb; }
@inline function ofDec(r: u64, sb: u64): bool { return r == sb - 1; }
/** AF of ADD/ADC/SUB/SBB (the carry out of bit 3) as the AF bit itself, 0 or AF. */
@inline function afArith(a: u64, b: u64, r: u64): u64 { return (a ^ b ^ r) & AF; }
@inline function afInc(r: u64): bool { return (r & 0xf) == 0; }
@inline function afDec(r: u64): bool { return (r & 0xf) == 0xf; }
@inline function bit(on: bool, f: u64): u64 { return on ? f : 0; }

@inline export function getCF(): bool {
  switch (ccOp) {
    case CC_EAGER: return (ccFlags & CF) != 0;
    case CC_ADD: return ccRes < ccA;
    case CC_ADC: return cfAdc(ccRes, ccA, ccCarry);
    case CC_SUB: return ccA < ccB;
    case CC_SBB: return cfSbb(ccA, ccB, ccCarry);
    case CC_LOGIC: return false;
    default: return ccCarry != 0; // INC, DEC
  }
}

@inline export function getZF(): bool {
  return ccOp == CC_EAGER ? (ccFlags & ZF) != 0 : ccRes == 0;
}

@inline export function getSF(): bool {
  return ccOp == CC_EAGER ? (ccFlags & SF) != 0 : (ccRes & signBit(ccSize)) != 0;
}

@inline export function getOF(): bool {
  const sb = signBit(ccSize);
  switch (ccOp) {
    case CC_EAGER: return (ccFlags & OF) != 0;
    case CC_ADD: case CC_ADC: return ofAdd(ccA, ccB, ccRes, sb);
    case CC_SUB: case CC_SBB: return ofSub(ccA, ccB, ccRes, sb);
    case CC_INC: return ofInc(ccRes, sb);
    case CC_DEC: return ofDec(ccRes, sb);
    default: return false; // LOGIC
  }
}

export function getPF(): bool {
  return ccOp == CC_EAGER ? (ccFlags & PF) != 0 : parity(ccRes) != 0;
}

@inline export function getAF(): bool {
  if (ccOp == CC_EAGER) return (ccFlags & AF) != 0;
  if (ccOp == CC_LOGIC) return false;
  if (ccOp == CC_INC) return afInc(ccRes);
  if (ccOp == CC_DEC) return afDec(ccRes);
  return afArith(ccA, ccB, ccRes) != 0;
}

/** The six arithmetic flags, materialised: PF/ZF/SF from the result, CF/OF/AF in one switch on the op kind. */
export function getOszapc(): u64 {
  const op = ccOp;
  if (op == CC_EAGER) return ccFlags;
  const r = ccRes, a = ccA, b = ccB, sb = signBit(ccSize);
  const f: u64 = parity(r) | bit(r == 0, ZF) | bit((r & sb) != 0, SF);
  switch (op) {
    case CC_ADD: return f | bit(r < a, CF) | bit(ofAdd(a, b, r, sb), OF) | afArith(a, b, r);
    case CC_ADC: return f | bit(cfAdc(r, a, ccCarry), CF) | bit(ofAdd(a, b, r, sb), OF) | afArith(a, b, r);
    case CC_SUB: return f | bit(a < b, CF) | bit(ofSub(a, b, r, sb), OF) | afArith(a, b, r);
    case CC_SBB: return f | bit(cfSbb(a, b, ccCarry), CF) | bit(ofSub(a, b, r, sb), OF) | afArith(a, b, r);
    case CC_LOGIC: return f;
    case CC_INC: return f | bit(ccCarry != 0, CF) | bit(ofInc(r, sb), OF) | bit(afInc(r), AF);
    default: return f | bit(ccCarry != 0, CF) | bit(ofDec(r, sb), OF) | bit(afDec(r), AF); // DEC
  }
}

/** RFLAGS, materialised (bit 1 set). */
export function getFlags(): u64 {
  return flagsOther | getOszapc();
}

/** Replace all of RFLAGS (bit 1 forced on, bits 3/5/15/22+ forced off). */
export function setFlags(v: u64): void {
  const clean = (v & 0x3f7fd7) | 2;
  flagsOther = clean & ~OSZAPC;
  setEager(clean);
}

/** Replace only the OSZAPC bits that are set in `mask` (others kept). */
export function setOszapcMasked(v: u64, mask: u64): void {
  setEager((getOszapc() & ~mask) | (v & mask));
}

/** Set/clear one of the non-arithmetic flags (DF, IF, TF, AC, ...). */
@inline export function setOtherFlag(bit: u64, on: bool): void {
  flagsOther = on ? flagsOther | bit : flagsOther & ~bit;
}
@inline export function dfSet(): bool {
  return (flagsOther & DF) != 0;
}

/** Load RFLAGS from the state block (run() entry). */
export function flagsIn(): void {
  setFlags(rflags());
}
/** Store the materialised RFLAGS into the state block (before run() returns). */
export function flagsOut(): void {
  setRflags(getFlags());
}

/**
 * Condition code cc (0–15, the low nibble of Jcc/SETcc/CMOVcc):
 * O NO B AE E NE BE A S NS P NP L GE LE G.
 */
export function cond(cc: i32): bool {
  let r: bool;
  switch (cc >> 1) {
    case 0: r = getOF(); break;
    case 1: r = getCF(); break;
    case 2: r = getZF(); break;
    case 3:
      if (ccOp == CC_SUB) r = ccA <= ccB; // CMP/SUB fast path: below or equal
      else r = getCF() || getZF();
      break;
    case 4: r = getSF(); break;
    case 5: r = getPF(); break;
    case 6:
      if (ccOp == CC_SUB) r = <i64>sext(ccA, ccSize) < <i64>sext(ccB, ccSize);
      else r = getSF() != getOF();
      break;
    default:
      if (ccOp == CC_SUB) r = <i64>sext(ccA, ccSize) <= <i64>sext(ccB, ccSize);
      else r = getZF() || (getSF() != getOF());
      break;
  }
  return (cc & 1) != 0 ? !r : r;
}

// Snapshot of the lazy flag state, for instructions that set flags before
// their last access that can fault or exit (memory-destination ALU ops).
let svOp: i32 = 0; let svSize: i32 = 0; let svRes: u64 = 0; let svA: u64 = 0;
let svB: u64 = 0; let svCarry: u64 = 0; let svFlags: u64 = 0;

export function saveFlags(): void {
  svOp = ccOp; svSize = ccSize; svRes = ccRes; svA = ccA; svB = ccB; svCarry = ccCarry; svFlags = ccFlags;
}
export function restoreFlags(): void {
  ccOp = svOp; ccSize = svSize; ccRes = svRes; ccA = svA; ccB = svB; ccCarry = svCarry; ccFlags = svFlags;
}
