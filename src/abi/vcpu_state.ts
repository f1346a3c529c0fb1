/**
 * The private vCPU state block and the VM control block that live in each
 * VM's shared `WebAssembly.Memory` (design.md §2, §3). Both sides read these
 * offsets from here: AssemblyScript through `assembly/abi.generated.ts`,
 * TypeScript through `layOut()`.
 *
 * GPRs are kept in x86 encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
 * r8…r15) so the interpreter indexes them by ModRM number; segment registers
 * use the `struct kvm_segment` layout in encoding order (es, cs, ss, ds, fs,
 * gs), then ldtr and tr.
 *
 * @module
 */
import type { Member, StructDef } from "./layout.ts";
import { KVM_CPUID_ENTRY2, KVM_DTABLE, KVM_SEGMENT } from "./kvm_structs.ts";
import { COALESCED_RING_BYTES, KVM_COALESCED_MMIO_ZONE, MAX_COALESCED_ZONES } from "./coalesced.ts";

const m = (name: string, type: Member["type"], count?: number): Member =>
  count === undefined ? { name, type } : { name, type, count };

/** Maximum memory slots per VM (KVM's KVM_USER_MEM_SLOTS is 32764; kvmsim keeps 32). */
export const MAX_MEMSLOTS = 32;
/** Maximum CPUID entries in the VM's table (KVM allows 256). */
export const MAX_CPUID_ENTRIES = 128;
/** Maximum KVM_X86_SET_MSR_FILTER ranges (KVM_MSR_FILTER_MAX_RANGES = 16). */
export const MAX_MSR_FILTER_RANGES = 16;
/** Bytes reserved for the MSR filter bitmaps of all ranges together. */
export const MSR_FILTER_BITMAP_BYTES = 16384;
/** Maximum vCPUs per VM. */
export const MAX_VCPUS = 64;
/** Entries in each vCPU's software TLB (direct mapped). */
export const TLB_ENTRIES = 512;
/** Entries in the pending-access replay log (MMIO/PIO fragments of one instruction). */
export const REPLAY_ENTRIES = 8;

/** One memory slot as the interpreter sees it. */
export const MEMSLOT = {
  kind: "struct",
  name: "memslot",
  members: [
    m("gpa", "u64"),
    m("size", "u64"),
    /** Byte offset of the backing RAM in the shared memory ("hva"). */
    m("host", "u32"),
    /** Byte offset of the dirty bitmap (one bit per 4 KiB page), 0 if none. */
    m("dirty", "u32"),
    /** KVM_MEM_* flags. */
    m("flags", "u32"),
    /** User slot id; 0xffffffff marks an empty entry. */
    m("id", "u32"),
  ],
} as const satisfies StructDef;

export const MSR_FILTER_RANGE = {
  kind: "struct",
  name: "msr_filter_range",
  members: [m("flags", "u32"), m("nmsrs", "u32"), m("base", "u32"), m("bitmap", "u32")],
} as const satisfies StructDef;

