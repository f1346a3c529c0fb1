/**
 * Paired measurement of a kvmsim path and its peer rows (bench/main.ts).
 *
 * On a 2-core machine shared with other work, the machine's state (load,
 * clock, cache) drifts over seconds; measuring every kvmsim path first and
 * the peers afterwards let kvmsim/peer ratios move by ±30 % between runs.
 * So a kvmsim path with peer rows is measured together with them: every
 * peer's engine is started and warmed up first, then the samples are
 * bracketed — one kvmsim sample, then per round each peer's window followed
 * by a kvmsim sample (peers in order on even rounds, reversed on odd ones):
 *
 *     K  P1 K  P2 K | P2 K  P1 K | P1 K …
 *
 * Every peer window sits between two kvmsim samples taken right before and
 * right after it; its ratio for the round is mean(before, after) / peer, so
 * a linear drift across the three cancels. A peer row keeps, besides its own
 * samples, those bracketing means and the per-round ratios; the ratio the
 * tables show is the median of the per-round ratios. The kvmsim row's
 * samples are all its samples (peers × runs + 1).
 *
 * Only one engine works at a time: a {@link PeerSampler} does no work
 * between its windows (see bench/peers/peer.ts).
 *
 * @module
 */
import { type Pairing, peerRow, type ResultRow } from "../report.ts";
import { median, summarize } from "../stats.ts";
import type { BenchPath } from "../paths.ts";
import type { Peer, PeerLoop, PeerOutcome, PeerSampler, PeerSettings } from "./peer.ts";

/** The pairing order, as written into every paired row and the results' settings. */
export const PAIRING_ORDER =
  "bracketed: kvmsim sample, then per round each peer's window followed by a kvmsim sample (peers in order on even rounds, reversed on odd); ratio = mean(kvmsim before, after) / peer";

/** The kvmsim side of a pairing: its path id, untimed warm-up and one timed sample (units/s). */
export interface KvmsimSide {
  readonly path: string;
  warmup(): void;
  sample(): number;
}

/** What a paired measurement produced. */
export interface PairedResult {
  /** Every kvmsim sample, in time order (peers × runs + 1). */
  readonly kvmsim: readonly number[];
  /** One row per peer loop, with its {@link Pairing}. */
  readonly peers: readonly ResultRow[];
}

/**
 * The pairing record of one peer row: `kvmsim[r]` is the kvmsim rate that
 * brackets the peer's window of round r (the mean of the samples just before
 * and just after it), `peer[r]` that window's rate.
 */
export function pairingOf(kvmsimPath: string, kvmsim: readonly number[], peer: readonly number[]): Pairing {
  if (kvmsim.length !== peer.length || kvmsim.length === 0) {
    throw new RangeError(
      `pairing ${kvmsimPath}: ${kvmsim.length} kvmsim and ${peer.length} peer samples: expected the same number, > 0`,
    );
  }
  const ratios = kvmsim.map((k, i) => k / peer[i]!);
  return {
    method: "bracketed",
    kvmsim_path: kvmsimPath,
    rounds: ratios.length,
    order: PAIRING_ORDER,
    kvmsim_samples: [...kvmsim],
    ratios,
    ratio_median: median(ratios),
    ratio_min: Math.min(...ratios),
    ratio_max: Math.max(...ratios),
  };
}

/** The peers' order in round `r` (indices into the loops): in order on even rounds, reversed on odd ones. */
export function roundOrder(r: number, peers: number): number[] {
  const ids = Array.from({ length: peers }, (_, i) => i);
  return r % 2 === 0 ? ids : ids.reverse();
}

/**
 * Measure `kvmsim` and `loops` (all compared with `kvmsim.path`) in
 * `settings.runs` bracketed rounds. Every engine is closed at the end,
 * also when a check fails (the error propagates).
 */
export async function measurePaired(
  kvmsim: KvmsimSide,
  loops: readonly PeerLoop[],
  settings: PeerSettings,
  progress: (text: string) => void = () => {},
): Promise<PairedResult> {
  if (loops.length === 0) throw new RangeError(`pairing ${kvmsim.path}: no peer loop to pair with`);
  for (const l of loops) {
    if (l.spec.compared_to !== kvmsim.path) {
      throw new RangeError(
        `pairing: peer row ${l.spec.engine} ${l.spec.path} is compared with ${l.spec.compared_to}, not ${kvmsim.path}`,
      );
    }
  }
  const samplers: PeerSampler[] = [];
  try {
    for (const l of loops) {
      progress(`${kvmsim.path}: starting ${l.spec.engine} ${l.spec.path}`);
      samplers.push(await l.open(settings));
    }
    kvmsim.warmup();
    const ours: number[] = [kvmsim.sample()];
    const theirs: number[][] = loops.map(() => []);
    const brackets: number[][] = loops.map(() => []);
    for (let r = 0; r < settings.runs; r++) {
      for (const i of roundOrder(r, loops.length)) {
        progress(`${kvmsim.path}: round ${r + 1}/${settings.runs}, ${loops[i]!.spec.engine}`);
        theirs[i]!.push(await samplers[i]!.sample());
        const before = ours[ours.length - 1]!, after = kvmsim.sample();
        ours.push(after);
        brackets[i]!.push((before + after) / 2);
      }
    }
    const peers = loops.map((l, i) => ({
      ...peerRow(l.spec, summarize(theirs[i]!)),
      pairing: pairingOf(kvmsim.path, brackets[i]!, theirs[i]!),
    }));
    return { kvmsim: ours, peers };
  } finally {
    for (const s of samplers) await s.close();
  }
}

/**
 * A peer on its own, without kvmsim (tests, quick checks): every loop for
 * `paths` opened, sampled `runs` times and closed; its rows carry no pairing.
 */
export async function runPeerAlone(
  peer: Peer,
  settings: PeerSettings & { readonly paths: readonly BenchPath[] },
): Promise<PeerOutcome> {
  const why = await peer.unavailable();
  if (why !== undefined) return { kind: "skipped", reason: why };
  const plan = peer.plan(settings.paths);
  for (const n of plan.notes) settings.log?.(`  ${peer.name}: ${n}`);
  const rows: ResultRow[] = [];
  for (const loop of plan.loops) {
    const s = await loop.open(settings);
    try {
      const rates: number[] = [];
      for (let i = 0; i < settings.runs; i++) rates.push(await s.sample());
      rows.push(peerRow(loop.spec, summarize(rates)));
    } finally {
      await s.close();
    }
  }
  return { kind: "rows", rows };
}
