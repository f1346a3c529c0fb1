/**
 * Small reference definitions written from the SDM (vol. 1 §3.4.3 and
 * appendix B; vol. 2 "Jcc", "SUB"), used to compute expectations where the
 * native vectors have no case: the condition codes and the flags of a
 * subtraction.
 */
import { AF, CF, OF, PF, SF, ZF } from "./types.ts";

export const CONDITIONS: readonly [string, (f: bigint) => boolean][] = [
  ["o", (f) => (f & OF) !== 0n],
  ["no", (f) => (f & OF) === 0n],
  ["b", (f) => (f & CF) !== 0n],
  ["ae", (f) => (f & CF) === 0n],
  ["e", (f) => (f & ZF) !== 0n],
  ["ne", (f) => (f & ZF) === 0n],
  ["be", (f) => (f & (CF | ZF)) !== 0n],
  ["a", (f) => (f & (CF | ZF)) === 0n],
  ["s", (f) => (f & SF) !== 0n],
  ["ns", (f) => (f & SF) === 0n],
  ["p", (f) => (f & PF) !== 0n],
  ["np", (f) => (f & PF) === 0n],
  ["l", (f) => ((f & SF) !== 0n) !== ((f & OF) !== 0n)],
  ["ge", (f) => ((f & SF) !== 0n) === ((f & OF) !== 0n)],
  ["le", (f) => (f & ZF) !== 0n || ((f & SF) !== 0n) !== ((f & OF) !== 0n)],
  ["g", (f) => (f & ZF) === 0n && ((f & SF) !== 0n) === ((f & OF) !== 0n)],
];

const parityEven = (v: bigint) => [...(v & 0xffn).toString(2)].filter((c) => c === "1").length % 2 === 0;

/** OSZAPC of `a - b` at `w` bits (SUB/CMP/CMPS/SCAS). */
export function subFlags(a: bigint, b: bigint, w: number): bigint {
  const mask = (1n << BigInt(w)) - 1n, sign = 1n << BigInt(w - 1);
  a &= mask;
  b &= mask;
  const r = (a - b) & mask;
  return (a < b ? CF : 0n) | (parityEven(r) ? PF : 0n) | (((a ^ b ^ r) & 0x10n) !== 0n ? AF : 0n) |
    (r === 0n ? ZF : 0n) | ((r & sign) !== 0n ? SF : 0n) | (((a ^ b) & (a ^ r) & sign) !== 0n ? OF : 0n);
}
