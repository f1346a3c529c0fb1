/**
 * The x86 vCPU state after RESET, as KVM sets it: Linux arch/x86/kvm/x86.c
 * `kvm_vcpu_reset()` (RDX = CPUID.1 signature or 0x600, DR6 = DR6_ACTIVE_LOW
 * 0xffff0ff0, DR7 = DR7_FIXED_1 0x400, XCR0 = XFEATURE_MASK_FP, PAT =
 * MSR_IA32_CR_PAT_DEFAULT, MISC_ENABLE = PEBS_UNAVAIL | BTS_UNAVAIL, RFLAGS
 * = X86_EFLAGS_FIXED, CR0 = X86_CR0_ET | X86_CR0_NW | X86_CR0_CD =
 * 0x60000010), `kvm_lapic_reset()`/`kvm_create_lapic()` (APIC base
 * 0xfee00000 | MSR_IA32_APICBASE_ENABLE, | MSR_IA32_APICBASE_BSP for vCPU 0),
 * and arch/x86/kvm/svm/svm.c `init_vmcb()` (CS selector 0xf000, base
 * 0xffff0000, limit 0xffff, RIP 0xfff0; data segments selector 0 limit
 * 0xffff type 3; GDTR/IDTR limit 0xffff; LDTR `SEG_TYPE_LDT`, TR
 * `SEG_TYPE_BUSY_TSS16`).
 *
 * @module
 */
import type { KvmDebugRegs, KvmRegs, KvmSegment, KvmSregs } from "./regs.ts";

export const RESET_CR0 = 0x60000010n;
export const RESET_DR6 = 0xffff0ff0n;
export const RESET_DR7 = 0x400n;
export const RESET_PAT = 0x0007040600070406n;
export const RESET_XCR0 = 1n;
export const RESET_MISC_ENABLE = 0x1800n;
export const APIC_DEFAULT_BASE = 0xfee00000n;
export const APIC_BASE_ENABLE = 0x800n;
export const APIC_BASE_BSP = 0x100n;

function seg(selector: number, base: bigint, type: number, s: number): KvmSegment {
  return { base, limit: 0xffff, selector, type, present: 1, dpl: 0, db: 0, s, l: 0, g: 0, avl: 0, unusable: 0 };
}

/** `kvm_regs` at reset: everything 0 except RIP 0xfff0, RFLAGS 2 and RDX = the CPUID.1 signature. */
export function resetRegs(signature: number): KvmRegs {
  return {
    rax: 0n,
    rbx: 0n,
    rcx: 0n,
    rdx: BigInt(signature >>> 0),
    rsi: 0n,
    rdi: 0n,
    rsp: 0n,
    rbp: 0n,
    r8: 0n,
    r9: 0n,
    r10: 0n,
    r11: 0n,
    r12: 0n,
    r13: 0n,
    r14: 0n,
    r15: 0n,
    rip: 0xfff0n,
    rflags: 2n,
  };
}

/** `kvm_sregs` at reset for vCPU `vcpuId` (vCPU 0 is the BSP). */
export function resetSregs(vcpuId: number): KvmSregs {
  const data = () => seg(0, 0n, 3, 1);
  return {
    cs: seg(0xf000, 0xffff0000n, 0xb, 1),
    ds: data(),
    es: data(),
    fs: data(),
    gs: data(),
    ss: data(),
    tr: seg(0, 0n, 3, 0),
    ldt: seg(0, 0n, 2, 0),
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0xffff },
    cr0: RESET_CR0,
    cr2: 0n,
    cr3: 0n,
    cr4: 0n,
    cr8: 0n,
    efer: 0n,
    apic_base: APIC_DEFAULT_BASE | APIC_BASE_ENABLE | (vcpuId === 0 ? APIC_BASE_BSP : 0n),
    interrupt_bitmap: [0n, 0n, 0n, 0n],
  };
}

/** Debug registers at reset. */
export function resetDebugRegs(): KvmDebugRegs {
  return { db: [0n, 0n, 0n, 0n], dr6: RESET_DR6, dr7: RESET_DR7 };
}

/** In-kernel MSRs at reset that are not part of sregs (index → value). */
export function resetMsrs(): [number, bigint][] {
  return [
    [0x10, 0n], // TSC
    [0x277, RESET_PAT],
    [0x1a0, RESET_MISC_ENABLE],
  ];
}
