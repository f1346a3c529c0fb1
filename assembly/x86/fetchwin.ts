// The instruction-fetch window: a host pointer and IP range for the current code
// page, so fetch8/16/32/64 read guest code without a TLB lookup. Empty (lo > hi)
// whenever a TLB flush, a CS load or a mode/CPL change may have invalidated it.
export let fwLo: u64 = 1;
export let fwHi: u64 = 0;
/** host = fwDelta + ip (wrapping arithmetic). */
export let fwDelta: u64 = 0;

export function invalidateFetch(): void { fwLo = 1; fwHi = 0; }
export function setFetchWindow(lo: u64, hi: u64, delta: u64): void { fwLo = lo; fwHi = hi; fwDelta = delta; }
