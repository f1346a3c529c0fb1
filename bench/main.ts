/**
 * `deno task bench`: kvmsim exit-throughput and raw-speed benchmark.
 *
 * For every selected path (bench/paths.ts): `--warmup` untimed runs, then
 * `--runs` timed runs of at least `--duration` seconds each, every run
 * checked (bench/run_path.ts). A path with peer rows (bench/peers/) is
 * measured together with them instead: every peer window bracketed by a
 * kvmsim sample just before and just after it (bench/peers/pairing.ts), so
 * the kvmsim/peer ratios share the machine's state. Prints a table, writes
 * bench/results/latest.json.
 * The cost-of-growth measurements (ids `growth/…`, bench/growth.ts) run after
 * the paths when the filter selects them.
 *
 * @module
 */
import { renderChart } from "./chart.ts";
import { machineInfo, wasmLoopRate } from "./machine.ts";
import { parseOptions, USAGE, UsageError } from "./options.ts";
import { checkPaths, PATHS, selectPaths } from "./paths.ts";
import {
  formatPeerTable,
  formatTable,
  type ResultRow,
  resultRow,
  type Results,
  rowRate,
  type SkippedPeer,
} from "./report.ts";
import { firstStepOf, measure, preparePath } from "./run_path.ts";
import { formatRate, ratePerSecond, summarize } from "./stats.ts";
import { kvmPeer } from "./peers/kvm.ts";
import { type Peer, type PeerLoop, type PeerName, PEERS_USAGE, splitPeersOption } from "./peers/peer.ts";
import { measurePaired, PAIRING_ORDER } from "./peers/pairing.ts";
import { v86Peer } from "./peers/v86.ts";
import { qemuPeer } from "./peers/qemu.ts";
import { bochsPeer } from "./peers/bochs.ts";
import {
  formatScalingTable,
  runScaling,
  SCALING_USAGE,
  type ScalingOptions,
  type ScalingRow,
  scalingSelected,
  splitScalingOptions,
} from "./scaling.ts";
import { formatGrowth, GROWTH_ITEMS, type GrowthResults, runGrowth, selectGrowth } from "./growth.ts";

const PEERS: Record<PeerName, Peer> = { kvm: kvmPeer, v86: v86Peer, qemu: qemuPeer, bochs: bochsPeer };

