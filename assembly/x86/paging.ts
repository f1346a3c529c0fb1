// Page walks: legacy 32-bit paging (4 KiB, 4 MiB with CR4.PSE), PAE paging and
// 4-level long-mode paging (4 KiB / 2 MiB / 1 GiB); P/RW/US/NX with CR0.WP, EFER.NXE,
// CR4.SMEP/SMAP; A/D updates; #PF with CR2 and error code (P, W, U, RSVD, I).
// PAE PDPTEs are read at walk time instead of being latched at the CR3 write.
// A page-table entry in no memslot faults like a not-present entry, as KVM's
// shadow walker does (arch/x86/kvm/mmu/paging_tmpl.h: kvm_is_error_hva → error).
import { VS_CR0, VS_CR3, VS_CR4, VS_EFER } from "../abi.generated";
import { S } from "./cpu";
import { raisePF } from "./exceptions";
import { CR0_PG, CR0_WP, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE } from "./mode";
import { physOk, physOr32, physOr64, physRead32, physRead64 } from "./phys";
import { P_SR, P_SW, P_SX, P_UR, P_UW, P_UX } from "./tlb";

export const ACC_READ: i32 = 0;
export const ACC_WRITE: i32 = 1;
export const ACC_EXEC: i32 = 2;

/** Privilege of an access: explicit supervisor (honours EFLAGS.AC for SMAP), user, or implicit supervisor. */
export const PRIV_SUP: i32 = 0;
export const PRIV_USER: i32 = 1;
export const PRIV_IMPLICIT: i32 = 2;

const PF_P: u32 = 1; const PF_W: u32 = 2; const PF_U: u32 = 4; const PF_RSVD: u32 = 8; const PF_I: u32 = 16;

/** Guest MAXPHYADDR (CPUID 0x80000008 EAX[7:0], 36 without that leaf like KVM). */
let maxPhy: u32 = 36;
export function setMaxPhyAddr(b: u32): void { maxPhy = b < 32 || b > 52 ? 36 : b; }
/** MAXPHYADDR of the selected vCPU (its CPUID 0x80000008.EAX[7:0]). */
export function maxPhyAddr(): u32 { return maxPhy; }

/** Permission bits (tlb.ts P_*) the successful walk grants for this page. */
export let walkPerm: u32 = 0;

const ADDR_MASK_4K: u64 = 0x000ffffffffff000;

