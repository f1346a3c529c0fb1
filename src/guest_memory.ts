/**
 * Guest physical memory as kvm_util keeps it, shared by the simulator's Vm
 * (src/vm.ts) and the backend front end's BackendVm (src/backends/front.ts):
 * the memory-region checks as typed errors, region lookup, the host view of
 * guest memory, the physical page allocator, and the page-table operations
 * (pgd, virt_pg_map, virt_map, translation) in the base class {@link GuestMemoryVm}.
 *
 * Each VM keeps its own backing (the shared WASM memory or host mappings);
 * a {@link GuestRegion} carries a live view of its backing.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "./abi/constants.ts";
import {
  BeyondMaxGfnError,
  DuplicateSlotError,
  InvalidArgumentError,
  InvalidMemoryFlagsError,
  MemoryRegionOverlapError,
  NoGuestMemoryError,
  NoPhysPageError,
  NoSuchSlotError,
  NotPageAlignedError,
  VirtualMemoryError,
} from "./errors.ts";
import { type GuestPhys, type MapOptions, mapPage, PAGE_4K, type Translation, walk } from "./x86/page_tables.ts";

/** Guest page size. */
export const PAGE = 4096;
/** kvm_util's KVM_UTIL_MIN_PADDR: the lowest page physPageAlloc hands out by default. */
export const MIN_PADDR = 0x2000;
/** The flags a memory region may carry. */
export const VALID_MEM_FLAGS = K.KVM_MEM_LOG_DIRTY_PAGES | K.KVM_MEM_READONLY;

const hx = (v: number | bigint) => `0x${v.toString(16)}`;
/** Bytes of a dirty bitmap for a region of `size` bytes (64-bit words). */
export const dirtyBytes = (size: number) => Math.ceil(size / PAGE / 64) * 8;

export interface MemoryRegionOptions {
  slot: number;
  gpa: number;
  /** Bytes (a multiple of 4 KiB); or give `pages`. */
  size?: number;
  pages?: number;
  /** KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY. */
  flags?: number;
}

/** A memory region (`struct kvm_userspace_memory_region` plus where its backing lives). */
export interface MemoryRegion {
  readonly slot: number;
  readonly gpa: number;
  readonly size: number;
  readonly flags: number;
  /** Offset of the backing in the shared memory ("userspace_addr"). */
  readonly hva: number;
  /** Offset of the dirty bitmap, 0 when not logging. */
  readonly dirtyBitmap: number;
}

/** A checked, normalised new region (what {@link GuestRegions.checkAdd} returns). */
export interface RegionRequest {
  slot: number;
  gpa: number;
  size: number;
  flags: number;
}

/** One region's bookkeeping: its place, flags, backing view and page-use map. */
export interface GuestRegion {
  readonly slot: number;
  readonly gpa: number;
  readonly size: number;
  flags: number;
  /** The "userspace_addr" of the backing. */
  readonly hva: number;
  /** A live view of the whole backing. */
  readonly u8: Uint8Array;
  readonly dv: DataView;
  /** One byte per page: 1 = handed out by physPageAlloc (kvm_util's unused_phy_pages, inverted). */
  readonly used: Uint8Array;
}

/** The regions of one VM, with kvm_util's checks, the host view of guest memory and the page allocator. */
export class GuestRegions<R extends GuestRegion> {
  readonly #regions = new Map<number, R>();

  constructor(readonly maxGfn: number) {}

  get count(): number {
    return this.#regions.size;
  }

