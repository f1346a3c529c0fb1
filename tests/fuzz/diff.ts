/**
 * Randomized differential fuzzer:
 * `deno task fuzz:diff --seed S --count N [--len L] [--mem P] [--write-regressions FILE|none]`.
 *
 * Each case is a random valid integer sequence (gen.ts) over random register
 * values and random bytes in the scratch area and the stack window,
 * assembled with src/asm, ending in `hlt`, run in long mode at CPL0 on the
 * simulator and on /dev/kvm through the same createVmWithOneVcpu call
 * (tests/conformance/runner.ts). It compares the exit sequence, every GPR,
 * RIP, RFLAGS with the flags the SDM leaves undefined for the sequence
 * masked, the scratch area and the stack window (MMIO accesses are compared
 * as exits with their data). An exception — #DE from DIV/IDIV (division by
 * zero, quotient overflow), #PF / #GP / #SS from the generator's deliberate
 * accesses outside RAM — ends in the environment's exception stub (OUT of
 * the vector, HLT): the exits, the frame on the stack ([error code,] RIP of
 * the faulting instruction, CS, RFLAGS, RSP, SS) and the registers are
 * compared, with the flags undefined *before the faulting instruction*
 * masked in RFLAGS and in the frame's RFLAGS slot.
 *
 * A divergent case is minimised (units dropped while it still diverges, then
 * registers and memory zeroed where that keeps it divergent), printed as a
 * reproducer, and appended to the regression file (default
 * tests/conformance/fuzz_regressions.json; `--write-regressions none` to
 * skip) unless an entry of the same shape is there already; the file is run
 * on both backends by tests/conformance_kvm_test.ts. A divergence whose shape
 * is a classified entry is reported as known. Exit status 1 if any
 * unclassified divergence was found.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { assemble } from "../../mod.ts";
import { GPR_NAMES, type MemBytes, type Regs, type Snippet } from "../snippets/types.ts";
import { ENV, type SnippetResult } from "../snippets/run.ts";
import { runOn } from "../conformance/runner.ts";
import {
  ARITH_FLAGS,
  GPRS64,
  minimise,
  randomSequence,
  randomValue,
  render,
  Rng,
  SCRATCH,
  STACK_WINDOW,
  undefinedBeforeLines,
  type Unit,
} from "./gen.ts";
import {
  appendRegressions,
  DEFAULT_REGRESSION_FILE,
  type KnownDivergence,
  knownShapes,
  loadRegressions,
  regressionOf,
  shapeOf,
} from "./regressions.ts";

export interface Case {
  units: Unit[];
  regs: Regs;
  /** Initial bytes of the scratch area and the stack window. */
  memory: MemBytes[];
}

export interface Divergence {
  field: string;
  sim: string;
  kvm: string;
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const randomBytes = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.int(256));

/** A random case: `len` units, random GPRs (RSP stays the environment's), random defined arithmetic flags, random memory. */
export function randomCase(rng: Rng, len: number, pMem = 35): Case {
  const regs: Regs = {};
  for (const r of GPRS64) regs[r] = randomValue(rng);
  regs.rflags = 0x2n | BigInt(rng.u32() & ARITH_FLAGS);
  const memory = [
    { gpa: SCRATCH.base, bytes: randomBytes(rng, SCRATCH.size) },
    { gpa: STACK_WINDOW.base, bytes: randomBytes(rng, STACK_WINDOW.size) },
  ];
  return { units: randomSequence(rng, len, pMem), regs, memory };
}

/** The compared memory ranges (runOn reads back the `expect.memory` ranges; their contents are not compared there). */
const COMPARED: MemBytes[] = [SCRATCH, STACK_WINDOW].map((a) => ({ gpa: a.base, bytes: new Array(a.size).fill(0) }));

export const caseSnippet = (c: Case, name = "fuzz case"): Snippet => ({
  name,
  mode: "long",
  asm: render(c.units),
  regs: c.regs,
  memory: c.memory,
  expect: { memory: COMPARED },
});

/**
 * The exception vector the run ended in, if any: the environment's stub reports it with OUT to
 * ENV.exceptionPort then HLT, so it is the exit before the last (MMIO exits may come first).
 */
export function exceptionVector(r: SnippetResult): number | undefined {
  const e = r.exits.length >= 2 && r.exits.at(-1)!.reason === "hlt" ? r.exits.at(-2) : undefined;
  if (e && e.reason === "io" && "direction" in e && e.direction === "out" && e.port === ENV.exceptionPort) {
    return e.data[0];
  }
  return undefined;
}

const VECTOR_NAMES: Record<number, string> = { 0: "#DE", 6: "#UD", 12: "#SS", 13: "#GP", 14: "#PF" };

/** Exceptions that push an error code (SDM vol. 3 table 6-1). */
const ERROR_CODE_VECTORS = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

const readU64 = (bytes: readonly number[], off: number) =>
  bytes.slice(off, off + 8).reduceRight((a, b) => (a << 8n) | BigInt(b), 0n);

