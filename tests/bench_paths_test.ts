// The paths of tracking issue 4 §1 (io-in, string-io, mmio-read, in-kernel CPUID/RDMSR, user-space RDMSR,
// INT3 debug exits): each runs briefly on the core through measure(), whose work checks throw on a miss,
// and the checks catch a handler that does not do its part. Not timed.
import assert from "node:assert/strict";
import { BENCH_BYTE, type BenchPath, checkPaths, PATHS, STRING_IO_BYTES } from "../bench/paths.ts";
import { resultRow } from "../bench/report.ts";
import { BenchPathError, firstStepOf, measure, preparePath } from "../bench/run_path.ts";
import { summarize } from "../bench/stats.ts";

const NEW = [
  "io-in/switch",
  "string-io/switch",
  "mmio-read/switch",
  "cpuid-inkernel/budget",
  "msr-inkernel/budget",
  "msr-user/switch",
  "debug-int3/switch",
];

const path = (id: string) => {
  const p = PATHS.find((x) => x.path === id);
  if (p === undefined) throw new Error(`no path ${id}`);
  return p;
};

for (const id of NEW) {
  Deno.test(`${id}: runs on the core and passes its work checks`, () => {
    const p = path(id);
    const prep = preparePath(p);
    const s = measure(prep, 5, firstStepOf(p));
    assert.ok(s.units > 0, `${id}: ${s.units} units`);
    assert.ok(
      Math.abs(s.instructions - s.units * p.instructionsPerUnit) <= 2 * p.instructionsPerUnit,
      `${id}: ${s.instructions} instructions for ${s.units} units`,
    );
    if (p.handler.kind !== "in-kernel") {
      assert.ok(prep.sink.calls >= s.units, `${id}: handler calls ${prep.sink.calls}`);
    }
  });
}

Deno.test("new paths: a valid table, unit exits, string-io reports bytes", () => {
  assert.deepEqual(checkPaths(PATHS), []);
  for (const id of NEW) assert.equal(path(id).unit, "exits", id);
  const r = resultRow(path("string-io/switch"), summarize([1000]));
  assert.equal(r.bytes_per_unit, STRING_IO_BYTES);
  assert.equal(r.bytes_per_s, 1000 * STRING_IO_BYTES);
  assert.equal("bytes_per_s" in resultRow(path("io-in/switch"), summarize([1000])), false);
  const bad: BenchPath = { ...path("io-in/switch"), loop: "runUntil" };
  assert.deepEqual(checkPaths([bad]), [
    `io-in/switch: handler "pio-in" measures exits with loop "switch", got unit exits loop runUntil`,
  ]);
  const badK: BenchPath = { ...path("cpuid-inkernel/budget"), loop: "switch" };
  assert.match(checkPaths([badK])[0]!, /handler "in-kernel" measures exits with loop "budget"/);
});

function withFn<P extends BenchPath>(p: P, fn: unknown): BenchPath {
  return { ...p, path: `${p.path.split("/")[0]}/broken`, handler: { ...p.handler, fn } as BenchPath["handler"] };
}

const throwsCheck = (p: BenchPath, re: RegExp) =>
  assert.throws(() => measure(preparePath(p), 2, 100), (e) => e instanceof BenchPathError && re.test(e.message));

Deno.test("checks: an IN / MMIO-read handler that counts but does not fill the data is caught by the guest's sum", () => {
  const cheat = (_d: Uint8Array, sink: { calls: number; sum: number }) => {
    sink.calls++;
    sink.sum = (sink.sum + BENCH_BYTE) | 0;
  };
  throwsCheck(withFn(path("io-in/switch"), cheat), /guest's ebx grew by \d+ over \d+ answers/);
  throwsCheck(withFn(path("mmio-read/switch"), cheat), /guest's ebx grew by \d+ over \d+ answers/);
});

Deno.test("checks: a user-space RDMSR handler that never calls setData is caught", () => {
  const cheat = (_e: unknown, sink: { calls: number; sum: number }) => {
    sink.calls++;
    sink.sum = (sink.sum + BENCH_BYTE) | 0;
  };
  throwsCheck(withFn(path("msr-user/switch"), cheat), /guest's ebx grew by 0 over \d+ answers/);
});

Deno.test("checks: string IO bytes, and an INT3 handler that does not move RIP", () => {
  throwsCheck(
    withFn(path("string-io/switch"), (_d: Uint8Array, sink: { calls: number }) => sink.calls++),
    /byte sum 0 over \d+ exits: expected \d+ × 16 × 0x5a/,
  );
  // RIP stays on the INT3: the same breakpoint exits again, nothing after it retires.
  throwsCheck(
    withFn(path("debug-int3/switch"), (_v: unknown, sink: { calls: number }) => sink.calls++),
    /^debug-int3\/broken: 1 instructions retired for \d+ exits: expected/,
  );
});
