// Coalesced MMIO/PIO (Linux virt/kvm/coalesced_mmio.c; src/abi/coalesced.ts): a write
// that lies wholly inside a zone registered with KVM_REGISTER_COALESCED_MMIO (pio 1: a
// port range on the PIO bus; pio 0: a GPA range on the MMIO bus) is appended to the VM's
// ring instead of exiting, and the instruction goes on as if an in-kernel device had
// taken it. The zones and the ring live in the VM control block, shared by every vCPU
// of the VM (each running its own instance in its own Worker); coalesced_lock is KVM's
// ring_lock. Reads are never coalesced.
import {
  CMMIO_DATA, CMMIO_LEN, CMMIO_PHYS_ADDR, CMMIO_PIO, CMMIO_SIZEOF, CRING_FIRST, CRING_LAST, CRING_SIZEOF,
  CZONE_ADDR, CZONE_PIO, CZONE_SIZE, CZONE_SIZEOF, KVM_COALESCED_MMIO_MAX, VMC_COALESCED_LOCK,
  VMC_COALESCED_NZONES, VMC_COALESCED_RING, VMC_COALESCED_ZONES, VM_CONTROL_BASE,
} from "../abi.generated";
import { storeN } from "../x86/mem";

const NZONES: usize = VM_CONTROL_BASE + VMC_COALESCED_NZONES;
const LOCK: usize = VM_CONTROL_BASE + VMC_COALESCED_LOCK;
const ZONES: usize = VM_CONTROL_BASE + VMC_COALESCED_ZONES;
const RING: usize = VM_CONTROL_BASE + VMC_COALESCED_RING;

/** Any zone registered: the one load an IO/MMIO write pays when none is. */
@inline export function coalescing(): bool { return load<u32>(NZONES) != 0; }

/**
 * coalesced_mmio_in_range() of some zone of the bus that the bus finds (src/exits/coalesced.ts
 * zoneTakesWrite is the TS statement of the same rule): [addr, addr+len) wholly inside it.
 */
function inZone(pio: u32, addr: u64, len: i32): bool {
  const n = <usize>atomic.load<u32>(NZONES);
  const end = addr + <u64>len;
  if (end < addr) return false;
  for (let i: usize = 0; i < n; i++) {
    const z = ZONES + i * CZONE_SIZEOF;
    if (load<u32>(z + CZONE_PIO) != pio) continue;
    const za = load<u64>(z + CZONE_ADDR);
    const zs = <u64>load<u32>(z + CZONE_SIZE);
    // The IO bus keeps the zone's length as a C int: from 2^31 up it is negative there,
    // and the bus finds the zone only while addr + size stays below 2^32.
    if (zs >= 0x80000000 && za + zs >= 0x100000000) continue;
    if (addr >= za && end <= za + zs) return true;
  }
  return false;
}

/**
 * coalesced_mmio_write(): append the write of `len` (1-8) bytes of `v` (little-endian) at
 * port or GPA `addr` when it lies in a zone of the bus and the ring has room. True: taken,
 * no exit. False: no zone, or the ring is full — the ordinary exit follows.
 *
 * The room test is the kernel's (coalesced_mmio_has_room() since "KVM: Fix
 * coalesced_mmio_has_room()", 2024; this host's 6.18 behaves so): full when
 * (last + 1) % KVM_COALESCED_MMIO_MAX == first, so one entry stays unused and at most
 * 169 are pending; and `last` (which userspace can write) must be below the maximum.
 * Older kernels computed (u32)(first - last - 1) % 170 == 0, which let only half the
 * ring fill while first <= last.
 */
export function coalesce(pio: u32, addr: u64, len: i32, v: u64): bool {
  while (atomic.cmpxchg<u32>(LOCK, 0, 1) != 0) {} // the other vCPUs hold it for a few stores
  let ok = inZone(pio, addr, len);
  if (ok) {
    const first = atomic.load<u32>(RING + CRING_FIRST);
    const insert = atomic.load<u32>(RING + CRING_LAST);
    const max = <u32>KVM_COALESCED_MMIO_MAX;
    const next = insert + 1 == max ? 0 : insert + 1; // (insert + 1) % max without a division
    ok = insert < max && next != first;
    if (ok) {
      const e = RING + CRING_SIZEOF + <usize>insert * CMMIO_SIZEOF;
      store<u64>(e + CMMIO_PHYS_ADDR, addr);
      store<u32>(e + CMMIO_LEN, <u32>len);
      store<u32>(e + CMMIO_PIO, pio);
      // memcpy(data, val, len): only `len` bytes, the rest of data[8] keeps what it held.
      storeN(e + CMMIO_DATA, len, v);
      atomic.store<u32>(RING + CRING_LAST, next); // after the entry (smp_wmb)
    }
  }
  atomic.store<u32>(LOCK, 0);
  return ok;
}
