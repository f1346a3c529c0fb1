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
  DirtyLogDisabledError,
  InvalidArgumentError,
  NoGuestMemoryError,
  NoHostMappingError,
  NoSuchVcpuError,
  VcpuExistsError,
  VirtualMemoryError,
} from "./errors.ts";
import {
  dirtyBytes,
  GuestMemoryVm,
  type GuestRegion,
  type MemoryRegion,
  type MemoryRegionOptions,
  MIN_PADDR,
} from "./guest_memory.ts";
import { RamPool } from "./vm_pool.ts";
import { checkVcpuId, Vcpu } from "./vcpu.ts";
import { type CoreExports, coreModule, createSharedMemory, instantiateCore } from "./wasm.ts";
import { CPUID_SIGNATURE, type CpuidEntry, defaultCpuid, findCpuid, MAXPHYADDR } from "./x86/cpuid.ts";
import { dumpTables, type GuestPhys, type MapOptions, PAGE_4K, walk } from "./x86/page_tables.ts";
import { RESET_XCR0, resetDebugRegs, resetMsrs, resetRegs, resetSregs } from "./x86/reset.ts";
import { MmioBus, PioBus } from "./devices/bus.ts";
import { type RunResult, runUntil, type RunUntilOptions } from "./exits/run_loop.ts";
import type { BackendVm } from "./backends/front.ts";
import { coalescedRing, type CoalescedZone } from "./exits/coalesced.ts";
import { CoalescedZoneTable } from "./coalesced_zones.ts";
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
export { MIN_PADDR };
/** kvm_util's DEFAULT_GUEST_VADDR-like lowest address vaddrAlloc searches from by default. */
export const MIN_VADDR = 0x10000n;
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

export type { MemoryRegion, MemoryRegionOptions } from "./guest_memory.ts";

interface Region extends GuestRegion {
  /** Offset of the dirty bitmap in the shared memory, 0 when not logging. */
  dirty: number;
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

export class Vm extends GuestMemoryVm<Region> implements GuestPhys {
  readonly memory: WebAssembly.Memory;
  readonly buffer: SharedArrayBuffer;
  readonly core: CoreExports;
  /** The compiled core this VM runs (a vCPU thread instantiates it again on `memory`: src/vcpu_thread.ts). */
  readonly module: WebAssembly.Module;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly pageSize = PAGE_SIZE;
  /** Physical-address width (CPUID 0x80000008.EAX[7:0]). */
  readonly paBits = MAXPHYADDR;
  /** The port-IO bus runUntil uses by default. */
  readonly pio = new PioBus();
  /** The MMIO bus runUntil uses by default. */
  readonly mmio = new MmioBus();
  readonly #pool: RamPool;
  readonly #vcpus = new Map<number, Vcpu>();
  readonly #blocks: (Vcpu | undefined)[] = new Array(MAX_VCPUS).fill(undefined);
  #cpuid: CpuidEntry[] = [];
  readonly #vpagesMapped = new Set<bigint>();
  readonly #coalesced: CoalescedZoneTable;

  constructor(opts: CreateVmOptions = {}) {
    super(2 ** MAXPHYADDR / PAGE_SIZE - 1);
    const pool = Math.ceil((opts.ramPoolSize ?? DEFAULT_RAM_POOL) / 65536) * 65536;
    if (!Number.isInteger(pool) || pool <= 0 || RAM_POOL_BASE + pool > MAX_MEMORY_BYTES) {
      throw new InvalidArgumentError(
        "ramPoolSize",
        `${opts.ramPoolSize}: expected 1..${hx(MAX_MEMORY_BYTES - RAM_POOL_BASE)} bytes`,
      );
    }
    this.memory = createSharedMemory(RAM_POOL_BASE + pool);
    this.buffer = this.memory.buffer as SharedArrayBuffer;
    this.module = opts.module ?? coreModule();
    this.core = instantiateCore(this.memory, this.module);
    this.u8 = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
    this.#pool = new RamPool(RAM_POOL_BASE, pool);
    this.dv.setUint32(vmc("ram_base"), RAM_POOL_BASE, true);
    this.dv.setUint32(vmc("ram_size"), pool >>> 0, true);
    this.dv.setUint32(vmc("vcpu_base"), VCPU_AREA_BASE, true);
    this.#coalesced = new CoalescedZoneTable(this.buffer, VM_CONTROL_BASE);
    this.#syncSlots();
    this.setCpuid(opts.cpuid ?? defaultCpuid());
    if (opts.memSize !== undefined) this.addMemoryRegion({ slot: 0, gpa: 0, size: opts.memSize });
  }

