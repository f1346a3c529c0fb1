/**
 * The kvm_util-style front end over a {@link VmBackend}: {@link BackendVm}
 * keeps the memory-region bookkeeping (kvm_util's checks, as the same typed
 * errors the simulator's Vm throws), the host view of guest memory, the
 * physical page allocator, page tables (through src/x86/page_tables.ts) and
 * the run loop; {@link BackendVcpu} gives partial register updates, MSRs,
 * guest debug and KVM_RUN with the kvm_run view decodeExit reads.
 *
 * `createVm({backend: "kvm"})` returns one of these over the host's
 * /dev/kvm; the x86 setups and `runUntil` take it like the simulator's Vm.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../abi/constants.ts";
import { MmioBus, PioBus } from "../devices/bus.ts";
import {
  BeyondMaxGfnError,
  DirtyLogDisabledError,
  DuplicateSlotError,
  InvalidArgumentError,
  InvalidMemoryFlagsError,
  MemoryRegionOverlapError,
  NoGuestMemoryError,
  NoPhysPageError,
  NoSuchSlotError,
  NoSuchVcpuError,
  NotPageAlignedError,
  VcpuExistsError,
  VirtualMemoryError,
} from "../errors.ts";
import { decodeExit, immediateExit, type KvmRun, setImmediateExit } from "../exits/decode.ts";
import type { VcpuExit } from "../exits/exit.ts";
import { type RunResult, runUntil, type RunUntilOptions } from "../exits/run_loop.ts";
import type { GuestDebug, MsrEntry } from "../vcpu.ts";
import type { MemoryRegion, MemoryRegionOptions } from "../vm.ts";
import type { CoreExports } from "../wasm.ts";
import type { CpuidEntry } from "../x86/cpuid.ts";
import { type MapOptions, mapPage, PAGE_4K, type Translation, walk } from "../x86/page_tables.ts";
import type { KvmRegs, KvmSregs } from "../x86/regs.ts";
import type { BackendName, GuestVcpu, GuestVm, VcpuBackend, VmBackend } from "./types.ts";
import { KvmUnsupportedError } from "./kvm/errors.ts";

const PAGE = 4096;
const VALID_MEM_FLAGS = K.KVM_MEM_LOG_DIRTY_PAGES | K.KVM_MEM_READONLY;
const MIN_PADDR = 0x2000;
/** Guest-physical width the front end allows (the simulator's MAXPHYADDR). */
const PA_BITS = 48;
const MAX_GFN = 2 ** PA_BITS / PAGE - 1;
const hx = (v: number | bigint) => `0x${v.toString(16)}`;
const dirtyBytes = (size: number) => Math.ceil(size / PAGE / 64) * 8;

interface Region {
  slot: number;
  gpa: number;
  size: number;
  flags: number;
  hva: number;
  u8: Uint8Array;
  dv: DataView;
  used: Uint8Array;
}

export interface BackendVmOptions {
  /** The CPUID table for new vCPUs (default: the backend's supported table). */
  cpuid?: readonly CpuidEntry[];
  /** A memory region of this many bytes at GPA 0, slot 0. */
  memSize?: number;
  /** Watchdog for every KVM_RUN of this VM's vCPUs, in ms (default: none). */
  runTimeoutMs?: number;
}

export class BackendVm implements GuestVm {
  readonly pio = new PioBus();
  readonly mmio = new MmioBus();
  readonly pageSize = PAGE;
  readonly paBits = PA_BITS;
  readonly maxGfn = MAX_GFN;
  pgd: number | undefined;
  pgdSlot = 0;
  /** Default KVM_RUN watchdog for new vCPUs, in ms. */
  runTimeoutMs: number | undefined;
  readonly #regions = new Map<number, Region>();
  readonly #vcpus = new Map<number, BackendVcpu>();
  #cpuid: CpuidEntry[];

  constructor(readonly backend: VmBackend, opts: BackendVmOptions = {}) {
    this.#cpuid = (opts.cpuid ?? backend.supportedCpuid()).map((e) => ({ ...e }));
    this.runTimeoutMs = opts.runTimeoutMs;
    if (opts.memSize !== undefined) this.addMemoryRegion({ slot: 0, gpa: 0, size: opts.memSize });
  }

  get backendName(): BackendName {
    return this.backend.name;
  }

  // ---- memory regions ----

