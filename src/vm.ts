/**
 * The VM API, modelled on the KVM selftests' kvm_util (seed 001): memory
 * regions with kvm_util's checks as typed errors, dirty logging, vCPUs,
 * CPUID, user-space MSR exits and the MSR filter, hypercall exits, guest
 * page tables and the host view of guest memory, dumps, and a run loop.
 *
 * Addresses: guest physical addresses and sizes are numbers (below
 * 2^MAXPHYADDR = 2^48, exact); guest virtual addresses are bigint (they may be
 * canonical-high). A "host virtual address" (hva) is a byte offset into the
 * VM's shared memory (`vm.buffer`).
 *
 * @module
 */
import { field, layOut } from "./abi/layout.ts";
import { KVM_CONSTANTS as K } from "./abi/constants.ts";
import {
  KVM_CPUID_ENTRY2,
  MAX_CPUID_ENTRIES,
  MAX_MEMSLOTS,
  MAX_MSR_FILTER_RANGES,
  MEMSLOT,
  MSR_FILTER_BITMAP_BYTES,
  MSR_FILTER_RANGE,
  VM_CONTROL,
} from "./abi/vcpu_state.ts";
import {
  MAX_MEMORY_BYTES,
  PAGE_SIZE,
  RAM_POOL_BASE,
  VCPU_AREA_BASE,
  VCPU_BLOCK_SIZE,
  vcpuRunBase,
  VM_CONTROL_BASE,
} from "./abi/memory_map.ts";
import { MAX_VCPUS } from "./abi/vcpu_state.ts";
import {
  BeyondMaxGfnError,
  DirtyLogDisabledError,
  DuplicateSlotError,
  InvalidArgumentError,
  InvalidMemoryFlagsError,
  MemoryRegionOverlapError,
  NoGuestMemoryError,
  NoHostMappingError,
  NoPhysPageError,
  NoSuchSlotError,
  NoSuchVcpuError,
  NotPageAlignedError,
  VcpuExistsError,
  VirtualMemoryError,
} from "./errors.ts";
import { RamPool } from "./vm_pool.ts";
import { checkVcpuId, Vcpu } from "./vcpu.ts";
import { type CoreExports, createSharedMemory, instantiateCore } from "./wasm.ts";
import { CPUID_SIGNATURE, type CpuidEntry, defaultCpuid, findCpuid, MAXPHYADDR } from "./x86/cpuid.ts";
import {
  dumpTables,
  type GuestPhys,
  type MapOptions,
  mapPage,
  PAGE_4K,
  type Translation,
  walk,
} from "./x86/page_tables.ts";
import { RESET_XCR0, resetDebugRegs, resetMsrs, resetRegs, resetSregs } from "./x86/reset.ts";
import { MmioBus, PioBus } from "./devices/bus.ts";
import { type RunResult, runUntil, type RunUntilOptions } from "./exits/run_loop.ts";
import type { BackendVm } from "./backends/front.ts";
import type { BackendName, GuestVm } from "./backends/types.ts";
import { createKvmVm, type KvmVmOptions } from "./backends/kvm/mod.ts";

const VMC = layOut(VM_CONTROL);
const vmc = (p: string) => VM_CONTROL_BASE + field(VMC, p).offset;
const SLOT_STRIDE = layOut(MEMSLOT).size;
const SLOT = Object.fromEntries(
  ["gpa", "size", "host", "dirty", "flags", "id"].map((
    f,
  ) => [f, field(VMC, `slots.${f}`).offset - field(VMC, "slots").offset]),
) as Record<string, number>;
const CPUID_STRIDE = layOut(KVM_CPUID_ENTRY2).size;
const CPUID_FIELDS = ["function", "index", "flags", "eax", "ebx", "ecx", "edx"] as const;
const CPUID_OFF = Object.fromEntries(
  CPUID_FIELDS.map((f) => [f, field(VMC, `cpuid.${f}`).offset - field(VMC, "cpuid").offset]),
) as Record<(typeof CPUID_FIELDS)[number], number>;
const MSRF_STRIDE = layOut(MSR_FILTER_RANGE).size;
const MSRF = Object.fromEntries(
  ["flags", "nmsrs", "base", "bitmap"].map((
    f,
  ) => [f, field(VMC, `msr_filter.${f}`).offset - field(VMC, "msr_filter").offset]),
) as Record<string, number>;