/** Translate `lin` for `acc`; returns the GPA, or sets status (#PF) and returns 0. `acFlag`: EFLAGS.AC. */
export function walk(lin: u64, acc: i32, priv: i32, acFlag: bool): u64 {
  const cr0 = load<u64>(S + VS_CR0);
  if ((cr0 & CR0_PG) == 0) {
    walkPerm = P_SR | P_SW | P_SX | P_UR | P_UW | P_UX;
    return lin & 0xffffffff;
  }
  const cr4 = load<u64>(S + VS_CR4);
  const efer = load<u64>(S + VS_EFER);
  const nxe = (efer & EFER_NXE) != 0;
  const user = priv == PRIV_USER;
  let errBase: u32 = (acc == ACC_WRITE ? PF_W : 0) | (user ? PF_U : 0);
  if (acc == ACC_EXEC && (nxe || (cr4 & CR4_SMEP) != 0)) errBase |= PF_I;
  const rsvdHigh: u64 = maxPhy >= 52 ? 0 : (0x000fffffffffffff & ~((<u64>1 << maxPhy) - 1));
  const nxRsvd: u64 = nxe ? 0 : (<u64>1 << 63);
  let uAll = true;
  let wAll = true;
  let nx = false;
  let gpa: u64 = 0;
  let leafAddr: u64 = 0;
  let leaf: u64 = 0;
  let leaf32 = false;
  // Up to 4 levels of table entries whose A bit we set after the walk.
  let e0: u64 = 0; let a0: u64 = 0; let e1: u64 = 0; let a1: u64 = 0; let e2: u64 = 0; let a2: u64 = 0;
  let nUpper = 0;

  if ((efer & EFER_LMA) != 0 || (cr4 & CR4_PAE) != 0) {
    const long = (efer & EFER_LMA) != 0;
    let table: u64 = load<u64>(S + VS_CR3) & (long ? ADDR_MASK_4K : 0xffffffe0);
    let level = long ? 4 : 3;
    if (!long) {
      // PAE: the PDPTE (4 entries of 8 bytes at CR3[31:5]).
      const pa = table + (((lin >> 30) & 3) << 3);
      const pdpte = physRead64(pa);
      if (!physOk || (pdpte & 1) == 0) { raisePF(lin, errBase); return 0; }
      if ((pdpte & (rsvdHigh | 0x1e6 | (<u64>1 << 63))) != 0) { raisePF(lin, errBase | PF_P | PF_RSVD); return 0; }
      table = pdpte & ADDR_MASK_4K;
      level = 2;
    }
    while (true) {
      const shift: u64 = 12 + 9 * <u64>(level - 1);
      const pa = table + (((lin >> shift) & 511) << 3);
      const ent = physRead64(pa);
      if (!physOk || (ent & 1) == 0) { raisePF(lin, errBase); return 0; }
      let rsvd = ent & (rsvdHigh | nxRsvd);
      const ps = (ent & 0x80) != 0;
      if (level == 4 && ps) rsvd |= 0x80;
      if (ps && level == 3) rsvd |= ent & 0x3fffe000;
      if (ps && level == 2) rsvd |= ent & 0x1fe000;
      if (rsvd != 0) { raisePF(lin, errBase | PF_P | PF_RSVD); return 0; }
      if ((ent & 4) == 0) uAll = false;
      if ((ent & 2) == 0) wAll = false;
      if ((ent & (<u64>1 << 63)) != 0) nx = true;
      if (level == 1 || (ps && level <= 3)) {
        leafAddr = pa; leaf = ent;
        const pageMask: u64 = (<u64>1 << shift) - 1;
        gpa = ((ent & ADDR_MASK_4K) & ~pageMask) | (lin & pageMask);
        break;
      }
      if (nUpper == 0) { a0 = pa; e0 = ent; } else if (nUpper == 1) { a1 = pa; e1 = ent; } else { a2 = pa; e2 = ent; }
      nUpper++;
      table = ent & ADDR_MASK_4K;
      level--;
    }
  } else {
    // Legacy 32-bit paging.
    const pdeAddr = (load<u64>(S + VS_CR3) & 0xfffff000) + (((lin >> 22) & 1023) << 2);
    const pde = <u64>physRead32(pdeAddr);
    if (!physOk || (pde & 1) == 0) { raisePF(lin, errBase); return 0; }
    if ((pde & 4) == 0) uAll = false;
    if ((pde & 2) == 0) wAll = false;
    if ((pde & 0x80) != 0 && (cr4 & CR4_PSE) != 0) {
      if ((pde & 0x200000) != 0) { raisePF(lin, errBase | PF_P | PF_RSVD); return 0; }
      gpa = (pde & 0xffc00000) | (((pde >> 13) & 0xff) << 32) | (lin & 0x3fffff);
      leafAddr = pdeAddr; leaf = pde; leaf32 = true;
    } else {
      const pteAddr = (pde & 0xfffff000) + (((lin >> 12) & 1023) << 2);
      const pte = <u64>physRead32(pteAddr);
      if (!physOk || (pte & 1) == 0) { raisePF(lin, errBase); return 0; }
      if ((pte & 4) == 0) uAll = false;
      if ((pte & 2) == 0) wAll = false;
      a0 = pdeAddr; e0 = pde; nUpper = 1;
      leafAddr = pteAddr; leaf = pte; leaf32 = true;
      gpa = (pte & 0xfffff000) | (lin & 0xfff);
    }
  }

  // Permission checks (SDM vol. 3 §4.6).
  const wp = (cr0 & CR0_WP) != 0;
  const smep = (cr4 & CR4_SMEP) != 0;
  const smap = (cr4 & CR4_SMAP) != 0;
  let ok = true;
  if (user) {
    if (!uAll) ok = false;
    else if (acc == ACC_WRITE && !wAll) ok = false;
    else if (acc == ACC_EXEC && nx) ok = false;
  } else {
    if (acc == ACC_WRITE && !wAll && wp) ok = false;
    if (acc == ACC_EXEC && (nx || (smep && uAll))) ok = false;
    if (acc != ACC_EXEC && smap && uAll && (priv == PRIV_IMPLICIT || !acFlag)) ok = false;
  }
  if (!ok) { raisePF(lin, errBase | PF_P); return 0; }

  // Accessed bits on every level, dirty on the leaf for writes.
  if (nUpper > 0 && (e0 & 0x20) == 0) { if (leaf32) physOr32(a0, 0x20); else physOr64(a0, 0x20); }
  if (nUpper > 1 && (e1 & 0x20) == 0) physOr64(a1, 0x20);
  if (nUpper > 2 && (e2 & 0x20) == 0) physOr64(a2, 0x20);
  let nl = leaf | 0x20;
  if (acc == ACC_WRITE) nl |= 0x40;
  if (nl != leaf) { if (leaf32) physOr32(leafAddr, <u32>(nl ^ leaf)); else physOr64(leafAddr, nl ^ leaf); }
  const dirty = (nl & 0x40) != 0;

  let perm: u32 = 0;
  const supData = !(smap && uAll);
  if (supData) perm |= P_SR;
  if (supData && dirty && (wAll || !wp)) perm |= P_SW;
  if (!nx && !(smep && uAll)) perm |= P_SX;
  if (uAll) {
    perm |= P_UR;
    if (wAll && dirty) perm |= P_UW;
    if (!nx) perm |= P_UX;
  }
  walkPerm = perm;
  return gpa;
}
