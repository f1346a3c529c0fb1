/**
 * Command-line options of `deno task bench`.
 *
 * ```
 * deno task bench [--filter REGEX] [--duration SECONDS] [--runs N] [--warmup N] [--json] [--out FILE] [--no-write]
 * ```
 *
 * @module
 */

export interface BenchOptions {
  /** Only paths whose id matches. */
  readonly filter: RegExp | undefined;
  /** Seconds per run (each run lasts at least this long). */
  readonly duration: number;
  /** Measured runs per path. */
  readonly runs: number;
  /** Warm-up runs per path (not reported). */
  readonly warmup: number;
  /** Print the results object as JSON on stdout (the table goes to stderr). */
  readonly json: boolean;
  /** Where to write the results (undefined: do not write). */
  readonly out: string | undefined;
  /** An alternative core to load instead of build/kvmsim.wasm (e.g. a build with a name section, for profiles). */
  readonly wasm: string | undefined;
}

export const DEFAULT_RESULTS = "bench/results/latest.json";

export const USAGE = `usage: deno task bench [options]
  --filter REGEX      only paths whose id matches (ids: raw/dec-jnz, io-out/runUntil, …)
  --duration SECONDS  length of each run (default 0.3)
  --runs N            measured runs per path (default 7)
  --warmup N          warm-up runs per path (default 1)
  --json              print the results JSON on stdout (table on stderr)
  --out FILE          results file (default ${DEFAULT_RESULTS})
  --no-write          do not write a results file
  --wasm FILE         load this core instead of build/kvmsim.wasm (e.g. an asc --debug build for profiling)
  --help              this text`;

/** Bad command line. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parse `args`; returns "help" for --help. Throws {@link UsageError} naming the bad value. */
export function parseOptions(args: readonly string[]): BenchOptions | "help" {
  let filter: RegExp | undefined;
  let duration = 0.3, runs = 7, warmup = 1, json = false;
  let out: string | undefined = DEFAULT_RESULTS;
  let wasm: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith("--") && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${name}: expected a value`);
      return v;
    };
    const number = (min: number, integer: boolean): number => {
      const raw = value();
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
        throw new UsageError(
          `${name} ${JSON.stringify(raw)}: expected ${integer ? "an integer" : "a number"} >= ${min}`,
        );
      }
      return n;
    };
    switch (name) {
      case "--filter": {
        const src = value();
        try {
          filter = new RegExp(src);
        } catch (e) {
          throw new UsageError(
            `--filter ${JSON.stringify(src)}: not a valid regular expression (${(e as Error).message})`,
          );
        }
        break;
      }
      case "--duration":
        duration = number(0.001, false);
        break;
      case "--runs":
        runs = number(1, true);
        break;
      case "--warmup":
        warmup = number(0, true);
        break;
      case "--json":
        json = true;
        break;
      case "--out":
        out = value();
        break;
      case "--no-write":
        out = undefined;
        break;
      case "--wasm":
        wasm = value();
        break;
      case "--help":
      case "-h":
        return "help";
      default:
        throw new UsageError(
          `unknown option ${
            JSON.stringify(a)
          }: expected one of --filter, --duration, --runs, --warmup, --json, --out, --no-write, --wasm, --help`,
        );
    }
  }
  return { filter, duration, runs, warmup, json, out, wasm };
}