/** Default guest RAM pool: 64 MiB. */
export const DEFAULT_RAM_POOL = 64 << 20;
/** kvm_util's KVM_UTIL_MIN_PADDR: the lowest page physPageAlloc hands out by default. */
export const MIN_PADDR = 0x2000;
/** kvm_util's DEFAULT_GUEST_VADDR-like lowest address vaddrAlloc searches from by default. */
export const MIN_VADDR = 0x10000n;
const VALID_MEM_FLAGS = K.KVM_MEM_LOG_DIRTY_PAGES | K.KVM_MEM_READONLY;
/** KVM_EXIT_HYPERCALL_VALID_MASK: only KVM_HC_MAP_GPA_RANGE may exit. */
export const HYPERCALL_EXIT_VALID_MASK = 1 << K.KVM_HC_MAP_GPA_RANGE;
const USER_MSR_VALID = K.KVM_MSR_EXIT_REASON_INVAL | K.KVM_MSR_EXIT_REASON_UNKNOWN | K.KVM_MSR_EXIT_REASON_FILTER;

export interface CreateVmOptions {
  /** Bytes of guest RAM pool (memslot backings and dirty bitmaps); default 64 MiB. Sized once. */
  ramPoolSize?: number;
  /** A memory region of this many bytes at GPA 0, slot 0 (kvm_util vm_create's phy_pages). */
  memSize?: number;
  /** The CPUID table (default: {@link defaultCpuid}, the "supported" table). */
  cpuid?: readonly CpuidEntry[];
  /** A compiled core (default: build/kvmsim.wasm). */
  module?: WebAssembly.Module;
}

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

interface Region {
  slot: number;
  gpa: number;
  size: number;
  flags: number;
  hva: number;
  dirty: number;
  /** One byte per page: 1 = handed out by physPageAlloc (kvm_util's unused_phy_pages, inverted). */
  used: Uint8Array;
}

/** One KVM_X86_SET_MSR_FILTER range. `bitmap` bit i covers MSR `base + i`: 1 allows, 0 denies. */
export interface MsrFilterRange {
  flags: number;
  nmsrs: number;
  base: number;
  bitmap: Uint8Array;
}

/** `struct kvm_msr_filter`. */
export interface MsrFilter {
  /** KVM_MSR_FILTER_DEFAULT_ALLOW (0) or KVM_MSR_FILTER_DEFAULT_DENY (1). */
  flags: number;
  ranges: readonly MsrFilterRange[];
}

const hx = (v: number | bigint) => `0x${v.toString(16)}`;
const dirtyBytes = (size: number) => Math.ceil(size / PAGE_SIZE / 64) * 8;

export class Vm implements GuestPhys {
  readonly memory: WebAssembly.Memory;
  readonly buffer: SharedArrayBuffer;
  readonly core: CoreExports;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly pageSize = PAGE_SIZE;
  /** Physical-address width (CPUID 0x80000008.EAX[7:0]). */
  readonly paBits = MAXPHYADDR;
  /** Highest valid guest frame number. */
  readonly maxGfn = 2 ** MAXPHYADDR / PAGE_SIZE - 1;
  /** The port-IO bus runUntil uses by default. */
  readonly pio = new PioBus();
  /** The MMIO bus runUntil uses by default. */
  readonly mmio = new MmioBus();
  /** Guest physical address of the PML4 once page tables exist (kvm_util vm->pgd). */
  pgd: number | undefined;
  /** Slot that page tables are allocated from. */
  pgdSlot = 0;
  readonly #pool: RamPool;
  readonly #regions = new Map<number, Region>();
  readonly #vcpus = new Map<number, Vcpu>();
  readonly #blocks: (Vcpu | undefined)[] = new Array(MAX_VCPUS).fill(undefined);
  #cpuid: CpuidEntry[] = [];
  readonly #vpagesMapped = new Set<bigint>();

  constructor(opts: CreateVmOptions = {}) {
    const pool = Math.ceil((opts.ramPoolSize ?? DEFAULT_RAM_POOL) / 65536) * 65536;
    if (!Number.isInteger(pool) || pool <= 0 || RAM_POOL_BASE + pool > MAX_MEMORY_BYTES) {
      throw new InvalidArgumentError(
        "ramPoolSize",
        `${opts.ramPoolSize}: expected 1..${hx(MAX_MEMORY_BYTES - RAM_POOL_BASE)} bytes`,
      );
    }
    this.memory = createSharedMemory(RAM_POOL_BASE + pool);
    this.buffer = this.memory.buffer as SharedArrayBuffer;
    this.core = instantiateCore(this.memory, opts.module);
    this.u8 = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
    this.#pool = new RamPool(RAM_POOL_BASE, pool);
    this.dv.setUint32(vmc("ram_base"), RAM_POOL_BASE, true);
    this.dv.setUint32(vmc("ram_size"), pool >>> 0, true);
    this.dv.setUint32(vmc("vcpu_base"), VCPU_AREA_BASE, true);
    this.#syncSlots();
    this.setCpuid(opts.cpuid ?? defaultCpuid());
    if (opts.memSize !== undefined) this.addMemoryRegion({ slot: 0, gpa: 0, size: opts.memSize });
  }

