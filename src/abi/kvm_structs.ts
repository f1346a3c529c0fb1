/**
 * The KVM uapi structures kvmsim speaks, as declarative tables
 * (`<linux/kvm.h>`, `<asm/kvm.h>`; offsets: shared/spec/kvm_run_arm64.md §1).
 * Checked against a C compiler's `offsetof` in tests/abi_offsets_test.ts.
 *
 * @module
 */
import type { Member, StructDef } from "./layout.ts";
import { KVM_COALESCED_MMIO, KVM_COALESCED_MMIO_RING, KVM_COALESCED_MMIO_ZONE } from "./coalesced.ts";

const m = (name: string, type: Member["type"], count?: number): Member =>
  count === undefined ? { name, type } : { name, type, count };
const struct = (name: string, members: Member[], packed = false): StructDef =>
  packed ? { kind: "struct", name, members, packed } : { kind: "struct", name, members };
const union = (name: string, members: Member[]): StructDef => ({ kind: "union", name, members });

/** KVM_EXIT_IO payload. */
export const KVM_RUN_IO = struct("io", [
  m("direction", "u8"),
  m("size", "u8"),
  m("port", "u16"),
  m("count", "u32"),
  m("data_offset", "u64"),
]);

/** x86 `struct kvm_debug_exit_arch`. */
export const KVM_DEBUG_EXIT_ARCH_X86 = struct("kvm_debug_exit_arch", [
  m("exception", "u32"),
  m("pad", "u32"),
  m("pc", "u64"),
  m("dr6", "u64"),
  m("dr7", "u64"),
]);

/** The exit union of `struct kvm_run` (x86_64 members kvmsim produces or reserves). */
export const KVM_RUN_EXIT_UNION = union("", [
  m("hw", struct("hw", [m("hardware_exit_reason", "u64")])),
  m("fail_entry", struct("fail_entry", [m("hardware_entry_failure_reason", "u64"), m("cpu", "u32")])),
  m("ex", struct("ex", [m("exception", "u32"), m("error_code", "u32")])),
  m("io", KVM_RUN_IO),
  m("debug", struct("debug", [m("arch", KVM_DEBUG_EXIT_ARCH_X86)])),
  m("mmio", struct("mmio", [m("phys_addr", "u64"), m("data", "u8", 8), m("len", "u32"), m("is_write", "u8")])),
  m(
    "hypercall",
    struct("hypercall", [
      m("nr", "u64"),
      m("args", "u64", 6),
      m("ret", "u64"),
      m("", union("", [m("longmode", "u32"), m("flags", "u64")])),
    ]),
  ),
  m("internal", struct("internal", [m("suberror", "u32"), m("ndata", "u32"), m("data", "u64", 16)])),
  m(
    "emulation_failure",
    struct("emulation_failure", [
      m("suberror", "u32"),
      m("ndata", "u32"),
      m("flags", "u64"),
      m("insn_size", "u8"),
      m("insn_bytes", "u8", 15),
    ]),
  ),
  m(
    "system_event",
    struct("system_event", [
      m("type", "u32"),
      m("ndata", "u32"),
      m("", union("", [m("flags", "u64"), m("data", "u64", 16)])),
    ]),
  ),
  m(
    "msr",
    struct("msr", [m("error", "u8"), m("pad", "u8", 7), m("reason", "u32"), m("index", "u32"), m("data", "u64")]),
  ),
  m("memory_fault", struct("memory_fault", [m("flags", "u64"), m("gpa", "u64"), m("size", "u64")])),
  m("padding", "u8", 256),
]);

/** `struct kvm_run` (x86_64 view; the header is shared with arm64). */
export const KVM_RUN = struct("kvm_run", [
  m("request_interrupt_window", "u8"),
  m("immediate_exit", "u8"),
  m("padding1", "u8", 6),
  m("exit_reason", "u32"),
  m("ready_for_interrupt_injection", "u8"),
  m("if_flag", "u8"),
  m("flags", "u16"),
  m("cr8", "u64"),
  m("apic_base", "u64"),
  m("", KVM_RUN_EXIT_UNION),
  m("kvm_valid_regs", "u64"),
  m("kvm_dirty_regs", "u64"),
  m("s", union("s", [m("padding", "u8", 2048)])),
]);

/** `struct kvm_regs` field names in struct order (x86). */
export const KVM_REGS_NAMES = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const;

/** `struct kvm_regs` (x86). */
export const KVM_REGS = struct("kvm_regs", KVM_REGS_NAMES.map((n) => m(n, "u64")));

