/**
 * KVM uapi constants (shared/spec/kvm_run_arm64.md §2; `<linux/kvm.h>`).
 * Written once; `scripts/gen_abi.ts` emits them for AssemblyScript.
 *
 * @module
 */

/** `KVM_EXIT_*`, by number. `simulated` marks the ones kvmsim produces. */
export const EXIT_REASONS = [
  { nr: 0, name: "KVM_EXIT_UNKNOWN", simulated: false },
  { nr: 1, name: "KVM_EXIT_EXCEPTION", simulated: false },
  { nr: 2, name: "KVM_EXIT_IO", simulated: true },
  { nr: 3, name: "KVM_EXIT_HYPERCALL", simulated: true },
  { nr: 4, name: "KVM_EXIT_DEBUG", simulated: true },
  { nr: 5, name: "KVM_EXIT_HLT", simulated: true },
  { nr: 6, name: "KVM_EXIT_MMIO", simulated: true },
  { nr: 7, name: "KVM_EXIT_IRQ_WINDOW_OPEN", simulated: false },
  { nr: 8, name: "KVM_EXIT_SHUTDOWN", simulated: true },
  { nr: 9, name: "KVM_EXIT_FAIL_ENTRY", simulated: true },
  { nr: 10, name: "KVM_EXIT_INTR", simulated: true },
  { nr: 11, name: "KVM_EXIT_SET_TPR", simulated: false },
  { nr: 12, name: "KVM_EXIT_TPR_ACCESS", simulated: false },
  { nr: 13, name: "KVM_EXIT_S390_SIEIC", simulated: false },
  { nr: 14, name: "KVM_EXIT_S390_RESET", simulated: false },
  { nr: 15, name: "KVM_EXIT_DCR", simulated: false },
  { nr: 16, name: "KVM_EXIT_NMI", simulated: false },
  { nr: 17, name: "KVM_EXIT_INTERNAL_ERROR", simulated: true },
  { nr: 18, name: "KVM_EXIT_OSI", simulated: false },
  { nr: 19, name: "KVM_EXIT_PAPR_HCALL", simulated: false },
  { nr: 20, name: "KVM_EXIT_S390_UCONTROL", simulated: false },
  { nr: 21, name: "KVM_EXIT_WATCHDOG", simulated: false },
  { nr: 22, name: "KVM_EXIT_S390_TSCH", simulated: false },
  { nr: 23, name: "KVM_EXIT_EPR", simulated: false },
  { nr: 24, name: "KVM_EXIT_SYSTEM_EVENT", simulated: false },
  { nr: 25, name: "KVM_EXIT_S390_STSI", simulated: false },
  { nr: 26, name: "KVM_EXIT_IOAPIC_EOI", simulated: false },
  { nr: 27, name: "KVM_EXIT_HYPERV", simulated: false },
  { nr: 28, name: "KVM_EXIT_ARM_NISV", simulated: false },
  { nr: 29, name: "KVM_EXIT_X86_RDMSR", simulated: true },
  { nr: 30, name: "KVM_EXIT_X86_WRMSR", simulated: true },
  { nr: 31, name: "KVM_EXIT_DIRTY_RING_FULL", simulated: false },
  { nr: 32, name: "KVM_EXIT_AP_RESET_HOLD", simulated: false },
  { nr: 33, name: "KVM_EXIT_X86_BUS_LOCK", simulated: false },
  { nr: 34, name: "KVM_EXIT_XEN", simulated: false },
  { nr: 35, name: "KVM_EXIT_RISCV_SBI", simulated: false },
  { nr: 36, name: "KVM_EXIT_RISCV_CSR", simulated: false },
  { nr: 37, name: "KVM_EXIT_NOTIFY", simulated: false },
  { nr: 38, name: "KVM_EXIT_LOONGARCH_IOCSR", simulated: false },
  { nr: 39, name: "KVM_EXIT_MEMORY_FAULT", simulated: false },
] as const;

/** Numeric constants shared by both sides of the WASM boundary. */
export const KVM_CONSTANTS = {
  KVM_EXIT_UNKNOWN: 0,
  KVM_EXIT_IO: 2,
  KVM_EXIT_HYPERCALL: 3,
  KVM_EXIT_DEBUG: 4,
  KVM_EXIT_HLT: 5,
  KVM_EXIT_MMIO: 6,
  KVM_EXIT_SHUTDOWN: 8,
  KVM_EXIT_FAIL_ENTRY: 9,
  KVM_EXIT_INTR: 10,
  KVM_EXIT_INTERNAL_ERROR: 17,
  KVM_EXIT_SYSTEM_EVENT: 24,
  KVM_EXIT_X86_RDMSR: 29,
  KVM_EXIT_X86_WRMSR: 30,
  KVM_EXIT_MEMORY_FAULT: 39,

  KVM_EXIT_IO_IN: 0,
  KVM_EXIT_IO_OUT: 1,

  KVM_INTERNAL_ERROR_EMULATION: 1,
  KVM_INTERNAL_ERROR_SIMUL_EX: 2,
  KVM_INTERNAL_ERROR_DELIVERY_EV: 3,
  KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: 4,
  KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES: 1,

  KVM_MSR_EXIT_REASON_INVAL: 1,
  KVM_MSR_EXIT_REASON_UNKNOWN: 2,
  KVM_MSR_EXIT_REASON_FILTER: 4,
  KVM_MSR_FILTER_READ: 1,
  KVM_MSR_FILTER_WRITE: 2,
  KVM_MSR_FILTER_DEFAULT_DENY: 1,

  KVM_HC_MAP_GPA_RANGE: 12,
  KVM_EXIT_HYPERCALL_LONG_MODE: 1,

  KVM_SYNC_X86_REGS: 0x1,
  KVM_SYNC_X86_SREGS: 0x2,
  KVM_SYNC_X86_EVENTS: 0x4,

  KVM_GUESTDBG_ENABLE: 0x1,
  KVM_GUESTDBG_SINGLESTEP: 0x2,
  KVM_GUESTDBG_USE_SW_BP: 0x10000,
  KVM_GUESTDBG_USE_HW_BP: 0x20000,
  KVM_GUESTDBG_INJECT_DB: 0x40000,
  KVM_GUESTDBG_INJECT_BP: 0x80000,

  KVM_MEM_LOG_DIRTY_PAGES: 1,
  KVM_MEM_READONLY: 2,

  KVM_MP_STATE_RUNNABLE: 0,
  KVM_MP_STATE_UNINITIALIZED: 1,
  KVM_MP_STATE_INIT_RECEIVED: 2,
  KVM_MP_STATE_HALTED: 3,

  KVM_PIO_PAGE_OFFSET: 1,
  KVM_COALESCED_MMIO_PAGE_OFFSET: 2,
  KVM_VCPU_MMAP_SIZE: 12288,
} as const;

export type ExitReasonName = (typeof EXIT_REASONS)[number]["name"];

/** `exitReasonName(2)` → `"KVM_EXIT_IO"` (kvm_util's exit_reason_str). */
export function exitReasonName(nr: number): string {
  return EXIT_REASONS.find((e) => e.nr === nr)?.name ?? `KVM_EXIT_${nr} (unknown)`;
}
