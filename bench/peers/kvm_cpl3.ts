/**
 * Ring 3 for a bench loop on the KVM backend: the minimum that turns the
 * 64-bit CPL0 guest of createVmWithOneVcpu (src/x86/setup.ts, long mode)
 * into a 64-bit CPL3 one, as tests/conformance/cpl3_wrapper.ts does for its
 * snippets, without its exception capture:
 * - src/x86/ring3.ts's ring-3 descriptors (GDT entries 6/7, GDTR limit 8
 *   entries) and US bits in the identity map's page-directory entries;
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
import { installRing3Segments, RING3_GDT_LIMIT, userIdentityPages } from "../../src/x86/ring3.ts";
import type { GuestLayout } from "../../src/x86/setup.ts";

/** RFLAGS of the ring-3 loop: IOPL 3 and the always-one bit 1. */
export const RING3_RFLAGS = (3n << 12n) | 2n;

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
  const { code, data } = installRing3Segments(vm, gdt, true);
  userIdentityPages(vm, layout.reservedBase);
  vcpu.setSregs({
    gdt: { base: BigInt(gdt), limit: RING3_GDT_LIMIT },
    cs: code,
    ss: data,
    ds: { ...data },
    es: { ...data },
  });
  vcpu.setRegs({ rflags: RING3_RFLAGS });
}
