/**
 * Pieces shared by the generated-program tests of the fast tiers
 * (tests/x86_core_fastrun_test.ts, tests/x86_core_jit_test.ts): a
 * deterministic PRNG, the Jcc and ALU mnemonics, edge values, and the
 * register-only instruction forms both generators draw from.
 *
 * @module
 */

/** Jcc mnemonics by condition code 0–15. */
export const CCS = [
  "jo",
  "jno",
  "jb",
  "jae",
  "je",
  "jne",
  "jbe",
  "ja",
  "js",
  "jns",
  "jp",
  "jnp",
  "jl",
  "jge",
  "jle",
  "jg",
];
/** ALU mnemonics in opcode order (00–38 /r, group 1 /0–/7). */
export const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
/** Register values at the edges of every width. */
export const EDGE = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xffffffffffffffffn,
];

/** Deterministic xorshift32 PRNG. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** The register-only forms {@link regOp} writes. */
export const REG_OPS = 7;

/**
 * Register-only instruction number `form` (0 ≤ form < {@link REG_OPS}) on
 * registers `a`, `b` of the set `rs`: ALU r,r / r,imm8 / r,imm32 /
 * accumulator,imm32, TEST r,r, INC/DEC r, MOV r,r. Draws from `r` as it goes.
 */
export function regOp(form: number, r: () => number, rs: readonly string[], a: string, b: string): string {
  const pick = <T>(xs: readonly T[]): T => xs[r() % xs.length]!;
  switch (form) {
    case 0:
      return `${pick(ALU)} ${a}, ${b}`;
    case 1:
      return `${pick(ALU)} ${a}, ${(r() % 256) - 128}`;
    case 2:
      return `${pick(ALU)} ${a}, 0x${(r() & 0x7fffffff).toString(16)}`;
    case 3:
      return `${pick(ALU)} ${rs[0]}, 0x${((r() & 0x7ffffff) | 0x10000).toString(16)}`;
    case 4:
      return `test ${a}, ${b}`;
    case 5:
      return `${r() & 1 ? "inc" : "dec"} ${a}`;
    case 6:
      return `mov ${a}, ${b}`;
    default:
      throw new RangeError(`regOp form ${form}: expected 0-${REG_OPS - 1}`);
  }
}
