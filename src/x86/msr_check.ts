/**
 * What KVM_SET_MSRS does with a value user space writes (host-initiated:
 * Linux arch/x86/kvm/x86.c kvm_set_msr_common, set_efer, kvm_apic_set_base),
 * for the MSRs of kvmsim's table (src/abi/msrs.ts), checked against this
 * host's /dev/kvm in tests/vm_msr_check_test.ts:
 *
 * - EFER: a bit outside SCE, LME, LMA and NXE is refused (efer_reserved_bits:
 *   kvmsim has no SVM, fast FXSAVE or automatic IBRS); LMA is not written (it
 *   keeps its value, as set_efer does);
 * - APIC_BASE: refused as KVM_SET_SREGS refuses it (x86/sregs_check.ts);
 * - FS_BASE, GS_BASE, KERNEL_GS_BASE, LSTAR, CSTAR: a non-canonical address is
 *   refused;
 * - SYSENTER_ESP, SYSENTER_EIP: made canonical (sign-extended from bit 47),
 *   not refused (AMD ignores their upper half; KVM makes them canonical);
 * - TSC_AUX: bits 63:32 are refused for a GenuineIntel CPUID vendor and
 *   dropped for any other (AMD CPUs ignore them);
 * - PAT: a memory type other than 0, 1, 4, 5, 6, 7 in any byte is refused
 *   (kvm_pat_valid; this host's kvm_pvm takes it, upstream KVM does not);
 * - anything else is stored as given.
 *
 * @module
 */
import { EFER_SUPPORTED } from "../abi/cpu_features.ts";
import { type CpuidEntry, cpuidVendor, LINEAR_ADDRESS_BITS } from "./cpuid.ts";
import { isCanonical } from "./page_tables.ts";
import { apicBaseProblem } from "./sregs_check.ts";

const EFER_KNOWN = BigInt(EFER_SUPPORTED); // SCE, LME, LMA, NXE
const EFER_LMA = 0x400n;
const CANONICAL = new Set([0xc0000082, 0xc0000083, 0xc0000100, 0xc0000101, 0xc0000102]);

/** The outcome of writing `data` to in-kernel MSR `index`: the value to store, or why it is refused. */
export type MsrWrite = { readonly ok: true; readonly value: bigint } | { readonly ok: false; readonly why: string };

/** KVM_SET_MSRS of `data` to `index` (currently `now`) on a vCPU with this CPUID table. */
export function msrWrite(index: number, data: bigint, now: bigint, cpuid: readonly CpuidEntry[]): MsrWrite {
  const v = BigInt.asUintN(64, data);
  switch (index >>> 0) {
    case 0xc0000080:
      if ((v & ~EFER_KNOWN) !== 0n) {
        return { ok: false, why: `bits 0x${(v & ~EFER_KNOWN).toString(16)} are reserved (SCE, LME, LMA, NXE only)` };
      }
      return { ok: true, value: (v & ~EFER_LMA) | (now & EFER_LMA) };
    case 0x1b: {
      const why = apicBaseProblem(v, cpuid);
      return why === undefined ? { ok: true, value: v } : { ok: false, why };
    }
    case 0x277:
      if ((v & 0xf8f8f8f8f8f8f8f8n) !== 0n || (v | ((v & 0x0202020202020202n) << 1n)) !== v) {
        return { ok: false, why: "a memory type other than 0, 1, 4, 5, 6, 7 (kvm_pat_valid)" };
      }
      return { ok: true, value: v };
    case 0x175:
    case 0x176:
      return { ok: true, value: BigInt.asUintN(64, BigInt.asIntN(LINEAR_ADDRESS_BITS, v)) };
    case 0xc0000103:
      if ((v >> 32n) === 0n) return { ok: true, value: v };
      return cpuidVendor(cpuid) === "GenuineIntel" // guest_cpuid_is_intel
        ? { ok: false, why: "bits 63:32 are reserved (GenuineIntel CPUID)" }
        : { ok: true, value: v & 0xffffffffn };
    default:
      if (CANONICAL.has(index >>> 0) && !isCanonical(v)) {
        return { ok: false, why: "not a canonical address (48-bit linear addresses)" };
      }
      return { ok: true, value: v };
  }
}
