/**
 * What the vCPU threads did while they were all on a CPU at the same time.
 *
 * On a shared machine the scheduler decides how much CPU the benchmark gets,
 * so the wall-clock speedup of n vCPUs measures the load as much as kvmsim.
 * Each Worker therefore records when every chunk of exits ended (a common
 * clock: `performance.timeOrigin + performance.now()`). A chunk is *clean*
 * when it took no longer than {@link CLEAN_FACTOR} × the worker's fast
 * chunks (the thread was not preempted inside it). A clean chunk of one
 * thread during which every other thread was inside a run of clean chunks
 * ran *simultaneously* with all of them; its rate compared with a single
 * vCPU's clean-chunk rate is the parallel efficiency on free cores
 * ({@link MIN_SIMULTANEOUS_CHUNKS} such chunks at least, pooled over rounds).
 *
 * @module
 */

/** Fewer simultaneous chunks than this (over all rounds) give no efficiency. */
export const MIN_SIMULTANEOUS_CHUNKS = 200;

/** A chunk is clean when it took at most this × the worker's fast-chunk duration (its 10th percentile). */
export const CLEAN_FACTOR = 1.5;

/** One thread's chunk end times in ms (`ends[0]` is the round's start), each chunk `exitsPerChunk` exits. */
export interface Timeline {
  readonly ends: Float64Array | readonly number[];
}

/** Merged intervals [start, end] of a thread's consecutive clean chunks, and its clean chunks. */
interface Clean {
  readonly runs: [number, number][];
  readonly chunks: { start: number; end: number }[];
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

function cleanOf(t: Timeline): Clean {
  const e = t.ends;
  const durs: number[] = [];
  for (let k = 1; k < e.length; k++) durs.push(e[k]! - e[k - 1]!);
  if (durs.length === 0) return { runs: [], chunks: [] };
  const limit = CLEAN_FACTOR * quantile(durs, 0.1);
  const runs: [number, number][] = [];
  const chunks: { start: number; end: number }[] = [];
  for (let k = 1; k < e.length; k++) {
    const start = e[k - 1]!, end = e[k]!;
    if (end - start > limit) continue;
    chunks.push({ start, end });
    const last = runs.at(-1);
    if (last && last[1] === start) last[1] = end;
    else runs.push([start, end]);
  }
  return { runs, chunks };
}

/** Whether [start, end] lies inside one of `runs` (sorted, disjoint). */
function covered(runs: readonly [number, number][], start: number, end: number): boolean {
  let lo = 0, hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = runs[mid]!;
    if (r[1] < end) lo = mid + 1;
    else if (r[0] > start) hi = mid - 1;
    else return true;
  }
  return false;
}

/** A round seen through its timelines. */
export interface Overlap {
  /** Median exits/s of the clean chunks of all threads (preemption left out). */
  readonly cleanRate: number | null;
  /** Median exits/s of the clean chunks run while every other thread was in a clean run too. */
  readonly simultaneousRate: number | null;
  /** Share of the clean chunks (by time, summed over threads) that ran with all the others at once. */
  readonly simultaneousShare: number;
  /** The rates behind the medians (exits/s per chunk), to pool rounds. */
  readonly cleanRates: readonly number[];
  readonly simultaneousRates: readonly number[];
}

/** The median of `xs` (sorted in place), null when empty. */
export function medianOf(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = xs.sort((a, b) => a - b);
  const m = s.length >>> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Analyse one round: `timelines[i]` is thread i's, every chunk `exitsPerChunk` exits. */
export function overlapOf(timelines: readonly Timeline[], exitsPerChunk: number): Overlap {
  const clean = timelines.map(cleanOf);
  const all: number[] = [];
  const together: number[] = [];
  let cleanMs = 0, togetherMs = 0;
  clean.forEach((c, i) => {
    for (const { start, end } of c.chunks) {
      const rate = (exitsPerChunk * 1000) / (end - start);
      all.push(rate);
      cleanMs += end - start;
      if (timelines.length > 1 && clean.every((o, j) => j === i || covered(o.runs, start, end))) {
        together.push(rate);
        togetherMs += end - start;
      }
    }
  });
  return {
    cleanRate: medianOf(all),
    simultaneousRate: medianOf(together),
    simultaneousShare: cleanMs > 0 ? togetherMs / cleanMs : 0,
    cleanRates: all,
    simultaneousRates: together,
  };
}
