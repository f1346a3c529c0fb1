/**
 * The backend interface: what a VM front end needs from the thing that runs
 * guests (the WASM core or the host's /dev/kvm), and the VM / vCPU surface
 * that the x86 setups, the run loop and `kvmsim exec` program against, so
 * one scenario runs on both backends.
 *
 * Two levels:
 * - {@link VmBackend} / {@link VcpuBackend}: the ioctl level — memory
 *   regions backed by host memory, the guest-memory host view, dirty log,
 *   capabilities, vCPU state get/set, KVM_RUN and the kvm_run view. The KVM
 *   backend (src/backends/kvm/) implements it; {@link BackendVm} (front.ts)
 *   is the kvm_util-style front end over it.
 * - {@link GuestVm} / {@link GuestVcpu}: the kvm_util-style surface. The
 *   simulator's `Vm` / `Vcpu` (src/vm.ts, src/vcpu.ts) and `BackendVm` /
 *   `BackendVcpu` both satisfy it.
 *
 * @module
 */
import type { RangeBus } from "../devices/bus.ts";
import type { KvmRun } from "../exits/decode.ts";
import type { VcpuExit } from "../exits/exit.ts";
import type { CoalescedZone } from "../exits/coalesced.ts";
import type { RunResult, RunUntilOptions } from "../exits/run_loop.ts";
import type { MemoryRegion, MemoryRegionOptions } from "../vm.ts";
import type { GuestDebug, MsrEntry } from "../vcpu.ts";
import type { CoreExports } from "../wasm.ts";
import type { CpuidEntry } from "../x86/cpuid.ts";
import type { GuestPhys } from "../x86/page_tables.ts";
import type { KvmRegs, KvmSregs } from "../x86/regs.ts";

