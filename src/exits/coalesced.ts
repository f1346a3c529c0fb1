/**
 * Coalesced MMIO/PIO (KVM_REGISTER_COALESCED_MMIO; Linux
 * virt/kvm/coalesced_mmio.c): the zone type and its checks, KVM's
 * "wholly inside" test, and the reader of the ring both backends share.
 *
 * The ring is one page: `struct kvm_coalesced_mmio_ring { u32 first, last; }`
 * then KVM_COALESCED_MMIO_MAX (170) `struct kvm_coalesced_mmio` entries. The
 * producer (KVM, or the simulator's core) writes entry `last`, then publishes
 * `last = (last + 1) % MAX`; it never fills the slot before `first`, so at
 * most 169 writes are pending. The consumer reads entries from `first` to
 * `last` and advances `first`.
 *
 * Several Workers may drain one ring (the simulator's ring is in shared
 * memory): each entry is read (copied) first and then claimed with
 * `Atomics.compareExchange` on `first`; a failed claim retries from the fresh
 * `first`. On a plain ArrayBuffer (the KVM backend's mmap view, which only
 * this thread drains) `first` is a plain store.
 *
 * @module
 */
import { field, layOut } from "../abi/layout.ts";
import {
  COALESCED_RING_BYTES,
  KVM_COALESCED_MMIO,
  KVM_COALESCED_MMIO_MAX,
  KVM_COALESCED_MMIO_RING,
} from "../abi/coalesced.ts";
import { InvalidArgumentError, KvmsimError } from "../errors.ts";
import type { ExitOutcome } from "./outcome.ts";

export { KVM_COALESCED_MMIO_MAX };

/** One zone (`struct kvm_coalesced_mmio_zone`): guest writes wholly inside `[addr, addr+size)` are coalesced. */
export interface CoalescedZone {
  /** First GPA (MMIO) or port (PIO). */
  addr: number;
  /** Bytes (0..2^32-1; KVM accepts 0, and such a zone coalesces nothing: see {@link zoneTakesWrite}). */
  size: number;
  /** PIO bus (KVM's `pio = 1`) instead of the MMIO bus. */
  pio: boolean;
}

/**
 * Receives one coalesced write: the bus, the port or GPA, the length (1..8)
 * and the bytes (little-endian). `data` is a reused buffer, valid only during
 * the call. Return nothing (or resume) to go on; any other outcome stops the
 * drain after this entry, which is consumed.
 */
export type CoalescedSink = (isPio: boolean, addr: number, len: number, data: Uint8Array) => ExitOutcome | void;

/** The ring's `first`/`last` or an entry is not something a producer could have written. */
export class CoalescedRingError extends KvmsimError {
  constructor(detail: string) {
    super("coalesced_ring", `coalesced MMIO ring: ${detail}`);
  }
}

/** More zones than the simulator's VM control block holds (KVM: ENOSPC, at its IO-bus limit). */
export class CoalescedZoneLimitError extends KvmsimError {
  constructor(readonly limit: number, readonly zone: CoalescedZone) {
    super(
      "coalesced_zone_limit",
      `coalesced ${zone.pio ? "PIO" : "MMIO"} zone 0x${zone.addr.toString(16)}+0x${zone.size.toString(16)}: ` +
        `all ${limit} zones are in use (ENOSPC): unregister one first`,
    );
  }
}

const hex = (v: number) => `0x${v.toString(16)}`;
const TWO_53 = 2 ** 53;

/**
 * Check a zone as KVM_REGISTER/UNREGISTER_COALESCED_MMIO take it and return a
 * plain copy. KVM itself checks only `pio` (0 or 1, else EINVAL); it accepts
 * `size` 0 (the zone then matches no write), sizes of 2^31 and more (see
 * {@link zoneTakesWrite}) and PIO zones above port 0xffff (registered on the
 * PIO bus; no port access reaches them) — all mirrored.
 * What is refused here is what a `struct kvm_coalesced_mmio_zone` cannot
 * carry: a negative, fractional or inexact `addr`, a `size` outside u32, an end
 * beyond 2^53, a non-boolean `pio`.
 */
