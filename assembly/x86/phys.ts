// Guest physical memory: the VM's memslot table (VMC_SLOTS), dirty logging, and
// bounds-checked host offsets. Memslots are page aligned (the VM API checks it).
import {
  KVM_MEM_LOG_DIRTY_PAGES, MAX_MEMSLOTS, MEMSLOT_DIRTY, MEMSLOT_FLAGS, MEMSLOT_GPA, MEMSLOT_HOST, MEMSLOT_ID,
  MEMSLOT_SIZE, MEMSLOT_SIZEOF, VMC_NSLOTS, VMC_SLOTS, VM_CONTROL_BASE,
} from "../abi.generated";

/** Result of findSlot: the slot's GPA, size, host offset, flags and dirty-bitmap offset. */
export let slotGpa: u64 = 0;
export let slotSize: u64 = 0;
export let slotHost: u64 = 0;
export let slotFlags: u32 = 0;
export let slotDirty: u32 = 0;
let lastSlot: i32 = 0;

@inline function slotAddr(i: i32): usize { return <usize>(VM_CONTROL_BASE + VMC_SLOTS + i * MEMSLOT_SIZEOF); }

function trySlot(i: i32, gpa: u64): bool {
  const a = slotAddr(i);
  if (load<u32>(a + MEMSLOT_ID) == 0xffffffff) return false;
  const g = load<u64>(a + MEMSLOT_GPA);
  const sz = load<u64>(a + MEMSLOT_SIZE);
  if (gpa - g >= sz) return false;
  const host = <u64>load<u32>(a + MEMSLOT_HOST);
  // A slot whose backing would lie outside this memory is treated as absent.
  const memBytes = (<u64>memory.size()) << 16;
  if (host + sz > memBytes || host + sz < host) return false;
  slotGpa = g;
  slotSize = sz;
  slotHost = host;
  slotFlags = load<u32>(a + MEMSLOT_FLAGS);
  slotDirty = load<u32>(a + MEMSLOT_DIRTY);
  if (slotDirty != 0 && <u64>slotDirty + ((sz >> 12) + 7) / 8 > memBytes) slotDirty = 0;
  lastSlot = i;
  return true;
}

/** Find the memslot holding `gpa`; false when it is in no slot (an MMIO access). */
export function findSlot(gpa: u64): bool {
  let n = <i32>load<u32>(VM_CONTROL_BASE + VMC_NSLOTS);
  if (n > MAX_MEMSLOTS) n = MAX_MEMSLOTS;
  if (lastSlot < n && trySlot(lastSlot, gpa)) return true;
  for (let i = 0; i < n; i++) if (trySlot(i, gpa)) return true;
  return false;
}

/** Host offset of `gpa` in the slot found last. */
@inline export function slotHostOf(gpa: u64): u64 { return slotHost + (gpa - slotGpa); }

/** Mark the 4 KiB page of `gpa` dirty in the slot found last (if it logs dirty pages). */
export function markDirtyFound(gpa: u64): void {
  if ((slotFlags & KVM_MEM_LOG_DIRTY_PAGES) == 0 || slotDirty == 0) return;
  const page = (gpa - slotGpa) >> 12;
  const a = <usize>slotDirty + <usize>(page >> 3);
  const bit: u32 = <u32>1 << <u32>(page & 7);
  // Atomic: another vCPU (Worker) may set a bit of the same byte at the same time.
  atomic.or<u8>(a, <u8>bit);
}

/** Read a naturally sized value from guest physical memory; `physOk` false when `gpa` is in no slot. */
export let physOk: bool = true;
export function physRead64(gpa: u64): u64 {
  if (!findSlot(gpa) || gpa - slotGpa + 8 > slotSize) { physOk = false; return 0; }
  physOk = true;
  return load<u64>(<usize>slotHostOf(gpa));
}
export function physRead32(gpa: u64): u32 {
  if (!findSlot(gpa) || gpa - slotGpa + 4 > slotSize) { physOk = false; return 0; }
  physOk = true;
  return load<u32>(<usize>slotHostOf(gpa));
}
/**
 * Set A/D `bits` in a page-table entry (read-only slots are left alone), as the
 * CPU's locked update does: an atomic OR, so a concurrent change of the entry by
 * another vCPU is not undone. Entries are naturally aligned (table base 4 KiB).
 */
export function physOr64(gpa: u64, bits: u64): void {
  if (!findSlot(gpa) || gpa - slotGpa + 8 > slotSize) return;
  if ((slotFlags & 2) != 0) return;
  atomic.or<u64>(<usize>slotHostOf(gpa), bits);
  markDirtyFound(gpa);
}
export function physOr32(gpa: u64, bits: u32): void {
  if (!findSlot(gpa) || gpa - slotGpa + 4 > slotSize) return;
  if ((slotFlags & 2) != 0) return;
  atomic.or<u32>(<usize>slotHostOf(gpa), bits);
  markDirtyFound(gpa);
}
