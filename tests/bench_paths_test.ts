// The paths of tracking issue 4 §1 (io-in, string-io, mmio-read, in-kernel CPUID/RDMSR, user-space RDMSR,
// INT3 debug exits): each runs briefly on the core through measure(), whose work checks throw on a miss,
// and the checks catch a handler that does not do its part. Not timed.
import assert from "node:assert/strict";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import {
  ALU_MEM_ARRAY,
  ALU_MEM_ITERATION,
  ALU_MEM_K,
  aluMemCheck,
  aluMemExpected,
  BENCH_BYTE,
  type BenchPath,
  checkPaths,
  PATHS,
  STRING_IO_BYTES,
} from "../bench/paths.ts";
import { resultRow } from "../bench/report.ts";
import { BenchPathError, firstStepOf, measure, preparePath } from "../bench/run_path.ts";
import { summarize } from "../bench/stats.ts";
import { benchPath } from "./support/bench_paths.ts";

const NEW = [
  "io-in/switch",
  "string-io/switch",
  "mmio-read/switch",
  "cpuid-inkernel/budget",
  "msr-inkernel/budget",
  "msr-user/switch",
  "debug-int3/switch",
];

for (const id of NEW) {
  Deno.test(`${id}: runs on the core and passes its work checks`, () => {
    const p = benchPath(id);
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
  for (const id of NEW) assert.equal(benchPath(id).unit, "exits", id);
  const r = resultRow(benchPath("string-io/switch"), summarize([1000]));
  assert.equal(r.bytes_per_unit, STRING_IO_BYTES);
  assert.equal(r.bytes_per_s, 1000 * STRING_IO_BYTES);
  assert.equal("bytes_per_s" in resultRow(benchPath("io-in/switch"), summarize([1000])), false);
  const bad: BenchPath = { ...benchPath("io-in/switch"), loop: "runUntil" };
  assert.deepEqual(checkPaths([bad]), [
    `io-in/switch: handler "pio-in" measures exits with loop "switch", got unit exits loop runUntil`,
  ]);
  const badK: BenchPath = { ...benchPath("cpuid-inkernel/budget"), loop: "switch" };
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
  throwsCheck(withFn(benchPath("io-in/switch"), cheat), /guest's ebx grew by \d+ over \d+ answers/);
  throwsCheck(withFn(benchPath("mmio-read/switch"), cheat), /guest's ebx grew by \d+ over \d+ answers/);
});

Deno.test("checks: a user-space RDMSR handler that never calls setData is caught", () => {
  const cheat = (_e: unknown, sink: { calls: number; sum: number }) => {
    sink.calls++;
    sink.sum = (sink.sum + BENCH_BYTE) | 0;
  };
  throwsCheck(withFn(benchPath("msr-user/switch"), cheat), /guest's ebx grew by 0 over \d+ answers/);
});

Deno.test("checks: string IO bytes, and an INT3 handler that does not move RIP", () => {
  throwsCheck(
    withFn(benchPath("string-io/switch"), (_d: Uint8Array, sink: { calls: number }) => sink.calls++),
    /byte sum 0 over \d+ exits: expected \d+ × 16 × 0x5a/,
  );
  // RIP stays on the INT3: the same breakpoint exits again, nothing after it retires.
  throwsCheck(
    withFn(benchPath("debug-int3/switch"), (_v: unknown, sink: { calls: number }) => sink.calls++),
    /^debug-int3\/broken: 1 instructions retired for \d+ exits: expected/,
  );
});

// raw/alu-mem (tracking issue 4 §1, "an ALU/memory mix"): the guest's result is checked against closed forms.

Deno.test("raw/alu-mem: runs on the core in instructions and its result check passes", () => {
  const p = benchPath("raw/alu-mem");
  assert.equal(p.unit, "instructions");
  assert.equal(p.loop, "budget");
  assert.equal(typeof p.check, "function");
  const prep = preparePath(p);
  const s = measure(prep, 5, firstStepOf(p));
  assert.ok(s.units >= firstStepOf(p), `${s.units} instructions`);
  assert.equal(s.instructions, s.units);
  assert.equal(p.check!(prep.vm, prep.vcpu), undefined);
  assert.ok(prep.vcpu.getRegs().rsi > 1000n, "the loop went round");
  const r = resultRow(p, summarize([2e7]));
  assert.ok("instr_per_s" in r && r.instr_per_s === 2e7);
});

Deno.test("raw/alu-mem: the closed forms hold at every instruction of the first iterations", () => {
  const p = benchPath("raw/alu-mem");
  const prep = preparePath(p);
  for (let i = 0; i < 4 + 4 * ALU_MEM_ITERATION; i++) {
    assert.equal(prep.vcpu.runRaw(1), K.KVM_EXIT_INTR);
    assert.equal(aluMemCheck(prep.vm, prep.vcpu), undefined, `after ${i + 1} instructions`);
  }
});

Deno.test("raw/alu-mem: expected state by hand after one and two iterations", () => {
  const zero = [0, 0, 0, 0, 0, 0, 0, 0];
  assert.deepEqual(aluMemExpected(0), { a: zero, esi: 0, edi: 0, r8d: 0, r9d: 0, stack: 0, rspDelta: 0 });
  // Iteration 0: a[0] += 0, edi += 0, r8d += 0, r9d = 0, push 0.
  assert.deepEqual(aluMemExpected(4 + 16), { a: zero, esi: 1, edi: 0, r8d: 0, r9d: 0, stack: 0, rspDelta: 0 });
  // Iteration 1: a[1] = 1, edi = 1, r8d = K, r9d = (K ^ 1) >>> 3, push 1.
  const two = aluMemExpected(4 + 32);
  assert.deepEqual(two, {
    a: [0, 1, 0, 0, 0, 0, 0, 0],
    esi: 2,
    edi: 1,
    r8d: ALU_MEM_K,
    r9d: (ALU_MEM_K ^ 1) >>> 3,
    stack: 1,
    rspDelta: 0,
  });
  // 11 instructions into iteration 2: a[2] = 2, edi = 3, r8d = 3K, pushed 2, not yet popped, esi still 2.
  assert.deepEqual(aluMemExpected(4 + 32 + 11), {
    a: [0, 1, 2, 0, 0, 0, 0, 0],
    esi: 2,
    edi: 3,
    r8d: (3 * ALU_MEM_K) >>> 0,
    r9d: (((2 * ALU_MEM_K) >>> 0) ^ 2) >>> 3,
    stack: 2,
    rspDelta: -8,
  });
  // 9 iterations: a[k] = k except a[0] = 0 + 8; edi = Σ_{j<9} a_j(after j) = 0+1+…+7 + 8.
  const nine = aluMemExpected(4 + 9 * 16);
  assert.deepEqual(nine.a, [8, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(nine.edi, 28 + 8);
  assert.equal(nine.r8d, Number((BigInt(ALU_MEM_K) * 36n) & 0xffffffffn));
  assert.throws(() => aluMemExpected(-1), /expected a count >= 0/);
});

Deno.test("raw/alu-mem: a guest result that differs from the loop's is caught", () => {
  const p = benchPath("raw/alu-mem");
  const prep = preparePath(p);
  measure(prep, 2, firstStepOf(p));
  const a3 = prep.vm.readGuest(ALU_MEM_ARRAY + 12, 4);
  prep.vm.writeGuest(ALU_MEM_ARRAY + 12, [a3[0]! ^ 1, a3[1]!, a3[2]!, a3[3]!]);
  assert.throws(
    () => measure(prep, 2, firstStepOf(p)),
    (e) =>
      e instanceof BenchPathError &&
      /^raw\/alu-mem: guest result: after \d+ instructions: .*a\[3\] \d+ \(expected \d+\)/.test(e.message),
  );
  const fresh = preparePath(p);
  measure(fresh, 2, firstStepOf(p));
  fresh.vcpu.setRegs({ r8: fresh.vcpu.getRegs().r8 + 1n });
  assert.throws(() => measure(fresh, 2, firstStepOf(p)), /guest result: .*r8d \d+ \(expected \d+\)/);
});