/** Per-VM control block (in the shared memory at `VM_CONTROL_BASE`). */
export const VM_CONTROL = {
  kind: "struct",
  name: "vm_control",
  members: [
    m("magic", "u32"),
    m("nslots", "u32"),
    /** Bumped by TS whenever memslots change; vCPUs flush their TLB when it moves. */
    m("memslot_gen", "u32"),
    m("ncpuid", "u32"),
    /** KVM_CAP_X86_USER_SPACE_MSR reasons (KVM_MSR_EXIT_REASON_* mask). */
    m("user_msr_mask", "u32"),
    /** KVM_X86_SET_MSR_FILTER flags (KVM_MSR_FILTER_DEFAULT_DENY). */
    m("msr_filter_flags", "u32"),
    m("msr_filter_nranges", "u32"),
    /** KVM_CAP_EXIT_HYPERCALL: bitmask of hypercall numbers that exit. */
    m("hypercall_exit_mask", "u32"),
    m("ram_base", "u32"),
    m("ram_size", "u32"),
    m("vcpu_base", "u32"),
    m("nvcpus", "u32"),
    m("slots", MEMSLOT, MAX_MEMSLOTS),
    m("msr_filter", MSR_FILTER_RANGE, MAX_MSR_FILTER_RANGES),
    m("cpuid", KVM_CPUID_ENTRY2, MAX_CPUID_ENTRIES),
    m("msr_bitmaps", "u8", MSR_FILTER_BITMAP_BYTES),
    /** Registered coalesced MMIO/PIO zones (KVM_REGISTER_COALESCED_MMIO), in registration order. */
    m("coalesced_nzones", "u32"),
    /** Spin lock (0 free, 1 held) over the ring's `last` for the VM's vCPUs (KVM's ring_lock). */
    m("coalesced_lock", "u32"),
    m("coalesced_zones", KVM_COALESCED_MMIO_ZONE, MAX_COALESCED_ZONES),
    /** The VM's coalesced-MMIO ring page: struct kvm_coalesced_mmio_ring and its entries. */
    m("coalesced_ring", "u8", COALESCED_RING_BYTES),
  ],
} as const satisfies StructDef;

const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"] as const;
export const GPR_NAMES = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;
export type GprName = (typeof GPR_NAMES)[number];

/** One fragment of an in-flight IO/MMIO access (restart-with-replay model). */
export const REPLAY_ENTRY = {
  kind: "struct",
  name: "replay_entry",
  members: [
    m("addr", "u64"),
    m("data", "u64"),
    /** 1 = MMIO read, 2 = MMIO write, 3 = PIO in, 4 = PIO out. */
    m("kind", "u32"),
    m("len", "u32"),
  ],
} as const satisfies StructDef;

export const TLB_ENTRY = {
  kind: "struct",
  name: "tlb_entry",
  members: [
    /** Linear page number + 1 (0 = invalid). */
    m("tag", "u64"),
    /** Host byte offset of the page in the shared memory. */
    m("host", "u32"),
    /**
     * Permission bits granted by the walk (assembly/x86/tlb.ts): 1 supervisor read, 2 supervisor write,
     * 4 supervisor exec, 8 user read, 16 user write, 32 user exec. Write bits are only granted once the
     * PTE's D bit is set and the memslot is writable (and dirty-logged pages are already marked).
     */
    m("perm", "u32"),
  ],
} as const satisfies StructDef;

/** Translated-block cache entries (assembly/x86/jit.ts, direct-mapped by guest RIP). */
export const JIT_ENTRIES = 64;
/**
 * Entries of a loop head (taken backward branches to it) before it is translated, unless
 * the state's jit_hot says otherwise: a translation costs about 1 ms, some 10^5 interpreted
 * instructions, so only loops that keep running pay it back.
 */
export const JIT_HOT_DEFAULT = 2048;
/** jit_hot value: never translate nor run translations. */
export const JIT_NEVER = 0xffffffff;

/** One translated-block cache entry: the block start and how hot it is or which translation runs it. */
export const JIT_ENTRY = {
  kind: "struct",
  name: "jit_entry",
  members: [
    /** Guest RIP of the block start (a backward branch target). */
    m("ip", "u64"),
    /** Host byte offset of that RIP's code in the shared memory. */
    m("host", "u32"),
    /** Function-table index of the translation in this instance (> 0), 0 = counting, -1 = not translatable. */
    m("index", "i32"),
    /** Entries counted while not yet translated. */
    m("count", "u32"),
    m("pad", "u32"),
  ],
} as const satisfies StructDef;

