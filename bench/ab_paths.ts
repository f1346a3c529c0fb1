/**
 * Interleaved A/B of two core builds on the benchmark's own paths (not a test):
 *
 * ```
 * deno run -A bench/ab_paths.ts [--rounds N] [--ms MS] [--cpu] A.wasm B.wasm PATH...
 * ```
 *
 * Each PATH (an id from bench/paths.ts, e.g. `io-out/switch`,
 * `cpuid-inkernel/budget`) is set up once per build (bench/run_path.ts
 * preparePath, whose step() checks the work after every call); then the two
 * are timed in alternation, A first on even rounds and B first on odd ones,
 * after one untimed round, and the medians are printed. `--cpu` times with the
 * process's CPU time instead of the wall clock (steadier on a shared machine: time
 * spent descheduled is not counted). tests/perf_ab.ts does the same for a fixed set
 * of its own loops.
 *
 * @module
 */
import process from "node:process";
import { preparePath } from "./run_path.ts";
import { PATHS } from "./paths.ts";

const USAGE = "usage: deno run -A bench/ab_paths.ts [--rounds N] [--ms MS] [--cpu] A.wasm B.wasm PATH...";

function parse(
  args: string[],
): { rounds: number; ms: number; cpu: boolean; files: [string, string]; paths: string[] } {
  let rounds = 9, ms = 250, cpu = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--cpu") cpu = true;
    else if (a === "--rounds" || a === "--ms") {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${a} ${args[i]}: expected a positive integer\n${USAGE}`);
      if (a === "--rounds") rounds = v;
      else ms = v;
    } else rest.push(a);
  }
  const [a, b, ...paths] = rest;
  if (a === undefined || b === undefined || paths.length === 0) throw new RangeError(USAGE);
  for (const p of paths) {
    if (!PATHS.some((x) => x.path === p)) {
      throw new RangeError(`path ${JSON.stringify(p)}: expected one of ${PATHS.map((x) => x.path).join(", ")}`);
    }
  }
  return { rounds, ms, cpu, files: [a, b], paths };
}

const median = (v: number[]) => v.slice().sort((x, y) => x - y)[v.length >> 1]!;

/** Milliseconds of the process's CPU time (user + system). */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

if (import.meta.main) {
  let opts;
  try {
    opts = parse(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const modules = opts.files.map((f) => new WebAssembly.Module(Deno.readFileSync(f) as Uint8Array<ArrayBuffer>));
  const clock = opts.cpu ? cpuMs : () => performance.now();
  console.log(
    `A=${opts.files[0]}  B=${opts.files[1]}; ${opts.rounds} rounds × ${opts.ms} ms${
      opts.cpu ? " (CPU time)" : ""
    }, alternating`,
  );
  for (const id of opts.paths) {
    const path = PATHS.find((x) => x.path === id)!;
    const preps = modules.map((m) => preparePath(path, m));
    const chunk = path.unit === "instructions" ? 2_000_000 : 20_000;
    const rates: number[][] = [[], []];
    for (let r = 0; r <= opts.rounds; r++) {
      for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
        let units = 0;
        const t0 = clock();
        while (clock() - t0 < opts.ms) units += preps[k]!.step(chunk);
        if (r > 0) rates[k]!.push(units / ((clock() - t0) / 1000));
      }
    }
    const a = median(rates[0]!), b = median(rates[1]!);
    console.log(
      `${id.padEnd(24)} A ${(1e9 / a).toFixed(1)} ns  B ${(1e9 / b).toFixed(1)} ns per ${
        path.unit === "instructions" ? "instruction" : path.unit === "writes" ? "write" : "exit"
      }  (B/A speed ${(b / a).toFixed(2)}×)`,
    );
  }
}
