// Integer ALU: the eight classic binary ops, INC/DEC/NEG, shifts and rotates,
// SHLD/SHRD, multiply/divide helpers and bit scans. Values are passed and
// returned truncated to `size` bytes; flags go to flags.ts (lazy or eager).
//
// Undefined flags (Intel SDM vol. 2 "Flags Affected" says undefined) follow
// what the AMD Zen reference machine produces where tests/x86_alu_vectors.json
// pins them; see docs in tests/oracle/README.md for the list compared.
import {
  AF, CC_ADC, CC_ADD, CC_DEC, CC_INC, CC_LOGIC, CC_SBB, CC_SUB, CF, OF, PF, SF, ZF,
  getCF, getOszapc, parity, setEager, setLazy, setLazyCarry, setLazyIncDec, signBit, sizeMask, sext,
} from "./flags";

// ALU op numbers (ModRM.reg of 80/81/83, bits 3–5 of 00–3D).
export const ALU_ADD: i32 = 0;
export const ALU_OR: i32 = 1;
export const ALU_ADC: i32 = 2;
export const ALU_SBB: i32 = 3;
export const ALU_AND: i32 = 4;
export const ALU_SUB: i32 = 5;
export const ALU_XOR: i32 = 6;
export const ALU_CMP: i32 = 7;

/** a OP b for the 00–3D / 80–83 ops; returns the result (CMP: a unchanged). */
export function alu(op: i32, a: u64, b: u64, size: i32): u64 {
  const m = sizeMask(size);
  let r: u64;
  switch (op) {
    case ALU_ADD: r = (a + b) & m; setLazy(CC_ADD, size, r, a, b); return r;
    case ALU_OR: r = a | b; setLazy(CC_LOGIC, size, r, a, b); return r;
    case ALU_ADC: {
      const c: u64 = getCF() ? 1 : 0;
      r = (a + b + c) & m; setLazyCarry(CC_ADC, size, r, a, b, c); return r;
    }
    case ALU_SBB: {
      const c: u64 = getCF() ? 1 : 0;
      r = (a - b - c) & m; setLazyCarry(CC_SBB, size, r, a, b, c); return r;
    }
    case ALU_AND: r = a & b; setLazy(CC_LOGIC, size, r, a, b); return r;
    case ALU_SUB: r = (a - b) & m; setLazy(CC_SUB, size, r, a, b); return r;
    case ALU_XOR: r = a ^ b; setLazy(CC_LOGIC, size, r, a, b); return r;
    default: r = (a - b) & m; setLazy(CC_SUB, size, r, a, b); return a; // CMP
  }
}

@inline export function aluInc(a: u64, size: i32): u64 {
  const r = (a + 1) & sizeMask(size);
  setLazyIncDec(CC_INC, size, r);
  return r;
}

@inline export function aluDec(a: u64, size: i32): u64 {
  const r = (a - 1) & sizeMask(size);
  setLazyIncDec(CC_DEC, size, r);
  return r;
}

export function aluNeg(a: u64, size: i32): u64 {
  const r = (0 - a) & sizeMask(size);
  setLazy(CC_SUB, size, r, 0, a);
  return r;
}

/** SF, ZF, PF of a truncated result. */
@inline export function szp(r: u64, size: i32): u64 {
  let f = parity(r);
  if (r == 0) f |= ZF;
  if ((r & signBit(size)) != 0) f |= SF;
  return f;
}

// Shift/rotate kinds (ModRM.reg of C0/C1/D0–D3).
export const SH_ROL: i32 = 0;
export const SH_ROR: i32 = 1;
export const SH_RCL: i32 = 2;
export const SH_RCR: i32 = 3;
export const SH_SHL: i32 = 4;
export const SH_SHR: i32 = 5;
export const SH_SAL: i32 = 6;
export const SH_SAR: i32 = 7;

/**
 * Shift or rotate `v` by the raw count (masked here to 5 bits, 6 for 64-bit).
 * A masked count of 0 returns v with the flags untouched.
 */
