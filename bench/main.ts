/**
 * `deno task bench`: kvmsim exit-throughput and raw-speed benchmark.
 *
 * For every selected path (bench/paths.ts): `--warmup` untimed runs, then
 * `--runs` timed runs of at least `--duration` seconds each, every run
 * checked (bench/run_path.ts). Prints a table, writes bench/results/latest.json.
 *
 * @module
 */
import { machineInfo, wasmLoopRate } from "./machine.ts";
import { parseOptions, USAGE, UsageError } from "./options.ts";
import { checkPaths, PATHS, selectPaths } from "./paths.ts";
import { formatPeerTable, formatTable, type ResultRow, resultRow, type Results, type SkippedPeer } from "./report.ts";
import { firstStepOf, measure, preparePath } from "./run_path.ts";
import { formatRate, ratePerSecond, summarize } from "./stats.ts";
import { kvmPeer } from "./peers/kvm.ts";
import { type Peer, type PeerName, PEERS_USAGE, splitPeersOption } from "./peers/peer.ts";
import { v86Peer } from "./peers/v86.ts";

const PEERS: Record<PeerName, Peer> = { kvm: kvmPeer, v86: v86Peer };

async function main(args: string[]): Promise<number> {
  let opts;
  let peerNames: PeerName[];
  const usage = `${USAGE}\n${PEERS_USAGE}`;
  try {
    const split = splitPeersOption(args);
    peerNames = split.peers;
    opts = parseOptions(split.rest);
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
  if (paths.length === 0) {
    console.error(`bench: --filter ${opts.filter} matches no path (paths: ${PATHS.map((p) => p.path).join(", ")})`);
    return 2;
  }
  const log = opts.json ? console.error : console.log;
  const machine = machineInfo();
  log(`kvmsim bench: ${machine.cpu}, ${machine.cores} cores, deno ${machine.deno}, v8 ${machine.v8}, ${machine.os}`);
  log(`load average ${machine.loadavg_1m ?? "unknown"}; wasm count-down loop ${formatRate(machine.wasm_loop_iter_per_s)} iter/s (machine yardstick)`);
  log(`${opts.warmup} warm-up + ${opts.runs} runs of >= ${opts.duration} s per path`);
  log(`yard/unit = cost of one unit in iterations of that loop, measured just before each path (normalises CPU speed, not bursts of contention)\n`);
  let module: WebAssembly.Module | undefined;
  if (opts.wasm !== undefined) {
    module = new WebAssembly.Module(Deno.readFileSync(opts.wasm) as Uint8Array<ArrayBuffer>);
    log(`core: ${opts.wasm}`);
  }
  const rows: ResultRow[] = [];
  const ms = opts.duration * 1000;
  for (const p of paths) {
    const yardstick = wasmLoopRate();
    const prep = preparePath(p, module);
    const first = firstStepOf(p);
    for (let i = 0; i < opts.warmup; i++) measure(prep, ms, first);
    const rates: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const s = measure(prep, ms, first);
      rates.push(ratePerSecond(s.units, s.ms));
    }
    const row = resultRow(p, summarize(rates), yardstick);
    rows.push(row);
    log(`  ${p.path}: ${formatRate(row.min)} … ${formatRate(row.max)} ${p.unit}/s over ${row.runs} runs`);
  }
  const skipped: SkippedPeer[] = [];
  for (const name of peerNames) {
    log(`peer ${name}:`);
    const out = await PEERS[name].run({ durationMs: ms, runs: opts.runs, warmup: opts.warmup, paths, log });
    switch (out.kind) {
      case "rows":
        rows.push(...out.rows);
        break;
      case "skipped":
        log(`  skipped: ${out.reason}`);
        skipped.push({ engine: name, reason: out.reason });
        break;
      default: {
        const never: never = out;
        throw new Error(`peer ${name}: unknown outcome ${JSON.stringify(never)}`);
      }
    }
  }
  const results: Results = {
    machine,
    date: new Date().toISOString(),
    settings: { duration_s: opts.duration, runs: opts.runs, warmup: opts.warmup, filter: opts.filter?.source ?? null, wasm: opts.wasm ?? null, peers: peerNames },
    rows,
    skipped_peers: skipped,
  };
  log(`\n${formatTable(rows)}`);
  if (peerNames.length) log(`\nkvmsim vs peers, same run (kvmsim/peer > 1: kvmsim faster)\n${formatPeerTable(rows, skipped)}`);
  const text = JSON.stringify(results, null, 2) + "\n";
  if (opts.out !== undefined) {
    const dir = opts.out.replace(/\/[^/]*$/, "");
    if (dir !== opts.out) Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(opts.out, text);
    log(`\nwrote ${opts.out}`);
  }
  if (opts.json) console.log(text.trimEnd());
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
