/**
 * Readers and writers of a record of u64 fields (bigints) at fixed byte offsets
 * of a block in shared memory: the register ioctls (KVM_GET_REGS /
 * KVM_SET_REGS) that exit handlers call on every exit.
 *
 * The two functions are generated once from the field table, so the record is
 * an object literal of one fixed shape and every field is one named property
 * access. A loop over the names with computed keys makes V8's property caches
 * megamorphic and costs about ten times as much (KVM_GET_REGS 430 → 40 ns on
 * the machine of bench/results).
 *
 * @module
 */

/** The generated pair for one field table. */
export interface U64RecordCodec<K extends string> {
  /** The record at byte offset `base` (a multiple of 8) of the memory `u64` views. */
  read(u64: BigUint64Array, base: number): Record<K, bigint>;
  /**
   * Store the fields of `r` that are not undefined (mod 2^64, as
   * BigInt.asUintN(64, v)). Every present field is checked first: one that is
   * not a bigint calls `bad` (which throws) before anything is written.
   */
  write(u64: BigUint64Array, base: number, r: Partial<Record<K, unknown>>, bad: (name: K, v: unknown) => never): void;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Make the codec of `fields` (name → byte offset within the block, each a multiple of 8). */
export function u64RecordCodec<K extends string>(fields: readonly (readonly [K, number])[]): U64RecordCodec<K> {
  for (const [name, off] of fields) {
    if (!IDENT.test(name)) throw new RangeError(`u64 record field "${name}": expected an identifier`);
    if (!Number.isInteger(off) || off < 0 || off % 8 !== 0) {
      throw new RangeError(`u64 record field ${name} at offset ${off}: expected a multiple of 8`);
    }
  }
  const body = fields.map(([n, off]) => `${n}: u[i + ${off / 8}]`).join(", ");
  const read = new Function("u", "base", `"use strict"; const i = base / 8; return { ${body} };`);
  const checks = fields.map(([n]) => `v = r.${n}; if (v !== undefined && typeof v !== "bigint") bad("${n}", v);`);
  const stores = fields.map(([n, off]) => `v = r.${n}; if (v !== undefined) u[i + ${off / 8}] = v;`);
  const write = new Function(
    "u",
    "base",
    "r",
    "bad",
    `"use strict"; const i = base / 8; let v; ${checks.join(" ")} ${stores.join(" ")}`,
  );
  return {
    read: (u, base) => {
      if (base % 8 !== 0) throw new RangeError(`u64 record at ${base}: expected a multiple of 8`);
      return read(u, base) as Record<K, bigint>;
    },
    write: (u, base, r, bad) => {
      if (base % 8 !== 0) throw new RangeError(`u64 record at ${base}: expected a multiple of 8`);
      write(u, base, r, bad);
    },
  };
}
