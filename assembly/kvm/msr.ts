// In-kernel MSRs, the KVM_X86_SET_MSR_FILTER filter and KVM_CAP_X86_USER_SPACE_MSR
// exits (Linux arch/x86/kvm/x86.c kvm_msr_allowed, kvm_get/set_msr_with_filter,
// kvm_msr_user_space). The filter applies to every MSR access, in-kernel ones too.
// A range's `bitmap` is a byte offset into VMC_MSR_BITMAPS (bit set = allowed).
import {
  KVM_EXIT_X86_RDMSR, KVM_EXIT_X86_WRMSR, KVM_MSR_EXIT_REASON_FILTER, KVM_MSR_EXIT_REASON_INVAL,
  KVM_MSR_EXIT_REASON_UNKNOWN, KVM_MSR_FILTER_DEFAULT_DENY, KVM_MSR_FILTER_READ, KVM_MSR_FILTER_WRITE,
  KVM_RUN_MSR_DATA, KVM_RUN_MSR_ERROR, KVM_RUN_MSR_INDEX, KVM_RUN_MSR_PAD, KVM_RUN_MSR_REASON,
  MAX_MSR_FILTER_RANGES, MSRF_BASE, MSRF_BITMAP, MSRF_FLAGS, MSRF_NMSRS, MSRF_SIZEOF, MSR_FILTER_BITMAP_BYTES,
  VMC_MSR_BITMAPS, VMC_MSR_FILTER, VMC_MSR_FILTER_FLAGS, VMC_MSR_FILTER_NRANGES, VMC_USER_MSR_MASK, VM_CONTROL_BASE,
  VS_APIC_BASE, VS_CR0, VS_CSTAR, VS_EFER, VS_INSTRUCTIONS, VS_KERNEL_GS_BASE, VS_LSTAR, VS_MISC_ENABLE, VS_PAT,
  VS_PENDING_FLAGS, VS_PENDING_RIP, VS_SEG_FS_BASE, VS_SEG_GS_BASE, VS_SFMASK, VS_STAR, VS_SYSENTER_CS,
  VS_SYSENTER_EIP, VS_SYSENTER_ESP, VS_TSC, VS_TSC_AUX, EFER_SUPPORTED,
} from "../abi.generated";
import { RUN, S } from "../x86/cpu";
import { nextIp } from "../x86/decode_state";
import { CR0_PG, EFER_LMA, EFER_LME, EFER_NXE, recomputeMode } from "../x86/mode";
import { canonical } from "../x86/segments";
import { tlbFlush } from "../x86/tlb";
import { maxPhyAddr } from "../x86/paging";
import { cpuidEcx, cpuidEdx, cpuidLookup } from "./cpuid";
import { PEND_RDMSR, PEND_WRMSR } from "../x86/mem";
import { breakLoop, instructionsInFlight } from "../x86/core_link";
import { exitTo } from "./exits";

export const MSR_OK: i32 = 0;
export const MSR_GP: i32 = 1;
export const MSR_EXIT: i32 = 2;
/** Value read by msrRead(). */
export let msrValue: u64 = 0;

// TSC: VS_TSC is the value at run() entry; it advances with retired instructions.
let instrBase: u64 = 0;
export function tscRunStart(): void { instrBase = load<u64>(S + VS_INSTRUCTIONS); }
/** Instructions retired so far, those stepMany() has not counted yet included. */
@inline function retiredNow(): u64 { return load<u64>(S + VS_INSTRUCTIONS) + <u64>instructionsInFlight(); }
export function tscNow(): u64 { return load<u64>(S + VS_TSC) + (retiredNow() - instrBase); }
/** Fold the instructions retired in this run into VS_TSC (at run() exit). */
export function tscRunEnd(): void {
  const ins = load<u64>(S + VS_INSTRUCTIONS);
  if (ins == instrBase) return; // nothing retired: VS_TSC is already current
  store<u64>(S + VS_TSC, load<u64>(S + VS_TSC) + (ins - instrBase));
  instrBase = ins;
}
function tscWrite(v: u64): void { store<u64>(S + VS_TSC, v - (retiredNow() - instrBase)); }

