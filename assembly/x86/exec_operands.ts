// Operand access for the decoder and the execute routines: GPRs by size (with
// the AH/CH/DH/BH quirk), ModRM/SIB/displacement decoding into decode_state's
// `ea`/`eaSeg`, r/m reads and writes, and immediates.
import { VS_GPR, VS_REPLAY_COUNT, VS_REPLAY_POS } from "../abi.generated";
import { RBP, RBX, RDI, RSI, S, SEG_DS, SEG_SS, ST_OK, reg64, setReg64, status } from "./cpu";
import {
  addrSize, modrmMod, modrmReg, modrmRm, nextIp, rex, segOverride, ea, eaSeg, setEa, setModrm,
} from "./decode_state";
import { fetch16, fetch32, fetch64, fetch8, readMem, readMemRmw, writeMem } from "./mem";
import { is64 } from "./mode";

/** Register r (0–15) read at `size` bytes; 1-byte regs 4–7 without REX are AH CH DH BH. */
@inline export function getReg(r: i32, size: i32): u64 {
  if (size == 1) return getReg8(r);
  const v = reg64(r);
  if (size == 4) return v & 0xffffffff;
  if (size == 2) return v & 0xffff;
  return v;
}

@inline export function getReg8(r: i32): u64 {
  if (rex == 0 && r >= 4) return <u64>load<u8>(S + VS_GPR + ((r - 4) << 3) + 1);
  return <u64>load<u8>(S + VS_GPR + (r << 3));
}

/** Write register r at `size` bytes: 32-bit writes zero-extend, 8/16-bit writes merge. */
@inline export function setReg(r: i32, size: i32, v: u64): void {
  const p = S + VS_GPR + (r << 3);
  if (size == 4) store<u64>(p, v & 0xffffffff);
  else if (size == 8) store<u64>(p, v);
  else if (size == 2) store<u16>(p, <u16>v);
  else if (rex == 0 && r >= 4) store<u8>(p - 32 + 1, <u8>v);
  else store<u8>(p, <u8>v);
}

/** Effective-address mask for the current address size. */
@inline export function addrMask(): u64 {
  return addrSize == 8 ? <u64>-1 : (addrSize == 4 ? <u64>0xffffffff : <u64>0xffff);
}

@inline function sx8(v: u32): u64 { return <u64><i64><i8>v; }
@inline function sx32(v: u32): u64 { return <u64><i64><i32>v; }

/**
 * Fetch and decode ModRM (+SIB, displacement). `immLen` is the number of
 * immediate bytes that follow (needed for RIP-relative addressing). Caller
 * checks `status` afterwards.
 */
export function decodeModrm(immLen: i32): void {
  const b = <i32>fetch8();
  const mod = b >> 6;
  const reg = ((b >> 3) & 7) | ((rex & 4) << 1);
  const rm = b & 7;
  if (mod == 3) { setModrm(3, reg, rm | ((rex & 1) << 3)); return; }
  setModrm(mod, reg, rm);
  if (addrSize == 2) decodeEa16(mod, rm);
  else decodeEa32(mod, rm, immLen);
}

function decodeEa16(mod: i32, rm: i32): void {
  let base: u64 = 0;
  let seg = SEG_DS;
  switch (rm) {
    case 0: base = reg64(RBX) + reg64(RSI); break;
    case 1: base = reg64(RBX) + reg64(RDI); break;
    case 2: base = reg64(RBP) + reg64(RSI); seg = SEG_SS; break;
    case 3: base = reg64(RBP) + reg64(RDI); seg = SEG_SS; break;
    case 4: base = reg64(RSI); break;
    case 5: base = reg64(RDI); break;
    case 6:
      if (mod == 0) base = <u64>fetch16();
      else { base = reg64(RBP); seg = SEG_SS; }
      break;
    default: base = reg64(RBX); break;
  }
  if (mod == 1) base += sx8(fetch8());
  else if (mod == 2) base += <u64>fetch16();
  setEa(segOverride >= 0 ? segOverride : seg, base & 0xffff);
}

function decodeEa32(mod: i32, rm: i32, immLen: i32): void {
  let base: u64 = 0;
  let seg = SEG_DS;
  if (rm == 4) {
    const sib = <i32>fetch8();
    const idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
    const bse = (sib & 7) | ((rex & 1) << 3);
    if (idx != 4) base = reg64(idx) << <u64>(sib >> 6);
    if ((bse & 7) == 5 && mod == 0) base += sx32(fetch32());
    else {
      base += reg64(bse);
      if (bse == 4 || bse == 5) seg = SEG_SS;
    }
  } else if (rm == 5 && mod == 0) {
    const d = sx32(fetch32());
    // RIP-relative in 64-bit mode: relative to the end of the instruction.
    base = is64() ? nextIp + <u64>immLen + d : d;
  } else {
    const r = rm | ((rex & 1) << 3);
    base = reg64(r);
    if (r == 5) seg = SEG_SS;
  }
  if (mod == 1) base += sx8(fetch8());
  else if (mod == 2) base += sx32(fetch32());
  setEa(segOverride >= 0 ? segOverride : seg, addrSize == 4 ? base & 0xffffffff : base);
}

/** The r/m operand (register or memory) at `size`. */
@inline export function readRM(size: i32): u64 {
  if (modrmMod == 3) return getReg(modrmRm, size);
  return readMem(eaSeg, ea, size);
}

/** The r/m operand for a read-modify-write (memory: checks write access too). */
@inline export function readRMrmw(size: i32): u64 {
  if (modrmMod == 3) return getReg(modrmRm, size);
  return readMemRmw(eaSeg, ea, size);
}

/** Write the r/m operand. Caller checks status for the memory case. */
@inline export function writeRM(size: i32, v: u64): void {
  if (modrmMod == 3) setReg(modrmRm, size, v);
  else writeMem(eaSeg, ea, size, v);
}

/** The ModRM.reg register operand. */
@inline export function readG(size: i32): u64 { return getReg(modrmReg, size); }
@inline export function writeG(size: i32, v: u64): void { setReg(modrmReg, size, v); }

/** Immediate of the operand size (imm32 sign-extended for 64-bit operands), truncated to size. */
export function fetchImm(size: i32): u64 {
  if (size == 1) return <u64>fetch8();
  if (size == 2) return <u64>fetch16();
  if (size == 4) return <u64>fetch32();
  return sx32(fetch32());
}

/** imm8 sign-extended to `size` and truncated. */
@inline export function fetchImmS8(size: i32): u64 {
  const v = sx8(fetch8());
  return size == 8 ? v : v & ((<u64>1 << (<u64>size << 3)) - 1);
}

/** Number of immediate bytes of an Iz operand at `size`. */
@inline export function immLenZ(size: i32): i32 { return size == 8 ? 4 : size; }

/** Fetch a full 64-bit immediate (MOV r64, imm64). */
@inline export function fetchImm64(): u64 { return fetch64(); }

/** Status is OK (short form for the execute routines). */
@inline export function ok(): bool { return status == ST_OK; }

export { setReg64 };

/** A (part of an) instruction committed: its replay fragments are spent. */
@inline export function clearReplay(): void {
  if (load<u32>(S + VS_REPLAY_COUNT) != 0) {
    store<u32>(S + VS_REPLAY_COUNT, 0);
    store<u32>(S + VS_REPLAY_POS, 0);
  }
}