  // ---- memory regions (KVM_SET_USER_MEMORY_REGION) ----

  /** vm_userspace_mem_region_add with kvm_util's checks (typed errors). */
  addMemoryRegion(opts: MemoryRegionOptions): MemoryRegion {
    const { slot, gpa } = opts;
    const flags = opts.flags ?? 0;
    if (!Number.isInteger(slot) || slot < 0 || slot > 0xffff) {
      throw new NoSuchSlotError(slot, `expected a slot id in 0..0xffff`);
    }
    if ((opts.size === undefined) === (opts.pages === undefined)) {
      throw new InvalidArgumentError("memory region", "give exactly one of size or pages");
    }
    const size = opts.size ?? opts.pages! * PAGE_SIZE;
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % PAGE_SIZE !== 0) {
      throw new NotPageAlignedError("guest physical address", gpa, PAGE_SIZE);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new NotPageAlignedError("memory region size", size, PAGE_SIZE);
    }
    const pages = size / PAGE_SIZE;
    if (gpa / PAGE_SIZE + pages - 1 > this.maxGfn) throw new BeyondMaxGfnError(gpa, pages, this.maxGfn);
    const end = gpa + size - 1;
    const existing = this.#regionOverlapping(gpa, end);
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
    if (this.#regions.size >= MAX_MEMSLOTS) {
      throw new InvalidArgumentError("memory region", `all ${MAX_MEMSLOTS} memslots are in use`);
    }
    const hva = this.#pool.alloc(size);
    let dirty = 0;
    if (flags & K.KVM_MEM_LOG_DIRTY_PAGES) {
      try {
        dirty = this.#pool.alloc(dirtyBytes(size));
      } catch (e) {
        this.#pool.free(hva, size);
        throw e;
      }
      this.u8.fill(0, dirty, dirty + dirtyBytes(size));
    }
    this.u8.fill(0, hva, hva + size);
    const region: Region = { slot, gpa, size, flags, hva, dirty, used: new Uint8Array(pages) };
    this.#regions.set(slot, region);
    this.#syncSlots();
    return this.#public(region);
  }

  /** vm_mem_region_set_flags. Toggling KVM_MEM_LOG_DIRTY_PAGES is allowed; changing KVM_MEM_READONLY is not (KVM: EINVAL). */
  setMemoryRegionFlags(slot: number, flags: number): void {
    const r = this.#region(slot);
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
    const log = (flags & K.KVM_MEM_LOG_DIRTY_PAGES) !== 0;
    if (log && r.dirty === 0) {
      r.dirty = this.#pool.alloc(dirtyBytes(r.size));
      this.u8.fill(0, r.dirty, r.dirty + dirtyBytes(r.size));
    } else if (!log && r.dirty !== 0) {
      this.#pool.free(r.dirty, dirtyBytes(r.size));
      r.dirty = 0;
    }
    r.flags = flags;
    this.#syncSlots();
  }

  /** Delete a memory region (KVM_SET_USER_MEMORY_REGION with memory_size 0); its backing returns to the pool. */
  removeMemoryRegion(slot: number): void {
    const r = this.#region(slot);
    this.#regions.delete(slot);
    this.#pool.free(r.hva, r.size);
    if (r.dirty) this.#pool.free(r.dirty, dirtyBytes(r.size));
    this.#syncSlots();
  }

  /** The region with `slot` (kvm_util memslot2region). */
  memoryRegion(slot: number): MemoryRegion {
    return this.#public(this.#region(slot));
  }

  /** All regions, by GPA. */
  memoryRegions(): MemoryRegion[] {
    return [...this.#regions.values()].sort((a, b) => a.gpa - b.gpa).map((r) => this.#public(r));
  }

  /** kvm_userspace_memory_region_find: a region overlapping `[start, end]`, or undefined. */
  findMemoryRegion(start: number, end: number): MemoryRegion | undefined {
    const r = this.#regionOverlapping(start, end);
    return r && this.#public(r);
  }

  /**
   * KVM_GET_DIRTY_LOG: the slot's bitmap (bit n = page n written since the
   * last call, 64-bit words little-endian), cleared as it is returned.
   */
  getDirtyLog(slot: number): Uint8Array {
    const r = this.#region(slot);
    if (r.dirty === 0) throw new DirtyLogDisabledError(slot, r.flags);
    const n = dirtyBytes(r.size);
    const copy = this.u8.slice(r.dirty, r.dirty + n);
    this.u8.fill(0, r.dirty, r.dirty + n);
    return copy;
  }

  #public(r: Region): MemoryRegion {
    return { slot: r.slot, gpa: r.gpa, size: r.size, flags: r.flags, hva: r.hva, dirtyBitmap: r.dirty };
  }
  #region(slot: number): Region {
    const r = this.#regions.get(slot);
    if (!r) throw new NoSuchSlotError(slot, `existing slots: [${[...this.#regions.keys()].join(", ")}]`);
    return r;
  }
  #regionOverlapping(start: number, end: number): Region | undefined {
    for (const r of this.#regions.values()) if (start <= r.gpa + r.size - 1 && end >= r.gpa) return r;
    return undefined;
  }
  #regionAt(gpa: number): Region | undefined {
    for (const r of this.#regions.values()) if (gpa >= r.gpa && gpa < r.gpa + r.size) return r;
    return undefined;
  }

  /** Rewrite the memslot table in the VM control block (compact, sorted by GPA) and bump memslot_gen. */
  #syncSlots(): void {
    const base = vmc("slots");
    const list = [...this.#regions.values()].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < MAX_MEMSLOTS; i++) {
      const e = base + i * SLOT_STRIDE;
      const r = list[i];
      this.u8.fill(0, e, e + SLOT_STRIDE);
      if (!r) {
        this.dv.setUint32(e + SLOT.id!, 0xffffffff, true);
        continue;
      }
      this.dv.setBigUint64(e + SLOT.gpa!, BigInt(r.gpa), true);
      this.dv.setBigUint64(e + SLOT.size!, BigInt(r.size), true);
      this.dv.setUint32(e + SLOT.host!, r.hva, true);
      this.dv.setUint32(e + SLOT.dirty!, r.dirty, true);
      this.dv.setUint32(e + SLOT.flags!, r.flags, true);
      this.dv.setUint32(e + SLOT.id!, r.slot, true);
    }
    this.dv.setUint32(vmc("nslots"), list.length, true);
    const gen = vmc("memslot_gen");
    this.dv.setUint32(gen, (this.dv.getUint32(gen, true) + 1) >>> 0, true);
  }

  /** The memslot generation (bumped on every memslot change). */
  get memslotGen(): number {
    return this.dv.getUint32(vmc("memslot_gen"), true);
  }

  // ---- host view of guest memory ----

  /** addr_gpa2hva: the shared-memory offset backing `gpa`. */
  gpa2hva(gpa: number): number {
    const r = this.#regionAt(gpa);
    if (!r) throw new NoGuestMemoryError(gpa, 1);
    return r.hva + (gpa - r.gpa);
  }

  /** addr_hva2gpa. */
  hva2gpa(hva: number): number {
    for (const r of this.#regions.values()) if (hva >= r.hva && hva < r.hva + r.size) return r.gpa + (hva - r.hva);
    throw new NoHostMappingError(hva);
  }

  /** A live view of `len` bytes of guest memory at `gpa` (must lie in one region). */
  guestView(gpa: number, len: number): Uint8Array {
    const r = this.#regionAt(gpa);
    if (!r || gpa + len > r.gpa + r.size) throw new NoGuestMemoryError(gpa, len);
    const at = r.hva + (gpa - r.gpa);
    return this.u8.subarray(at, at + len);
  }

  /** Copy bytes into guest physical memory (may span regions). */
  writeGuest(gpa: number, bytes: ArrayLike<number>): void {
    let done = 0;
    while (done < bytes.length) {
      const r = this.#regionAt(gpa + done);
      if (!r) throw new NoGuestMemoryError(gpa + done, bytes.length - done);
      const n = Math.min(bytes.length - done, r.gpa + r.size - (gpa + done));
      const at = r.hva + (gpa + done - r.gpa);
      for (let i = 0; i < n; i++) this.u8[at + i] = bytes[done + i]! & 0xff;
      done += n;
    }
  }

  /** Copy `len` bytes out of guest physical memory (may span regions). */
  readGuest(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const r = this.#regionAt(gpa + done);
      if (!r) throw new NoGuestMemoryError(gpa + done, len - done);
      const n = Math.min(len - done, r.gpa + r.size - (gpa + done));
      const at = r.hva + (gpa + done - r.gpa);
      out.set(this.u8.subarray(at, at + n), done);
      done += n;
    }
    return out;
  }

  /** GuestPhys: read a u64 at `gpa`. */
  read64(gpa: number): bigint {
    return this.dv.getBigUint64(this.gpa2hva(gpa), true);
  }
  /** GuestPhys: write a u64 at `gpa`. */
  write64(gpa: number, v: bigint): void {
    this.guestView(gpa, 8);
    this.dv.setBigUint64(this.gpa2hva(gpa), BigInt.asUintN(64, v), true);
  }
  /** GuestPhys: a zeroed page for page tables from `pgdSlot`. */
  allocTablePage(): number {
    const gpa = this.physPageAlloc(MIN_PADDR, this.pgdSlot);
    this.guestView(gpa, PAGE_SIZE).fill(0);
    return gpa;
  }

  // ---- physical and virtual allocation (kvm_util) ----

  /** vm_phy_page_alloc: the first unused page at or above `paddrMin` in `slot`, marked used. */
  physPageAlloc(paddrMin = MIN_PADDR, slot = 0): number {
    if (paddrMin % PAGE_SIZE !== 0) throw new NotPageAlignedError("minimum physical address", paddrMin, PAGE_SIZE);
    const r = this.#region(slot);
    const first = Math.max(0, Math.ceil((paddrMin - r.gpa) / PAGE_SIZE));
    for (let p = first; p < r.used.length; p++) {
      if (r.used[p] === 0) {
        r.used[p] = 1;
        return r.gpa + p * PAGE_SIZE;
      }
    }
    throw new NoPhysPageError(paddrMin, slot);
  }

  /** Mark `[gpa, gpa + size)` used so physPageAlloc skips it (for loaded code and fixed tables). */
  reservePhys(gpa: number, size: number): void {
    for (let a = gpa - (gpa % PAGE_SIZE); a < gpa + size; a += PAGE_SIZE) {
      const r = this.#regionAt(a);
      if (!r) throw new NoGuestMemoryError(a, PAGE_SIZE);
      r.used[(a - r.gpa) / PAGE_SIZE] = 1;
    }
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
    if ((gpa + (opts.pageSize ?? PAGE_4K) - 1) / PAGE_SIZE > this.maxGfn) {
      throw new BeyondMaxGfnError(gpa, (opts.pageSize ?? PAGE_4K) / PAGE_SIZE, this.maxGfn);
    }
    mapPage(this, pml4, BigInt(gva), gpa, opts);
    const size = opts.pageSize ?? PAGE_4K;
    if (size === PAGE_4K) this.#vpagesMapped.add(BigInt.asUintN(64, BigInt(gva)) >> 12n);
  }

  /** virt_map: map `size` bytes page by page (kvm_util checks for overflow). */
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

  /**
   * vm_vaddr_alloc: at least `size` bytes of fresh pages (from `dataSlot`)
   * mapped at the lowest free virtual address ≥ `vaddrMin`.
   */
  vaddrAlloc(
    size: number,
    vaddrMin: bigint | number = MIN_VADDR,
    opts: { dataSlot?: number; pgdSlot?: number } = {},
  ): bigint {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new InvalidArgumentError("vaddrAlloc size", `${size}: expected a positive byte count`);
    }
    this.pgdAlloc(opts.pgdSlot ?? this.pgdSlot);
    const pages = Math.ceil(size / PAGE_SIZE);
    const start = this.#vaddrUnusedGap(pages, BigInt(vaddrMin));
    for (let i = 0; i < pages; i++) {
      const gpa = this.physPageAlloc(MIN_PADDR, opts.dataSlot ?? 0);
      this.virtPgMap(start + BigInt(i * PAGE_SIZE), gpa);
    }
    return start;
  }

  #pageFree(vpn: bigint): boolean {
    if (this.#vpagesMapped.has(vpn)) return false;
    const va = vpn << 12n;
    const canon = va & (1n << 47n) ? va | 0xffff000000000000n : va;
    try {
      walk(this, this.pgd!, canon);
      return false;
    } catch {
      return true;
    }
  }

  #vaddrUnusedGap(pages: number, vaddrMin: bigint): bigint {
    let vpn = (vaddrMin + 0xfffn) >> 12n;
    const lowEnd = 1n << 35n; // first VPN of the non-canonical hole
    let run = 0;
    let startVpn = vpn;
    for (let tries = 0; tries < 1 << 22 && vpn < lowEnd; tries++, vpn++) {
      if (this.#pageFree(vpn)) {
        if (run === 0) startVpn = vpn;
        if (++run === pages) return startVpn << 12n;
      } else if (this.#largeMappedSkip(vpn) > 0n) {
        vpn += this.#largeMappedSkip(vpn) - 1n;
        run = 0;
      } else run = 0;
    }
    throw new VirtualMemoryError(`no virtual range of ${hx(pages)} pages available at or above ${hx(vaddrMin)}`);
  }

  /** Pages to skip when `vpn` sits in a large mapping (so a 4 GiB identity map is stepped over quickly). */
  #largeMappedSkip(vpn: bigint): bigint {
    try {
      const t = walk(this, this.pgd!, vpn << 12n);
      if (t.pageSize === PAGE_4K) return 0n;
      const per = BigInt(t.pageSize / PAGE_SIZE);
      return per - (vpn % per);
    } catch {
      return 0n;
    }
  }

  /** addr_gva2gpa through vm.pgd (or `cr3` when given). Throws UnmappedGvaError. */
  gva2gpa(gva: bigint | number, cr3?: number): number {
    const root = cr3 ?? this.pgd;
    if (root === undefined) {
      throw new VirtualMemoryError("no page tables: call pgdAlloc/virtMap or set up long mode first");
    }
    return walk(this, root, BigInt(gva)).gpa;
  }

  /** The full translation (level, page size, leaf entry). */
  translate(gva: bigint | number, cr3?: number): Translation {
    const root = cr3 ?? this.pgd;
    if (root === undefined) throw new VirtualMemoryError("no page tables");
    return walk(this, root, BigInt(gva));
  }

  /** addr_gva2hva. */
  gva2hva(gva: bigint | number): number {
    return this.gpa2hva(this.gva2gpa(gva));
  }

  /** kvm_memcmp_hva_gva: compare host bytes with guest-virtual memory; <0, 0, >0 like memcmp. */
  memcmp(host: Uint8Array, gva: bigint | number, len = host.length): number {
    if (len > host.length) {
      throw new InvalidArgumentError("memcmp", `length ${len} exceeds the ${host.length}-byte host buffer`);
    }
    const base = BigInt(gva);
    let off = 0;
    while (off < len) {
      const gpa = this.gva2gpa(base + BigInt(off));
      const n = Math.min(len - off, PAGE_SIZE - (gpa % PAGE_SIZE));
      const g = this.guestView(gpa, n);
      for (let i = 0; i < n; i++) {
        const d = host[off + i]! - g[i]!;
        if (d !== 0) return d;
      }
      off += n;
    }
    return 0;
  }

  // ---- vCPUs ----

  /** vm_vcpu_add: a vCPU in its reset state (kvm_vcpu_reset). */
  addVcpu(id: number, opts: { budget?: number } = {}): Vcpu {
    checkVcpuId(id);
    if (this.#vcpus.has(id)) throw new VcpuExistsError(id);
    const block = this.#blocks.indexOf(undefined);
    if (block < 0) throw new NoSuchVcpuError(id, `all ${MAX_VCPUS} vcpu blocks are in use`);
    const base = vcpuRunBase(block);
    this.u8.fill(0, base, base + VCPU_BLOCK_SIZE);
    const vcpu = new Vcpu(this, id, block, base);
    this.#blocks[block] = vcpu;
    this.#vcpus.set(id, vcpu);
    this.#syncVcpuCount();
    vcpu.setRegs(resetRegs(this.cpuidSignature()));
    vcpu.setSregs(resetSregs(id));
    vcpu.setDebugRegs(resetDebugRegs());
    vcpu.setXcr0(RESET_XCR0);
    vcpu.setMsrs(resetMsrs().map(([index, data]) => ({ index, data })));
    vcpu.setMpState(K.KVM_MP_STATE_RUNNABLE);
    if (opts.budget !== undefined) vcpu.budget = opts.budget;
    return vcpu;
  }

  /** vm_vcpu_rm. */
  removeVcpu(id: number): void {
    const v = this.vcpu(id);
    this.#vcpus.delete(id);
    this.#blocks[v.block] = undefined;
    v.markRemoved();
    this.u8.fill(0, v.runBase, v.runBase + VCPU_BLOCK_SIZE);
    this.#syncVcpuCount();
  }

  /** vcpu_find (throws when absent). */
  vcpu(id: number): Vcpu {
    const v = this.#vcpus.get(id);
    if (!v) throw new NoSuchVcpuError(id, `vcpu not found (vcpus: [${[...this.#vcpus.keys()].join(", ")}])`);
    return v;
  }

  vcpus(): Vcpu[] {
    return [...this.#vcpus.values()];
  }

  #syncVcpuCount(): void {
    let n = 0;
    this.#blocks.forEach((b, i) => b && (n = i + 1));
    this.dv.setUint32(vmc("nvcpus"), n, true);
  }

  // ---- CPUID, MSR exits, hypercalls ----

  /** KVM_SET_CPUID2 (one table per VM, in the VM control block). */
  setCpuid(entries: readonly CpuidEntry[]): void {
    if (entries.length > MAX_CPUID_ENTRIES) {
      throw new InvalidArgumentError(
        "cpuid",
        `${entries.length} entries: expected at most ${MAX_CPUID_ENTRIES} (E2BIG)`,
      );
    }
    const base = vmc("cpuid");
    this.u8.fill(0, base, base + MAX_CPUID_ENTRIES * CPUID_STRIDE);
    entries.forEach((e, i) => {
      for (const f of CPUID_FIELDS) this.dv.setUint32(base + i * CPUID_STRIDE + CPUID_OFF[f], e[f] >>> 0, true);
    });
    this.dv.setUint32(vmc("ncpuid"), entries.length, true);
    this.#cpuid = entries.map((e) => ({ ...e }));
  }

  /** KVM_GET_CPUID2. */
  getCpuid(): CpuidEntry[] {
    return this.#cpuid.map((e) => ({ ...e }));
  }

  /** CPUID.1.EAX from the table (KVM uses 0x600 when leaf 1 is absent). */
  cpuidSignature(): number {
    return findCpuid(this.#cpuid, 1)?.eax ?? (this.#cpuid.length ? 0x600 : CPUID_SIGNATURE);
  }

  /** KVM_CAP_X86_USER_SPACE_MSR: exit to userspace for these KVM_MSR_EXIT_REASON_* reasons. */
  enableUserSpaceMsr(mask: number): void {
    if ((mask & ~USER_MSR_VALID) !== 0) {
      throw new InvalidArgumentError(
        "user-space MSR mask",
        `${hx(mask)}: expected bits of KVM_MSR_EXIT_REASON_INVAL|UNKNOWN|FILTER (${hx(USER_MSR_VALID)})`,
      );
    }
    this.dv.setUint32(vmc("user_msr_mask"), mask, true);
  }

  /** KVM_X86_SET_MSR_FILTER. Bitmap bit set = allow. `ranges: []` with flags 0 removes the filter. */
  setMsrFilter(filter: MsrFilter): void {
    if ((filter.flags & ~K.KVM_MSR_FILTER_DEFAULT_DENY) !== 0) {
      throw new InvalidArgumentError(
        "MSR filter flags",
        `${hx(filter.flags)}: expected KVM_MSR_FILTER_DEFAULT_ALLOW (0) or _DENY (1)`,
      );
    }
    if (filter.ranges.length > MAX_MSR_FILTER_RANGES) {
      throw new InvalidArgumentError(
        "MSR filter",
        `${filter.ranges.length} ranges: expected at most ${MAX_MSR_FILTER_RANGES}`,
      );
    }
    let used = 0;
    filter.ranges.forEach((r, i) => {
      const valid = K.KVM_MSR_FILTER_READ | K.KVM_MSR_FILTER_WRITE;
      if (r.flags === 0 || (r.flags & ~valid) !== 0) {
        throw new InvalidArgumentError(
          `MSR filter range ${i}`,
          `flags ${hx(r.flags)}: expected KVM_MSR_FILTER_READ and/or _WRITE`,
        );
      }
      if (!Number.isInteger(r.nmsrs) || r.nmsrs <= 0 || r.bitmap.length < Math.ceil(r.nmsrs / 8)) {
        throw new InvalidArgumentError(
          `MSR filter range ${i}`,
          `nmsrs ${r.nmsrs} with a ${r.bitmap.length}-byte bitmap: expected nmsrs > 0 and ceil(nmsrs/8) bitmap bytes`,
        );
      }
      used += Math.ceil(Math.ceil(r.nmsrs / 8) / 8) * 8;
    });
    if (used > MSR_FILTER_BITMAP_BYTES) {
      throw new InvalidArgumentError(
        "MSR filter",
        `bitmaps need ${used} bytes: expected at most ${MSR_FILTER_BITMAP_BYTES}`,
      );
    }
    const bitmaps = vmc("msr_bitmaps");
    const ranges = vmc("msr_filter");
    this.u8.fill(0, ranges, ranges + MAX_MSR_FILTER_RANGES * MSRF_STRIDE);
    this.u8.fill(0, bitmaps, bitmaps + MSR_FILTER_BITMAP_BYTES);
    let at = bitmaps;
    filter.ranges.forEach((r, i) => {
      const e = ranges + i * MSRF_STRIDE;
      const bytes = Math.ceil(r.nmsrs / 8);
      this.u8.set(r.bitmap.subarray(0, bytes), at);
      this.dv.setUint32(e + MSRF.flags!, r.flags, true);
      this.dv.setUint32(e + MSRF.nmsrs!, r.nmsrs, true);
      this.dv.setUint32(e + MSRF.base!, r.base >>> 0, true);
      this.dv.setUint32(e + MSRF.bitmap!, at - bitmaps, true); // byte offset into vm_control.msr_bitmaps
      at += Math.ceil(bytes / 8) * 8;
    });
    this.dv.setUint32(vmc("msr_filter_flags"), filter.flags, true);
    this.dv.setUint32(vmc("msr_filter_nranges"), filter.ranges.length, true);
  }

  /** KVM_CAP_EXIT_HYPERCALL: hypercall numbers (bit n = nr n) that exit to userspace. */
  enableHypercallExit(mask: number): void {
    if ((mask & ~HYPERCALL_EXIT_VALID_MASK) !== 0) {
      throw new InvalidArgumentError(
        "hypercall exit mask",
        `${hx(mask)}: only KVM_HC_MAP_GPA_RANGE (${hx(HYPERCALL_EXIT_VALID_MASK)}) may exit`,
      );
    }
    this.dv.setUint32(vmc("hypercall_exit_mask"), mask, true);
  }

  /** A VM control-block u32 by field path (for tests and dumps). */
  controlField(path: string): number {
    return this.dv.getUint32(vmc(path), true);
  }

  // ---- run loop and dump ----

  /** Run `vcpu` until a stop outcome or a limit (see {@link runUntil}). Devices default to vm.pio / vm.mmio. */
  runUntil(vcpu: Vcpu, opts: RunUntilOptions = {}): RunResult {
    return runUntil(vcpu, { pio: this.pio, mmio: this.mmio, ...opts });
  }

  /** vm_dump: regions, mapped virtual pages, page tables, vCPUs. */
  dump(indent = 0): string {
    const pad = " ".repeat(indent);
    const lines = [
      `${pad}mode: x86_64 4-level paging, pa_bits: ${this.paBits}`,
      `${pad}page_size: ${hx(this.pageSize)}`,
      `${pad}memory: ${hx(this.buffer.byteLength)} bytes (pool ${hx(this.#pool.size)} at ${hx(this.#pool.base)}, ${
        hx(this.#pool.freeBytes())
      } free)`,
      `${pad}memslot_gen: ${this.memslotGen}`,
      `${pad}Mem Regions:`,
    ];
    for (const r of [...this.#regions.values()].sort((a, b) => a.gpa - b.gpa)) {
      const used = r.used.reduce((n, b) => n + b, 0);
      lines.push(
        `${pad}  slot: ${r.slot} guest_phys: ${hx(r.gpa)} size: ${hx(r.size)} host_virt: ${hx(r.hva)} flags: ${
          hx(r.flags)
        }` +
          ` dirty_bitmap: ${hx(r.dirty)} used_phy_pages: ${used}/${r.used.length}`,
      );
    }
    lines.push(`${pad}Mapped Virtual Pages (4 KiB, via virtMap/vaddrAlloc): ${this.#vpagesMapped.size}`);
    lines.push(`${pad}pgd_created: ${this.pgd !== undefined ? 1 : 0}`);
    if (this.pgd !== undefined) {
      lines.push(
        `${pad}  Virtual Translation Tables (pml4 at ${hx(this.pgd)}):`,
        dumpTables(this, this.pgd, indent + 4),
      );
    }
    lines.push(
      `${pad}PIO bus: ${
        this.pio.ranges().map((r) => `${hx(r.base)}+${hx(r.len)} ${r.device.name}`).join(", ") || "(empty)"
      }`,
    );
    lines.push(
      `${pad}MMIO bus: ${
        this.mmio.ranges().map((r) => `${hx(r.base)}+${hx(r.len)} ${r.device.name}`).join(", ") || "(empty)"
      }`,
    );
    lines.push(`${pad}VCPUs:`);
    for (const v of this.#vcpus.values()) lines.push(v.dump(indent + 2));
    return lines.join("\n");
  }
}

/**
 * Create a VM (KVM_CREATE_VM + the shared memory, sized once). With
 * `backend: "kvm"` the VM runs on the host's /dev/kvm (src/backends/kvm/).
 */
export function createVm(opts?: CreateVmOptions & { backend?: "sim" }): Vm;
export function createVm(opts: KvmVmOptions & { backend: "kvm" }): BackendVm;
export function createVm(opts: (CreateVmOptions | KvmVmOptions) & { backend?: BackendName }): GuestVm;
export function createVm(opts: (CreateVmOptions | KvmVmOptions) & { backend?: BackendName } = {}): Vm | BackendVm {
  const { backend, ...rest } = opts;
  return backend === "kvm" ? createKvmVm(rest as KvmVmOptions) : new Vm(rest as CreateVmOptions);
}
