/**
 * Checks the fuzzer's regression entries (regressions.ts) against the
 * backends: on the simulator alone (against the values the entry's
 * classification says are correct) and on both backends (they must agree
 * unless the entry is a known, unfixed divergence, which must still
 * diverge). Each check returns its problems as text; none means it holds.
 *
 * @module
 */
import { runOn } from "../conformance/runner.ts";
import { caseSnippet, diffCase, digest } from "./diff.ts";
import { caseOf, type FuzzRegression } from "./regressions.ts";

/** Problems of `e` on the simulator alone; `known` gets a line for an expected (known) failure. */
export function checkOnSim(e: FuzzRegression, known: (s: string) => void = () => {}): string[] {
  if (e.known === undefined) {
    return [`${e.name}: unclassified (set "known": which backend is wrong and why; see tests/fuzz/regressions.ts)`];
  }
  const c = caseOf(e);
  const sim = digest(c.units, runOn("sim", caseSnippet(c, e.name))).fields;
  const correct = e.known.wrong === "sim" ? "kvm" : "sim";
  const off = e.observed.filter((d) => sim.get(d.field) !== d[correct]);
  const show = off.map((d) => `  ${d.field}: expected ${d[correct]}, sim ${sim.get(d.field)}`).join("\n");
  if (e.known.wrong === "kvm" || e.known.fixed) return off.length ? [`${e.name}:\n${show}`] : [];
  if (off.length === 0) return [`${e.name} passes on the simulator now: set known.fixed (${e.known.reason})`];
  known(`known sim failure ${e.name}: ${e.known.reason}\n${show}`);
  return [];
}

/** Problems of `e` on both backends: agreement unless it is a known, unfixed divergence (which must persist). */
export function checkOnBoth(e: FuzzRegression): string[] {
  const { divergences } = diffCase(caseOf(e));
  const show = divergences.map((d) => `  ${d.field}: sim ${d.sim}, kvm ${d.kvm}`).join("\n");
  if (e.known === undefined) return [`${e.name}: unclassified divergence\n${show || "  (agrees now)"}`];
  if (e.known.fixed) return divergences.length ? [`${e.name} (marked fixed) diverges:\n${show}`] : [];
  return divergences.length ? [] : [`${e.name}: sim and kvm agree now: set known.fixed (${e.known.reason})`];
}