export function checkCoalescedZone(zone: CoalescedZone, what = "coalesced zone"): CoalescedZone {
  if (typeof zone !== "object" || zone === null) {
    throw new InvalidArgumentError(what, `${String(zone)}: expected {addr, size, pio}`);
  }
  const { addr, size, pio } = zone;
  if (typeof pio !== "boolean") {
    throw new InvalidArgumentError(
      `${what} pio`,
      `${String(pio)}: expected a boolean (KVM's pio field is 0 for the MMIO bus or 1 for the PIO bus)`,
    );
  }
  if (typeof addr !== "number" || !Number.isSafeInteger(addr) || addr < 0) {
    throw new InvalidArgumentError(
      `${what} addr`,
      `${String(addr)}: expected a non-negative safe integer (a ${pio ? "port" : "guest physical address"})`,
    );
  }
  if (typeof size !== "number" || !Number.isInteger(size) || size < 0 || size > 0xffffffff) {
    throw new InvalidArgumentError(`${what} size`, `${String(size)}: expected an integer 0..0xffffffff (a u32)`);
  }
  if (addr > TWO_53 - size) {
    throw new InvalidArgumentError(
      what,
      `${hex(addr)} + ${hex(size)} ends beyond 2^53: expected addr + size <= 2^53 (exact as a number)`,
    );
  }
  return { addr, size, pio };
}

/**
 * KVM's coalesced_mmio_in_range: `[addr, addr+len)` lies wholly inside the
 * zone. `len` is a C `int` there, so a length of 2^31 or more (as an
 * unregister size) matches nothing.
 */
export function zoneContains(zone: CoalescedZone, addr: number, len: number): boolean {
  if ((len | 0) < 0) return false;
  return addr >= zone.addr && addr + len <= zone.addr + zone.size;
}

/**
 * Whether KVM coalesces a write of `len` bytes at `addr` into `zone` (the
 * reference for the simulator's core; observed on /dev/kvm, Linux 6.18): the
 * write lies wholly inside the zone (coalesced_mmio_in_range) and the IO bus
 * finds the zone. The bus keeps the zone's length as a C `int`, so a size of
 * 2^31 or more is negative there and its end becomes `addr + size - 2^32`
 * (wrapping): such a zone is found only when `addr + size < 2^32`; otherwise it
 * coalesces nothing. A size-0 zone contains no write.
 */
export function zoneTakesWrite(zone: CoalescedZone, addr: number, len: number): boolean {
  if (zone.size >= 0x80000000 && zone.addr + zone.size >= 0x100000000) return false;
  return len > 0 && zoneContains(zone, addr, len);
}

/**
 * The zones left after KVM_UNREGISTER_COALESCED_MMIO of `arg`: every zone on
 * the same bus that contains `[arg.addr, arg.addr + arg.size)` goes (so a
 * size-0 argument removes every zone containing `arg.addr`, including one
 * ending exactly there); no match is not an error. Order is kept.
 */
export function zonesAfterUnregister(zones: readonly CoalescedZone[], arg: CoalescedZone): CoalescedZone[] {
  return zones.filter((z) => z.pio !== arg.pio || !zoneContains(z, arg.addr, arg.size));
}

// ---- the ring ----

