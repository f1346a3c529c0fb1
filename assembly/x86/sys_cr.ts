// MOV to/from CR0/2/3/4/8 and DR0–DR7, LMSW/SMSW/CLTS, INVLPG, XGETBV/XSETBV.
// `cr`/`dr` is ModRM.reg (with REX.R), `gpr` ModRM.rm. Each exec* completes its
// instruction except execSmsw, which returns the value for the caller to store.
import {
  CPUID_EAX, CR4_SUPPORTED, VS_CR0, VS_CR2, VS_CR3, VS_CR4, VS_CR8, VS_DR, VS_EFER, VS_SEG_CS_L, VS_XCR0,
} from "../abi.generated";
import { RAX, RCX, RDX, S, ST_OK, reg64, setReg64, setRip, status } from "./cpu";
import { ea, eaSeg, nextIp, opSize } from "./decode_state";
import { EXC_UD, gp0, raise } from "./exceptions";
import {
  CR0_CD, CR0_ET, CR0_NW, CR0_PE, CR0_PG, CR0_TS, CR4_DE, CR4_OSXSAVE, CR4_PAE, CR4_PCIDE, EFER_LMA, EFER_LME,
  MODE_LONG, cpl, mode, recomputeMode,
} from "./mode";
import { tlbFlush, tlbFlushPage } from "./tlb";
import { segLinear } from "./segments";
import { ACC_READ } from "./paging";
import { breakLoop } from "./core_link";
import { DR6_FIXED, refreshDebug } from "./debug";
import { cpuidEax, cpuidEdx, cpuidLookup, findCpuid } from "../kvm/cpuid";


/** MAXPHYADDR of the guest's CPUID (cpuid_maxphyaddr() in KVM). */
function guestMaxPhyAddr(): u64 {
  const e = findCpuid(0x80000008, 0);
  if (e == 0) return 36;
  const b = <u64>(load<u32>(e + CPUID_EAX) & 0xff);
  return b < 32 || b > 52 ? 36 : b;
}

@inline function regVal(gpr: i32): u64 { return mode == MODE_LONG ? reg64(gpr) : reg64(gpr) & 0xffffffff; }

/** Write CR0 with KVM's kvm_set_cr0 checks; false → #GP. */
export function setCr0(v: u64): bool {
  if ((v >> 32) != 0) return false;
  v |= CR0_ET;
  if ((v & CR0_PG) != 0 && (v & CR0_PE) == 0) return false;
  if ((v & CR0_NW) != 0 && (v & CR0_CD) == 0) return false;
  const old = load<u64>(S + VS_CR0);
  let efer = load<u64>(S + VS_EFER);
  if ((v & CR0_PG) != 0 && (old & CR0_PG) == 0 && (efer & EFER_LME) != 0) {
    if ((load<u64>(S + VS_CR4) & CR4_PAE) == 0) return false;
    if (load<u8>(S + VS_SEG_CS_L) != 0) return false;
    efer |= EFER_LMA;
  }
  if ((v & CR0_PG) == 0 && (old & CR0_PG) != 0 && (efer & EFER_LMA) != 0) {
    if (mode == MODE_LONG) return false;
    efer &= ~EFER_LMA;
  }
  store<u64>(S + VS_EFER, efer);
  store<u64>(S + VS_CR0, v);
  tlbFlush();
  recomputeMode();
  breakLoop();
  return true;
}

function setCr4(v: u64): bool {
  if ((v & ~CR4_SUPPORTED) != 0) return false; // the bits kvmsim implements (src/abi/cpu_features.ts)
  const efer = load<u64>(S + VS_EFER);
  if ((efer & EFER_LMA) != 0 && (v & CR4_PAE) == 0) return false;
  if ((v & CR4_PCIDE) != 0 && (load<u64>(S + VS_CR4) & CR4_PCIDE) == 0) {
    if ((efer & EFER_LMA) == 0 || (load<u64>(S + VS_CR3) & 0xfff) != 0) return false;
  }
  store<u64>(S + VS_CR4, v);
  tlbFlush();
  recomputeMode();
  breakLoop();
  return true;
}

export function execMovToCr(cr: i32, gpr: i32): void {
  if (cpl() != 0) { gp0(); return; }
  const v = regVal(gpr);
  switch (cr) {
    case 0: if (!setCr0(v)) { gp0(); return; } break;
    case 2: store<u64>(S + VS_CR2, v); break;
    case 3: {
      // kvm_set_cr3(): bit 63 is PCID "no flush" only with CR4.PCIDE; any other bit above
      // the guest's MAXPHYADDR (CPUID 0x80000008.EAX[7:0], 36 without the leaf) → #GP.
      let c3 = v;
      if ((load<u64>(S + VS_CR4) & CR4_PCIDE) != 0) c3 &= ~(<u64>1 << 63);
      if ((c3 >> guestMaxPhyAddr()) != 0) { gp0(); return; }
      store<u64>(S + VS_CR3, c3);
      tlbFlush();
      break;
    }
    case 4: if (!setCr4(v)) { gp0(); return; } break;
    case 8: if ((v & ~(<u64>15)) != 0) { gp0(); return; } store<u64>(S + VS_CR8, v); break;
    default: raise(EXC_UD); return;
  }
  setRip(nextIp);
}

