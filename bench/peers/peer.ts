/**
 * The peer engines of `deno task bench`: other implementations of the same
 * guest loops, measured in the same run as kvmsim so that the report can
 * show kvmsim/peer ratios that share the machine's state (load, clock).
 *
 * A peer either produces rows (bench/report.ts {@link ResultRow} shape) or is
 * skipped with the reason (no /dev/kvm, package missing, …).
 *
 * @module
 */
import type { BenchPath } from "../paths.ts";
import type { ResultRow } from "../report.ts";

/** Every peer, in report order. */
export const PEER_NAMES = ["kvm", "v86", "qemu", "bochs"] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** How long and how often a peer measures (the same settings as the kvmsim paths). */
export interface PeerSettings {
  /** Minimum length of one timed run, ms. */
  readonly durationMs: number;
  readonly runs: number;
  readonly warmup: number;
  /** The kvmsim paths selected (--filter): a peer measures only its counterparts of these. */
  readonly paths: readonly BenchPath[];
  /** Progress lines (the bench's log). */
  readonly log?: (line: string) => void;
}

/** What a peer produced. */
export type PeerOutcome =
  | { readonly kind: "rows"; readonly rows: readonly ResultRow[] }
  | { readonly kind: "skipped"; readonly reason: string };

export interface Peer {
  readonly name: PeerName;
  run(settings: PeerSettings): Promise<PeerOutcome>;
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
  }`;

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