/** The backends `createVm({backend})` knows. */
export const BACKEND_NAMES = ["sim", "kvm"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

// ---- ioctl level ----

/** Host memory backing one memory region. */
export interface HostMemory {
  /** A live view of the whole backing (guest writes show up here). */
  readonly u8: Uint8Array;
  /** The `userspace_addr` the region was registered with. */
  readonly hva: number;
}

/** One VM of a backend (KVM_CREATE_VM and the VM ioctls). */
export interface VmBackend {
  readonly name: BackendName;
  /** Back `[gpa, gpa+size)` with fresh zeroed host memory and register it as `slot` (KVM_SET_USER_MEMORY_REGION). */
  addMemoryRegion(slot: number, flags: number, gpa: number, size: number): HostMemory;
  /** Change a region's flags (same backing). */
  setMemoryRegionFlags(slot: number, flags: number): void;
  /** Delete a region and release its backing. */
  removeMemoryRegion(slot: number): void;
  /** KVM_GET_DIRTY_LOG: `bytes` bytes of bitmap (64-bit words LE), cleared as returned. */
  getDirtyLog(slot: number, bytes: number): Uint8Array;
  /** The CPUID table the host supports (KVM_GET_SUPPORTED_CPUID). */
  supportedCpuid(): CpuidEntry[];
  /** KVM_CAP_X86_USER_SPACE_MSR with this KVM_MSR_EXIT_REASON_* mask. */
  enableUserSpaceMsr(mask: number): void;
  /** KVM_CAP_EXIT_HYPERCALL with this hypercall mask. */
  enableHypercallExit(mask: number): void;
  /** KVM_REGISTER_COALESCED_MMIO of a checked zone (src/exits/coalesced.ts checkCoalescedZone). */
  registerCoalescedMmio(zone: CoalescedZone): void;
  /** KVM_UNREGISTER_COALESCED_MMIO: every zone of the bus containing the range goes; no match is not an error. */
  unregisterCoalescedMmio(zone: CoalescedZone): void;
  /** The VM's coalesced-MMIO ring page (KVM: in the vCPU mmap, so only once a vCPU exists). */
  coalescedRing(): Uint8Array;
  /** KVM_CREATE_VCPU with `cpuid` installed (KVM_SET_CPUID2). */
  createVcpu(id: number, cpuid: readonly CpuidEntry[]): VcpuBackend;
  /** Release every fd and mapping (vCPUs first). */
  close(): void;
}

/** One vCPU of a backend (the vCPU ioctls). */
export interface VcpuBackend {
  /** The kvm_run mapping (decodeExit reads it). */
  readonly kvmRun: KvmRun;
  /** KVM_RUN: the raw exit reason (KVM_EXIT_INTR when interrupted). */
  run(): number;
  getRegs(): KvmRegs;
  setRegs(regs: KvmRegs): void;
  getSregs(): KvmSregs;
  setSregs(sregs: KvmSregs): void;
  /** KVM_GET_MSRS; throws naming the first index the host did not return. */
  getMsrs(indices: readonly number[]): MsrEntry[];
  setMsrs(entries: readonly MsrEntry[]): void;
  getMpState(): number;
  setGuestDebug(dbg: GuestDebug): void;
  close(): void;
}

// ---- kvm_util level ----

/** What the run loop (src/exits/run_loop.ts) needs from a vCPU. */
export interface RunnableVcpu {
  readonly id: number;
  readonly kvmRun: KvmRun;
  /** Offset of the kvm_run page in `kvmRun`'s buffer (passed to `host.core.run`). */
  readonly runBase: number;
  /** Instructions per KVM_RUN before KVM_EXIT_INTR (the simulator's; KVM ignores it). */
  readonly budget: number;
  /** Instructions retired; NaN on a backend that does not count them (KVM). */
  readonly instructions: number;
  readonly host: { readonly core: CoreExports };
  getMpState(): number;
}

/** The vCPU surface of kvm_util that both backends give. */
export interface GuestVcpu extends RunnableVcpu {
  run(budget?: number): VcpuExit;
  runRaw(budget?: number): number;
  immediateExit: boolean;
  getRegs(): KvmRegs;
  setRegs(regs: Partial<KvmRegs>): void;
  getSregs(): KvmSregs;
  setSregs(sregs: Partial<KvmSregs>): void;
  getMsrs(indices: readonly number[]): MsrEntry[];
  setMsrs(entries: readonly MsrEntry[]): void;
  getMsr(index: number): bigint;
  setMsr(index: number, data: bigint): void;
  setGuestDebug(dbg: GuestDebug): void;
}

/** The VM surface of kvm_util that both backends give (and the x86 setups use). */
export interface GuestVm extends GuestPhys {
  pgd: number | undefined;
  readonly pio: RangeBus;
  readonly mmio: RangeBus;
  addMemoryRegion(opts: MemoryRegionOptions): MemoryRegion;
  memoryRegion(slot: number): MemoryRegion;
  memoryRegions(): MemoryRegion[];
  getDirtyLog(slot: number): Uint8Array;
  guestView(gpa: number, len: number): Uint8Array;
  writeGuest(gpa: number, bytes: ArrayLike<number>): void;
  readGuest(gpa: number, len: number): Uint8Array;
  reservePhys(gpa: number, size: number): void;
  physPageAlloc(paddrMin?: number, slot?: number): number;
  addVcpu(id: number, opts?: { budget?: number }): GuestVcpu;
  setCpuid(entries: readonly CpuidEntry[]): void;
  getCpuid(): CpuidEntry[];
  enableUserSpaceMsr(mask: number): void;
  enableHypercallExit(mask: number): void;
  /**
   * KVM_REGISTER_COALESCED_MMIO: guest writes wholly inside the zone go to the
   * ring instead of exiting; runUntil drains them into vm.pio / vm.mmio.
   */
  registerCoalescedMmio(zone: CoalescedZone): void;
  /** KVM_UNREGISTER_COALESCED_MMIO: removes every zone of the bus that contains the range. */
  unregisterCoalescedMmio(zone: CoalescedZone): void;
  /** The registered zones, in registration order. */
  coalescedZones(): CoalescedZone[];
  /** The ring page (struct kvm_coalesced_mmio_ring); on KVM only once a vCPU exists. */
  coalescedRing(): Uint8Array;
  runUntil(vcpu: GuestVcpu, opts?: RunUntilOptions): RunResult;
  /** Free the VM (kvm_vm_free): its vCPUs cannot run afterwards. */
  close(): void;
}
