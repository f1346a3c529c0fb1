/**
 * x86 register-state shapes as the KVM uapi has them (`struct kvm_regs`,
 * `kvm_sregs`, `kvm_segment`, `kvm_dtable`, `kvm_debugregs`,
 * `kvm_vcpu_events`), with 64-bit fields as bigint.
 *
 * @module
 */
import { KVM_REGS_NAMES as KVM_STRUCT_REGS_NAMES } from "../abi/kvm_structs.ts";

/** `struct kvm_regs`. */
export interface KvmRegs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

/** `kvm_regs` field names in struct order (from the layout table). */
export const KVM_REGS_NAMES = KVM_STRUCT_REGS_NAMES satisfies readonly (keyof KvmRegs)[];

/** `struct kvm_segment`. */
export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** `struct kvm_dtable`. */
export interface KvmDtable {
  base: bigint;
  limit: number;
}

/** `struct kvm_sregs` (x86). */
export interface KvmSregs {
  cs: KvmSegment;
  ds: KvmSegment;
  es: KvmSegment;
  fs: KvmSegment;
  gs: KvmSegment;
  ss: KvmSegment;
  tr: KvmSegment;
  ldt: KvmSegment;
  gdt: KvmDtable;
  idt: KvmDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apic_base: bigint;
  /** Pending external interrupt bitmap (kvmsim has no interrupt injection: always zero). */
  interrupt_bitmap: [bigint, bigint, bigint, bigint];
}

/** The segment registers of `kvm_sregs`, in struct order. */
export const SREGS_SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

/** `struct kvm_debugregs`. */
export interface KvmDebugRegs {
  db: [bigint, bigint, bigint, bigint];
  dr6: bigint;
  dr7: bigint;
}

/** The part of `struct kvm_vcpu_events` kvmsim models (no interrupt injection, no SMM). */
export interface KvmVcpuEvents {
  exception: { injected: number; nr: number; has_error_code: number; pending: number; error_code: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  triple_fault: { pending: number };
}

/** A flat segment (base 0, 4 GiB, granular) of `type`; fields overridable. */
export function flatSegment(selector: number, type: number, extra: Partial<KvmSegment> = {}): KvmSegment {
  return {
    base: 0n,
    limit: 0xffffffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 1,
    s: 1,
    l: 0,
    g: 1,
    avl: 0,
    unusable: 0,
    ...extra,
  };
}

/** A real-mode segment: base = selector × 16, limit 0xffff. */
export function realSegment(selector: number, type: number): KvmSegment {
  return {
    base: BigInt(selector) << 4n,
    limit: 0xffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
  };
}
