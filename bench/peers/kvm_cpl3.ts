/**
 * Ring 3 for a bench loop on the KVM backend: the minimum that turns the
 * 64-bit CPL0 guest of createVmWithOneVcpu (src/x86/setup.ts, long mode)
 * into a 64-bit CPL3 one, as tests/conformance/cpl3_wrapper.ts does for its
 * snippets, without its exception capture:
 * - GDT entries 6/7 (selectors 0x33 / 0x3b): a 64-bit ring-3 code descriptor
 *   and a flat ring-3 data descriptor, GDTR limit 8 entries;
 * - the US bit in every page-directory entry (the PML4/PDPT entries of
 *   identityMapLow4G already have it);
 * - CS/SS/DS/ES switched to them through KVM_SET_SREGS, and RFLAGS with
 *   IOPL 3, so that OUT at CPL3 exits to user space (KVM_EXIT_IO) instead of
 *   raising #GP.
 *
 * No exception gates or RSP0: the loop must not fault, and a fault at CPL3
 * runs into the not-present IDT gates and ends in a triple fault
 * (KVM_EXIT_SHUTDOWN), which the caller reports as an unexpected exit.
 *
 * Why ring 3 at all: /dev/kvm on this host is kvm_pvm, which runs CPL0 guest
 * code through KVM's instruction emulator (~1.4 µs per instruction,
 * /work/shared/spec/perf_anchors.md §0) but CPL3 code natively.
 *
 * @module
 */
import type { GuestVcpu, GuestVm } from "../../src/backends/types.ts";
import { segmentDescriptor } from "../../src/x86/descriptors.ts";
import { flatSegment } from "../../src/x86/regs.ts";
import { type GuestLayout, LAYOUT } from "../../src/x86/setup.ts";

/** The ring-3 selectors (GDT entries 6 and 7, RPL 3). */
export const USER_CS = 0x33, USER_DS = 0x3b;
/** RFLAGS of the ring-3 loop: IOPL 3 and the always-one bit 1. */
export const RING3_RFLAGS = (3n << 12n) | 2n;
const PTE_US = 0x4n;
/** Page-directory entries of identityMapLow4G: 4 PDs of 512 2 MiB pages. */
const PDES = 4 * 512;

/**
 * Put `vcpu` (set up in long mode by createVmWithOneVcpu, `layout` its
 * layout) at CPL3 in 64-bit mode, IOPL 3, RIP unchanged. Throws naming the
 * layout when it is not a long-mode one.
 */
export function enterRing3Long(vm: GuestVm, vcpu: GuestVcpu, layout: GuestLayout): void {
  if (layout.mode !== "long" || layout.gdt === undefined) {
    throw new RangeError(`ring 3 setup: layout mode ${layout.mode}: expected a long-mode layout with a GDT`);
  }
  const gdt = layout.gdt;
  const ucode = flatSegment(USER_CS, 0xb, { l: 1, db: 0, dpl: 3 });
  const udata = flatSegment(USER_DS, 0x3, { dpl: 3 });
  vm.write64(gdt + 8 * 6, segmentDescriptor(ucode));
  vm.write64(gdt + 8 * 7, segmentDescriptor(udata));
  const pd = layout.reservedBase + LAYOUT.pd;
  for (let i = 0; i < PDES; i++) vm.write64(pd + 8 * i, vm.read64(pd + 8 * i) | PTE_US);
  vcpu.setSregs({
    gdt: { base: BigInt(gdt), limit: 8 * 8 - 1 },
    cs: ucode,
    ss: udata,
    ds: { ...udata },
    es: { ...udata },
  });
  vcpu.setRegs({ rflags: RING3_RFLAGS });
}