  // ---- memory regions (KVM_SET_USER_MEMORY_REGION) ----

  /** vm_userspace_mem_region_add with kvm_util's checks (typed errors). */
  addMemoryRegion(opts: MemoryRegionOptions): MemoryRegion {
    const { slot, gpa, size, flags } = this.mem.checkAdd(opts);
    const pages = size / PAGE_SIZE;
    if (this.mem.count >= MAX_MEMSLOTS) {
      throw new InvalidArgumentError("memory region", `all ${MAX_MEMSLOTS} memslots are in use`);
    }
    const hva = this.#pool.allocZeroed(size, this.u8);
    let dirty = 0;
    if (flags & K.KVM_MEM_LOG_DIRTY_PAGES) {
      try {
        dirty = this.#pool.allocZeroed(dirtyBytes(size), this.u8);
      } catch (e) {
        this.#pool.free(hva, size);
        throw e;
      }
    }
    const region: Region = {
      slot,
      gpa,
      size,
      flags,
      hva,
      dirty,
      u8: this.u8.subarray(hva, hva + size),
      dv: new DataView(this.buffer, hva, size),
      used: new Uint8Array(pages),
    };
    this.mem.add(region);
    this.#syncSlots();
    return this.#public(region);
  }

  /** vm_mem_region_set_flags. Toggling KVM_MEM_LOG_DIRTY_PAGES is allowed; changing KVM_MEM_READONLY is not (KVM: EINVAL). */
  setMemoryRegionFlags(slot: number, flags: number): void {
    const r = this.mem.checkFlags(slot, flags);
    const log = (flags & K.KVM_MEM_LOG_DIRTY_PAGES) !== 0;
    if (log && r.dirty === 0) {
      r.dirty = this.#pool.allocZeroed(dirtyBytes(r.size), this.u8);
    } else if (!log && r.dirty !== 0) {
      this.#pool.free(r.dirty, dirtyBytes(r.size));
      r.dirty = 0;
    }
    r.flags = flags;
    this.#syncSlots();
  }

  /** Delete a memory region (KVM_SET_USER_MEMORY_REGION with memory_size 0); its backing returns to the pool. */
  removeMemoryRegion(slot: number): void {
    const r = this.mem.get(slot);
    this.mem.delete(slot);
    this.#pool.free(r.hva, r.size);
    if (r.dirty) this.#pool.free(r.dirty, dirtyBytes(r.size));
    this.#syncSlots();
  }

  /** The region with `slot` (kvm_util memslot2region). */
  memoryRegion(slot: number): MemoryRegion {
    return this.#public(this.mem.get(slot));
  }

  /** All regions, by GPA. */
  memoryRegions(): MemoryRegion[] {
    return this.mem.byGpa().map((r) => this.#public(r));
  }

  /** kvm_userspace_memory_region_find: a region overlapping `[start, end]`, or undefined. */
  findMemoryRegion(start: number, end: number): MemoryRegion | undefined {
    const r = this.mem.overlapping(start, end);
    return r && this.#public(r);
  }

  /**
   * KVM_GET_DIRTY_LOG: the slot's bitmap (bit n = page n written since the
   * last call, 64-bit words little-endian), cleared as it is returned.
   */
  getDirtyLog(slot: number): Uint8Array {
    const r = this.mem.get(slot);
    if (r.dirty === 0) throw new DirtyLogDisabledError(slot, r.flags);
    const n = dirtyBytes(r.size);
    // Fetch-and-clear each byte atomically: a vCPU in another Worker may be setting bits
    // (the core ORs them in atomically), and a bit set between a copy and a clear would be lost.
    const copy = new Uint8Array(n);
    for (let i = 0; i < n; i++) copy[i] = Atomics.exchange(this.u8, r.dirty + i, 0);
    // KVM write-protects the logged pages again; here every vCPU flushes its TLB (whose
    // writable entries would skip the log) at its next run() entry. A vCPU running in
    // another Worker right now sees it when its run() returns (KVM would kick it).
    this.#bumpMemslotGen();
    return copy;
  }

  #public(r: Region): MemoryRegion {
    return { slot: r.slot, gpa: r.gpa, size: r.size, flags: r.flags, hva: r.hva, dirtyBitmap: r.dirty };
  }
  /** Rewrite the memslot table in the VM control block (compact, sorted by GPA) and bump memslot_gen. */
  #syncSlots(): void {
    const base = vmc("slots");
    const list = this.mem.byGpa();
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
    this.#bumpMemslotGen();
  }

