/**
 * The in-kernel MSR table: the MSRs KVM_GET_MSRS / KVM_SET_MSRS (and the
 * guest's RDMSR / WRMSR, inside the core) handle without leaving the kernel,
 * each backed by one field of the vCPU state block. Indices and names are
 * Linux's `arch/x86/include/asm/msr-index.h`. `scripts/gen_abi.ts` emits the
 * indices for AssemblyScript (`MSR_EFER`, …).
 *
 * @module
 */

/** One in-kernel MSR: architectural index, msr-index.h name, backing `vcpu_state` field (dotted path). */
export interface MsrDef {
  readonly index: number;
  readonly name: string;
  readonly field: string;
  readonly doc: string;
}

export const MSRS: readonly MsrDef[] = [
  { index: 0x10, name: "MSR_IA32_TSC", field: "tsc", doc: "time-stamp counter" },
  { index: 0x1b, name: "MSR_IA32_APICBASE", field: "apic_base", doc: "APIC base address, BSP and enable bits" },
  { index: 0x174, name: "MSR_IA32_SYSENTER_CS", field: "sysenter_cs", doc: "SYSENTER target CS" },
  { index: 0x175, name: "MSR_IA32_SYSENTER_ESP", field: "sysenter_esp", doc: "SYSENTER target ESP" },
  { index: 0x176, name: "MSR_IA32_SYSENTER_EIP", field: "sysenter_eip", doc: "SYSENTER target EIP" },
  { index: 0x1a0, name: "MSR_IA32_MISC_ENABLE", field: "misc_enable", doc: "miscellaneous feature enables" },
  { index: 0x277, name: "MSR_IA32_CR_PAT", field: "pat", doc: "page attribute table" },
  { index: 0xc0000080, name: "MSR_EFER", field: "efer", doc: "extended feature enables (SCE, LME, LMA, NXE)" },
  { index: 0xc0000081, name: "MSR_STAR", field: "star", doc: "SYSCALL/SYSRET segment selectors" },
  { index: 0xc0000082, name: "MSR_LSTAR", field: "lstar", doc: "SYSCALL target RIP, 64-bit mode" },
  { index: 0xc0000083, name: "MSR_CSTAR", field: "cstar", doc: "SYSCALL target RIP, compatibility mode" },
  { index: 0xc0000084, name: "MSR_SYSCALL_MASK", field: "sfmask", doc: "SYSCALL RFLAGS mask" },
  { index: 0xc0000100, name: "MSR_FS_BASE", field: "seg_fs.base", doc: "FS segment base" },
  { index: 0xc0000101, name: "MSR_GS_BASE", field: "seg_gs.base", doc: "GS segment base" },
  { index: 0xc0000102, name: "MSR_KERNEL_GS_BASE", field: "kernel_gs_base", doc: "SWAPGS exchange value" },
  { index: 0xc0000103, name: "MSR_TSC_AUX", field: "tsc_aux", doc: "RDTSCP auxiliary value" },
];

const byIndex = new Map(MSRS.map((m) => [m.index, m]));

/** The table entry for `index`, or undefined when kvmsim does not handle it in-kernel. */
export function msrByIndex(index: number): MsrDef | undefined {
  return byIndex.get(index >>> 0);
}

/** Look an MSR up by its msr-index.h name (`"MSR_EFER"`). */
export function msrByName(name: string): MsrDef | undefined {
  return MSRS.find((m) => m.name === name);
}