export function shift(kind: i32, v: u64, rawCount: u32, size: i32): u64 {
  const bits: u32 = <u32>size << 3;
  const c: u32 = rawCount & (size == 8 ? 63 : 31);
  if (c == 0) return v;
  const m = sizeMask(size);
  const sb = signBit(size);
  const old = getOszapc();
  let r: u64 = v;
  let f: u64;
  switch (kind) {
    case SH_ROL: {
      const k = c & (bits - 1);
      if (k != 0) r = ((v << k) | (v >> (bits - k))) & m;
      const cf: u64 = r & 1;
      f = (old & ~(CF | OF)) | cf;
      if ((((r & sb) != 0 ? 1 : 0) ^ cf) != 0) f |= OF;
      break;
    }
    case SH_ROR: {
      const k = c & (bits - 1);
      if (k != 0) r = ((v >> k) | (v << (bits - k))) & m;
      const msb: u64 = (r & sb) != 0 ? 1 : 0;
      const msb2: u64 = (r & (sb >> 1)) != 0 ? 1 : 0;
      f = (old & ~(CF | OF)) | msb;
      if ((msb ^ msb2) != 0) f |= OF;
      break;
    }
    case SH_RCL: {
      const k = size <= 2 ? c % (bits + 1) : c;
      const cin: u64 = old & CF;
      if (k == 0) { f = old; break; }
      // Rotate the (bits+1)-bit value CF:v left by k.
      r = (v << k) | (cin << (k - 1));
      if (k > 1) r |= v >> (bits + 1 - k);
      r &= m;
      const cf: u64 = (v >> (bits - k)) & 1;
      f = (old & ~(CF | OF)) | cf;
      if ((((r & sb) != 0 ? 1 : 0) ^ cf) != 0) f |= OF;
      break;
    }
    case SH_RCR: {
      const k = size <= 2 ? c % (bits + 1) : c;
      const cin: u64 = old & CF;
      if (k == 0) { f = old; break; }
      r = (v >> k) | (cin << (bits - k));
      if (k > 1) r |= v << (bits + 1 - k);
      r &= m;
      const cf: u64 = (v >> (k - 1)) & 1;
      f = (old & ~(CF | OF)) | cf;
      const msb: u64 = (r & sb) != 0 ? 1 : 0;
      const msb2: u64 = (r & (sb >> 1)) != 0 ? 1 : 0;
      if ((msb ^ msb2) != 0) f |= OF;
      break;
    }
    case SH_SHL: case SH_SAL: {
      let cf: u64;
      if (size == 8) { r = v << c; cf = (v >> (64 - c)) & 1; }
      else { const w = v << c; r = w & m; cf = (w >> bits) & 1; }
      f = szp(r, size) | cf;
      if ((((r & sb) != 0 ? 1 : 0) ^ cf) != 0) f |= OF;
      break;
    }
    case SH_SHR: {
      r = c >= 64 ? 0 : v >> c;
      const cf: u64 = (v >> (c - 1)) & 1;
      f = szp(r, size) | cf;
      if ((v & sb) != 0) f |= OF; // OF = MSB of the original operand
      break;
    }
    default: { // SAR
      const sv = <i64>sext(v, size);
      r = <u64>(sv >> (c > 63 ? 63 : c)) & m;
      const cf: u64 = <u64>(sv >> (c - 1 > 63 ? 63 : c - 1)) & 1;
      f = szp(r, size) | cf; // OF = 0
      break;
    }
  }
  setEager(f);
  return r;
}

/**
 * SHLD (left = true) / SHRD: shift dst by count filling from src. Count masked
 * to 5 bits (6 for 64-bit); 0 leaves everything unchanged. For 16-bit operands a
 * count > 16 gives an undefined result; we shift through a 32-bit dst:src:dst
 * pattern like the hardware does.
 */
