/**
 * Result rows (latest.json) and the terminal table.
 *
 * @module
 */
import type { MachineInfo } from "./machine.ts";
import type { BenchPath } from "./paths.ts";
import { formatRate, nsPerUnit, type Summary } from "./stats.ts";

/** One row of latest.json. Rates are per second; min/max are the extreme runs' rates. */
export type ResultRow = {
  readonly path: string;
  readonly engine: "kvmsim";
  readonly unit: BenchPath["unit"];
  readonly loop: BenchPath["loop"];
  readonly description: string;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
  /** Every run's rate, in run order. */
  readonly samples: readonly number[];
  readonly target?: number;
  readonly meets_target?: boolean;
  /** The machine yardstick (WASM count-down loop iterations/s) measured just before this path's runs. */
  readonly yardstick_iter_per_s?: number;
  /** Cost of one unit in yardstick-loop iterations (ns per unit × yardstick rate): comparable across machine speeds. */
  readonly yardstick_iters_per_unit?: number;
} & (
  | { readonly exits_per_s: number; readonly ns_per_exit: number }
  | { readonly instr_per_s: number; readonly ns_per_instr: number }
);

export interface Results {
  readonly machine: MachineInfo;
  readonly date: string;
  readonly settings: { readonly duration_s: number; readonly runs: number; readonly warmup: number; readonly filter: string | null; readonly wasm: string | null };
  readonly rows: readonly ResultRow[];
}

export function resultRow(p: BenchPath, s: Summary, yardstick?: number): ResultRow {
  const ns = nsPerUnit(s.median);
  const common = {
    path: p.path,
    engine: "kvmsim" as const,
    unit: p.unit,
    loop: p.loop,
    description: p.description,
  };
  const rate = p.unit === "exits" ? { exits_per_s: s.median, ns_per_exit: ns } : { instr_per_s: s.median, ns_per_instr: ns };
  const tail = { min: s.min, max: s.max, runs: s.runs, samples: s.samples };
  const target = p.target === undefined ? {} : { target: p.target, meets_target: s.median >= p.target };
  const yard = yardstick === undefined ? {} : { yardstick_iter_per_s: yardstick, yardstick_iters_per_unit: (ns * yardstick) / 1e9 };
  return { ...common, ...rate, ...tail, ...target, ...yard };
}

/** The median rate of a row, whatever its unit. */
export function rowRate(r: ResultRow): number {
  return "exits_per_s" in r ? r.exits_per_s : r.instr_per_s;
}

/** A plain-text table (no colours), one line per row. */
export function formatTable(rows: readonly ResultRow[]): string {
  const head = ["path", "median /s", "ns/unit", "min /s", "max /s", "runs", "yard/unit", "target", ""];
  const body = rows.map((r) => {
    const rate = rowRate(r);
    const unit = r.unit === "exits" ? "exits" : "instr";
    return [
      r.path,
      `${formatRate(rate)} ${unit}`,
      nsPerUnit(rate).toFixed(1),
      formatRate(r.min),
      formatRate(r.max),
      String(r.runs),
      r.yardstick_iters_per_unit === undefined ? "-" : r.yardstick_iters_per_unit.toFixed(1),
      r.target === undefined ? "-" : `${formatRate(r.target)}`,
      r.meets_target === undefined ? "" : r.meets_target ? "ok" : `${((rate / r.target!) * 100).toFixed(1)}% of target`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
