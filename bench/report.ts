/**
 * Result rows (latest.json) and the terminal table.
 *
 * @module
 */
import type { MachineInfo } from "./machine.ts";
import type { BenchPath } from "./paths.ts";
import type { GrowthResults } from "./growth.ts";
import { formatRate, nsPerUnit, type Summary } from "./stats.ts";

/** Who ran a row: the simulator, or a peer measured in the same bench run (bench/peers/). */
export type Engine = "kvmsim" | "kvm" | "v86" | "qemu" | "bochs";

/** How a row's loop was driven: a kvmsim loop (bench/paths.ts), or v86's port-write handler / sampled counter. */
export type RowLoop = BenchPath["loop"] | "port-handler" | "sampled";

/** One row of latest.json. Rates are per second; min/max are the extreme runs' rates. */
export type ResultRow =
  & {
    readonly path: string;
    readonly engine: Engine;
    readonly unit: BenchPath["unit"];
    readonly loop: RowLoop;
    readonly description: string;
    /** Peer rows: the kvmsim path this row is compared with in the ratio table. */
    readonly compared_to?: string;
    /** Peer rows: what differs from the kvmsim path (mode, loop, sampling). */
    readonly note?: string;
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
    /** String-IO paths: payload bytes per exit and the median bytes/s. */
    readonly bytes_per_unit?: number;
    readonly bytes_per_s?: number;
    /** Peer rows measured in rounds with their kvmsim path (bench/peers/pairing.ts): how, and the per-round ratios. */
    readonly pairing?: Pairing;
    /** kvmsim rows measured in rounds with peer rows: those rows, as `engine path`. */
    readonly paired_with?: readonly string[];
  }
  & RateFields;

/** A row's rate fields, named after its unit (bench/paths.ts {@link BenchPath} `unit`). */
export type RateFields =
  | { readonly exits_per_s: number; readonly ns_per_exit: number }
  | { readonly instr_per_s: number; readonly ns_per_instr: number }
  /** Coalesced paths: writes delivered to the TS device per second (most never exit). */
  | { readonly writes_per_s: number; readonly ns_per_write: number };

/** The rate fields of a row of `unit` with median rate `median` (units/s). */
export function rateFields(unit: BenchPath["unit"], median: number): RateFields {
  const ns = nsPerUnit(median);
  switch (unit) {
    case "exits":
      return { exits_per_s: median, ns_per_exit: ns };
    case "instructions":
      return { instr_per_s: median, ns_per_instr: ns };
    case "writes":
      return { writes_per_s: median, ns_per_write: ns };
    default: {
      const never: never = unit;
      throw new RangeError(`unknown unit ${String(never)}: expected exits, instructions or writes`);
    }
  }
}

/** The short unit word of the tables ("exits", "instr", "writes"). */
export function unitLabel(unit: BenchPath["unit"]): string {
  return unit === "instructions" ? "instr" : unit;
}

/**
 * How a peer row was paired with its kvmsim row (bench/peers/pairing.ts):
 * every peer window bracketed by a kvmsim sample just before and one just
 * after it, and kvmsim/peer per round.
 */
export interface Pairing {
  readonly method: "bracketed";
  readonly kvmsim_path: string;
  readonly rounds: number;
  /** The sampling order. */
  readonly order: string;
  /** Per round, the mean of the two kvmsim samples around the peer's window (ratios[i] = kvmsim_samples[i] / samples[i]). */
  readonly kvmsim_samples: readonly number[];
  readonly ratios: readonly number[];
  /** The ratio the tables show. */
  readonly ratio_median: number;
  readonly ratio_min: number;
  readonly ratio_max: number;
}

export interface Results {
  readonly machine: MachineInfo;
  readonly date: string;
  readonly settings: {
    readonly duration_s: number;
    readonly runs: number;
    readonly warmup: number;
    readonly filter: string | null;
    readonly wasm: string | null;
    readonly peers?: readonly string[];
    /** How peer rows were paired with the kvmsim rows (bench/peers/pairing.ts). */
    readonly pairing?: string;
  };
  readonly rows: readonly ResultRow[];
  /** Peers asked for that produced no rows, with the reason. */
  readonly skipped_peers?: readonly SkippedPeer[];
  /** Cost of growth (bench/growth.ts): create/teardown rates, footprints, the RAM sweep's flatness (its rows are in `rows`). */
  readonly growth?: GrowthResults;
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
  const rate = rateFields(p.unit, s.median);
  const tail = { min: s.min, max: s.max, runs: s.runs, samples: s.samples };
  const target = p.target === undefined ? {} : { target: p.target, meets_target: s.median >= p.target };
  const yard = yardstick === undefined
    ? {}
    : { yardstick_iter_per_s: yardstick, yardstick_iters_per_unit: (ns * yardstick) / 1e9 };
  const bytes = p.bytesPerUnit === undefined
    ? {}
    : { bytes_per_unit: p.bytesPerUnit, bytes_per_s: s.median * p.bytesPerUnit };
  return { ...common, ...rate, ...tail, ...target, ...yard, ...bytes };
}