/** The vCPU's state block, after its 12 KiB kvm_run mapping. */
export const VCPU_STATE = {
  kind: "struct",
  name: "vcpu_state",
  members: [
    m("gpr", "u64", 16),
    m("rip", "u64"),
    m("rflags", "u64"),
    ...SEG_NAMES.map((n) => m(`seg_${n}`, KVM_SEGMENT)),
    m("gdt", KVM_DTABLE),
    m("idt", KVM_DTABLE),
    m("cr0", "u64"),
    m("cr2", "u64"),
    m("cr3", "u64"),
    m("cr4", "u64"),
    m("cr8", "u64"),
    m("efer", "u64"),
    m("apic_base", "u64"),
    m("xcr0", "u64"),
    m("dr", "u64", 8),
    // In-kernel MSRs.
    m("tsc", "u64"),
    m("tsc_aux", "u64"),
    m("pat", "u64"),
    m("star", "u64"),
    m("lstar", "u64"),
    m("cstar", "u64"),
    m("sfmask", "u64"),
    m("kernel_gs_base", "u64"),
    m("sysenter_cs", "u64"),
    m("sysenter_esp", "u64"),
    m("sysenter_eip", "u64"),
    m("misc_enable", "u64"),
    m("mp_state", "u32"),
    /** Bits set by TS after it wrote state: 1 = regs/sregs/MSRs changed (flush TLB, recompute mode). */
    m("dirty", "u32"),
    // KVM_SET_GUEST_DEBUG.
    m("guest_debug_control", "u32"),
    m("vcpu_id", "u32"),
    m("guest_debug_dr", "u64", 8),
    // Events (KVM_GET/SET_VCPU_EVENTS subset).
    m("exc_pending", "u8"),
    m("exc_nr", "u8"),
    m("exc_has_error", "u8"),
    m("interrupt_shadow", "u8"),
    m("exc_error_code", "u32"),
    m("nmi_pending", "u8"),
    m("nmi_masked", "u8"),
    m("triple_fault_pending", "u8"),
    m("pad0", "u8"),
    /**
     * Destination of a MOV r, [mem] whose MMIO read exited (mem.ts PEND_MMIO_READ_REG):
     * register | size << 4 | (REX present) << 8.
     */
    m("pending_reg", "u32"),
    // Run statistics and control.
    m("instructions", "u64"),
    m("exits", "u64"),
    /** RIP after an instruction whose completion waits for userspace (user-space MSR exit, hypercall exit). */
    m("pending_rip", "u64"),
    /** RIP of the OUT / MMIO-store instruction whose exit completes by moving RIP to pending_rip (fast completion). */
    m("pending_insn_rip", "u64"),
    /** Memslot generation the TLB was filled under. */
    m("tlb_gen", "u32"),
    m("replay_count", "u32"),
    m("replay_pos", "u32"),
    /** What the next run() completes from kvm_run first: 1 MMIO read, 2 PIO in, 4 RDMSR, 8 WRMSR, 16 hypercall, 32 PIO out, 64 MMIO write. */
    m("pending_flags", "u32"),
    m("replay", REPLAY_ENTRY, REPLAY_ENTRIES),
    m("tlb", TLB_ENTRY, TLB_ENTRIES),
    /**
     * Entries of a loop head before it is translated (assembly/x86/jit.ts): 0 = JIT_HOT_DEFAULT,
     * JIT_NEVER = never run translations (tests compare against the interpreter).
     */
    m("jit_hot", "u32"),
    m("pad2", "u32"),
    m("jit", JIT_ENTRY, JIT_ENTRIES),
  ],
} as const satisfies StructDef;

/** Internal layouts that only kvmsim uses (generated for AS like the uapi ones). */
export const INTERNAL_STRUCTS: readonly StructDef[] = [
  VM_CONTROL,
  VCPU_STATE,
  MEMSLOT,
  MSR_FILTER_RANGE,
  REPLAY_ENTRY,
  TLB_ENTRY,
  JIT_ENTRY,
];
export { KVM_CPUID_ENTRY2, KVM_DTABLE, KVM_SEGMENT };
