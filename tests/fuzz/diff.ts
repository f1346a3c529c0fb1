/**
 * Randomized differential fuzzer: `deno task fuzz:diff --seed S --count N [--len L]`.
 *
 * Each case is a random valid integer sequence (gen.ts) over random register
 * values, assembled with src/asm, ending in `hlt`, run in long mode at CPL0
 * on the simulator and on /dev/kvm through the same createVmWithOneVcpu
 * call (tests/conformance/runner.ts). It compares the exit sequence, every
 * GPR, RIP and RFLAGS with the flags the SDM leaves undefined for the
 * sequence masked. A divergent case is minimised (units dropped while it
 * still diverges) and printed as a reproducer: the asm, the initial
 * registers, both results and a snippet literal for
 * tests/conformance/regressions.ts. Exit status 1 if anything diverged.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GPR_NAMES, type Regs, type Snippet } from "../snippets/types.ts";
import { runOn } from "../conformance/runner.ts";
import type { SnippetResult } from "../snippets/run.ts";
import { analyse, ARITH_FLAGS, GPRS64, minimise, randomSequence, randomValue, render, Rng, type Unit } from "./gen.ts";

export interface Case {
  units: Unit[];
  regs: Regs;
}

export interface Divergence {
  field: string;
  sim: string;
  kvm: string;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** A random case: `len` units, random GPRs (RSP stays the environment's), random defined arithmetic flags. */
export function randomCase(rng: Rng, len: number): Case {
  const regs: Regs = {};
  for (const r of GPRS64) regs[r] = randomValue(rng);
  regs.rflags = 0x2n | BigInt(rng.u32() & ARITH_FLAGS);
  return { units: randomSequence(rng, len), regs };
}

export const caseSnippet = (c: Case, name = "fuzz case"): Snippet => ({
  name,
  mode: "long",
  asm: render(c.units),
  regs: c.regs,
  expect: {},
});

/** Every difference between the two results of `units`, undefined flags masked. */
export function compareResults(units: readonly Unit[], sim: SnippetResult, kvm: SnippetResult): Divergence[] {
  const undef = analyse(units);
  if (undef === undefined) throw new Error(`invalid sequence (reads an undefined flag):\n${render(units)}`);
  const out: Divergence[] = [];
  const se = JSON.stringify(sim.exits), ke = JSON.stringify(kvm.exits);
  if (se !== ke || sim.stop !== kvm.stop) {
    out.push({ field: "exits", sim: `${se} ${sim.stop}`, kvm: `${ke} ${kvm.stop}` });
  }
  for (const n of GPR_NAMES) {
    const m = n === "rflags" ? ~BigInt(undef) : ~0n;
    const a = sim.regs[n] & m, b = kvm.regs[n] & m;
    if (a !== b) out.push({ field: n === "rflags" ? `rflags & ~${hex(BigInt(undef))}` : n, sim: hex(a), kvm: hex(b) });
  }
  return out;
}

export function diffCase(c: Case): { divergences: Divergence[]; sim: SnippetResult; kvm: SnippetResult } {
  const s = caseSnippet(c);
  const sim = runOn("sim", s), kvm = runOn("kvm", s);
  return { divergences: compareResults(c.units, sim, kvm), sim, kvm };
}

const showRegs = (r: Partial<Record<string, bigint>>) => Object.entries(r).map(([k, v]) => `${k}=${hex(v!)}`).join(" ");

/** The reproducer text of a (minimised) divergent case. */
export function reproducer(c: Case): string {
  const { divergences, sim, kvm } = diffCase(c);
  const undef = analyse(c.units)!;
  const lit = `{\n  name: "fuzz: ${render(c.units).split("\n").slice(0, -1).join("; ")}",\n  mode: "long",\n  asm: ${
    JSON.stringify(render(c.units))
  },\n  regs: { ${Object.entries(c.regs).map(([k, v]) => `${k}: ${hex(v!)}n`).join(", ")} },\n  expect: { regs: { ${
    divergences.filter((d) => d.field !== "exits").map((d) => `${d.field.split(" ")[0]}: <correct value>n`).join(", ")
  } }, flagsMask: ${hex(BigInt(ARITH_FLAGS & ~undef))}n },\n}`;
  return [
    "--- asm",
    render(c.units),
    "--- initial registers",
    showRegs(c.regs),
    `--- undefined flags masked: ${hex(BigInt(undef))}`,
    "--- divergences",
    ...divergences.map((d) => `${d.field}: sim ${d.sim}, kvm ${d.kvm}`),
    "--- sim result",
    showRegs(sim.regs),
    "--- kvm result",
    showRegs(kvm.regs),
    "--- regression snippet (tests/conformance/regressions.ts; fill in the native/SDM value)",
    lit,
  ].join("\n");
}

export interface FuzzReport {
  ran: number;
  divergent: Case[];
}

/** Run `count` cases from `seed`; minimise each divergent one. */
export function fuzz(seed: number, count: number, len: number, log: (s: string) => void = () => {}): FuzzReport {
  const rng = new Rng(seed);
  const divergent: Case[] = [];
  for (let i = 0; i < count; i++) {
    const c = randomCase(rng, 1 + rng.int(len));
    if (diffCase(c).divergences.length === 0) continue;
    const units = minimise(c.units, (u) => diffCase({ units: u, regs: c.regs }).divergences.length > 0);
    const min = { units, regs: c.regs };
    divergent.push(min);
    log(`case ${i} (seed ${seed}) diverges; minimised to ${units.length} unit(s):\n${reproducer(min)}\n`);
  }
  return { ran: count, divergent };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string", default: "1" },
      count: { type: "string", default: "200" },
      len: { type: "string", default: "12" },
    },
  });
  const num = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} ${v}: expected a non-negative integer`);
    return n;
  };
  const seed = num("seed", values.seed), count = num("count", values.count), len = Math.max(1, num("len", values.len));
  const { kvmUnavailableReason } = await import("../../src/backends/kvm/mod.ts");
  const why = kvmUnavailableReason();
  if (why !== undefined) {
    console.error(`fuzz:diff needs /dev/kvm: ${why}`);
    Deno.exit(2);
  }
  const t0 = performance.now();
  const r = fuzz(seed, count, len, (s) => console.log(s));
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `fuzz:diff seed ${seed}: ${r.ran} sequences (up to ${len} units) in ${secs} s, ${r.divergent.length} divergent`,
  );
  Deno.exit(r.divergent.length ? 1 : 0);
}
