/**
 * Coalesced MMIO/PIO (KVM_REGISTER_COALESCED_MMIO, KVM_CAP_COALESCED_MMIO and
 * KVM_CAP_COALESCED_PIO; Linux virt/kvm/coalesced_mmio.c): a guest write that
 * falls wholly inside a registered zone is appended to a ring shared with
 * userspace instead of exiting; userspace drains the ring when it next gets
 * control (QEMU: before it handles any exit). One ring per VM, one page:
 * `struct kvm_coalesced_mmio_ring` (first, last) followed by
 * KVM_COALESCED_MMIO_MAX `struct kvm_coalesced_mmio` entries. On x86 KVM maps it
 * at page KVM_COALESCED_MMIO_PAGE_OFFSET (2) of every vCPU's mmap.
 *
 * Layouts from `<linux/kvm.h>`; tests/abi_offsets_test.ts checks them with gcc.
 *
 * @module
 */
import type { Member, StructDef } from "./layout.ts";

const m = (name: string, type: Member["type"], count?: number): Member =>
  count === undefined ? { name, type } : { name, type, count };

/** `struct kvm_coalesced_mmio_zone` (the ioctl argument): `pio` is the union with `pad`. */
export const KVM_COALESCED_MMIO_ZONE = {
  kind: "struct",
  name: "kvm_coalesced_mmio_zone",
  members: [m("addr", "u64"), m("size", "u32"), m("pio", "u32")],
} as const satisfies StructDef;

/** `struct kvm_coalesced_mmio`: one coalesced write (`pio` is the union with `pad`). */
export const KVM_COALESCED_MMIO = {
  kind: "struct",
  name: "kvm_coalesced_mmio",
  members: [m("phys_addr", "u64"), m("len", "u32"), m("pio", "u32"), m("data", "u8", 8)],
} as const satisfies StructDef;

/** `struct kvm_coalesced_mmio_ring` without its flexible array of entries. */
export const KVM_COALESCED_MMIO_RING = {
  kind: "struct",
  name: "kvm_coalesced_mmio_ring",
  members: [m("first", "u32"), m("last", "u32")],
} as const satisfies StructDef;

/** The ring is one page. */
export const COALESCED_RING_BYTES = 4096;
/** `KVM_COALESCED_MMIO_MAX`: (PAGE_SIZE - sizeof(ring)) / sizeof(entry) = (4096 - 8) / 24 = 170. */
export const KVM_COALESCED_MMIO_MAX = Math.floor((COALESCED_RING_BYTES - 8) / 24);
/**
 * Zones per VM. KVM bounds them only by the IO bus (NR_IOBUS_DEVS, 1000 devices
 * per bus, shared with ioeventfds and in-kernel devices); kvmsim keeps 64 in
 * the VM control block and refuses more (KVM's -ENOSPC).
 */
export const MAX_COALESCED_ZONES = 64;