/** What a peer adapter knows about one of its rows. */
export interface PeerRowSpec {
  readonly path: string;
  readonly engine: Exclude<Engine, "kvmsim">;
  readonly unit: BenchPath["unit"];
  readonly loop: RowLoop;
  readonly description: string;
  readonly compared_to: string;
  readonly note?: string;
}

/** A peer's row: same rate/min/max/runs fields as {@link resultRow}, no target or yardstick. */
export function peerRow(spec: PeerRowSpec, s: Summary): ResultRow {
  const rate = rateFields(spec.unit, s.median);
  const note = spec.note === undefined ? {} : { note: spec.note };
  return {
    path: spec.path,
    engine: spec.engine,
    unit: spec.unit,
    loop: spec.loop,
    description: spec.description,
    compared_to: spec.compared_to,
    ...note,
    ...rate,
    min: s.min,
    max: s.max,
    runs: s.runs,
    samples: s.samples,
  };
}

function ratio(x: number): string {
  return `${x.toFixed(x < 10 ? 2 : 1)}x`;
}

/** A peer that produced no rows, and why (printed and kept in latest.json). */
export interface SkippedPeer {
  readonly engine: Exclude<Engine, "kvmsim">;
  readonly reason: string;
}

/**
 * kvmsim against each peer row measured in the same run: the kvmsim row of
 * `compared_to`, the peer's median and kvmsim/peer (> 1: kvmsim is faster):
 * the median of the per-round ratios for a paired row, with their range,
 * else the ratio of the two medians. Skipped peers get a line with their reason.
 */
export function formatPeerTable(rows: readonly ResultRow[], skipped: readonly SkippedPeer[] = []): string {
  const head = ["peer path", "engine", "peer /s", "kvmsim path", "kvmsim /s", "kvmsim/peer", "paired", "note"];
  const body: string[][] = [];
  for (const c of peerComparisons(rows)) {
    const r = c.peer;
    const unit = unitLabel(r.unit);
    body.push([
      r.path,
      r.engine,
      `${formatRate(rowRate(r))} ${unit}`,
      r.compared_to ?? "-",
      c.ours === undefined ? "not run" : `${formatRate(rowRate(c.ours))} ${unit}`,
      c.ratio === undefined ? "-" : ratio(c.ratio),
      pairingText(r),
      r.note ?? "",
    ]);
  }
  for (const s of skipped) body.push(["-", s.engine, "skipped", "-", "-", "-", "-", s.reason]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i <= 1 || i === 3 || i >= cells.length - 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))
      .join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

/** How a peer row was paired, in a few words: "N rounds, a–b" (range of the per-round ratios), or "no" (separate). */
export function pairingText(r: ResultRow): string {
  const p = r.pairing;
  if (p === undefined) return "no";
  return `${p.rounds} rounds, ${ratio(p.ratio_min)}–${ratio(p.ratio_max)}`;
}

/** A peer row, the kvmsim row it is compared with, and kvmsim/peer. */
export interface PeerComparison {
  readonly peer: ResultRow;
  /** undefined: that kvmsim path was not run. */
  readonly ours: ResultRow | undefined;
  /** The paired median ratio, or the ratio of the medians for an unpaired row; undefined without `ours`. */
  readonly ratio: number | undefined;
}

/** Every peer row with the kvmsim row it is compared with. */
export function peerComparisons(rows: readonly ResultRow[]): PeerComparison[] {
  return rows.filter((r) => r.engine !== "kvmsim").map((peer) => {
    const ours = rows.find((k) => k.engine === "kvmsim" && k.path === peer.compared_to);
    const ratio = ours === undefined ? undefined : peer.pairing?.ratio_median ?? rowRate(ours) / rowRate(peer);
    return { peer, ours, ratio };
  });
}

/** The median rate of a row, whatever its unit. */
export function rowRate(r: ResultRow): number {
  return "exits_per_s" in r ? r.exits_per_s : "writes_per_s" in r ? r.writes_per_s : r.instr_per_s;
}

/** A plain-text table (no colours), one line per row. */
export function formatTable(rows: readonly ResultRow[]): string {
  const head = ["path", "median /s", "ns/unit", "min /s", "max /s", "runs", "yard/unit", "target", ""];
  const body = rows.map((r) => {
    const rate = rowRate(r);
    const unit = unitLabel(r.unit);
    return [
      r.engine === "kvmsim" ? r.path : `${r.path} (${r.engine})`,
      `${formatRate(rate)} ${unit}`,
      nsPerUnit(rate).toFixed(1),
      formatRate(r.min),
      formatRate(r.max),
      String(r.runs),
      r.yardstick_iters_per_unit === undefined ? "-" : r.yardstick_iters_per_unit.toFixed(1),
      r.target === undefined ? "-" : `${formatRate(r.target)}`,
      [
        r.meets_target === undefined
          ? ""
          : r.meets_target
          ? "ok"
          : `${((rate / r.target!) * 100).toFixed(1)}% of target`,
        r.bytes_per_s === undefined ? "" : `${formatRate(r.bytes_per_s)}B/s (${r.bytes_per_unit} B/exit)`,
      ].filter((x) => x !== "").join("; "),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
      .trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