const RING = layOut(KVM_COALESCED_MMIO_RING);
const ENTRY = layOut(KVM_COALESCED_MMIO);
const word = (byteOffset: number, what: string): number => {
  if (byteOffset % 4 !== 0) throw new TypeError(`${what} at byte ${byteOffset} is not u32-aligned`);
  return byteOffset / 4;
};
const W_FIRST = word(field(RING, "first").offset, "ring.first");
const W_LAST = word(field(RING, "last").offset, "ring.last");
const W_ENTRIES = word(RING.size, "ring entries");
const W_ENTRY = word(ENTRY.size, "entry size");
const W_ADDR = word(field(ENTRY, "phys_addr").offset, "entry.phys_addr");
const W_LEN = word(field(ENTRY, "len").offset, "entry.len");
const W_PIO = word(field(ENTRY, "pio").offset, "entry.pio");
const W_DATA = word(field(ENTRY, "data").offset, "entry.data");
const DATA_MAX = field(ENTRY, "data").count;
if (DATA_MAX !== 8) throw new TypeError(`entry.data has ${DATA_MAX} bytes: the batch copies it as two u32 words`);
/** Words per batch entry: `len | pio << 8`, then the data (two words). */
const B_LEN_PIO = 0, B_DATA = 1, B_WORDS = 3;
const MAX = KVM_COALESCED_MMIO_MAX;
if (W_FIRST > 1 || W_LAST > 1 || W_FIRST === W_LAST) {
  throw new TypeError(`ring.first and ring.last must be the two u32 words of the ring's first 8 bytes`);
}
/** Bit positions of first and last in the little-endian 64-bit header word. */
const PAIR_FIRST_SHIFT = BigInt(32 * W_FIRST);
const PAIR_LAST_SHIFT = BigInt(32 * W_LAST);
if (RING.size + MAX * ENTRY.size > COALESCED_RING_BYTES) {
  throw new TypeError(`${MAX} ring entries of ${ENTRY.size} bytes do not fit a ${COALESCED_RING_BYTES}-byte page`);
}

/**
 * A reader over one ring page. Make it once per page (it holds the views and
 * the reused data buffers); {@link drainCoalesced} keeps one per page.
 */
export class CoalescedRing {
  /** The ring page. */
  readonly page: Uint8Array;
  /** The page lives in a SharedArrayBuffer: `first` is claimed with Atomics. */
  readonly shared: boolean;
  /** The non-resume outcome that ended the last {@link drain}, else undefined. */
  outcome: ExitOutcome | undefined = undefined;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array | undefined;
  /** The header pair (first, last) as one 64-bit word, to give a claimed tail back atomically. */
  readonly #pair: BigInt64Array | undefined;
  /** `#data[len]`: the reused `len`-byte buffer handed to the sink. */
  readonly #data: Uint8Array[] = [];
  /** The batch copied out of the ring before it is claimed: per entry its address, and B_WORDS words (#copy). */
  readonly #addr = new Float64Array(MAX);
  readonly #batch = new Uint32Array(MAX * B_WORDS);
  readonly #batchBytes = new Uint8Array(this.#batch.buffer);
  /** Why #copy stopped short (an impossible entry), else undefined. */
  #bad: string | undefined = undefined;
  /** Claimed entries a stop left undelivered that could not be given back (another drainer moved on). */
  #held = 0;
  #heldAt = 0;

  constructor(page: Uint8Array) {
    if (page.byteLength < COALESCED_RING_BYTES || page.byteOffset % 8 !== 0) {
      throw new InvalidArgumentError(
        "coalesced ring",
        `a ${page.byteLength}-byte view at byte ${page.byteOffset}: expected a ${COALESCED_RING_BYTES}-byte page, ` +
          `8-aligned`,
      );
    }
    this.page = page.subarray(0, COALESCED_RING_BYTES);
    this.shared = typeof SharedArrayBuffer !== "undefined" && page.buffer instanceof SharedArrayBuffer;
    this.#u32 = new Uint32Array(page.buffer, page.byteOffset, COALESCED_RING_BYTES / 4);
    this.#i32 = this.shared ? new Int32Array(page.buffer, page.byteOffset, 2) : undefined;
    this.#pair = this.shared ? new BigInt64Array(page.buffer, page.byteOffset, 1) : undefined;
    for (let len = 0; len <= DATA_MAX; len++) this.#data.push(new Uint8Array(len));
  }

