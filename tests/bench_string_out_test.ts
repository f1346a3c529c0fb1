// string-out/switch (tracking issue: "string IO (REP OUTSB)"): REP OUTSB of 16 bytes from a RAM buffer exits once
// per byte (KVM_EXIT_IO out, size 1, count 1), as Linux KVM's em_out does; the switch loop's handler checks every
// byte against the source buffer, and measure() checks the byte sum, RSI/RCX at the last exit and the retired
// instructions. Runs briefly on the core; not timed.
import assert from "node:assert/strict";
import {
  BENCH_PORT,
  type BenchPath,
  checkPaths,
  checkSourceByte,
  PATHS,
  STRING_IO_BYTES,
  STRING_OUT_BUF,
  STRING_OUT_SOURCE,
  stringOutByte,
  stringOutCheck,
  stringOutSum,
} from "../bench/paths.ts";
import { resultRow } from "../bench/report.ts";
import { BenchPathError, firstStepOf, measure, preparePath, stringOutVerify } from "../bench/run_path.ts";
import { summarize } from "../bench/stats.ts";
import { benchPath } from "./support/bench_paths.ts";

const ID = "string-out/switch";
type Outs = Extract<BenchPath["handler"], { kind: "pio-outs" }>;

const throwsCheck = (p: BenchPath, re: RegExp) =>
  assert.throws(() => measure(preparePath(p), 2, 100), (e) => e instanceof BenchPathError && re.test(e.message));

Deno.test("string-out/switch: in the table next to string-in, exits with 1 byte each, a valid entry", () => {
  const ids = PATHS.map((p) => p.path);
  assert.equal(ids.indexOf(ID), ids.indexOf("string-in/switch") + 1);
  const p = benchPath(ID);
  assert.deepEqual([p.unit, p.loop, p.handler.kind, p.bytesPerUnit, p.unitsPerIteration], [
    "exits",
    "switch",
    "pio-outs",
    1,
    STRING_IO_BYTES,
  ]);
  assert.equal(p.instructionsPerUnit, 4 / 16);
  assert.deepEqual(checkPaths(PATHS), []);
  const r = resultRow(p, summarize([8e6]));
  assert.ok("exits_per_s" in r && r.exits_per_s === 8e6);
  assert.equal(r.bytes_per_unit, 1);
  assert.equal(r.bytes_per_s, 8e6);
});

Deno.test("string-out: the source bytes, their sum, the register check and the device by hand", () => {
  assert.deepEqual(STRING_OUT_SOURCE, [3, 10, 17, 24, 31, 38, 45, 52, 59, 66, 73, 80, 87, 94, 101, 108]);
  assert.equal(new Set(STRING_OUT_SOURCE).size, 16, "all distinct: a byte from the wrong offset is caught");
  for (const n of [0, 1, 15, 16, 17, 33, 1000]) {
    let s = 0;
    for (let k = 0; k < n; k++) s += stringOutByte(k % 16);
    assert.equal(stringOutSum(n), s, `stringOutSum(${n})`);
  }
  // 2^32 wrap like the handler's sum (888 per REP).
  assert.equal(stringOutSum(16 * 10_000_000), Math.imul(10_000_000, 888) | 0);
  // After 20 exits the vCPU is at exit 19, byte 3 of the second REP: RSI = buf + 4, RCX = 12.
  const buf = STRING_OUT_BUF;
  assert.equal(stringOutCheck({ rsi: BigInt(buf + 4), rcx: 12n }, buf, 16, 20), undefined);
  assert.equal(stringOutCheck({ rsi: BigInt(buf + 16), rcx: 0n }, buf, 16, 32), undefined, "the last element");
  assert.equal(
    stringOutCheck({ rsi: BigInt(buf + 3), rcx: 13n }, buf, 16, 20),
    "at exit 19 (byte 3 of its REP OUTSB) rsi 0xa003 rcx 13: expected rsi 0xa004 rcx 12 (the element committed at its exit)",
  );
  assert.match(stringOutCheck({ rsi: 0n, rcx: 0n }, buf, 16, 0)!, /0 exits: expected at least 1/);
  const sink = { calls: 0, sum: 0 };
  for (let k = 0; k < 20; k++) assert.equal(checkSourceByte(new Uint8Array([stringOutByte(k % 16)]), sink), true);
  assert.equal(checkSourceByte(new Uint8Array([stringOutByte(4)]), sink), true, "exit 20 is byte 4");
  assert.equal(checkSourceByte(new Uint8Array([stringOutByte(4)]), sink), false, "exit 21 is byte 5");
  assert.deepEqual(sink, { calls: 22, sum: (stringOutSum(21) + stringOutByte(4)) | 0 });
  const h = benchPath(ID).handler as Outs;
  assert.equal(stringOutVerify(h, 20, 20, stringOutSum(20), { rsi: BigInt(buf + 4), rcx: 12n }), undefined);
  assert.match(
    stringOutVerify(h, 20, 4, 0, { rsi: BigInt(buf + 4), rcx: 12n })!,
    /^handler saw byte sum 0 over 4 exits: expected 54 \(source bytes of exits 16 … 19\)$/,
  );
});

