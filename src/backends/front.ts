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
import { DirtyLogDisabledError, InvalidArgumentError, NoSuchVcpuError, VcpuExistsError } from "../errors.ts";
import {
  dirtyBytes,
  GuestMemoryVm,
  type GuestRegion,
  type MemoryRegion,
  type MemoryRegionOptions,
  PAGE,
} from "../guest_memory.ts";
import { decodeExit, immediateExit, type KvmRun, setImmediateExit } from "../exits/decode.ts";
import type { VcpuExit } from "../exits/exit.ts";
import { checkCoalescedZone, coalescedRing, type CoalescedZone, zonesAfterUnregister } from "../exits/coalesced.ts";
import { type RunResult, runUntil, type RunUntilOptions } from "../exits/run_loop.ts";
import type { GuestDebug, MsrEntry } from "../vcpu.ts";
import type { CoreExports } from "../wasm.ts";
import type { CpuidEntry } from "../x86/cpuid.ts";
import type { KvmRegs, KvmSregs } from "../x86/regs.ts";
import type { BackendName, GuestVcpu, GuestVm, VcpuBackend, VmBackend } from "./types.ts";
import { KvmUnsupportedError } from "./kvm/errors.ts";

/** Guest-physical width the front end allows (the simulator's MAXPHYADDR). */
const PA_BITS = 48;
const MAX_GFN = 2 ** PA_BITS / PAGE - 1;

export interface BackendVmOptions {
  /** The CPUID table for new vCPUs (default: the backend's supported table). */
  cpuid?: readonly CpuidEntry[];
  /** A memory region of this many bytes at GPA 0, slot 0. */
  memSize?: number;
  /** Watchdog for every KVM_RUN of this VM's vCPUs, in ms (default: none). */
  runTimeoutMs?: number;
}

export class BackendVm extends GuestMemoryVm<GuestRegion> implements GuestVm {
  readonly pio = new PioBus();
  readonly mmio = new MmioBus();
  readonly pageSize = PAGE;
  readonly paBits = PA_BITS;
  /** Default KVM_RUN watchdog for new vCPUs, in ms. */
  runTimeoutMs: number | undefined;
  readonly #vcpus = new Map<number, BackendVcpu>();
  #cpuid: CpuidEntry[];
  /** The zones registered with the backend (KVM keeps no list userspace can read). */
  #zones: CoalescedZone[] = [];
  #ringUsed = false;
  #closed = false;

  constructor(readonly backend: VmBackend, opts: BackendVmOptions = {}) {
    super(MAX_GFN);
    this.#cpuid = (opts.cpuid ?? backend.supportedCpuid()).map((e) => ({ ...e }));
    this.runTimeoutMs = opts.runTimeoutMs;
    if (opts.memSize !== undefined) this.addMemoryRegion({ slot: 0, gpa: 0, size: opts.memSize });
  }

  get backendName(): BackendName {
    return this.backend.name;
  }

  // ---- memory regions ----

  addMemoryRegion(opts: MemoryRegionOptions): MemoryRegion {
    const { slot, gpa, size, flags } = this.mem.checkAdd(opts);
    const mem = this.backend.addMemoryRegion(slot, flags, gpa, size);
    const u8 = mem.u8;
    const r: GuestRegion = {
      slot,
      gpa,
      size,
      flags,
      hva: mem.hva,
      u8,
      dv: new DataView(u8.buffer, u8.byteOffset, u8.byteLength),
      used: new Uint8Array(size / PAGE),
    };
    this.mem.add(r);
    return this.#public(r);
  }

  /** Toggle KVM_MEM_LOG_DIRTY_PAGES (KVM_MEM_READONLY cannot change). */
  setMemoryRegionFlags(slot: number, flags: number): void {
    const r = this.mem.checkFlags(slot, flags);
    this.backend.setMemoryRegionFlags(slot, flags);
    r.flags = flags;
  }

  removeMemoryRegion(slot: number): void {
    this.mem.get(slot);
    this.backend.removeMemoryRegion(slot);
    this.mem.delete(slot);
  }

  memoryRegion(slot: number): MemoryRegion {
    return this.#public(this.mem.get(slot));
  }

  memoryRegions(): MemoryRegion[] {
    return this.mem.byGpa().map((r) => this.#public(r));
  }

  /** KVM_GET_DIRTY_LOG (bit n = page n of the slot written since the last call). */
  getDirtyLog(slot: number): Uint8Array {
    const r = this.mem.get(slot);
    if ((r.flags & K.KVM_MEM_LOG_DIRTY_PAGES) === 0) throw new DirtyLogDisabledError(slot, r.flags);
    return this.backend.getDirtyLog(slot, dirtyBytes(r.size));
  }

  #public(r: GuestRegion): MemoryRegion {
    return { slot: r.slot, gpa: r.gpa, size: r.size, flags: r.flags, hva: r.hva, dirtyBitmap: 0 };
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

  // ---- coalesced MMIO/PIO ----

  /** KVM_REGISTER_COALESCED_MMIO (typed errors for a bad zone; KvmCapabilityError without the capability). */
  registerCoalescedMmio(zone: CoalescedZone): void {
    const z = checkCoalescedZone(zone);
    this.backend.registerCoalescedMmio(z);
    this.#zones.push(z);
    this.#ringUsed = true;
  }

  /** KVM_UNREGISTER_COALESCED_MMIO: every zone of the bus that contains the range goes. */
  unregisterCoalescedMmio(zone: CoalescedZone): void {
    const z = checkCoalescedZone(zone);
    this.backend.unregisterCoalescedMmio(z);
    this.#zones = zonesAfterUnregister(this.#zones, z);
  }

  coalescedZones(): CoalescedZone[] {
    return this.#zones.map((z) => ({ ...z }));
  }

  /** The ring page (KVM: page KVM_CAP_COALESCED_MMIO of the first vCPU's mmap; throws before a vCPU exists). */
  coalescedRing(): Uint8Array {
    if (this.#closed) throw new InvalidArgumentError("coalesced ring", "the VM is closed");
    return this.backend.coalescedRing();
  }

  /**
   * runUntil with vm.pio / vm.mmio, and the coalesced ring while a zone is
   * registered or writes are pending. `maxInstructions` needs an
   * instruction-counting backend.
   */
  runUntil(vcpu: GuestVcpu, opts: RunUntilOptions = {}): RunResult {
    if (opts.maxInstructions !== undefined && Number.isNaN(vcpu.instructions)) {
      throw new KvmUnsupportedError("maxInstructions", "KVM does not count retired instructions");
    }
    if (!this.#closed && (this.#zones.length > 0 || this.#ringPending())) {
      return runUntil(vcpu, { pio: this.pio, mmio: this.mmio, coalesced: this.backend.coalescedRing(), ...opts });
    }
    return runUntil(vcpu, { pio: this.pio, mmio: this.mmio, ...opts });
  }

  /** Writes left in the ring after the last zone went (looked at only once a zone was registered). */
  #ringPending(): boolean {
    return this.#ringUsed && coalescedRing(this.backend.coalescedRing()).pending();
  }

  /** Release the backend's fds and mappings; the VM is unusable afterwards. */
  close(): void {
    this.#closed = true;
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
