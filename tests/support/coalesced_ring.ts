/**
 * A reference producer for coalesced-MMIO ring pages in tests: KVM's
 * coalesced_mmio_write (virt/kvm/coalesced_mmio.c) — refuse when `last` is out
 * of range or the ring is full (`(last + 1) % MAX === first`), else write entry
 * `last` and publish `last = (last + 1) % MAX` — plus raw setters for corrupt
 * pages. Offsets come from the layout tables.
 *
 * @module
 */
import { field, layOut } from "../../src/abi/layout.ts";
import { KVM_COALESCED_MMIO, KVM_COALESCED_MMIO_MAX, KVM_COALESCED_MMIO_RING } from "../../src/abi/coalesced.ts";

const RING = layOut(KVM_COALESCED_MMIO_RING);
const ENTRY = layOut(KVM_COALESCED_MMIO);
const FIRST = field(RING, "first").offset;
const LAST = field(RING, "last").offset;
const E_ADDR = field(ENTRY, "phys_addr").offset;
const E_LEN = field(ENTRY, "len").offset;
const E_PIO = field(ENTRY, "pio").offset;
const E_DATA = field(ENTRY, "data").offset;
export const MAX = KVM_COALESCED_MMIO_MAX;

/** One write as a test describes it. */
export interface RingWrite {
  pio: boolean;
  addr: number;
  /** Little-endian bytes, 1..8. */
  data: number[];
}

/** The byte offset of entry `i` in the page. */
export const entryOffset = (i: number): number => RING.size + i * ENTRY.size;

function i32(page: Uint8Array): Int32Array {
  return new Int32Array(page.buffer, page.byteOffset, 2);
}
const shared = (page: Uint8Array) => page.buffer instanceof SharedArrayBuffer;

/** Set `first` and `last` (raw: may be corrupt). */
export function setHead(page: Uint8Array, first: number, last: number): void {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  dv.setUint32(FIRST, first, true);
  dv.setUint32(LAST, last, true);
}

/** Read `first` and `last`. */
export function head(page: Uint8Array): { first: number; last: number } {
  if (shared(page)) {
    const h = i32(page);
    return { first: Atomics.load(h, FIRST / 4) >>> 0, last: Atomics.load(h, LAST / 4) >>> 0 };
  }
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  return { first: dv.getUint32(FIRST, true), last: dv.getUint32(LAST, true) };
}

/** Write entry `i` raw (`len` and `pio` may be given to corrupt it). */
export function putEntry(page: Uint8Array, i: number, w: RingWrite, raw: { len?: number; pio?: number } = {}): void {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const at = entryOffset(i);
  dv.setBigUint64(at + E_ADDR, BigInt(w.addr), true);
  dv.setUint32(at + E_LEN, raw.len ?? w.data.length, true);
  dv.setUint32(at + E_PIO, raw.pio ?? (w.pio ? 1 : 0), true);
  page.set(w.data, at + E_DATA);
}

/** Read entry `i` (len bytes of data). */
export function getEntry(page: Uint8Array, i: number): RingWrite {
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const at = entryOffset(i);
  const len = dv.getUint32(at + E_LEN, true);
  return {
    pio: dv.getUint32(at + E_PIO, true) === 1,
    addr: Number(dv.getBigUint64(at + E_ADDR, true)),
    data: [...page.subarray(at + E_DATA, at + E_DATA + len)],
  };
}

/** The pending entries from `first` to `last`, without consuming them. */
export function pendingEntries(page: Uint8Array): RingWrite[] {
  const out: RingWrite[] = [];
  const { first, last } = head(page);
  for (let i = first; i !== last; i = (i + 1) % MAX) out.push(getEntry(page, i));
  return out;
}

/** KVM's producer: append `w` unless the ring is full; publishes `last` with an atomic store on shared memory. */
export function produce(page: Uint8Array, w: RingWrite): boolean {
  const { first, last } = head(page);
  if (last >= MAX || (last + 1) % MAX === first) return false;
  putEntry(page, last, w);
  const next = (last + 1) % MAX;
  if (shared(page)) Atomics.store(i32(page), LAST / 4, next);
  else new DataView(page.buffer, page.byteOffset).setUint32(LAST, next, true);
  return true;
}