Deno.test("string-out/switch: every exit is a one-byte OUT of the next source byte, RSI/RCX moved, RIP at the REP", () => {
  const p = benchPath(ID);
  const prep = preparePath(p);
  assert.deepEqual([...prep.vm.readGuest(STRING_OUT_BUF, 16)], STRING_OUT_SOURCE, "the setup wrote the buffer");
  let rip: bigint | undefined;
  for (let k = 0; k < 40; k++) {
    const e = prep.vcpu.run();
    assert.ok(e.reason === "io", e.reason);
    assert.deepEqual([e.direction, e.port, e.size, e.count], ["out", BENCH_PORT, 1, 1], `exit ${k}`);
    assert.deepEqual([...e.data], [stringOutByte(k % 16)], `exit ${k}'s byte`);
    const regs = prep.vcpu.getRegs();
    assert.equal(stringOutCheck(regs, STRING_OUT_BUF, 16, k + 1), undefined, `exit ${k}`);
    rip ??= regs.rip;
    assert.equal(regs.rip, rip, `exit ${k}: RIP stays at the REP OUTSB`);
    // mov edx, then per REP: mov esi, mov ecx before its first exit; the REP and jmp retire after its last.
    assert.equal(prep.vcpu.instructions, 3 + 4 * Math.floor(k / 16), `exit ${k}: retired`);
  }
});

Deno.test("string-out/switch: runs on the core and passes its work checks", () => {
  const p = benchPath(ID);
  const prep = preparePath(p);
  const s = measure(prep, 5, firstStepOf(p));
  assert.ok(s.units >= 1000, `${s.units} exits`);
  assert.ok(Math.abs(s.instructions - s.units / 4) <= 8, `${s.instructions} instructions for ${s.units} exits`);
  assert.equal(prep.sink.calls, s.units, "preparePath runs nothing");
  assert.equal(prep.sink.sum, stringOutSum(s.units));
  assert.equal(stringOutCheck(prep.vcpu.getRegs(), STRING_OUT_BUF, 16, s.units), undefined);
  // A second sample goes on from there (the byte index is the exit count since the VM was created).
  const s2 = measure(prep, 2, 100);
  assert.equal(prep.sink.calls, s.units + s2.units);
});

Deno.test("string-out checks: a wrong source byte fails at its exit, wrong sums, registers and counts are caught", () => {
  const p = benchPath(ID);
  const broken = (o: Partial<BenchPath>): BenchPath => ({ ...p, path: "string-out/broken", ...o });
  // The guest's buffer differs at byte 5: exit 5 carries 0xee, and the handler's check stops the run there.
  throwsCheck(
    broken({
      setup: (vm) => vm.writeGuest(STRING_OUT_BUF, STRING_OUT_SOURCE.map((b, i) => (i === 5 ? 0xee : b))),
    }),
    /^string-out\/broken: exit 5: OUT byte 0xee: expected source byte 5 \(0x26\) of the buffer at 0xa000$/,
  );
  // No setup: the buffer is fresh RAM (zeros), exit 0 is wrong already.
  throwsCheck(
    broken({ setup: undefined }),
    /^string-out\/broken: exit 0: OUT byte 0x0: expected source byte 0 \(0x3\)/,
  );
  const h = p.handler as Outs;
  // A device that accepts every byte but folds in nothing: the sum check.
  const noSum = (_d: Uint8Array, sink: { calls: number }) => {
    sink.calls++;
    return true;
  };
  throwsCheck(broken({ handler: { ...h, fn: noSum } }), /handler saw byte sum 0 over \d+ exits: expected \d+/);
  // A device that does not count its calls.
  throwsCheck(broken({ handler: { ...h, fn: () => true } }), /handler called 0 times for \d+ exits/);
  // A guest whose REP OUTSB is 17 bytes: byte 16 comes from past the buffer (0), caught at exit 16.
  throwsCheck(
    broken({ asm: p.asm.replace(`mov ecx, ${STRING_IO_BYTES}`, "mov ecx, 17") }),
    /exit 16: OUT byte 0x0: expected source byte 0 \(0x3\)/,
  );
  // Retired instructions: 1 per exit is not what the loop does (4 per 16 exits).
  throwsCheck(broken({ instructionsPerUnit: 1 }), /instructions retired for \d+ exits: expected \d+ ± 32/);
  // The exits must be OUT to the bench port.
  throwsCheck(broken({ handler: { ...h, port: BENCH_PORT + 1 } }), /unexpected exit KVM_EXIT_IO/);
});

Deno.test("checkPaths: string-out's units per iteration must match the REP, fractional instructions need it", () => {
  const p = benchPath(ID);
  assert.deepEqual(checkPaths([{ ...p, unitsPerIteration: 8 }]), [
    `${ID}: handler "pio-outs" exits once per byte: unitsPerIteration 8, expected bytesPerRep 16`,
  ]);
  assert.deepEqual(checkPaths([{ ...p, unitsPerIteration: undefined }]), [
    `${ID}: instructionsPerUnit 0.25 × unitsPerIteration 1: expected >= 1 instruction per loop iteration`,
    `${ID}: handler "pio-outs" exits once per byte: unitsPerIteration 1, expected bytesPerRep 16`,
  ]);
  assert.deepEqual(
    checkPaths([{ ...p, unitsPerIteration: 1.5 }])[0],
    `${ID}: unitsPerIteration 1.5: expected an integer >= 1`,
  );
  assert.deepEqual(checkPaths([{ ...p, loop: "runUntil" }]), [
    `${ID}: handler "pio-outs" measures exits with loop "switch", got unit exits loop runUntil`,
  ]);
});