/** KVM_X86_SET_MSR_FILTER: first range of the right kind containing `index` decides. */
export function msrAllowed(index: u32, write: bool): bool {
  // kvm_msr_allowed(): "x2APIC MSRs do not support filtering."
  if (index >= 0x800 && index <= 0x8ff) return true;
  const kind: u32 = write ? KVM_MSR_FILTER_WRITE : KVM_MSR_FILTER_READ;
  let n = <i32>load<u32>(VM_CONTROL_BASE + VMC_MSR_FILTER_NRANGES);
  if (n > MAX_MSR_FILTER_RANGES) n = MAX_MSR_FILTER_RANGES;
  for (let i = 0; i < n; i++) {
    const r = <usize>(VM_CONTROL_BASE + VMC_MSR_FILTER + i * MSRF_SIZEOF);
    if ((load<u32>(r + MSRF_FLAGS) & kind) == 0) continue;
    const base = load<u32>(r + MSRF_BASE);
    const nm = load<u32>(r + MSRF_NMSRS);
    if (index - base >= nm) continue;
    const bit = index - base;
    const off = <u64>load<u32>(r + MSRF_BITMAP) + <u64>(bit >> 3);
    if (off >= <u64>MSR_FILTER_BITMAP_BYTES) return false;
    const m: u32 = <u32>1 << (bit & 7);
    return (<u32>load<u8>(<usize>(VM_CONTROL_BASE + VMC_MSR_BITMAPS) + <usize>off) & m) != 0;
  }
  return (load<u32>(VM_CONTROL_BASE + VMC_MSR_FILTER_FLAGS) & KVM_MSR_FILTER_DEFAULT_DENY) == 0;
}

/** Exit to userspace with `reason` if KVM_CAP_X86_USER_SPACE_MSR enabled it, else #GP. */
function userExit(index: u32, write: bool, value: u64, reason: i32): i32 {
  if ((load<u32>(VM_CONTROL_BASE + VMC_USER_MSR_MASK) & <u32>reason) == 0) return MSR_GP;
  store<u8>(RUN + KVM_RUN_MSR_ERROR, 0);
  for (let i = 0; i < 7; i++) store<u8>(RUN + KVM_RUN_MSR_PAD + i, 0);
  store<u32>(RUN + KVM_RUN_MSR_REASON, <u32>reason);
  store<u32>(RUN + KVM_RUN_MSR_INDEX, index);
  store<u64>(RUN + KVM_RUN_MSR_DATA, write ? value : 0);
  store<u64>(S + VS_PENDING_RIP, nextIp);
  store<u32>(S + VS_PENDING_FLAGS, load<u32>(S + VS_PENDING_FLAGS) | (write ? PEND_WRMSR : PEND_RDMSR));
  exitTo(write ? KVM_EXIT_X86_WRMSR : KVM_EXIT_X86_RDMSR);
  return MSR_EXIT;
}

/** Address of a plain in-kernel MSR's storage, or 0. */
function plainMsr(index: u32): i32 {
  switch (index) {
    case 0x1b: return VS_APIC_BASE;
    case 0x174: return VS_SYSENTER_CS;
    case 0x175: return VS_SYSENTER_ESP;
    case 0x176: return VS_SYSENTER_EIP;
    case 0x1a0: return VS_MISC_ENABLE;
    case 0x277: return VS_PAT;
    case 0xc0000081: return VS_STAR;
    case 0xc0000082: return VS_LSTAR;
    case 0xc0000083: return VS_CSTAR;
    case 0xc0000084: return VS_SFMASK;
    case 0xc0000100: return VS_SEG_FS_BASE;
    case 0xc0000101: return VS_SEG_GS_BASE;
    case 0xc0000102: return VS_KERNEL_GS_BASE;
    case 0xc0000103: return VS_TSC_AUX;
    default: return 0;
  }
}

/** IA32_TIME_STAMP_COUNTER. */
export const MSR_TSC: u32 = 0x10;
const MSR_EFER: u32 = 0xc0000080;

