/**
 * What KVM_SET_SREGS refuses with EINVAL before it writes anything (Linux
 * arch/x86/kvm/x86.c: kvm_is_valid_sregs with kvm_is_valid_cr0 /
 * kvm_is_valid_cr4, then kvm_apic_set_base), checked against this host's
 * /dev/kvm in tests/vm_sregs_check_test.ts:
 *
 * - CR0: bits 63:32 set, NW without CD, PG without PE;
 * - CR4: a bit outside what kvmsim's CPU implements (the host's
 *   cr4_reserved_bits: src/abi/cpu_features.ts CR4_SUPPORTED, also what MOV to
 *   CR4 allows). Upstream KVM also refuses the bits whose feature the vCPU's
 *   CPUID lacks (cr4_guest_rsvd_bits); this host's kvm_pvm does not, and
 *   neither does kvmsim, at KVM_SET_SREGS or at MOV to CR4;
 * - with EFER.LME and CR0.PG (long mode): CR4.PAE and EFER.LMA must be set
 *   and CR3 must be a legal GPA (no bit at or above MAXPHYADDR); otherwise
 *   neither EFER.LMA nor CS.L may be set;
 * - APIC_BASE: a reserved bit (0–7, 9, MAXPHYADDR and up, x2APIC enable
 *   without x2APIC in CPUID) or x2APIC enabled with the APIC disabled.
 *
 * EFER's reserved bits are not checked there (KVM stores them), and a CR8
 * with reserved bits is ignored, not refused (kvm_set_cr8's result is
 * dropped): {@link cr8Accepted}.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import { CR4_SUPPORTED } from "../abi/cpu_features.ts";
import { type CpuidEntry, findCpuid } from "./cpuid.ts";
import type { KvmSregs } from "./regs.ts";

const bit = (n: number) => 1n << BigInt(n);
const CR0_PE = bit(0), CR0_NW = bit(29), CR0_CD = bit(30), CR0_PG = bit(31);
const CR4_PAE = bit(5);
const EFER_LME = bit(8), EFER_LMA = bit(10);
const APIC_X2APIC_ENABLE = bit(10), APIC_ENABLE = bit(11);

/** A CPUID feature bit: leaf, sub-leaf, register, bit. */
type Feature = readonly [leaf: number, index: number, reg: "eax" | "ebx" | "ecx" | "edx", bit: number];

/** CR4 bit names, for the messages. */
const CR4_NAMES: readonly (readonly [name: string, bit: number])[] = [
  ["VME", 0],
  ["PVI", 1],
  ["TSD", 2],
  ["DE", 3],
  ["PSE", 4],
  ["PAE", 5],
  ["MCE", 6],
  ["PGE", 7],
  ["PCE", 8],
  ["OSFXSR", 9],
  ["OSXMMEXCPT", 10],
  ["UMIP", 11],
  ["LA57", 12],
  ["VMXE", 13],
  ["SMXE", 14],
  ["FSGSBASE", 16],
  ["PCIDE", 17],
  ["OSXSAVE", 18],
  ["KL", 19],
  ["SMEP", 20],
  ["SMAP", 21],
  ["PKE", 22],
  ["CET", 23],
  ["PKS", 24],
  ["LAM_SUP", 28],
];
const X2APIC: Feature = [1, 0, "ecx", 21];

function has(cpuid: readonly CpuidEntry[], [leaf, index, reg, b]: Feature): boolean {
  const e = findCpuid(cpuid, leaf, index);
  return e !== undefined && ((e[reg] >>> b) & 1) === 1;
}

/** MAXPHYADDR of a CPUID table: 0x80000008.EAX[7:0], 36 without that leaf (cpuid_maxphyaddr). */
export function maxPhyAddr(cpuid: readonly CpuidEntry[]): number {
  const e = findCpuid(cpuid, 0x80000008);
  return e === undefined ? 36 : e.eax & 0xff;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const names = (v: bigint) => {
  const named = CR4_NAMES.filter(([, b]) => (v & bit(b)) !== 0n).map(([n]) => n);
  const rest = CR4_NAMES.reduce((m, [, b]) => m & ~bit(b), v);
  return [...named, ...(rest !== 0n ? [`bits 0x${rest.toString(16)}`] : [])].join(", ");
};

/** Throw what KVM_SET_SREGS would refuse in `s` (the whole new state) with EINVAL. */
export function checkSregs(s: KvmSregs, cpuid: readonly CpuidEntry[]): void {
  const bad = (field: string, v: bigint, why: string): never => {
    throw new InvalidArgumentError(`sregs.${field}`, `${hex(v)}: ${why} (KVM_SET_SREGS fails with EINVAL)`);
  };
  const { cr0, cr4, efer } = s;
  if ((cr0 >> 32n) !== 0n) bad("cr0", cr0, "bits 63:32 are reserved");
  if ((cr0 & CR0_NW) !== 0n && (cr0 & CR0_CD) === 0n) bad("cr0", cr0, "NW (bit 29) is set without CD (bit 30)");
  if ((cr0 & CR0_PG) !== 0n && (cr0 & CR0_PE) === 0n) bad("cr0", cr0, "PG (bit 31) is set without PE (bit 0)");
  const extra = cr4 & ~BigInt(CR4_SUPPORTED);
  if (extra !== 0n) bad("cr4", cr4, `${names(extra)} (${hex(extra)}) not implemented by kvmsim's CPU (reserved)`);
  const phys = maxPhyAddr(cpuid);
  if ((efer & EFER_LME) !== 0n && (cr0 & CR0_PG) !== 0n) {
    if ((cr4 & CR4_PAE) === 0n) bad("cr4", cr4, "long mode (EFER.LME with CR0.PG) needs CR4.PAE");
    if ((efer & EFER_LMA) === 0n) bad("efer", efer, "long mode (EFER.LME with CR0.PG) needs EFER.LMA");
    if ((s.cr3 >> BigInt(phys)) !== 0n) bad("cr3", s.cr3, `long mode needs a CR3 below 2^${phys} (MAXPHYADDR)`);
  } else {
    if ((efer & EFER_LMA) !== 0n) bad("efer", efer, "EFER.LMA is set outside long mode (EFER.LME with CR0.PG)");
    if (s.cs.l !== 0) bad("cs.l", BigInt(s.cs.l), "a 64-bit code segment outside long mode");
  }
  const apic = apicBaseProblem(s.apic_base, cpuid);
  if (apic !== undefined) bad("apic_base", s.apic_base, apic);
}

/**
 * Why KVM refuses `a` as IA32_APIC_BASE from user space (kvm_apic_set_base: the
 * same for KVM_SET_SREGS and KVM_SET_MSRS), or undefined when it takes it.
 */
export function apicBaseProblem(a: bigint, cpuid: readonly CpuidEntry[]): string | undefined {
  const reserved = ((~0n << BigInt(maxPhyAddr(cpuid))) & ((1n << 64n) - 1n)) | 0x2ffn |
    (has(cpuid, X2APIC) ? 0n : APIC_X2APIC_ENABLE);
  if ((a & reserved) !== 0n) return `reserved bits ${hex(a & reserved)} are set`;
  if ((a & APIC_X2APIC_ENABLE) !== 0n && (a & APIC_ENABLE) === 0n) {
    return "x2APIC mode (bit 10) without the APIC enabled (bit 11)";
  }
  return undefined;
}

/** KVM_SET_SREGS takes CR8 only without reserved bits (4–63); otherwise CR8 keeps its value. */
export function cr8Accepted(cr8: bigint): boolean {
  return (cr8 >> 4n) === 0n;
}
