/**
 * Ring 3 on top of a createVmWithOneVcpu guest (setup.ts), shared by the
 * CPL 3 conformance wrapper (tests/conformance/cpl3_wrapper.ts) and the kvm
 * peer's ring-3 loop (bench/peers/kvm_cpl3.ts): GDT entries 6/7 (selectors
 * 0x33 / 0x3b) for ring-3 code and flat ring-3 data, and the US bit in the
 * page-directory entries of the long-mode identity map (its PML4/PDPT entries
 * already have it).
 *
 * @module
 */
import type { GuestVm } from "../backends/types.ts";
import { segmentDescriptor } from "./descriptors.ts";
import { PTE_US } from "./page_tables.ts";
import { flatSegment, type KvmSegment } from "./regs.ts";
import { LAYOUT } from "./setup.ts";

/** The ring-3 selectors (GDT entries 6 and 7, RPL 3). */
export const USER_CS = 0x33, USER_DS = 0x3b;
/** GDTR limit covering entries 0–7. */
export const RING3_GDT_LIMIT = 8 * 8 - 1;
/** Page-directory entries of identityMapLow4G: 4 PDs of 512 2 MiB pages. */
const PDES = 4 * 512;

/**
 * Write the ring-3 code (64-bit when `code64`, else 32-bit) and data descriptors
 * into GDT entries 6 and 7 at `gdt`; returns the segments for KVM_SET_SREGS.
 */
export function installRing3Segments(
  vm: GuestVm,
  gdt: number,
  code64: boolean,
): { code: KvmSegment; data: KvmSegment } {
  const code = flatSegment(USER_CS, 0xb, code64 ? { l: 1, db: 0, dpl: 3 } : { dpl: 3 });
  const data = flatSegment(USER_DS, 0x3, { dpl: 3 });
  vm.write64(gdt + 8 * 6, segmentDescriptor(code));
  vm.write64(gdt + 8 * 7, segmentDescriptor(data));
  return { code, data };
}

/** Set the US bit in every page-directory entry of the identity map at `reservedBase` (setup.ts LAYOUT.pd). */
export function userIdentityPages(vm: GuestVm, reservedBase: number): void {
  const pd = reservedBase + LAYOUT.pd;
  for (let i = 0; i < PDES; i++) vm.write64(pd + 8 * i, vm.read64(pd + 8 * i) | PTE_US);
}