export async function main(args: string[]): Promise<number> {
  let opts;
  let peerNames: PeerName[];
  let scaling: ScalingOptions;
  const usage = `${USAGE}\n${PEERS_USAGE}\n${SCALING_USAGE}`;
  try {
    const split = splitPeersOption(args);
    peerNames = split.peers;
    const sc = splitScalingOptions(split.rest);
    scaling = sc.scaling;
    opts = parseOptions(sc.rest);
  } catch (e) {
    if (!(e instanceof UsageError) && !(e instanceof RangeError)) throw e;
    console.error(`bench: ${e.message}\n${usage}`);
    return 2;
  }
  if (opts === "help") {
    console.log(usage);
    return 0;
  }
  const problems = checkPaths(PATHS);
  if (problems.length) {
    console.error(`bench: the path table is invalid:\n  ${problems.join("\n  ")}`);
    return 1;
  }
  const paths = selectPaths(PATHS, opts.filter);
  const withScaling = scalingSelected(opts.filter, scaling.maxVcpus);
  const growthItems = selectGrowth(opts.filter);
  if (paths.length === 0 && !withScaling && growthItems.length === 0) {
    console.error(
      `bench: --filter ${opts.filter} matches no path (paths: ${PATHS.map((p) => p.path).join(", ")}; growth: ${
        GROWTH_ITEMS.map((i) => i.id).join(", ")
      })`,
    );
    return 2;
  }
  const log = opts.json ? console.error : console.log;
  const machine = machineInfo();
  log(`kvmsim bench: ${machine.cpu}, ${machine.cores} cores, deno ${machine.deno}, v8 ${machine.v8}, ${machine.os}`);
  log(
    `load average ${machine.loadavg_1m ?? "unknown"}; wasm count-down loop ${
      formatRate(machine.wasm_loop_iter_per_s)
    } iter/s (machine yardstick)`,
  );
  log(`${opts.warmup} warm-up + ${opts.runs} runs of >= ${opts.duration} s per path`);
  log(
    `yard/unit = cost of one unit in iterations of that loop, measured just before each path (normalises CPU speed, not bursts of contention)\n`,
  );
  let module: WebAssembly.Module | undefined;
  if (opts.wasm !== undefined) {
    module = new WebAssembly.Module(Deno.readFileSync(opts.wasm) as Uint8Array<ArrayBuffer>);
    log(`core: ${opts.wasm}`);
  }
  const ms = opts.duration * 1000;
  const peerSettings = { durationMs: ms, runs: opts.runs, warmup: opts.warmup, log };
  const skipped: SkippedPeer[] = [];
  const peerLoops: PeerLoop[] = [];
  for (const name of peerNames) {
    const why = await PEERS[name].unavailable();
    if (why !== undefined) {
      log(`peer ${name}: skipped: ${why}`);
      skipped.push({ engine: name, reason: why });
      continue;
    }
    const plan = PEERS[name].plan(paths);
    log(`peer ${name}: ${plan.loops.map((l) => l.spec.path).join(", ") || "no row for the selected paths"}`);
    for (const n of plan.notes) log(`  ${name}: ${n}`);
    peerLoops.push(...plan.loops);
  }
  if (peerLoops.length) log(`peer rows are paired with their kvmsim path, ${PAIRING_ORDER}\n`);
  const rows: ResultRow[] = [];
  for (const p of paths) {
    const yardstick = wasmLoopRate();
    const prep = preparePath(p, module);
    const first = firstStepOf(p);
    const sample = () => {
      const s = measure(prep, ms, first);
      return ratePerSecond(s.units, s.ms);
    };
    const partners = peerLoops.filter((l) => l.spec.compared_to === p.path);
    if (partners.length === 0) {
      for (let i = 0; i < opts.warmup; i++) sample();
      const rates: number[] = [];
      for (let i = 0; i < opts.runs; i++) {
        progress(`${p.path}: run ${i + 1}/${opts.runs}`);
        rates.push(sample());
      }
      progress("");
      const row = resultRow(p, summarize(rates), yardstick);
      rows.push(row);
      log(`  ${p.path}: ${formatRate(row.min)} … ${formatRate(row.max)} ${p.unit}/s over ${row.runs} runs`);
      continue;
    }
    const kvmsim = {
      path: p.path,
      warmup: () => {
        for (let i = 0; i < opts.warmup; i++) sample();
      },
      sample,
    };
    const paired = await measurePaired(kvmsim, partners, peerSettings, progress);
    progress("");
    const row = {
      ...resultRow(p, summarize(paired.kvmsim), yardstick),
      paired_with: partners.map((l) => `${l.spec.engine} ${l.spec.path}`),
    };
    rows.push(row, ...paired.peers);
    log(
      `  ${p.path}: ${formatRate(row.min)} … ${
        formatRate(row.max)
      } ${p.unit}/s over ${row.runs} samples around ${opts.runs} windows of each peer`,
    );
    for (const r of paired.peers) {
      log(
        `    ${r.engine} ${r.path}: ${formatRate(rowRate(r))} ${r.unit}/s; kvmsim/${r.engine} per round ${
          r.pairing?.ratios.map((x) => x.toFixed(2)).join(", ")
        }`,
      );
    }
  }
  let scalingRows: ScalingRow[] = [];
  if (withScaling) {
    log(`scaling: 1..${scaling.maxVcpus} vCPUs, one Worker each, rounds interleaved`);
    scalingRows = await runScaling({
      ...scaling,
      durationMs: ms,
      runs: opts.runs,
      warmup: opts.warmup,
      module,
      log,
      progress,
    });
    rows.push(...scalingRows);
  }
  let growth: GrowthResults | undefined;
  if (growthItems.length) {
    log(`cost of growth (bench/growth.ts): ${growthItems.map((i) => i.id).join(", ")}`);
    const g = await runGrowth(growthItems, {
      durationMs: ms,
      runs: opts.runs,
      warmup: opts.warmup,
      yardstick: wasmLoopRate(),
      log,
      progress,
      ...(module ? { module } : {}),
      ...(opts.wasm !== undefined ? { wasm: opts.wasm } : {}),
    });
    rows.push(...g.rows);
    growth = g.growth;
  }
  const results: Results = {
    machine,
    date: new Date().toISOString(),
    settings: {
      duration_s: opts.duration,
      runs: opts.runs,
      warmup: opts.warmup,
      filter: opts.filter?.source ?? null,
      wasm: opts.wasm ?? null,
      peers: peerNames,
      pairing: `bench/peers/pairing.ts: ${PAIRING_ORDER}`,
    },
    rows,
    skipped_peers: skipped,
    ...(growth ? { growth } : {}),
  };
  log(`\n${formatTable(rows)}`);
  if (growth) log(`\n${formatGrowth(growth)}`);
  if (scalingRows.length) log(`\nscaling (aggregate of n vCPUs vs one, same run)\n${formatScalingTable(scalingRows)}`);
  if (peerNames.length) {
    log(
      `\nkvmsim vs peers, paired rounds (kvmsim/peer > 1: kvmsim faster; median of per-round ratios, range under "paired")\n${
        formatPeerTable(rows, skipped)
      }`,
    );
  }
  const text = JSON.stringify(results, null, 2) + "\n";
  if (opts.out !== undefined) {
    const files = resultFiles(opts.out, results.date, hostname());
    if (files.dir !== undefined) Deno.mkdirSync(files.dir, { recursive: true });
    Deno.writeTextFileSync(opts.out, text);
    Deno.writeTextFileSync(files.dated, text);
    Deno.writeTextFileSync(files.svg, renderChart(rows));
    log(`\nwrote ${opts.out}, ${files.dated}, ${files.svg}`);
  }
  if (opts.json) console.log(text.trimEnd());
  return 0;
}

/** A one-line progress note on stderr, only when stderr is a terminal ("" clears it). */
function progress(text: string): void {
  if (!Deno.stderr.isTerminal()) return;
  Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${text}`));
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
}

/**
 * The files written beside `out` (latest.json): `<YYYY-MM-DD>-<hostname>.json`
 * (UTC date of the run) and the chart, `out` with .svg for .json.
 */
export function resultFiles(
  out: string,
  isoDate: string,
  host: string,
): { dir: string | undefined; dated: string; svg: string } {
  const slash = out.lastIndexOf("/");
  const dir = slash >= 0 ? out.slice(0, slash) : undefined;
  const safeHost = host.replace(/[^A-Za-z0-9.-]/g, "_") || "unknown-host";
  const day = isoDate.slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new RangeError(`results date ${isoDate}: expected an ISO date`);
  const dated = `${dir === undefined ? "" : `${dir}/`}${day}-${safeHost}.json`;
  const svg = out.endsWith(".json") ? `${out.slice(0, -5)}.svg` : `${out}.svg`;
  return { dir: dir === "" ? undefined : dir, dated, svg };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