  addMemoryRegion(opts: MemoryRegionOptions): MemoryRegion {
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
    if (gpa / PAGE + size / PAGE - 1 > MAX_GFN) throw new BeyondMaxGfnError(gpa, size / PAGE, MAX_GFN);
    const existing = this.#overlapping(gpa, gpa + size - 1);
    if (existing) {
      throw new MemoryRegionOverlapError(
        gpa,
        gpa + size - 1,
        existing.slot,
        existing.gpa,
        existing.gpa + existing.size - 1,
      );
    }
    const dup = this.#regions.get(slot);
    if (dup) throw new DuplicateSlotError(slot, dup.gpa, dup.size);
    if ((flags & ~VALID_MEM_FLAGS) !== 0) {
      throw new InvalidMemoryFlagsError(slot, flags, `unknown bits ${hx(flags & ~VALID_MEM_FLAGS)}`);
    }
    const mem = this.backend.addMemoryRegion(slot, flags, gpa, size);
    const u8 = mem.u8;
    const r: Region = {
      slot,
      gpa,
      size,
      flags,
      hva: mem.hva,
      u8,
      dv: new DataView(u8.buffer, u8.byteOffset, u8.byteLength),
      used: new Uint8Array(size / PAGE),
    };
    this.#regions.set(slot, r);
    return this.#public(r);
  }

  /** Toggle KVM_MEM_LOG_DIRTY_PAGES (KVM_MEM_READONLY cannot change). */
  setMemoryRegionFlags(slot: number, flags: number): void {
    const r = this.#region(slot);
    if ((flags & ~VALID_MEM_FLAGS) !== 0) {
      throw new InvalidMemoryFlagsError(slot, flags, `unknown bits ${hx(flags & ~VALID_MEM_FLAGS)}`);
    }
    if ((flags ^ r.flags) & K.KVM_MEM_READONLY) {
      throw new InvalidMemoryFlagsError(slot, flags, `KVM_MEM_READONLY cannot change (current flags ${hx(r.flags)})`);
    }
    this.backend.setMemoryRegionFlags(slot, flags);
    r.flags = flags;
  }

  removeMemoryRegion(slot: number): void {
    this.#region(slot);
    this.backend.removeMemoryRegion(slot);
    this.#regions.delete(slot);
  }

  memoryRegion(slot: number): MemoryRegion {
    return this.#public(this.#region(slot));
  }