  /** All regions, by GPA. */
  byGpa(): R[] {
    return [...this.#regions.values()].sort((a, b) => a.gpa - b.gpa);
  }

  all(): IterableIterator<R> {
    return this.#regions.values();
  }

  /** The region with `slot`; throws NoSuchSlotError naming the existing slots. */
  get(slot: number): R {
    const r = this.#regions.get(slot);
    if (!r) throw new NoSuchSlotError(slot, `existing slots: [${[...this.#regions.keys()].join(", ")}]`);
    return r;
  }

  /** A region overlapping `[start, end]`, or undefined. */
  overlapping(start: number, end: number): R | undefined {
    for (const r of this.#regions.values()) if (start <= r.gpa + r.size - 1 && end >= r.gpa) return r;
    return undefined;
  }

  /** The region holding `gpa`, or undefined. */
  at(gpa: number): R | undefined {
    for (const r of this.#regions.values()) if (gpa >= r.gpa && gpa < r.gpa + r.size) return r;
    return undefined;
  }

  /** vm_userspace_mem_region_add's checks (typed errors); the normalised request. */
  checkAdd(opts: MemoryRegionOptions): RegionRequest {
    const { slot, gpa } = opts;
    const flags = opts.flags ?? 0;
    if (!Number.isInteger(slot) || slot < 0 || slot > 0xffff) {
      throw new NoSuchSlotError(slot, `expected a slot id in 0..0xffff`);
    }
    if ((opts.size === undefined) === (opts.pages === undefined)) {
      throw new InvalidArgumentError("memory region", "give exactly one of size or pages");
    }
    const size = opts.size ?? opts.pages! * PAGE;
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % PAGE !== 0) {
      throw new NotPageAlignedError("guest physical address", gpa, PAGE);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) {
      throw new NotPageAlignedError("memory region size", size, PAGE);
    }
    const pages = size / PAGE;
    if (gpa / PAGE + pages - 1 > this.maxGfn) throw new BeyondMaxGfnError(gpa, pages, this.maxGfn);
    const end = gpa + size - 1;
    const existing = this.overlapping(gpa, end);
    if (existing) {
      throw new MemoryRegionOverlapError(gpa, end, existing.slot, existing.gpa, existing.gpa + existing.size - 1);
    }
    const dup = this.#regions.get(slot);
    if (dup) throw new DuplicateSlotError(slot, dup.gpa, dup.size);
    if ((flags & ~VALID_MEM_FLAGS) !== 0) {
      throw new InvalidMemoryFlagsError(
        slot,
        flags,
        `unknown bits ${hx(flags & ~VALID_MEM_FLAGS)} (valid: KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)`,
      );
    }
    return { slot, gpa, size, flags };
  }

  /** vm_mem_region_set_flags' checks: the region, when `flags` may replace its flags (KVM_MEM_READONLY cannot change). */
  checkFlags(slot: number, flags: number): R {
    const r = this.get(slot);
    if ((flags & ~VALID_MEM_FLAGS) !== 0) {
      throw new InvalidMemoryFlagsError(slot, flags, `unknown bits ${hx(flags & ~VALID_MEM_FLAGS)}`);
    }
    if ((flags ^ r.flags) & K.KVM_MEM_READONLY) {
      throw new InvalidMemoryFlagsError(
        slot,
        flags,
        `KVM_MEM_READONLY cannot change on an existing slot (current flags ${hx(r.flags)})`,
      );
    }
    return r;
  }

  add(r: R): void {
    this.#regions.set(r.slot, r);
  }

  delete(slot: number): void {
    this.#regions.delete(slot);
  }

  // ---- host view of guest memory ----

  /** A live view of `len` bytes of guest memory at `gpa` (must lie in one region). */
  guestView(gpa: number, len: number): Uint8Array {
    const r = this.at(gpa);
    if (!r || gpa + len > r.gpa + r.size) throw new NoGuestMemoryError(gpa, len);
    return r.u8.subarray(gpa - r.gpa, gpa - r.gpa + len);
  }

  /** Copy bytes into guest physical memory (may span regions). */
  writeGuest(gpa: number, bytes: ArrayLike<number>): void {
    let done = 0;
    while (done < bytes.length) {
      const r = this.at(gpa + done);
      if (!r) throw new NoGuestMemoryError(gpa + done, bytes.length - done);
      const n = Math.min(bytes.length - done, r.gpa + r.size - (gpa + done));
      const at = gpa + done - r.gpa;
      for (let i = 0; i < n; i++) r.u8[at + i] = bytes[done + i]! & 0xff;
      done += n;
    }
  }

  /** Copy `len` bytes out of guest physical memory (may span regions). */
  readGuest(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const r = this.at(gpa + done);
      if (!r) throw new NoGuestMemoryError(gpa + done, len - done);
      const n = Math.min(len - done, r.gpa + r.size - (gpa + done));
      out.set(r.u8.subarray(gpa + done - r.gpa, gpa + done - r.gpa + n), done);
      done += n;
    }
    return out;
  }

  /** The u64 at `gpa` (all 8 bytes in one region). */
  read64(gpa: number): bigint {
    const r = this.at(gpa);
    if (!r || gpa + 8 > r.gpa + r.size) throw new NoGuestMemoryError(gpa, 8);
    return r.dv.getBigUint64(gpa - r.gpa, true);
  }

  /** Write the u64 at `gpa` (all 8 bytes in one region). */
  write64(gpa: number, v: bigint): void {
    const r = this.at(gpa);
    if (!r || gpa + 8 > r.gpa + r.size) throw new NoGuestMemoryError(gpa, 8);
    r.dv.setBigUint64(gpa - r.gpa, BigInt.asUintN(64, v), true);
  }

  // ---- physical allocation ----

  /** vm_phy_page_alloc: the first unused page at or above `paddrMin` in `slot`, marked used. */
  physPageAlloc(paddrMin: number, slot: number): number {
    if (paddrMin % PAGE !== 0) throw new NotPageAlignedError("minimum physical address", paddrMin, PAGE);
    const r = this.get(slot);
    const first = Math.max(0, Math.ceil((paddrMin - r.gpa) / PAGE));
    for (let p = first; p < r.used.length; p++) {
      if (r.used[p] === 0) {
        r.used[p] = 1;
        return r.gpa + p * PAGE;
      }
    }
    throw new NoPhysPageError(paddrMin, slot);
  }

  /** Mark `[gpa, gpa + size)` used so physPageAlloc skips it (for loaded code and fixed tables). */
  reservePhys(gpa: number, size: number): void {
    for (let a = gpa - (gpa % PAGE); a < gpa + size; a += PAGE) {
      const r = this.at(a);
      if (!r) throw new NoGuestMemoryError(a, PAGE);
      r.used[(a - r.gpa) / PAGE] = 1;
    }
  }

  /** A zeroed page for page tables from `slot`. */
  allocTablePage(slot: number): number {
    const gpa = this.physPageAlloc(MIN_PADDR, slot);
    this.guestView(gpa, PAGE).fill(0);
    return gpa;
  }
}

/**
 * The guest-memory half of a kvm_util VM, the base of the simulator's Vm and
 * BackendVm: the host view of guest memory, the physical page allocator and
 * page tables (kvm_util's virt_* over vm.pgd). The subclass owns the backing
 * and adds regions to {@link GuestMemoryVm.mem} after `mem.checkAdd`.
 */
export class GuestMemoryVm<R extends GuestRegion> implements GuestPhys {
  /** Guest physical address of the PML4 once page tables exist (kvm_util vm->pgd). */
  pgd: number | undefined;
  /** Slot that page tables are allocated from. */
  pgdSlot = 0;
  /** The memory regions. */
  protected readonly mem: GuestRegions<R>;

