// src/abi/u64_record.ts: the generated readers/writers behind KVM_GET_REGS / KVM_SET_REGS.
import assert from "node:assert/strict";
import { u64RecordCodec } from "../src/abi/u64_record.ts";

const bad = (name: string, v: unknown): never => {
  throw new TypeError(`${name}=${String(v)}`);
};

Deno.test("u64RecordCodec reads and writes each field at its offset, mod 2^64", () => {
  const c = u64RecordCodec([["a", 0], ["b", 24], ["c", 8]] as const);
  const u = new BigUint64Array(16);
  c.write(u, 32, { a: 1n, b: -1n, c: 1n << 64n | 5n }, bad);
  assert.deepEqual([...u.slice(4, 8)], [1n, 5n, 0n, 0xffffffffffffffffn]);
  assert.deepEqual(c.read(u, 32), { a: 1n, b: 0xffffffffffffffffn, c: 5n });
  assert.deepEqual(Object.keys(c.read(u, 32)), ["a", "b", "c"], "fields in table order");
  c.write(u, 32, { b: 9n }, bad);
  assert.deepEqual(c.read(u, 32), { a: 1n, b: 9n, c: 5n }, "fields left out keep their value");
  c.write(u, 32, { a: undefined, c: 7n }, bad);
  assert.deepEqual(c.read(u, 32), { a: 1n, b: 9n, c: 7n }, "undefined fields are left out");
});

Deno.test("u64RecordCodec checks every field before it writes one", () => {
  const c = u64RecordCodec([["a", 0], ["b", 8]] as const);
  const u = new BigUint64Array(4);
  assert.throws(() => c.write(u, 0, { a: 3n, b: 4 }, bad), /^TypeError: b=4$/);
  assert.deepEqual([...u], [0n, 0n, 0n, 0n]);
  assert.throws(() => c.write(u, 0, { a: "1" }, bad), /a=1/);
});

Deno.test("u64RecordCodec rejects a bad table or a misaligned block with the value", () => {
  assert.throws(() => u64RecordCodec([["a b", 0]]), /field "a b": expected an identifier/);
  assert.throws(() => u64RecordCodec([["x", 4]]), /field x at offset 4: expected a multiple of 8/);
  const c = u64RecordCodec([["a", 0]] as const);
  assert.throws(() => c.read(new BigUint64Array(2), 4), /u64 record at 4: expected a multiple of 8/);
});