export function msrRead(index: u32): i32 {
  if (!msrAllowed(index, false)) return userExit(index, false, 0, KVM_MSR_EXIT_REASON_FILTER);
  if (index == MSR_TSC) { msrValue = tscNow(); return MSR_OK; }
  return storedMsr(index) ? MSR_OK : userExit(index, false, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
}

/** An in-kernel MSR kept in the state block (EFER or plainMsr): its value into msrValue. */
function storedMsr(index: u32): bool {
  if (index == MSR_EFER) { msrValue = load<u64>(S + VS_EFER); return true; }
  const p = plainMsr(index);
  if (p == 0) return false;
  msrValue = load<u64>(S + p);
  return true;
}

/**
 * msrRead() for a translated block (x86/jit.ts jitRdmsr): true with msrValue when the read
 * is allowed and in-kernel from the state block, with no side effect; false (nothing done)
 * for the TSC (it counts instructions a translation retires only when it returns) and for
 * anything that would exit or #GP.
 */
export function msrPeek(index: u32): bool {
  return index != MSR_TSC && msrAllowed(index, false) && storedMsr(index);
}

/** PAT entries must be UC, WC, WT, WP, WB or UC- (0, 1, 4, 5, 6, 7). */
function patValid(v: u64): bool {
  for (let i: u64 = 0; i < 8; i++) {
    const t = (v >> (i * 8)) & 0xff;
    if (t == 2 || t == 3 || t > 7) return false;
  }
  return true;
}

const APIC_X2APIC: u64 = 1 << 10;
const APIC_ENABLE: u64 = 1 << 11;

/**
 * kvm_set_apic_base for a guest WRMSR: no reserved bit (0–7, 9, MAXPHYADDR and up, x2APIC
 * enable without x2APIC in CPUID.1:ECX[21]), not x2APIC with the APIC disabled, and not
 * x2APIC to xAPIC nor disabled to x2APIC (KVM_SET_MSRS / KVM_SET_SREGS skip the last two:
 * src/x86/sregs_check.ts).
 */
function apicBaseValid(v: u64): bool {
  cpuidLookup(1, 0);
  const phys = maxPhyAddr();
  const reserved: u64 = (phys >= 64 ? 0 : ~(<u64>0) << <u64>phys) | 0x2ff | ((cpuidEcx & (1 << 21)) != 0 ? 0 : APIC_X2APIC);
  if ((v & reserved) != 0) return false;
  const mode = v & (APIC_ENABLE | APIC_X2APIC), old = load<u64>(S + VS_APIC_BASE) & (APIC_ENABLE | APIC_X2APIC);
  if (mode == APIC_X2APIC) return false;
  if (old == (APIC_ENABLE | APIC_X2APIC) && mode == APIC_ENABLE) return false;
  return !(old == 0 && mode == (APIC_ENABLE | APIC_X2APIC));
}

/** Value check for in-kernel MSRs (KVM: kvm_set_msr_common returns 1 → #GP or an INVAL exit). */
function validWrite(index: u32, v: u64): bool {
  switch (index) {
    case MSR_EFER: {
      if ((v & ~EFER_SUPPORTED) != 0) return false; // the bits kvmsim implements (src/abi/cpu_features.ts)
      // __kvm_valid_efer: a guest may set LME/LMA only with CPUID long mode, NXE only with NX.
      cpuidLookup(0x80000001, 0);
      if ((v & (EFER_LME | EFER_LMA)) != 0 && (cpuidEdx & (1 << 29)) == 0) return false;
      if ((v & EFER_NXE) != 0 && (cpuidEdx & (1 << 20)) == 0) return false;
      const old = load<u64>(S + VS_EFER);
      // Toggling LME with paging on is refused (set_efer: is_paging && LME changes).
      if ((load<u64>(S + VS_CR0) & CR0_PG) != 0 && ((old ^ v) & EFER_LME) != 0) return false;
      return true;
    }
    case 0x1b: return apicBaseValid(v);
    case 0x277: return patValid(v);
    case 0xc0000082: case 0xc0000083: case 0xc0000100: case 0xc0000101: case 0xc0000102: return canonical(v);
    case 0xc0000103: return (v >> 32) == 0;
    case 0x174: return true;
    default: return true;
  }
}

export function msrWrite(index: u32, v: u64): i32 {
  if (!msrAllowed(index, true)) return userExit(index, true, v, KVM_MSR_EXIT_REASON_FILTER);
  if (index == MSR_TSC) { tscWrite(v); return MSR_OK; }
  const p = index == MSR_EFER ? VS_EFER : plainMsr(index);
  if (p == 0) return userExit(index, true, v, KVM_MSR_EXIT_REASON_UNKNOWN);
  if (!validWrite(index, v)) return userExit(index, true, v, KVM_MSR_EXIT_REASON_INVAL);
  if (index == MSR_EFER) {
    // LMA is read-only through WRMSR (set_efer keeps the current LMA).
    const nv = (v & ~EFER_LMA) | (load<u64>(S + VS_EFER) & EFER_LMA);
    store<u64>(S + VS_EFER, nv);
    tlbFlush();
    recomputeMode();
    breakLoop();
    return MSR_OK;
  }
  // SYSENTER_ESP/EIP: made canonical, not refused (KVM: AMD ignores their upper half).
  store<u64>(S + p, index == 0x175 || index == 0x176 ? <u64>((<i64>(v << 16)) >> 16) : v);
  return MSR_OK;
}