  memoryRegions(): MemoryRegion[] {
    return [...this.#regions.values()].sort((a, b) => a.gpa - b.gpa).map((r) => this.#public(r));
  }

  /** KVM_GET_DIRTY_LOG (bit n = page n of the slot written since the last call). */
  getDirtyLog(slot: number): Uint8Array {
    const r = this.#region(slot);
    if ((r.flags & K.KVM_MEM_LOG_DIRTY_PAGES) === 0) throw new DirtyLogDisabledError(slot, r.flags);
    return this.backend.getDirtyLog(slot, dirtyBytes(r.size));
  }

  #public(r: Region): MemoryRegion {
    return { slot: r.slot, gpa: r.gpa, size: r.size, flags: r.flags, hva: r.hva, dirtyBitmap: 0 };
  }
  #region(slot: number): Region {
    const r = this.#regions.get(slot);
    if (!r) throw new NoSuchSlotError(slot, `existing slots: [${[...this.#regions.keys()].join(", ")}]`);
    return r;
  }
  #overlapping(start: number, end: number): Region | undefined {
    for (const r of this.#regions.values()) if (start <= r.gpa + r.size - 1 && end >= r.gpa) return r;
    return undefined;
  }
  #at(gpa: number): Region | undefined {
    for (const r of this.#regions.values()) if (gpa >= r.gpa && gpa < r.gpa + r.size) return r;
    return undefined;
  }

  // ---- host view of guest memory ----

  /** A live view of `len` bytes of guest memory at `gpa` (inside one region). */
  guestView(gpa: number, len: number): Uint8Array {
    const r = this.#at(gpa);
    if (!r || gpa + len > r.gpa + r.size) throw new NoGuestMemoryError(gpa, len);
    return r.u8.subarray(gpa - r.gpa, gpa - r.gpa + len);
  }

  writeGuest(gpa: number, bytes: ArrayLike<number>): void {
    let done = 0;
    while (done < bytes.length) {
      const r = this.#at(gpa + done);
      if (!r) throw new NoGuestMemoryError(gpa + done, bytes.length - done);
      const n = Math.min(bytes.length - done, r.gpa + r.size - (gpa + done));
      const at = gpa + done - r.gpa;
      for (let i = 0; i < n; i++) r.u8[at + i] = bytes[done + i]! & 0xff;
      done += n;
    }
  }

  readGuest(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const r = this.#at(gpa + done);
      if (!r) throw new NoGuestMemoryError(gpa + done, len - done);
      const n = Math.min(len - done, r.gpa + r.size - (gpa + done));
      out.set(r.u8.subarray(gpa + done - r.gpa, gpa + done - r.gpa + n), done);
      done += n;
    }
    return out;
  }

  read64(gpa: number): bigint {
    const r = this.#at(gpa);
    if (!r || gpa + 8 > r.gpa + r.size) throw new NoGuestMemoryError(gpa, 8);
    return r.dv.getBigUint64(gpa - r.gpa, true);
  }

  write64(gpa: number, v: bigint): void {
    const r = this.#at(gpa);
    if (!r || gpa + 8 > r.gpa + r.size) throw new NoGuestMemoryError(gpa, 8);
    r.dv.setBigUint64(gpa - r.gpa, BigInt.asUintN(64, v), true);
  }

  allocTablePage(): number {
    const gpa = this.physPageAlloc(MIN_PADDR, this.pgdSlot);
    this.guestView(gpa, PAGE).fill(0);
    return gpa;
  }

  // ---- physical allocation and page tables ----

  physPageAlloc(paddrMin = MIN_PADDR, slot = 0): number {
    if (paddrMin % PAGE !== 0) throw new NotPageAlignedError("minimum physical address", paddrMin, PAGE);
    const r = this.#region(slot);
    for (let p = Math.max(0, Math.ceil((paddrMin - r.gpa) / PAGE)); p < r.used.length; p++) {
      if (r.used[p] === 0) {
        r.used[p] = 1;
        return r.gpa + p * PAGE;
      }
    }
    throw new NoPhysPageError(paddrMin, slot);
  }

  reservePhys(gpa: number, size: number): void {
    for (let a = gpa - (gpa % PAGE); a < gpa + size; a += PAGE) {
      const r = this.#at(a);
      if (!r) throw new NoGuestMemoryError(a, PAGE);
      r.used[(a - r.gpa) / PAGE] = 1;
    }
  }

  pgdAlloc(slot = this.pgdSlot): number {
    if (this.pgd === undefined) {
      this.pgdSlot = slot;
      this.pgd = this.allocTablePage();
    }
    return this.pgd;
  }

  virtPgMap(gva: bigint | number, gpa: number, opts: MapOptions = {}): void {
    mapPage(this, this.pgdAlloc(), BigInt(gva), gpa, opts);
  }

  virtMap(gva: bigint | number, gpa: number, size: number, opts: MapOptions = {}): void {
    const page = opts.pageSize ?? PAGE_4K;
    if (size % page !== 0) throw new NotPageAlignedError("virt_map size", size, page);
    for (let off = 0; off < size; off += page) this.virtPgMap(BigInt(gva) + BigInt(off), gpa + off, opts);
  }

  translate(gva: bigint | number, cr3?: number): Translation {
    const root = cr3 ?? this.pgd;
    if (root === undefined) throw new VirtualMemoryError("no page tables");
    return walk(this, root, BigInt(gva));
  }

  gva2gpa(gva: bigint | number, cr3?: number): number {
    return this.translate(gva, cr3).gpa;
  }

  // ---- vCPUs, CPUID, capabilities ----

  addVcpu(id: number, opts: { budget?: number } = {}): BackendVcpu {
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new NoSuchVcpuError(id, "expected an id in 0..0xffff");
    if (this.#vcpus.has(id)) throw new VcpuExistsError(id);
    const v = new BackendVcpu(this.backend.createVcpu(id, this.#cpuid), id);
    if (this.runTimeoutMs !== undefined) v.runTimeoutMs = this.runTimeoutMs;
    if (opts.budget !== undefined) v.budget = opts.budget;
    this.#vcpus.set(id, v);
    return v;
  }

  vcpu(id: number): BackendVcpu {
    const v = this.#vcpus.get(id);
    if (!v) throw new NoSuchVcpuError(id, `vcpu not found (vcpus: [${[...this.#vcpus.keys()].join(", ")}])`);
    return v;
  }

  vcpus(): BackendVcpu[] {
    return [...this.#vcpus.values()];
  }

  /** The table later vCPUs get (KVM_SET_CPUID2 is per vCPU and must precede KVM_RUN). */
  setCpuid(entries: readonly CpuidEntry[]): void {
    if (this.#vcpus.size > 0) {
      throw new InvalidArgumentError(
        "cpuid",
        "set the CPUID table before the first vCPU (KVM_SET_CPUID2 after KVM_RUN is refused)",
      );
    }
    this.#cpuid = entries.map((e) => ({ ...e }));
  }

  getCpuid(): CpuidEntry[] {
    return this.#cpuid.map((e) => ({ ...e }));
  }

  enableUserSpaceMsr(mask: number): void {
    this.backend.enableUserSpaceMsr(mask);
  }

  enableHypercallExit(mask: number): void {
    this.backend.enableHypercallExit(mask);
  }

  /** runUntil with vm.pio / vm.mmio. `maxInstructions` needs an instruction-counting backend. */
  runUntil(vcpu: GuestVcpu, opts: RunUntilOptions = {}): RunResult {
    if (opts.maxInstructions !== undefined && Number.isNaN(vcpu.instructions)) {
      throw new KvmUnsupportedError("maxInstructions", "KVM does not count retired instructions");
    }
    return runUntil(vcpu, { pio: this.pio, mmio: this.mmio, ...opts });
  }

  /** Release the backend's fds and mappings; the VM is unusable afterwards. */
  close(): void {
    this.backend.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export class BackendVcpu implements GuestVcpu {
  readonly kvmRun: KvmRun;
  readonly runBase = 0;
  /** `host.core.run` is KVM_RUN (what src/exits/run_loop.ts calls). */
  readonly host: { readonly core: CoreExports };
  #budget = 1 << 24;

  constructor(readonly backend: VcpuBackend, readonly id: number) {
    this.kvmRun = backend.kvmRun;
    this.host = { core: { run: () => backend.run() } };
  }

  /** KVM_RUN watchdog in ms (undefined: none). Only the KVM backend has one. */
  get runTimeoutMs(): number | undefined {
    return (this.backend as { runTimeoutMs?: number }).runTimeoutMs;
  }
  set runTimeoutMs(ms: number | undefined) {
    if (ms !== undefined && (!Number.isFinite(ms) || ms <= 0)) {
      throw new InvalidArgumentError("runTimeoutMs", `${ms}: expected a positive number of milliseconds`);
    }
    (this.backend as { runTimeoutMs?: number }).runTimeoutMs = ms;
  }

  /** Accepted for API compatibility; KVM runs until the next exit. */
  get budget(): number {
    return this.#budget;
  }
  set budget(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) {
      throw new InvalidArgumentError("instruction budget", `${n}: expected an integer in 1..0x7fffffff`);
    }
    this.#budget = n;
  }

  /** NaN: KVM does not count retired instructions. */
  get instructions(): number {
    return NaN;
  }

  runRaw(_budget?: number): number {
    this.kvmRun.generation++;
    return this.backend.run();
  }

  run(budget?: number): VcpuExit {
    this.runRaw(budget);
    return decodeExit(this.kvmRun);
  }

  get immediateExit(): boolean {
    return immediateExit(this.kvmRun) !== 0;
  }
  set immediateExit(v: boolean) {
    setImmediateExit(this.kvmRun, v ? 1 : 0);
  }

  getRegs(): KvmRegs {
    return this.backend.getRegs();
  }

  /** KVM_SET_REGS; fields left out keep their value (read-modify-write). */
  setRegs(regs: Partial<KvmRegs>): void {
    for (const [k, v] of Object.entries(regs)) {
      if (v !== undefined && typeof v !== "bigint") {
        throw new InvalidArgumentError(`regs.${k}`, `${String(v)}: expected a bigint`);
      }
    }
    this.backend.setRegs({ ...this.backend.getRegs(), ...stripUndefined(regs) });
  }

  getSregs(): KvmSregs {
    return this.backend.getSregs();
  }

  /** KVM_SET_SREGS; fields left out keep their value. */
  setSregs(sregs: Partial<KvmSregs>): void {
    this.backend.setSregs({ ...this.backend.getSregs(), ...stripUndefined(sregs) });
  }

  getMsrs(indices: readonly number[]): MsrEntry[] {
    return this.backend.getMsrs(indices);
  }
  setMsrs(entries: readonly MsrEntry[]): void {
    this.backend.setMsrs(entries);
  }
  getMsr(index: number): bigint {
    return this.getMsrs([index])[0]!.data;
  }
  setMsr(index: number, data: bigint): void {
    this.setMsrs([{ index, data }]);
  }

  getMpState(): number {
    return this.backend.getMpState();
  }

  setGuestDebug(dbg: GuestDebug): void {
    this.backend.setGuestDebug(dbg);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
