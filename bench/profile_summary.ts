/**
 * Summarise a V8 `.cpuprofile` (from `deno run --cpu-prof`): self time per
 * function, and the split between WASM code, JS code and the rest (GC,
 * program, idle). Run a core built with a name section (`asc … --debug`,
 * loaded with `deno task bench --wasm FILE`) to see WASM function names.
 *
 * ```
 * deno run -A bench/profile_summary.ts PROFILE.cpuprofile [--top N]
 * ```
 *
 * @module
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export type Category = "wasm" | "js" | "other";

/** Where a frame's code lives. */
export function categoryOf(f: CallFrame): Category {
  if (f.url.startsWith("wasm://") || /^\$?assembly\//.test(f.functionName) || /^\$?\d+$/.test(f.functionName)) {
    return "wasm";
  }
  if (f.url.startsWith("file://") || f.url.startsWith("ext:") || f.url.startsWith("node:")) return "js";
  return "other";
}

export interface SelfTime {
  readonly name: string;
  readonly where: string;
  readonly category: Category;
  readonly ms: number;
}

/** Self time per (function, location), descending. */
export function selfTimes(p: CpuProfile): SelfTime[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const acc = new Map<string, SelfTime>();
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!);
    if (!node) throw new RangeError(`sample ${i} names node ${p.samples[i]}, which the profile does not have`);
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/work\/main\//, "")}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName}|${where}`;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const prev = acc.get(key);
    acc.set(key, { name: f.functionName || "(anonymous)", where, category: categoryOf(f), ms: (prev?.ms ?? 0) + dt });
  }
  return [...acc.values()].sort((a, b) => b.ms - a.ms);
}

if (import.meta.main) {
  const file = Deno.args[0];
  if (!file) {
    console.error("usage: deno run -A bench/profile_summary.ts PROFILE.cpuprofile [--top N]");
    Deno.exit(2);
  }
  const ti = Deno.args.indexOf("--top");
  const top = ti >= 0 ? Number(Deno.args[ti + 1]) : 25;
  const prof = JSON.parse(Deno.readTextFileSync(file)) as CpuProfile;
  const rows = selfTimes(prof);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  const by: Record<Category, number> = { wasm: 0, js: 0, other: 0 };
  for (const r of rows) by[r.category] += r.ms;
  const pct = (ms: number) => `${((100 * ms) / total).toFixed(1)}%`;
  console.log(`total ${total.toFixed(0)} ms sampled: wasm ${pct(by.wasm)}, js ${pct(by.js)}, other ${pct(by.other)}`);
  for (const r of rows.slice(0, top)) {
    console.log(
      `${pct(r.ms).padStart(6)} ${r.ms.toFixed(1).padStart(8)} ms  ${r.category.padEnd(5)} ${r.name}  ${r.where}`,
    );
  }
}
