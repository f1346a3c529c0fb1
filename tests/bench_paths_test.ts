// The paths of tracking issue 4 §1 (io-in, string-in, mmio-read, in-kernel CPUID/RDMSR, user-space RDMSR,
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
  streamByte,
  streamBytes,
  streamSum,
  STRING_IO_BUF,
  STRING_IO_BYTES,
  stringInCheck,
} from "../bench/paths.ts";
import { resultRow } from "../bench/report.ts";
import { BenchPathError, firstStepOf, measure, preparePath } from "../bench/run_path.ts";
import { summarize } from "../bench/stats.ts";
import { benchPath } from "./support/bench_paths.ts";

const NEW = [
  "io-in/switch",
  "string-in/switch",
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

Deno.test("new paths: a valid table, unit exits, string-in reports bytes", () => {
  assert.deepEqual(checkPaths(PATHS), []);
  for (const id of NEW) assert.equal(benchPath(id).unit, "exits", id);
  const r = resultRow(benchPath("string-in/switch"), summarize([1000]));
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
    withFn(benchPath("string-in/switch"), (_d: Uint8Array, sink: { calls: number }) => sink.calls++),
    /handler supplied byte sum 0 over \d+ exits: expected \d+ \(stream bytes \d+ … \d+\)/,
  );
  // Counts and sums like the real device but does not fill the data: the guest buffer gives it away.
  const noFill = (d: Uint8Array, sink: { calls: number; sum: number }) => {
    const base = sink.calls * d.length;
    for (let i = 0; i < d.length; i++) sink.sum = (sink.sum + streamByte(base + i)) | 0;
    sink.calls++;
  };
  throwsCheck(
    withFn(benchPath("string-in/switch"), noFill),
    /^string-in\/broken: buffer at 0x8000 holds 00 00 .* after \d+ exits: expected exit \d+'s stream bytes/,
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

// string-in/switch: the REP INSB of 16 bytes is one KVM_EXIT_IO (in, count 16); the handler's byte-counter stream
// reaches the guest buffer.

Deno.test("string-in: the stream, its sum and the buffer check by hand", () => {
  assert.deepEqual([0, 1, 255, 256, 300].map(streamByte), [0, 1, 255, 0, 44]);
  for (const n of [0, 1, 2, 16, 255, 256, 257, 1000, 4096 + 17]) {
    let s = 0;
    for (let j = 0; j < n; j++) s = (s + streamByte(j)) | 0;
    assert.equal(streamSum(n), s, `streamSum(${n})`);
  }
  // 2^32 / 32640 ≈ 131 582 full rounds: the sum wraps like the handler's.
  assert.equal(streamSum(256 * 200_000), Math.imul(200_000, 32640) | 0);
  const sink = { calls: 0, sum: 0 };
  const d = new Uint8Array(16);
  streamBytes(d, sink);
  streamBytes(d, sink);
  assert.deepEqual([...d], Array.from({ length: 16 }, (_, i) => 16 + i));
  assert.deepEqual(sink, { calls: 2, sum: streamSum(32) });
  const mem = new Uint8Array(0x10000);
  const read = (gpa: number, len: number) => mem.subarray(gpa, gpa + len);
  mem.set(Array.from({ length: 16 }, (_, i) => 0x30 + i), 0x8000);
  assert.equal(stringInCheck(read, 0x8000, 16, 5), undefined, "exit 3's bytes 0x30… after 5 exits");
  assert.match(
    stringInCheck(read, 0x8000, 16, 4)!,
    /holds 30 31 .* after 4 exits: expected exit 2's stream bytes 20 21/,
  );
  assert.match(stringInCheck(read, 0x8000, 16, 1)!, /1 exits: expected at least 2/);
});

Deno.test("string-in/switch: every exit is IN from the port with count 16, and the guest buffer gets the stream", () => {
  const p = benchPath("string-in/switch");
  assert.equal(p.handler.kind, "pio-ins");
  const prep = preparePath(p);
  for (let k = 0; k < 20; k++) {
    const e = prep.vcpu.run();
    assert.ok(e.reason === "io", e.reason);
    assert.deepEqual([e.direction, e.port, e.size, e.count], ["in", 0x10, 1, STRING_IO_BYTES], `exit ${k}`);
    streamBytes(e.data, prep.sink);
    if (k >= 1) assert.equal(stringInCheck((a, n) => prep.vm.readGuest(a, n), STRING_IO_BUF, 16, k + 1), undefined);
  }
  // Exits 0 … 18 completed: 19 REP INSBs of 4 instructions each after `mov edx`, and the 20th's mov edi, mov ecx.
  assert.equal(prep.vcpu.instructions, 1 + 19 * 4 + 2);
  assert.equal(prep.vcpu.getRegs().rdi, BigInt(STRING_IO_BUF));
});

// io-out/coalesced, mmio-write/coalesced: the io-out / mmio-write loops with the address in a coalesced zone; the
// unit is writes delivered to the TS device (the ring drained by runUntil, plus the ring-full exits).

for (const id of ["io-out/coalesced", "mmio-write/coalesced"]) {
  Deno.test(`${id}: every write reaches the device, the ring does most of them, retired instructions agree`, () => {
    const p = benchPath(id);
    assert.equal(p.unit, "writes");
    assert.equal(p.loop, "runUntil");
    const h = p.handler;
    assert.ok(h.kind === "coalesced-write");
    const prep = preparePath(p);
    assert.deepEqual(prep.vm.coalescedZones(), [{ addr: h.addr, size: h.size, pio: h.pio }]);
    const s = measure(prep, 5, firstStepOf(p));
    assert.ok(s.units > 1000, `${s.units} writes`);
    // measure() checked calls = writes, sum = writes × 0x5a and instructions = 2 × writes ± 4; again by hand:
    assert.ok(Math.abs(s.instructions - 2 * s.units) <= 4, `${s.instructions} instructions for ${s.units} writes`);
    assert.equal(prep.sink.calls, s.units, "no write before the sample (preparePath runs nothing)");
    assert.equal(prep.sink.sum, Math.imul(s.units, BENCH_BYTE) | 0);
    const r = resultRow(p, summarize([5e6]));
    assert.ok("writes_per_s" in r && r.writes_per_s === 5e6 && r.ns_per_write === 200);
    assert.match(p.description, /unit: writes delivered to the device, not exits/);
  });
}

Deno.test("coalesced checks: a zone that no longer coalesces, a device that drops writes, a wrong loop", () => {
  const p = benchPath("io-out/coalesced");
  const h = p.handler as Extract<BenchPath["handler"], { kind: "coalesced-write" }>;
  // Unregistered after setup: every OUT exits (0 coalesced writes per exit), which is io-out/runUntil, not this path.
  const prep = preparePath(p);
  prep.vm.unregisterCoalescedMmio({ addr: h.addr, size: h.size, pio: h.pio });
  assert.throws(
    () => measure(prep, 2, 1000),
    (e) =>
      e instanceof BenchPathError &&
      /^io-out\/coalesced: 0 coalesced writes over 8 exits: expected at least 85 per exit/.test(e.message),
  );
  // A device that counts every other write only.
  let n = 0;
  const dropHalf = (d: Uint8Array, sink: { calls: number; sum: number }) => {
    if (n++ % 2 === 0) countByteLike(d, sink);
  };
  throwsCheck(withFn(p, dropHalf), /^io-out\/broken: device called \d+ times for \d+ coalesced writes \+ \d+ exits/);
  // A device that sees the writes but records the wrong byte.
  const wrongByte = (_d: Uint8Array, sink: { calls: number; sum: number }) => {
    sink.calls++;
    sink.sum = (sink.sum + 1) | 0;
  };
  throwsCheck(withFn(p, wrongByte), /handler saw byte sum \d+ over \d+ writes: expected \d+ × 0x5a/);
  // Retired instructions are the guest's own count: 3 per write is not what the loop does.
  throwsCheck({ ...p, instructionsPerUnit: 3 }, /instructions retired for \d+ writes: expected \d+ ± 6/);
  assert.deepEqual(checkPaths([{ ...p, loop: "switch" }, { ...p, path: "io-out/coalesced2", unit: "exits" }]), [
    `io-out/coalesced: handler "coalesced-write" measures writes with loop "runUntil", got unit writes loop switch`,
    `io-out/coalesced2: handler "coalesced-write" measures writes with loop "runUntil", got unit exits loop runUntil`,
  ]);
});

function countByteLike(d: Uint8Array, sink: { calls: number; sum: number }): void {
  sink.calls++;
  sink.sum = (sink.sum + d[0]!) | 0;
}
