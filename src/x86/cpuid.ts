/**
 * The "supported CPUID" table (KVM_GET_SUPPORTED_CPUID) for what kvmsim
 * implements, installed in every new VM (as kvm_util's vm_create does with
 * the supported table). Vendor AMD (VMMCALL is the hypercall instruction);
 * only features the interpreter executes are set — no x87/SSE, no SYSCALL.
 * MAXPHYADDR and the linear-address width are in 0x80000008.EAX.
 *
 * @module
 */

/** `struct kvm_cpuid_entry2` (padding omitted). */
export interface CpuidEntry {
  function: number;
  index: number;
  /** KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1) when `index` selects a sub-leaf. */
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;
/** Physical-address bits (MAXPHYADDR) of kvmsim's VMs. */
export const MAXPHYADDR = 48;
/** Linear-address bits (4-level paging). */
export const LINEAR_ADDRESS_BITS = 48;
/** CPUID.1.EAX: family 0x17, model 0x31, stepping 0 (AMD EPYC "Rome"); KVM puts this in RDX at reset. */
export const CPUID_SIGNATURE = 0x00830f10;

/** Leaf-1 EDX bits set: TSC, MSR, PAE, CX8, PSE, PGE, CMOV, PAT, PSE36 off, DE. */
const LEAF1_EDX = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 13) | (1 << 15) | (1 << 16);
/** Leaf-1 ECX: XSAVE (XGETBV/XSETBV), HYPERVISOR. */
const LEAF1_ECX = (1 << 26) | (1 << 31);
/** 0x80000001.EDX: NX, Page1GB, RDTSCP, LM. */
const EXT1_EDX = (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29);
/** 0x80000001.ECX: LAHF/SAHF in 64-bit mode. */
const EXT1_ECX = 1 << 0;

function str4(s: string, i: number): number {
  let v = 0;
  for (let k = 3; k >= 0; k--) v = v * 256 + (s.charCodeAt(i + k) || 0);
  return v >>> 0;
}

function leaf(fn: number, eax: number, ebx: number, ecx: number, edx: number, index = 0, flags = 0): CpuidEntry {
  return { function: fn >>> 0, index, flags, eax: eax >>> 0, ebx: ebx >>> 0, ecx: ecx >>> 0, edx: edx >>> 0 };
}

function brandLeaves(): CpuidEntry[] {
  const brand = "kvmsim virtual x86-64 CPU".padEnd(48, "\0");
  return [0, 1, 2].map((n) => {
    const o = n * 16;
    return leaf(0x80000002 + n, str4(brand, o), str4(brand, o + 4), str4(brand, o + 8), str4(brand, o + 12));
  });
}

/** The default table (a fresh copy). */
export function defaultCpuid(): CpuidEntry[] {
  const vendor = "AuthenticAMD";
  const kvm = "KVMKVMKVM\0\0\0";
  return [
    leaf(0, 0xd, str4(vendor, 0), str4(vendor, 8), str4(vendor, 4)),
    // EBX: CLFLUSH line size 8 (×8 = 64 bytes), one logical processor, APIC id patched per vCPU by the core.
    leaf(1, CPUID_SIGNATURE, 0x00010800, LEAF1_ECX, LEAF1_EDX),
    leaf(7, 0, 0, 0, 0, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    // XSAVE: XCR0 may only hold x87 (bit 0); 576-byte area.
    leaf(0xd, 0x1, 0x240, 0x240, 0, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    leaf(0xd, 0, 0, 0, 0, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
    leaf(0x40000000, 0x40000001, str4(kvm, 0), str4(kvm, 4), str4(kvm, 8)),
    leaf(0x40000001, 0, 0, 0, 0),
    leaf(0x80000000, 0x80000008, str4(vendor, 0), str4(vendor, 8), str4(vendor, 4)),
    leaf(0x80000001, CPUID_SIGNATURE, 0, EXT1_ECX, EXT1_EDX),
    ...brandLeaves(),
    leaf(0x80000008, (LINEAR_ADDRESS_BITS << 8) | MAXPHYADDR, 0, 0, 0),
  ];
}

/** The vendor string of leaf 0 (EBX, EDX, ECX, as defaultCpuid writes it with str4), or undefined without leaf 0. */
export function cpuidVendor(entries: readonly CpuidEntry[]): string | undefined {
  const e = findCpuid(entries, 0);
  if (e === undefined) return undefined;
  const chars = (v: number) => String.fromCharCode(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  return chars(e.ebx) + chars(e.edx) + chars(e.ecx);
}

/** Find an entry (kvm_get_supported_cpuid_index). */
export function findCpuid(entries: readonly CpuidEntry[], fn: number, index = 0): CpuidEntry | undefined {
  return entries.find((e) =>
    e.function === fn >>> 0 && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) === 0 || e.index === index)
  );
}