  /** `first` (the next entry to consume). */
  get first(): number {
    return this.#i32 ? Atomics.load(this.#i32, W_FIRST) >>> 0 : this.#u32[W_FIRST]!;
  }

  /** `last` (the next slot the producer fills). */
  get last(): number {
    return this.#i32 ? Atomics.load(this.#i32, W_LAST) >>> 0 : this.#u32[W_LAST]!;
  }

  /** Entries are pending (`first !== last`): two u32 loads, no validation. */
  pending(): boolean {
    const w = this.#u32;
    return this.#held !== 0 || w[W_FIRST] !== w[W_LAST];
  }

  /**
   * Hand the pending entries, oldest first, to `sink`; stop after an entry
   * whose outcome is not resume (kept in {@link outcome}). Returns the number
   * of entries consumed. Throws {@link CoalescedRingError} when `first` or
   * `last` is out of range or an entry's len/pio is impossible (the entries
   * before it are delivered first).
   *
   * The pending entries are copied out and claimed with one compare-exchange
   * of `first` (several drainers of one ring never get the same entry); a stop
   * gives the claimed entries after its own back (`first` then points just
   * past the entry that stopped) unless another drainer has moved `first`
   * since, in which case this reader delivers them at its next drain.
   */
  drain(sink: CoalescedSink): number {
    this.outcome = undefined;
    let n = 0;
    if (this.#held !== 0) {
      const at = this.#heldAt, k = this.#held;
      this.#held = 0;
      n = this.#deliver(sink, at, k, -1);
      if (this.outcome !== undefined) return n;
    }
    const w = this.#u32, i32 = this.#i32;
    for (;;) {
      const first = i32 ? Atomics.load(i32, W_FIRST) >>> 0 : w[W_FIRST]!;
      const last = i32 ? Atomics.load(i32, W_LAST) >>> 0 : w[W_LAST]!;
      if (first >= MAX || last >= MAX) {
        throw new CoalescedRingError(
          `first ${first}, last ${last}: expected both below KVM_COALESCED_MMIO_MAX (${MAX})`,
        );
      }
      if (first === last) return n;
      const k = this.#copy(first, last), bad = this.#bad;
      if (bad !== undefined && k === 0) {
        // Another drainer may have claimed the slot and the producer refilled it mid-read.
        if (i32 && (Atomics.load(i32, W_FIRST) >>> 0) !== first) continue;
        throw new CoalescedRingError(bad);
      }
      const end = (first + k) % MAX;
      if (i32) {
        if (Atomics.compareExchange(i32, W_FIRST, first | 0, end | 0) >>> 0 !== first) continue; // claimed elsewhere
      } else {
        w[W_FIRST] = end;
      }
      n += this.#deliver(sink, 0, k, end);
      if (this.outcome !== undefined) return n;
      if (bad !== undefined) {
        if (i32 && (Atomics.load(i32, W_FIRST) >>> 0) !== end) continue;
        throw new CoalescedRingError(bad);
      }
    }
  }