/** `struct kvm_segment`. */
export const KVM_SEGMENT = struct("kvm_segment", [
  m("base", "u64"),
  m("limit", "u32"),
  m("selector", "u16"),
  m("type", "u8"),
  m("present", "u8"),
  m("dpl", "u8"),
  m("db", "u8"),
  m("s", "u8"),
  m("l", "u8"),
  m("g", "u8"),
  m("avl", "u8"),
  m("unusable", "u8"),
  m("padding", "u8"),
]);

/** `struct kvm_dtable`. */
export const KVM_DTABLE = struct("kvm_dtable", [m("base", "u64"), m("limit", "u16"), m("padding", "u16", 3)]);

/** `struct kvm_sregs` (x86). */
export const KVM_SREGS = struct("kvm_sregs", [
  ...["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"].map((n) => m(n, KVM_SEGMENT)),
  m("gdt", KVM_DTABLE),
  m("idt", KVM_DTABLE),
  ...["cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"].map((n) => m(n, "u64")),
  m("interrupt_bitmap", "u64", 4),
]);

/** `struct kvm_cpuid_entry2`. */
export const KVM_CPUID_ENTRY2 = struct("kvm_cpuid_entry2", [
  m("function", "u32"),
  m("index", "u32"),
  m("flags", "u32"),
  m("eax", "u32"),
  m("ebx", "u32"),
  m("ecx", "u32"),
  m("edx", "u32"),
  m("padding", "u32", 3),
]);

/** `struct kvm_msr_entry`. */
export const KVM_MSR_ENTRY = struct("kvm_msr_entry", [m("index", "u32"), m("reserved", "u32"), m("data", "u64")]);

/** `struct kvm_guest_debug` (x86). */
export const KVM_GUEST_DEBUG = struct("kvm_guest_debug", [
  m("control", "u32"),
  m("pad", "u32"),
  m("arch", struct("kvm_guest_debug_arch", [m("debugreg", "u64", 8)])),
]);

/** `struct kvm_userspace_memory_region`. */
export const KVM_USERSPACE_MEMORY_REGION = struct("kvm_userspace_memory_region", [
  m("slot", "u32"),
  m("flags", "u32"),
  m("guest_phys_addr", "u64"),
  m("memory_size", "u64"),
  m("userspace_addr", "u64"),
]);

/** `struct kvm_vcpu_events` (x86). */
export const KVM_VCPU_EVENTS = struct("kvm_vcpu_events", [
  m(
    "exception",
    struct("exception", [
      m("injected", "u8"),
      m("nr", "u8"),
      m("has_error_code", "u8"),
      m("pending", "u8"),
      m("error_code", "u32"),
    ]),
  ),
  m("interrupt", struct("interrupt", [m("injected", "u8"), m("nr", "u8"), m("soft", "u8"), m("shadow", "u8")])),
  m("nmi", struct("nmi", [m("injected", "u8"), m("pending", "u8"), m("masked", "u8"), m("pad", "u8")])),
  m("sipi_vector", "u32"),
  m("flags", "u32"),
  m("smi", struct("smi", [m("smm", "u8"), m("pending", "u8"), m("smm_inside_nmi", "u8"), m("latched_init", "u8")])),
  m("triple_fault", struct("triple_fault", [m("pending", "u8")])),
  m("reserved", "u8", 26),
  m("exception_has_payload", "u8"),
  m("exception_payload", "u64"),
]);

/** `struct kvm_mp_state`. */
export const KVM_MP_STATE = struct("kvm_mp_state", [m("mp_state", "u32")]);

/** Every uapi struct `kvmsim layout` knows, by C name. */
/** `struct kvm_sync_regs` (x86): what KVM_CAP_SYNC_REGS shares through `kvm_run.s`. */
export const KVM_SYNC_REGS = struct("kvm_sync_regs", [
  m("regs", KVM_REGS),
  m("sregs", KVM_SREGS),
  m("events", KVM_VCPU_EVENTS),
]);

export const UAPI_STRUCTS: readonly StructDef[] = [
  KVM_RUN,
  KVM_REGS,
  KVM_SREGS,
  KVM_SEGMENT,
  KVM_DTABLE,
  KVM_CPUID_ENTRY2,
  KVM_MSR_ENTRY,
  KVM_GUEST_DEBUG,
  KVM_USERSPACE_MEMORY_REGION,
  KVM_VCPU_EVENTS,
  KVM_MP_STATE,
  KVM_COALESCED_MMIO_ZONE,
  KVM_COALESCED_MMIO,
  KVM_COALESCED_MMIO_RING,
  KVM_SYNC_REGS,
];
