/**
 * Statistics for the benchmark: median, min and max of repeated runs, and
 * the conversion of one run (units done in a wall time) into a rate.
 *
 * @module
 */

/** Median, extremes and sample count of a set of rates (per second). */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
  /** The samples in run order. */
  readonly samples: readonly number[];
}

function checkSamples(what: string, xs: readonly number[]): void {
  if (xs.length === 0) throw new RangeError(`${what}: expected at least one sample, got none`);
  for (const [i, x] of xs.entries()) {
    if (!Number.isFinite(x)) throw new RangeError(`${what}: sample ${i} is ${x}: expected a finite number`);
  }
}

/** The median (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  checkSamples("median", xs);
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >>> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median, min and max of `xs`. */
export function summarize(xs: readonly number[]): Summary {
  checkSamples("summarize", xs);
  let min = Infinity, max = -Infinity;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { median: median(xs), min, max, runs: xs.length, samples: [...xs] };
}

/** Units per second for `units` done in `ms` milliseconds. */
export function ratePerSecond(units: number, ms: number): number {
  if (!Number.isFinite(units) || units < 0) {
    throw new RangeError(`ratePerSecond: units ${units}: expected a finite count >= 0`);
  }
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(`ratePerSecond: ${ms} ms: expected a positive finite duration`);
  }
  return (units * 1000) / ms;
}

/** Nanoseconds per unit at `perSecond` units per second. */
export function nsPerUnit(perSecond: number): number {
  if (!Number.isFinite(perSecond) || perSecond <= 0) {
    throw new RangeError(`nsPerUnit: rate ${perSecond}: expected a positive finite rate`);
  }
  return 1e9 / perSecond;
}

/** Spread of a summary relative to its median ((max - min) / median). */
export function relativeSpread(s: Summary): number {
  return s.median === 0 ? 0 : (s.max - s.min) / s.median;
}

/** A rate in engineering form: "212.4 M", "40.1 k", "950". */
export function formatRate(perSecond: number): string {
  const a = Math.abs(perSecond);
  if (a >= 1e9) return `${(perSecond / 1e9).toFixed(2)} G`;
  if (a >= 1e6) return `${(perSecond / 1e6).toFixed(1)} M`;
  if (a >= 1e3) return `${(perSecond / 1e3).toFixed(1)} k`;
  return perSecond.toFixed(0);
}