  #bumpMemslotGen(): void {
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
    const r = this.mem.at(gpa);
    if (!r) throw new NoGuestMemoryError(gpa, 1);
    return r.hva + (gpa - r.gpa);
  }

  /** addr_hva2gpa. */
  hva2gpa(hva: number): number {
    for (const r of this.mem.all()) if (hva >= r.hva && hva < r.hva + r.size) return r.gpa + (hva - r.hva);
    throw new NoHostMappingError(hva);
  }

  /** GuestPhys: read a u64 at `gpa` (only `gpa` itself is checked to be guest memory). */
  override read64(gpa: number): bigint {
    return this.dv.getBigUint64(this.gpa2hva(gpa), true);
  }

  /** virt_pg_map: map one page (4 KiB by default) under vm.pgd. */
  override virtPgMap(gva: bigint | number, gpa: number, opts: MapOptions = {}): void {
    super.virtPgMap(gva, gpa, opts);
    if ((opts.pageSize ?? PAGE_4K) === PAGE_4K) this.#vpagesMapped.add(BigInt.asUintN(64, BigInt(gva)) >> 12n);
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

  /**
   * kvm_vm_free: remove every vCPU (their run()s throw from now on) and every
   * memory region, so the VM holds no guest state; the shared memory is
   * released when the last reference to the VM goes. Idempotent. The kvm
   * backend's VM has the same method (it closes the fds).
   */
  close(): void {
    for (const id of [...this.#vcpus.keys()]) this.removeVcpu(id);
    for (const r of this.memoryRegions()) this.removeMemoryRegion(r.slot);
  }

  [Symbol.dispose](): void {
    this.close();
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

  /** The CPUID table as set (not a copy: do not change it). */
  cpuidTable(): readonly CpuidEntry[] {
    return this.#cpuid;
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

  // ---- coalesced MMIO/PIO (src/coalesced_zones.ts) ----

  /** KVM_REGISTER_COALESCED_MMIO: guest writes wholly inside the zone are appended to the ring instead of exiting. */
  registerCoalescedMmio(zone: CoalescedZone): void {
    this.#coalesced.register(zone);
  }

  /** KVM_UNREGISTER_COALESCED_MMIO: removes every zone of the bus that contains the range (none: no error). */
  unregisterCoalescedMmio(zone: CoalescedZone): void {
    this.#coalesced.unregister(zone);
  }

  /** The registered zones, in registration order. */
  coalescedZones(): CoalescedZone[] {
    return this.#coalesced.zones();
  }

  /** The VM's ring page (in the VM control block; KVM maps it at page 2 of each vCPU's mmap instead). */
  coalescedRing(): Uint8Array {
    return this.#coalesced.ring;
  }

  // ---- run loop and dump ----

  /**
   * Run `vcpu` until a stop outcome or a limit (see {@link runUntil}). Devices
   * default to vm.pio / vm.mmio; the coalesced ring is drained while a zone is
   * registered or writes are pending.
   */
  runUntil(vcpu: Vcpu, opts: RunUntilOptions = {}): RunResult {
    const c = this.#coalesced;
    if (c.count > 0 || coalescedRing(c.ring).pending()) {
      return runUntil(vcpu, { pio: this.pio, mmio: this.mmio, coalesced: c.ring, ...opts });
    }
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
    for (const r of this.mem.byGpa()) {
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