export function shiftDouble(left: bool, dst: u64, src: u64, rawCount: u32, size: i32): u64 {
  const c: u32 = rawCount & (size == 8 ? 63 : 31);
  if (c == 0) return dst;
  const m = sizeMask(size);
  const sb = signBit(size);
  let r: u64;
  let cf: u64;
  if (size == 2) {
    // 48-bit pattern dst:src:dst (left) or dst:src:dst mirrored (right).
    if (left) {
      const w: u64 = (dst << 32) | (src << 16) | dst;
      r = (w << c >> 32) & 0xffff;
      cf = (w >> (48 - c)) & 1;
    } else {
      const w: u64 = (dst << 32) | (src << 16) | dst;
      r = (w >> c) & 0xffff;
      cf = (w >> (c - 1)) & 1;
    }
  } else {
    const bits: u32 = <u32>size << 3;
    if (left) {
      r = ((dst << c) | (src >> (bits - c))) & m;
      cf = (dst >> (bits - c)) & 1;
    } else {
      r = ((dst >> c) | (src << (bits - c))) & m;
      cf = (dst >> (c - 1)) & 1;
    }
  }
  let f = szp(r, size) | cf;
  if (((r ^ dst) & sb) != 0) f |= OF; // sign change (defined for count 1)
  setEager(f);
  return r;
}

/** High 64 bits of the unsigned 128-bit product a*b. */
export function mulhu(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/** High 64 bits of the signed 128-bit product a*b. */
export function mulhs(a: u64, b: u64): u64 {
  let h = mulhu(a, b);
  if (<i64>a < 0) h -= b;
  if (<i64>b < 0) h -= a;
  return h;
}

/** Flags after MUL/IMUL: CF = OF = `overflow`; SF/ZF/PF from the low result (AF = 0). */
export function setMulFlags(overflow: bool, lo: u64, size: i32): void {
  let f = szp(lo & sizeMask(size), size);
  if (overflow) f |= CF | OF;
  setEager(f);
}

/** Two/three-operand IMUL: truncated signed product, flags set. */
export function imulTrunc(a: u64, b: u64, size: i32): u64 {
  const sa = sext(a, size), sb = sext(b, size);
  const p = sa * sb;
  const r = p & sizeMask(size);
  let ovf: bool;
  if (size == 8) ovf = mulhs(sa, sb) != <u64>(<i64>p >> 63);
  else ovf = sext(r, size) != p;
  setMulFlags(ovf, r, size);
  return r;
}

// 128-by-64 division results (divide128 / idivide128).
export let divQuot: u64 = 0;
export let divRem: u64 = 0;

/** Unsigned hi:lo / d with hi < d (caller checks); result in divQuot/divRem. */
export function divide128(hi: u64, lo: u64, d: u64): void {
  if (hi == 0) { divQuot = lo / d; divRem = lo % d; return; }
  let q: u64 = 0;
  let r: u64 = hi;
  for (let i = 63; i >= 0; i--) {
    const top = r >> 63;
    r = (r << 1) | ((lo >> <u64>i) & 1);
    q <<= 1;
    if (top != 0 || r >= d) { r -= d; q |= 1; }
  }
  divQuot = q; divRem = r;
}

/**
 * Signed hi:lo / d (128 by 64). Returns false on quotient overflow (#DE);
 * d must be nonzero.
 */
export function idivide128(hi: u64, lo: u64, d: u64): bool {
  const neg = <i64>hi < 0;
  let h = hi, l = lo;
  if (neg) { l = ~l + 1; h = ~h + (l == 0 ? 1 : 0); }
  const dneg = <i64>d < 0;
  const ad = dneg ? 0 - d : d;
  if (h >= ad) return false;
  divide128(h, l, ad);
  const qneg = neg != dneg;
  if (qneg) { if (divQuot > 0x8000000000000000) return false; }
  else if (divQuot > 0x7fffffffffffffff) return false;
  if (qneg) divQuot = 0 - divQuot;
  if (neg) divRem = 0 - divRem;
  return true;
}

/** Flags for BT/BTS/BTR/BTC: CF = the bit; the others unchanged (undefined). */
export function setBtFlags(bit: bool): void {
  const f = getOszapc() & ~CF;
  setEager(bit ? f | CF : f);
}

/** Flags for BSF/BSR: ZF = (src == 0); the others as left by the CPU (AMD: unchanged). */
export function setBsfFlags(zero: bool): void {
  const f = getOszapc() & ~ZF;
  setEager(zero ? f | ZF : f);
}

export { AF, PF };