export function execMovFromCr(cr: i32, gpr: i32): void {
  if (cpl() != 0) { gp0(); return; }
  let v: u64;
  switch (cr) {
    case 0: v = load<u64>(S + VS_CR0); break;
    case 2: v = load<u64>(S + VS_CR2); break;
    case 3: v = load<u64>(S + VS_CR3); break;
    case 4: v = load<u64>(S + VS_CR4); break;
    case 8: v = load<u64>(S + VS_CR8); break;
    default: raise(EXC_UD); return;
  }
  setReg64(gpr, mode == MODE_LONG ? v : v & 0xffffffff);
  setRip(nextIp);
}

/** DR4/DR5 alias DR6/DR7 unless CR4.DE (then #UD); -1 after raising. */
function drIndex(dr: i32): i32 {
  if (dr > 7) { raise(EXC_UD); return -1; }
  if (dr == 4 || dr == 5) {
    if ((load<u64>(S + VS_CR4) & CR4_DE) != 0) { raise(EXC_UD); return -1; }
    return dr + 2;
  }
  return dr;
}

export function execMovToDr(dr: i32, gpr: i32): void {
  if (cpl() != 0) { gp0(); return; }
  const i = drIndex(dr);
  if (i < 0) return;
  const v = regVal(gpr);
  if ((i == 6 || i == 7) && (v >> 32) != 0) { gp0(); return; }
  if (i == 6) store<u64>(S + VS_DR + 48, (v & 0x1e00f) | DR6_FIXED);
  else if (i == 7) { store<u64>(S + VS_DR + 56, (v & 0xffff2bff) | 0x400); refreshDebug(); breakLoop(); }
  else store<u64>(S + VS_DR + i * 8, v);
  setRip(nextIp);
}

export function execMovFromDr(dr: i32, gpr: i32): void {
  if (cpl() != 0) { gp0(); return; }
  const i = drIndex(dr);
  if (i < 0) return;
  let v = load<u64>(S + VS_DR + i * 8);
  if (i == 6) v |= DR6_FIXED;
  if (i == 7) v |= 0x400;
  setReg64(gpr, mode == MODE_LONG ? v : v & 0xffffffff);
  setRip(nextIp);
}

/** LMSW: loads CR0[3:0]; PE can be set but not cleared. */
export function execLmsw(v: u32): void {
  if (cpl() != 0) { gp0(); return; }
  const old = load<u64>(S + VS_CR0);
  const nv = (old & ~(<u64>0xe)) | (<u64>v & 0xf) | (old & CR0_PE);
  if (!setCr0(nv)) { gp0(); return; }
  setRip(nextIp);
}

/** SMSW: CR0 (the caller stores 16 bits to memory, opSize bits to a register). */
export function execSmsw(): u64 {
  const v = load<u64>(S + VS_CR0);
  return opSize == 2 ? v & 0xffff : v & 0xffffffff;
}

export function execClts(): void {
  if (cpl() != 0) { gp0(); return; }
  store<u64>(S + VS_CR0, load<u64>(S + VS_CR0) & ~CR0_TS);
  setRip(nextIp);
}

/** INVLPG m: drops the TLB entry of the linear address of ea/eaSeg. */
export function execInvlpg(): void {
  if (cpl() != 0) { gp0(); return; }
  const lin = segLinear(eaSeg, ea, 1, ACC_READ);
  if (status != ST_OK) return; // a bad address is a no-op on hardware too... but segment faults do fault
  tlbFlushPage(lin);
  setRip(nextIp);
}

/**
 * XCR0 bits the guest may enable: CPUID.(EAX=0DH,ECX=0) EDX:EAX plus x87 (KVM's
 * __kvm_set_xcr: valid_bits = guest_supported_xcr0 | XFEATURE_MASK_FP; without
 * leaf 0xD guest_supported_xcr0 is 0, so only x87).
 */
function supportedXcr0(): u64 {
  if (findCpuid(0xd, 0) == 0) return 1;
  cpuidLookup(0xd, 0);
  return (<u64>cpuidEdx << 32) | <u64>cpuidEax | 1;
}

export function execXgetbv(): void {
  if ((load<u64>(S + VS_CR4) & CR4_OSXSAVE) == 0) { raise(EXC_UD); return; }
  if (<u32>reg64(RCX) != 0) { gp0(); return; }
  const v = load<u64>(S + VS_XCR0);
  setReg64(RAX, v & 0xffffffff);
  setReg64(RDX, v >> 32);
  setRip(nextIp);
}

/** XSETBV: CPL 0, XCR0 only, x87 must stay set, AVX needs SSE, only supported bits. */
export function execXsetbv(): void {
  if ((load<u64>(S + VS_CR4) & CR4_OSXSAVE) == 0) { raise(EXC_UD); return; }
  if (cpl() != 0 || <u32>reg64(RCX) != 0) { gp0(); return; }
  const v = (reg64(RDX) << 32) | (reg64(RAX) & 0xffffffff);
  if ((v & 1) == 0 || ((v & 4) != 0 && (v & 2) == 0) || (v & ~supportedXcr0()) != 0) { gp0(); return; }
  store<u64>(S + VS_XCR0, v);
  setRip(nextIp);
}
