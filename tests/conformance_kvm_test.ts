/**
 * Differential conformance: the backend-neutral snippet table
 * (tests/snippets/) and the fuzzer's regression snippets
 * (tests/conformance/regressions.ts) run on the host's /dev/kvm through the
 * same createVmWithOneVcpu call as on the simulator, compared with each
 * snippet's expectations exactly as tests/snippets_test.ts does (registers,
 * defined flags, memory, exit sequence: the same expected exits on both
 * backends). Snippets in KVM_DIVERGENCES
 * (tests/conformance/kvm_divergences.ts: PVM emulator deviations, each with
 * the expected native/SDM value) must still fail on KVM; every other snippet
 * must pass. Plus a short fixed-seed differential fuzz run (sim vs kvm).
 * Skipped, with the reason printed, where /dev/kvm is unusable.
 */
import assert from "node:assert/strict";
import { FAMILIES } from "./snippets/families.ts";
import type { Mismatch } from "./snippets/run.ts";
import { checkOn } from "./conformance/runner.ts";
import { divergenceEntry, KVM_DIVERGENCES, kvmDivergence } from "./conformance/kvm_divergences.ts";
import { KNOWN_SIM_FAILURES, REGRESSIONS } from "./conformance/regressions.ts";
import { fuzz } from "./fuzz/diff.ts";
import { knownShapes, loadRegressions } from "./fuzz/regressions.ts";
import { render } from "./fuzz/gen.ts";
import { checkOnBoth, checkOnSim } from "./fuzz/regression_check.ts";
import { NO_KVM } from "./support/kvm_guard.ts";

const show = (ms: Mismatch[]) => ms.map((m) => `  ${m.field}: expected ${m.expected}, actual ${m.actual}`).join("\n");
const ALL = [...FAMILIES.values()].flat();

Deno.test("conformance tables: every KVM divergence entry names a snippet; regression names are unique", () => {
  const names = new Set([...ALL, ...REGRESSIONS].map((s) => s.name));
  const unused = KVM_DIVERGENCES.filter((d) => ![...names].some((n) => divergenceEntry(n) === d)).map((d) =>
    String(d.match)
  );
  assert.deepEqual(unused, [], "KVM_DIVERGENCES entries matching no snippet");
  assert.equal(new Set(REGRESSIONS.map((s) => s.name)).size, REGRESSIONS.length);
  assert.ok(REGRESSIONS.every((s) => !FAMILIES.has(s.name)));
  for (const n of KNOWN_SIM_FAILURES.keys()) assert.ok(REGRESSIONS.some((s) => s.name === n), `unknown ${n}`);
});

Deno.test("regression snippets on the simulator", () => {
  const bad: string[] = [];
  for (const s of REGRESSIONS) {
    const ms = checkOn("sim", s);
    const known = KNOWN_SIM_FAILURES.get(s.name);
    if (known !== undefined) {
      if (ms.length === 0) bad.push(`${s.name} passes now: remove it from KNOWN_SIM_FAILURES (${known})`);
      else console.log(`known sim failure ${s.name}: ${known}\n${show(ms)}`);
    } else if (ms.length) bad.push(`${s.name}:\n${show(ms)}`);
  }
  assert.deepEqual(bad, []);
});

const kvmTest = (name: string, fn: (t: Deno.TestContext) => void | Promise<void>) =>
  Deno.test({ name: `kvm conformance: ${name}`, ignore: NO_KVM !== undefined, fn });

const tally = { pass: 0, known: 0, total: 0 };

for (const [family, list] of [...FAMILIES, ["regressions", REGRESSIONS] as const]) {
  kvmTest(`${family} (${list.length})`, () => {
    const bad: string[] = [];
    for (const s of list) {
      const ms = checkOn("kvm", s);
      const d = kvmDivergence(s.name);
      tally.total++;
      if (d !== undefined) {
        if (ms.length === 0) bad.push(`${s.name} passes on kvm now: remove it from KVM_DIVERGENCES (${d.reason})`);
        else tally.known++;
        continue;
      }
      if (ms.length) bad.push(`${family} / ${s.name}:\n${show(ms)}`);
      else tally.pass++;
    }
    assert.deepEqual(bad, [], `${bad.length} of ${list.length} ${family} snippets failed on kvm`);
  });
}

kvmTest("totals", () => {
  console.log(
    `kvm: ${tally.pass} of ${tally.total} snippets pass, ${tally.known} known divergences (KVM_DIVERGENCES), ` +
      `${tally.total - tally.pass - tally.known} failures`,
  );
  assert.equal(tally.total, ALL.length + REGRESSIONS.length, "every family test ran before the totals");
});

// The fuzzer's mechanically recorded divergences (tests/conformance/fuzz_regressions.json, `fuzz:diff
// --write-regressions`): each classified entry is checked against its correct values on the simulator, and on
// both backends (agree, or still diverge while it is a known unfixed divergence); an unclassified one fails.
const FUZZ_REGRESSIONS = loadRegressions();

Deno.test(`fuzz regressions on the simulator (${FUZZ_REGRESSIONS.length})`, () => {
  const bad = FUZZ_REGRESSIONS.flatMap((e) => checkOnSim(e, (s) => console.log(s)));
  assert.deepEqual(bad, []);
});

kvmTest(`fuzz regressions on sim and kvm (${FUZZ_REGRESSIONS.length})`, () => {
  assert.deepEqual(FUZZ_REGRESSIONS.flatMap(checkOnBoth), []);
});

kvmTest("fuzz:diff seed 1, 150 sequences: sim and kvm agree (but for classified fuzz regressions)", () => {
  const logs: string[] = [];
  const r = fuzz(1, 150, { len: 12, known: knownShapes(FUZZ_REGRESSIONS), log: (s) => logs.push(s) });
  assert.equal(r.ran, 150);
  if (r.known.length) console.log(`${r.known.length} known divergences:\n${logs.join("\n")}`);
  assert.deepEqual(r.divergent.map((f) => `case ${f.index}:\n${render(f.c.units)}`), [], "new divergences");
});