  /**
   * Copy the entries from `first` up to `last` (or up to the first impossible
   * one) into the batch; returns how many, with the error of the one it stopped
   * at in {@link #bad} (else undefined). Per entry the batch holds the address,
   * then `len | pio << 8` and the 8 data bytes as two words (B_* offsets).
   */
  #copy(first: number, last: number): number {
    const w = this.#u32, addr = this.#addr, b = this.#batch;
    this.#bad = undefined;
    let k = 0;
    for (let f = first; f !== last; f = f + 1 === MAX ? 0 : f + 1, k++) {
      const e = W_ENTRIES + f * W_ENTRY;
      const lo = w[e + W_ADDR]!, hi = w[e + W_ADDR + 1]!, len = w[e + W_LEN]!, pio = w[e + W_PIO]!;
      if (len < 1 || len > DATA_MAX || pio > 1 || hi >= 0x200000) {
        this.#bad = `entry ${f}: phys_addr 0x${(hi * 2 ** 32 + lo).toString(16)} len ${len} pio ${pio}: ` +
          `expected len 1..${DATA_MAX}, pio 0 or 1, phys_addr below 2^53`;
        return k;
      }
      addr[k] = hi * 4294967296 + lo;
      const j = k * B_WORDS;
      b[j + B_LEN_PIO] = len | (pio << 8);
      b[j + B_DATA] = w[e + W_DATA]!;
      b[j + B_DATA + 1] = w[e + W_DATA + 1]!;
    }
    return k;
  }

  /**
   * Hand batch entries [from, from + k) to `sink`; on a stop, the rest are given
   * back to the ring (claimed up to `end`; -1: they are held entries, kept held).
   */
  #deliver(sink: CoalescedSink, from: number, k: number, end: number): number {
    const data = this.#data, b = this.#batch, bytes = this.#batchBytes, addr = this.#addr;
    for (let j = from; j < from + k; j++) {
      const lp = b[j * B_WORDS + B_LEN_PIO]!, len = lp & 0xff;
      const buf = data[len]!;
      const at = (j * B_WORDS + B_DATA) * 4;
      for (let i = 0; i < len; i++) buf[i] = bytes[at + i]!;
      const r = sink(lp >= 0x100, addr[j]!, len, buf);
      if (r !== undefined && r.kind !== "resume") {
        this.outcome = r;
        const rest = from + k - j - 1;
        if (rest !== 0 && (end < 0 || !this.#giveBack(end, rest))) {
          this.#heldAt = j + 1;
          this.#held = rest;
        }
        return j - from + 1;
      }
    }
    return k;
  }

  /**
   * Move `first` back from `end` by `rest` entries. Their slots still hold them
   * unless the producer, which fills from `last` up to `first` − 1, has wrapped
   * round into them since the claim. One 64-bit compare-exchange of (first, last),
   * so neither moved between the check and the give-back. False: `first` moved
   * (another drainer) or the producer reached the slots; the caller keeps the entries.
   */
  #giveBack(end: number, rest: number): boolean {
    const back = (end - rest + MAX) % MAX;
    const pair = this.#pair, w = this.#u32;
    const cur = pair ? Atomics.load(pair, 0) : 0n;
    const first = pair ? Number(BigInt.asUintN(32, cur >> PAIR_FIRST_SHIFT)) : w[W_FIRST]!;
    const last = pair ? Number(BigInt.asUintN(32, cur >> PAIR_LAST_SHIFT)) : w[W_LAST]!;
    // Since the claim the producer filled slots from the old `last` on; it reached the
    // given-back slots only if `last` wrapped into them (fewer than `rest` past `back`).
    if (first !== end || last >= MAX || (last - back + MAX) % MAX < rest) return false;
    if (!pair) {
      w[W_FIRST] = back;
      return true;
    }
    const want = (cur & ~(0xffffffffn << PAIR_FIRST_SHIFT)) | (BigInt(back) << PAIR_FIRST_SHIFT);
    return Atomics.compareExchange(pair, 0, cur, want) === cur;
  }
}

const readers = new WeakMap<Uint8Array, CoalescedRing>();

/** The (cached) reader of a ring page. */
export function coalescedRing(page: Uint8Array): CoalescedRing {
  let r = readers.get(page);
  if (r === undefined) readers.set(page, r = new CoalescedRing(page));
  return r;
}

/**
 * Drain the ring page `ring` into `sink` (see {@link CoalescedRing.drain}):
 * entries from `first` to `last`, stopping after one whose outcome is not
 * resume. Returns how many entries were consumed.
 *
 * ```ts
 * drainCoalesced(vm.coalescedRing(), (pio, addr, len, data) => void log.push([pio, addr, data[0]]));
 * ```
 */
export function drainCoalesced(ring: Uint8Array, sink: CoalescedSink): number {
  return coalescedRing(ring).drain(sink);
}
