/**
 * The guest RAM pool allocator: memslot backings and dirty bitmaps are carved
 * out of `[RAM_POOL_BASE, memory end)` of the VM's shared memory, which is
 * sized once at createVm and never grows. First fit over a sorted free list,
 * page-granular, neighbours coalesce on free.
 *
 * @module
 */
import { PoolExhaustedError } from "./errors.ts";
import { PAGE_SIZE } from "./abi/memory_map.ts";

interface Extent {
  start: number;
  end: number;
}

export class RamPool {
  #free: Extent[];
  /** End of the highest extent ever handed out: memory above it is still as the fresh WebAssembly.Memory left it (zero). */
  #highWater: number;

  /** A pool of `[base, base + size)` (absolute offsets in the shared memory). */
  constructor(readonly base: number, readonly size: number) {
    this.#free = [{ start: base, end: base + size }];
    this.#highWater = base;
  }

  /**
   * Allocate like {@link alloc} and zero the result in `u8` (the whole shared
   * memory): only the part below the high-water mark can hold old data, so a
   * fresh VM's RAM is neither written nor committed here.
   */
  allocZeroed(bytes: number, u8: Uint8Array): number {
    const before = this.#highWater;
    const at = this.alloc(bytes);
    const end = Math.min(at + Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE, before);
    if (end > at) u8.fill(0, at, end);
    return at;
  }

  /** Allocate `bytes` (rounded up to 4 KiB); returns the absolute offset. Memory is zeroed by the caller. */
  alloc(bytes: number): number {
    const len = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
    for (let i = 0; i < this.#free.length; i++) {
      const e = this.#free[i]!;
      if (e.end - e.start < len) continue;
      const at = e.start;
      e.start += len;
      if (e.start === e.end) this.#free.splice(i, 1);
      if (at + len > this.#highWater) this.#highWater = at + len;
      return at;
    }
    throw new PoolExhaustedError(len, this.largestFree(), this.size);
  }

  /** Return `[at, at + bytes)` (as allocated) to the pool. */
  free(at: number, bytes: number): void {
    const len = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
    const ext = { start: at, end: at + len };
    let i = 0;
    while (i < this.#free.length && this.#free[i]!.start < at) i++;
    this.#free.splice(i, 0, ext);
    // Coalesce with the next, then the previous.
    const next = this.#free[i + 1];
    if (next && next.start === ext.end) {
      ext.end = next.end;
      this.#free.splice(i + 1, 1);
    }
    const prev = this.#free[i - 1];
    if (prev && prev.end === ext.start) {
      prev.end = ext.end;
      this.#free.splice(i, 1);
    }
  }

  largestFree(): number {
    return this.#free.reduce((m, e) => Math.max(m, e.end - e.start), 0);
  }

  freeBytes(): number {
    return this.#free.reduce((m, e) => m + e.end - e.start, 0);
  }
}