/** Source line index (0-based, as `render` lines) of the instruction at guest address `rip`. */
function lineAt(units: readonly Unit[], rip: bigint): number | undefined {
  const { listing } = assemble(render(units), { bits: 64, origin: ENV.load });
  const l = listing.find((x) => BigInt(x.address) === rip && x.bytes.length > 0);
  return l === undefined ? undefined : l.line - 1;
}

/**
 * One backend's outcome as comparable fields (value strings): exits, every GPR (RFLAGS masked by the
 * flags undefined where the run stopped), the scratch area and the stack window in 8-byte chunks (an
 * exception frame's RFLAGS slot masked the same way). Also the undefined-flag mask used.
 */
export function digest(units: readonly Unit[], r: SnippetResult): { fields: Map<string, string>; undef: number } {
  const lines = undefinedBeforeLines(units);
  if (lines === undefined) throw new Error(`invalid sequence (reads an undefined flag):\n${render(units)}`);
  let undef = lines.at(-1)!;
  const stack = [...(r.memory[1]?.bytes ?? [])];
  const vector = exceptionVector(r);
  if (vector !== undefined) {
    // The frame at the handler's RSP: [error code,] RIP, CS, RFLAGS, RSP, SS. Mask the flags undefined before
    // the faulting instruction, in RFLAGS and in the frame's RFLAGS slot.
    const ripOff = Number(r.regs.rsp) - STACK_WINDOW.base + (ERROR_CODE_VECTORS.includes(vector) ? 8 : 0);
    const inWindow = ripOff >= 0 && ripOff + 40 <= stack.length;
    const line = inWindow ? lineAt(units, readU64(stack, ripOff)) : undefined;
    undef = line === undefined ? ARITH_FLAGS : lines[line]!;
    if (inWindow) {
      for (let b = 0; b < 2; b++) stack[ripOff + 16 + b] = stack[ripOff + 16 + b]! & ~(undef >> (8 * b)) & 0xff;
    }
  }
  const f = new Map<string, string>();
  f.set("exits", `${JSON.stringify(r.exits)}${r.stop ? ` ${r.stop}` : ""}`);
  for (const n of GPR_NAMES) {
    if (n === "rflags") f.set(`rflags & ~${hex(undef)}`, hex(r.regs[n] & ~BigInt(undef)));
    else f.set(n, hex(r.regs[n]));
  }
  const chunks = (name: string, base: number, bytes: readonly number[]) => {
    for (let o = 0; o < bytes.length; o += 8) {
      f.set(`${name} ${hex(base + o)}`, bytes.slice(o, o + 8).map((b) => b.toString(16).padStart(2, "0")).join(" "));
    }
  };
  chunks("scratch", SCRATCH.base, r.memory[0]?.bytes ?? []);
  chunks("stack", STACK_WINDOW.base, stack);
  return { fields: f, undef };
}

/** Every difference between the two results of `units`, undefined flags masked. */
export function compareResults(units: readonly Unit[], sim: SnippetResult, kvm: SnippetResult): Divergence[] {
  const a = digest(units, sim).fields, b = digest(units, kvm).fields;
  const out: Divergence[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(k) ?? "(none)", y = b.get(k) ?? "(none)";
    if (x !== y) out.push({ field: k, sim: x, kvm: y });
  }
  return out;
}

export function diffCase(c: Case): { divergences: Divergence[]; sim: SnippetResult; kvm: SnippetResult } {
  const s = caseSnippet(c);
  const sim = runOn("sim", s), kvm = runOn("kvm", s);
  return { divergences: compareResults(c.units, sim, kvm), sim, kvm };
}

const showRegs = (r: Partial<Record<string, bigint>>) => Object.entries(r).map(([k, v]) => `${k}=${hex(v!)}`).join(" ");
const diverges = (c: Case) => diffCase(c).divergences.length > 0;

/** Minimise a divergent case: units, then registers (to 0) and memory areas (to zeros) that do not matter. */
export function minimiseCase(c: Case): Case {
  let cur: Case = { ...c, units: minimise(c.units, (u) => diverges({ ...c, units: u })) };
  for (const k of Object.keys(cur.regs) as (keyof Regs)[]) {
    if (k === "rflags" || cur.regs[k] === 0n) continue;
    const t = { ...cur, regs: { ...cur.regs, [k]: 0n } };
    if (diverges(t)) cur = t;
  }
  for (let i = 0; i < cur.memory.length; i++) {
    const m = cur.memory[i]!;
    if (m.bytes.every((b) => b === 0)) continue;
    const t = { ...cur, memory: cur.memory.map((x, j) => (j === i ? { ...x, bytes: x.bytes.map(() => 0) } : x)) };
    if (diverges(t)) cur = t;
  }
  return cur;
}

/** The reproducer text of a (minimised) divergent case. */
export function reproducer(c: Case): string {
  const { divergences, sim, kvm } = diffCase(c);
  const nonZero = c.memory.filter((m) => m.bytes.some((b) => b !== 0)).map((m) => hex(m.gpa));
  return [
    "--- asm",
    render(c.units),
    "--- initial registers",
    showRegs(c.regs),
    `--- initial memory: random bytes at ${nonZero.join(", ") || "(none: all zero)"} (see the regression entry)`,
    `--- undefined flags masked: sim ${hex(digest(c.units, sim).undef)}, kvm ${hex(digest(c.units, kvm).undef)}`,
    "--- divergences",
    ...divergences.map((d) => `${d.field}: sim ${d.sim}, kvm ${d.kvm}`),
    "--- sim result",
    showRegs(sim.regs),
    "--- kvm result",
    showRegs(kvm.regs),
  ].join("\n");
}

