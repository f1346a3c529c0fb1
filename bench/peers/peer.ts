/**
 * The peer engines of `deno task bench`: other implementations of the same
 * guest loops, measured in the same run as kvmsim — each peer window
 * bracketed by samples of its kvmsim path (bench/peers/pairing.ts) — so
 * that the report can show kvmsim/peer ratios that share the machine's
 * state (load, clock).
 *
 * A peer either produces rows (bench/report.ts {@link ResultRow} shape) or is
 * skipped with the reason (no /dev/kvm, package missing, …).
 *
 * @module
 */
import type { BenchPath } from "../paths.ts";
import type { PeerRowSpec, ResultRow } from "../report.ts";

/** Every peer, in report order. */
export const PEER_NAMES = ["kvm", "v86", "qemu", "bochs"] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** How long and how often a peer measures (the same settings as the kvmsim paths). */
export interface PeerSettings {
  /** Minimum length of one timed run, ms. */
  readonly durationMs: number;
  readonly runs: number;
  readonly warmup: number;
  /** Progress lines (the bench's log). */
  readonly log?: (line: string) => void;
}

/**
 * One peer row's engine, started and warmed up: it takes one timed window
 * at a time, so that bench/peers/pairing.ts can interleave its windows with
 * the kvmsim path's samples. Between two calls the peer does no work (v86
 * is stopped, the process peers have no process, KVM is not entered).
 */
export interface PeerSampler {
  /** One timed window of at least `durationMs`: units/s, after checking the work (throws {@link PeerCheckError}). */
  sample(): Promise<number>;
  /** Release the engine (idempotent). */
  close(): Promise<void>;
}

/** One peer row: what it measures and how to start its engine. */
export interface PeerLoop {
  readonly spec: PeerRowSpec;
  /** Start the engine and run its untimed warm-up (`settings.warmup` windows or the engine's own). */
  open(settings: PeerSettings): Promise<PeerSampler>;
}

/** What a peer runs for the selected kvmsim paths. */
export interface PeerPlan {
  /** Its rows, each paired with the kvmsim path `spec.compared_to` (always among the selected paths). */
  readonly loops: readonly PeerLoop[];
  /** One line per selected path it does not run, with the reason. */
  readonly notes: readonly string[];
}

/** What a peer produced. */
export type PeerOutcome =
  | { readonly kind: "rows"; readonly rows: readonly ResultRow[] }
  | { readonly kind: "skipped"; readonly reason: string };

export interface Peer {
  readonly name: PeerName;
  /** Why the peer cannot run on this machine (package missing, no /dev/kvm …), or undefined. */
  unavailable(): Promise<string | undefined>;
  /** Its loops for the kvmsim paths selected (--filter) and the notes on those it does not run. */
  plan(paths: readonly BenchPath[]): PeerPlan;
}

/** Parse `--peers` ("all", "none" or a comma list of {@link PEER_NAMES}). Throws naming the bad entry. */
export function parsePeerList(raw: string): PeerName[] {
  const t = raw.trim();
  if (t === "all") return [...PEER_NAMES];
  if (t === "none" || t === "") return [];
  const out: PeerName[] = [];
  for (const part of t.split(",")) {
    const name = part.trim();
    const known = PEER_NAMES.find((n) => n === name);
    if (known === undefined) {
      throw new RangeError(`peer ${JSON.stringify(name)}: expected one of ${PEER_NAMES.join(", ")}, "all" or "none"`);
    }
    if (!out.includes(known)) out.push(known);
  }
  return out;
}

/** Usage line of --peers (bench/options.ts does not know the option; main.ts splits it off first). */
export const PEERS_USAGE =
  `  --peers LIST        peer engines measured in the same run: all (default), none, or a comma list of ${
    PEER_NAMES.join(", ")
  }
                      (each peer window is bracketed by two samples of its kvmsim path: bench/peers/pairing.ts)`;

/**
 * Take `--peers LIST` / `--peers=LIST` out of `args`: the remaining args
 * and the peers asked for (all when absent). Throws naming a bad value.
 */
export function splitPeersOption(args: readonly string[]): { rest: string[]; peers: PeerName[] } {
  const rest: string[] = [];
  let peers: PeerName[] = [...PEER_NAMES];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--peers") {
      const v = args[++i];
      if (v === undefined) throw new RangeError("--peers: expected a value (all, none or a comma list)");
      peers = parsePeerList(v);
    } else if (a.startsWith("--peers=")) {
      peers = parsePeerList(a.slice("--peers=".length));
    } else {
      rest.push(a);
    }
  }
  return { rest, peers };
}

/** A peer adapter's check of the work failed (wrong byte, missed exit, …). */
export class PeerCheckError extends Error {
  constructor(readonly engine: PeerName, readonly path: string, detail: string) {
    super(`${engine} ${path}: ${detail}`);
    this.name = "PeerCheckError";
  }
}
