/**
 * What kvmsim's x86 CPU implements, where both sides of the WASM boundary
 * must agree (scripts/gen_abi.ts exports it to the core).
 *
 * @module
 */

/**
 * The CR4 bits kvmsim implements (its cr4_reserved_bits complement): VME, PVI, TSD, DE,
 * PSE, PAE, MCE, PGE, PCE, OSFXSR, OSXMMEXCPT, UMIP (bits 0–11), FSGSBASE (16), PCIDE
 * (17), OSXSAVE (18), SMEP (20), SMAP (21). No 5-level paging, VMX, SMX, protection
 * keys, CET or LAM: MOV to CR4 raises #GP and KVM_SET_SREGS refuses any other bit.
 */
export const CR4_SUPPORTED = 0x370fff;

/**
 * The EFER bits kvmsim implements (the complement of its efer_reserved_bits): SCE, LME,
 * LMA, NXE. No SVM, fast FXSAVE or automatic IBRS: WRMSR raises #GP (or takes the
 * KVM_MSR_EXIT_REASON_INVAL exit) and KVM_SET_MSRS refuses any other bit.
 */
export const EFER_SUPPORTED = 0xd01;
