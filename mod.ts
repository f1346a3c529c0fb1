/**
 * kvmsim: a simulated /dev/kvm for Deno. The VM API (kvm_util-style), the
 * exit decoder and exit families, the device buses and devices.
 *
 * ```ts
 * import { createVmWithOneVcpu } from "./mod.ts";
 * const { vm, vcpu } = createVmWithOneVcpu({ code: [0xb0, 0x41, 0xe6, 0xe9, 0xf4] }); // mov al,'A'; out 0xe9,al; hlt
 * const exit = vcpu.run(); // {reason: "io", direction: "out", port: 0xe9, ...}
 * ```
 *
 * @module
 */
export { createVm, DEFAULT_RAM_POOL, HYPERCALL_EXIT_VALID_MASK, MIN_PADDR, MIN_VADDR, Vm } from "./src/vm.ts";
export type { CreateVmOptions, MemoryRegion, MemoryRegionOptions, MsrFilter, MsrFilterRange } from "./src/vm.ts";
export { DEFAULT_BUDGET, Vcpu } from "./src/vcpu.ts";
export type { GuestDebug, MsrEntry } from "./src/vcpu.ts";
export { attachVcpu, vcpuHandle, VcpuThread } from "./src/vcpu_thread.ts";
export type { VcpuHandle } from "./src/vcpu_thread.ts";
export * from "./src/errors.ts";
export { EXIT_REASONS, exitReasonName, KVM_CONSTANTS } from "./src/abi/constants.ts";
export { msrByIndex, msrByName, MSRS } from "./src/abi/msrs.ts";
export type { MsrDef } from "./src/abi/msrs.ts";

// Exits.
export {
  debugException,
  debugPcHi,
  debugPcLo,
  decodeExit,
  exitReasonOf,
  immediateExit,
  ioCount,
  ioDataOffset,
  ioIsOut,
  ioPort,
  ioSingleData,
  ioSize,
  KvmRun,
  mmioData,
  mmioIsWrite,
  mmioLen,
  mmioPhysAddr,
  msrDataHi,
  msrDataLo,
  msrIndex,
  msrReason,
  runFlags,
  setImmediateExit,
  setMsrData,
  setMsrError,
  snapshotExit,
} from "./src/exits/decode.ts";
export type { RecordedExit } from "./src/exits/decode.ts";
export { setSyncReg, setSyncRegsValid, SYNC_REGS_SUPPORTED, syncReg } from "./src/exits/sync_regs.ts";
export type * from "./src/exits/exit.ts";
export { unreachable } from "./src/exits/exit.ts";
export { dispatchExit, isGenericExit } from "./src/exits/dispatch.ts";
export {
  checkCoalescedZone,
  CoalescedRing,
  coalescedRing,
  CoalescedRingError,
  CoalescedZoneLimitError,
  drainCoalesced,
  zoneTakesWrite,
} from "./src/exits/coalesced.ts";
export type { CoalescedSink, CoalescedZone } from "./src/exits/coalesced.ts";
export type {
  ArchReason,
  DispatchOptions,
  ExitContext,
  ExitHandler,
  ExitHandlers,
  ExitHook,
  GenericReason,
} from "./src/exits/dispatch.ts";
export { internalError, PAUSE, RESUME, stop } from "./src/exits/outcome.ts";
export type { ExitOutcome, StopWhy } from "./src/exits/outcome.ts";
export { runUntil } from "./src/exits/run_loop.ts";
export type { ExitCounts, RunResult, RunUntilOptions, StopReason } from "./src/exits/run_loop.ts";
export { describeInternalError, INTERNAL_ERROR_SUBERRORS } from "./src/exits/internal_error.ts";
export { SYSTEM_EVENT_TYPES } from "./src/exits/system_event.ts";
export { MSR_EXIT_REASONS } from "./src/exits/msr.ts";
export { KVM_ENOSYS } from "./src/exits/hypercall.ts";

// Devices.
export { MmioBus, PioBus, RangeBus } from "./src/devices/bus.ts";
export type { BusAccess, BusDevice, BusRange, BusStats } from "./src/devices/bus.ts";
export { COM1_PORT, Serial16550, SERIAL_PORTS } from "./src/devices/serial.ts";
export { BufferSink, callbackSink, stdoutSink } from "./src/devices/sink.ts";
export type { ByteSink } from "./src/devices/sink.ts";
export { DEBUG_EXIT_PORT, DebugExitDevice } from "./src/devices/debug_exit.ts";
export { TestMmioDevice } from "./src/devices/test_mmio.ts";
export type { MmioAccess } from "./src/devices/test_mmio.ts";
export { leBig, leNum, putLe } from "./src/devices/bytes.ts";

// x86.
export {
  createVmWithOneVcpu,
  identityMapLow4G,
  LAYOUT,
  RESERVED_SIZE,
  setupLongMode,
  setupProtectedMode,
  setupRealMode,
} from "./src/x86/setup.ts";
export type { GuestLayout, GuestMode, ModeSetupOptions, OneVcpuOptions } from "./src/x86/setup.ts";
export { CPUID_SIGNATURE, defaultCpuid, findCpuid, MAXPHYADDR } from "./src/x86/cpuid.ts";
export type { CpuidEntry } from "./src/x86/cpuid.ts";
export { resetRegs, resetSregs } from "./src/x86/reset.ts";
export type { KvmDebugRegs, KvmDtable, KvmRegs, KvmSegment, KvmSregs, KvmVcpuEvents } from "./src/x86/regs.ts";
export { PAGE_1G, PAGE_2M, PAGE_4K, PTE_NX, PTE_P, PTE_RW, PTE_US } from "./src/x86/page_tables.ts";
// Guest code: the mini Intel-syntax assembler.
export { AsmError, assemble } from "./src/asm/x86.ts";
export type { AsmOptions, AsmResult } from "./src/asm/x86.ts";
// Backends: the same API over real /dev/kvm (`createVm({ backend: "kvm" })`).
export { BACKEND_NAMES } from "./src/backends/types.ts";
export type { BackendName, GuestVcpu, GuestVm, RunnableVcpu, VcpuBackend, VmBackend } from "./src/backends/types.ts";
export { BackendVcpu, BackendVm } from "./src/backends/front.ts";
export {
  createKvmVm,
  KvmCapabilityError,
  KvmIoctlError,
  KvmRunTimeoutError,
  KvmUnavailableError,
  kvmUnavailableReason,
  KvmUnsupportedError,
  releaseWatchdog,
} from "./src/backends/kvm/mod.ts";
