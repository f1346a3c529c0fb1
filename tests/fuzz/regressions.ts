/**
 * The fuzzer's regression file (default tests/conformance/fuzz_regressions.json):
 * every minimised divergence `fuzz:diff` finds is appended mechanically, with
 * its seed and case index, the units (so the flag contract travels with it),
 * the initial registers and memory, and the divergences observed when it was
 * recorded. A person then classifies it with `known`:
 *
 * - `known.wrong: "sim"` — a kvmsim bug; the KVM values observed are the
 *   correct ones (checked natively at CPL3 or against the SDM). Until
 *   `known.fixed` is set the simulator must still get it wrong (an
 *   expected failure that reports itself when it starts passing).
 * - `known.wrong: "kvm"` — a PVM-emulator deviation (kvm_divergences.ts
 *   style: `kvm`, `expected`, `reason`); the simulator's observed values are
 *   the correct ones and it must keep producing them.
 *
 * An unclassified entry fails the conformance test. tests/conformance_kvm_test.ts
 * checks the file on the simulator alone and on both backends
 * (regression_check.ts).
 *
 * @module
 */
import type { MemBytes, RegName, Regs } from "../snippets/types.ts";
import { render, type Unit } from "./gen.ts";
import type { Case, Divergence } from "./diff.ts";

export const DEFAULT_REGRESSION_FILE = new URL("../conformance/fuzz_regressions.json", import.meta.url).pathname;

export interface KnownDivergence {
  /** The backend that gets it wrong. */
  wrong: "sim" | "kvm";
  /** What the wrong backend does instead. */
  kvm?: string;
  /** What the SDM / native CPU says. */
  expected?: string;
  reason: string;
  /** The wrong backend was fixed: both must agree now. */
  fixed?: boolean;
}

export interface FuzzRegression {
  name: string;
  seed: number;
  case: number;
  /** render(units), for reading; must match the units. */
  asm: string;
  units: Unit[];
  regs: Partial<Record<RegName, string>>;
  memory: { gpa: number; hex: string }[];
  /** The divergences when the entry was recorded (values as digest() prints them). */
  observed: Divergence[];
  known?: KnownDivergence;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const toHex = (b: readonly number[]) => b.map((x) => x.toString(16).padStart(2, "0")).join("");

function fromHex(s: string, what: string): number[] {
  if (!/^([0-9a-f]{2})*$/.test(s)) {
    throw new Error(`${what}: ${s.slice(0, 40)}…: expected an even number of hex digits`);
  }
  return Array.from({ length: s.length / 2 }, (_, i) => parseInt(s.slice(2 * i, 2 * i + 2), 16));
}

/** The entry for a minimised divergent case. */
export function regressionOf(seed: number, index: number, c: Case, observed: Divergence[]): FuzzRegression {
  const asm = render(c.units);
  const short = asm.split("\n").slice(0, -1).join("; ");
  return {
    name: `fuzz seed ${seed} #${index}: ${short.length > 100 ? `${short.slice(0, 100)}…` : short}`,
    seed,
    case: index,
    asm,
    units: c.units,
    regs: Object.fromEntries(Object.entries(c.regs).map(([k, v]) => [k, hex(v!)])),
    memory: c.memory.map((m) => ({ gpa: m.gpa, hex: toHex(m.bytes) })),
    observed,
  };
}

/** The case an entry describes (checks that `asm` still matches the units). */
export function caseOf(e: FuzzRegression): Case {
  if (render(e.units) !== e.asm) throw new Error(`${e.name}: asm does not match the units (edited by hand?)`);
  const regs: Regs = {};
  for (const [k, v] of Object.entries(e.regs)) regs[k as RegName] = BigInt(v!);
  const memory: MemBytes[] = e.memory.map((m) => ({ gpa: m.gpa, bytes: fromHex(m.hex, `${e.name} memory`) }));
  return { units: e.units, regs, memory };
}

export function loadRegressions(file = DEFAULT_REGRESSION_FILE): FuzzRegression[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const v = JSON.parse(text);
  if (!Array.isArray(v)) throw new Error(`${file}: expected a JSON array of fuzz regressions`);
  return v as FuzzRegression[];
}

const REG = /\b(r[a-d]x|e[a-d]x|[a-d][xl]|[re]?(si|di|bp)|(si|di|bp)l|r(8|9|1[0-5])[bwd]?)\b/g;

/** The shape of a sequence: its asm with registers other than RSP and numbers abstracted (`push R / pop qword [rsp-N]`). */
export const shapeOf = (asm: string) => asm.replace(REG, "R").replace(/-?\b(0x[0-9a-f]+|\d+)\b/g, "N");

const keyOf = (e: FuzzRegression) => shapeOf(e.asm);

/** The classified, unfixed entries by shape (a fuzz run reports a divergence of such a shape as known). */
export function knownShapes(entries: readonly FuzzRegression[]): Map<string, KnownDivergence> {
  return new Map(entries.flatMap((e) => (e.known && !e.known.fixed ? [[shapeOf(e.asm), e.known] as const] : [])));
}

/**
 * Append the entries whose shape (shapeOf) is not already in `file`: one reproducer per distinct divergent
 * sequence shape, however often the fuzzer meets it. Returns how many were added.
 */
export function appendRegressions(file: string, entries: readonly FuzzRegression[]): number {
  const all = loadRegressions(file);
  const seen = new Set(all.map(keyOf));
  const names = new Set(all.map((e) => e.name));
  let added = 0;
  for (const e of entries) {
    if (seen.has(keyOf(e))) continue;
    let name = e.name;
    for (let n = 2; names.has(name); n++) name = `${e.name} (${n})`;
    all.push({ ...e, name });
    seen.add(keyOf(e));
    names.add(name);
    added++;
  }
  if (added) Deno.writeTextFileSync(file, JSON.stringify(all, null, 1) + "\n");
  return added;
}