export interface Found {
  seed: number;
  index: number;
  c: Case;
  divergences: Divergence[];
}

export interface FuzzReport {
  ran: number;
  /** Divergences of a shape not classified yet (new findings). */
  divergent: Found[];
  /** Divergences whose minimised shape is a classified, unfixed entry of the regression file. */
  known: (Found & { known: KnownDivergence })[];
  /** Cases that ended in #DE (on the simulator). */
  divideErrors: number;
  /** Cases by the exception they ended in (on the simulator), by vector. */
  exceptions: Map<number, number>;
  /** Cases with at least one MMIO exit (on the simulator). */
  mmio: number;
}

export interface FuzzOptions {
  len: number;
  /** % of operands that may be memory. */
  pMem?: number;
  log?: (s: string) => void;
  /** Classified divergences by shape (regressions.ts knownShapes); a match is reported as known, not new. */
  known?: ReadonlyMap<string, KnownDivergence>;
}

/** Run `count` cases from `seed`; minimise each divergent one. */
export function fuzz(seed: number, count: number, opts: FuzzOptions): FuzzReport {
  const rng = new Rng(seed);
  const divergent: Found[] = [];
  const known: FuzzReport["known"] = [];
  let divideErrors = 0, mmio = 0;
  const exceptions = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const c = randomCase(rng, 1 + rng.int(opts.len), opts.pMem);
    const d = diffCase(c);
    const v = exceptionVector(d.sim);
    if (v === 0) divideErrors++;
    if (v !== undefined) exceptions.set(v, (exceptions.get(v) ?? 0) + 1);
    if (d.sim.exits.some((e) => e.reason === "mmio")) mmio++;
    if (d.divergences.length === 0) continue;
    const min = minimiseCase(c);
    const divergences = diffCase(min).divergences;
    const k = opts.known?.get(shapeOf(render(min.units)));
    if (k !== undefined) {
      known.push({ seed, index: i, c: min, divergences, known: k });
      opts.log?.(
        `case ${i} (seed ${seed}): known divergence (${k.wrong} wrong: ${k.reason.slice(0, 80)}…):\n` +
          `${render(min.units)}\n`,
      );
      continue;
    }
    divergent.push({ seed, index: i, c: min, divergences });
    opts.log?.(`case ${i} (seed ${seed}) diverges; minimised to ${min.units.length} unit(s):\n${reproducer(min)}\n`);
  }
  return { ran: count, divergent, known, divideErrors, exceptions, mmio };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string", default: "1" },
      count: { type: "string", default: "200" },
      len: { type: "string", default: "12" },
      mem: { type: "string", default: "35" },
      "write-regressions": { type: "string", default: DEFAULT_REGRESSION_FILE },
    },
  });
  const num = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} ${v}: expected a non-negative integer`);
    return n;
  };
  const seed = num("seed", values.seed), count = num("count", values.count), len = Math.max(1, num("len", values.len));
  const pMem = num("mem", values.mem);
  if (pMem > 100) throw new Error(`--mem ${pMem}: expected a percentage 0-100`);
  const { kvmUnavailableReason } = await import("../../src/backends/kvm/mod.ts");
  const why = kvmUnavailableReason();
  if (why !== undefined) {
    console.error(`fuzz:diff needs /dev/kvm: ${why}`);
    Deno.exit(2);
  }
  const file = values["write-regressions"];
  // Classified shapes from the repository's file and the target file (if another one).
  const files = [...new Set([DEFAULT_REGRESSION_FILE, ...(file === "none" ? [] : [file])])];
  const known = knownShapes(files.flatMap((f) => loadRegressions(f)));
  const t0 = performance.now();
  const r = fuzz(seed, count, { len, pMem, known, log: (s) => console.log(s) });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (r.divergent.length && file !== "none") {
    const added = appendRegressions(file, r.divergent.map((f) => regressionOf(f.seed, f.index, f.c, f.divergences)));
    console.log(`${added} new regression entr${added === 1 ? "y" : "ies"} appended to ${file}`);
  }
  console.log(
    `fuzz:diff seed ${seed}: ${r.ran} sequences (up to ${len} units, ${pMem}% memory operands) in ${secs} s, ` +
      `ended in ${
        [...r.exceptions].sort((a, b) => a[0] - b[0]).map(([v, n]) => `${VECTOR_NAMES[v] ?? `#${v}`} ${n}`).join(
          ", ",
        ) || "no exception"
      }, ` +
      `${r.mmio} with MMIO exits; ${r.divergent.length + r.known.length} divergent ` +
      `(${r.known.length} of a classified shape, ${r.divergent.length} unclassified)`,
  );
  Deno.exit(r.divergent.length ? 1 : 0); // classified (known) divergences do not fail the run
}