  /** `maxGfn`: the highest valid guest frame number. */
  constructor(readonly maxGfn: number) {
    this.mem = new GuestRegions<R>(maxGfn);
  }

  // ---- host view of guest memory ----

  /** A live view of `len` bytes of guest memory at `gpa` (must lie in one region). */
  guestView(gpa: number, len: number): Uint8Array {
    return this.mem.guestView(gpa, len);
  }

  /** Copy bytes into guest physical memory (may span regions). */
  writeGuest(gpa: number, bytes: ArrayLike<number>): void {
    this.mem.writeGuest(gpa, bytes);
  }

  /** Copy `len` bytes out of guest physical memory (may span regions). */
  readGuest(gpa: number, len: number): Uint8Array {
    return this.mem.readGuest(gpa, len);
  }

  /** GuestPhys: read a u64 at `gpa`. */
  read64(gpa: number): bigint {
    return this.mem.read64(gpa);
  }

  /** GuestPhys: write a u64 at `gpa`. */
  write64(gpa: number, v: bigint): void {
    this.mem.write64(gpa, v);
  }

  /** GuestPhys: a zeroed page for page tables from `pgdSlot`. */
  allocTablePage(): number {
    return this.mem.allocTablePage(this.pgdSlot);
  }

  // ---- physical allocation and page tables (kvm_util) ----

  /** vm_phy_page_alloc: the first unused page at or above `paddrMin` in `slot`, marked used. */
  physPageAlloc(paddrMin = MIN_PADDR, slot = 0): number {
    return this.mem.physPageAlloc(paddrMin, slot);
  }

  /** Mark `[gpa, gpa + size)` used so physPageAlloc skips it (for loaded code and fixed tables). */
  reservePhys(gpa: number, size: number): void {
    this.mem.reservePhys(gpa, size);
  }

  /** Create the PML4 if there is none (kvm_util virt_pgd_alloc). */
  pgdAlloc(slot = this.pgdSlot): number {
    if (this.pgd === undefined) {
      this.pgdSlot = slot;
      this.pgd = this.allocTablePage();
    }
    return this.pgd;
  }

  /** virt_pg_map: map one page (4 KiB by default) under vm.pgd. */
  virtPgMap(gva: bigint | number, gpa: number, opts: MapOptions = {}): void {
    const pml4 = this.pgdAlloc();
    if ((gpa + (opts.pageSize ?? PAGE_4K) - 1) / PAGE > this.maxGfn) {
      throw new BeyondMaxGfnError(gpa, (opts.pageSize ?? PAGE_4K) / PAGE, this.maxGfn);
    }
    mapPage(this, pml4, BigInt(gva), gpa, opts);
  }

  /** virt_map: map `size` bytes page by page through virtPgMap (kvm_util checks for overflow). */
  virtMap(gva: bigint | number, gpa: number, size: number, opts: MapOptions = {}): void {
    const page = opts.pageSize ?? PAGE_4K;
    const va = BigInt(gva);
    if (BigInt.asUintN(64, va + BigInt(size)) <= BigInt.asUintN(64, va)) {
      throw new VirtualMemoryError(`virtual range ${hx(va)} + ${hx(size)} overflows`);
    }
    if (gpa + size <= gpa) throw new VirtualMemoryError(`physical range ${hx(gpa)} + ${hx(size)} overflows`);
    if (size % page !== 0) throw new NotPageAlignedError("virt_map size", size, page);
    for (let off = 0; off < size; off += page) this.virtPgMap(va + BigInt(off), gpa + off, opts);
  }

  /** The full translation (level, page size, leaf entry) through vm.pgd (or `cr3` when given). */
  translate(gva: bigint | number, cr3?: number): Translation {
    const root = cr3 ?? this.pgd;
    if (root === undefined) {
      throw new VirtualMemoryError("no page tables: call pgdAlloc/virtMap or set up long mode first");
    }
    return walk(this, root, BigInt(gva));
  }

  /** addr_gva2gpa through vm.pgd (or `cr3` when given). Throws UnmappedGvaError. */
  gva2gpa(gva: bigint | number, cr3?: number): number {
    return this.translate(gva, cr3).gpa;
  }
}
