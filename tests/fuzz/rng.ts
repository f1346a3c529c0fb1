/** The fuzzer's deterministic random numbers. @module */

/** mulberry32: a small deterministic PRNG. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

/** An "interesting" 64-bit value: edges of every width, small numbers, or random bits. */
export function randomValue(rng: Rng): bigint {
  switch (rng.int(6)) {
    case 0:
      return rng.pick([
        0n,
        1n,
        2n,
        0x7fn,
        0x80n,
        0xffn,
        0x7fffn,
        0x8000n,
        0xffffn,
        0x7fffffffn,
        0x80000000n,
        0xffffffffn,
      ]);
    case 1:
      return rng.pick([0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0xfffffffffffffffen]);
    case 2:
      return BigInt(rng.int(64));
    case 3:
      return BigInt(rng.u32());
    default:
      return rng.u64();
  }
}
