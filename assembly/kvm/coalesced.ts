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
export function inZone(pio: u32, addr: u64, len: i32): bool {
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
 * The lock is held across a run of coalesced writes (ringHold): each write fills its
 * entry and advances the held `last`; ringPublish() stores `last` and releases the
 * lock, so the three atomic read-modify-writes of a write (take the lock, publish
 * `last`, release) are paid once per run of writes instead of once per write. The
 * run loop publishes before every return to TS (run.ts finish), after HOLD_TICKS
 * backward branches or general-path instructions (ringTick, so another vCPU never
 * waits long and a reader on another thread sees the entries soon), and a write that
 * is not taken publishes before its exit.
 */
export let ringHeld: bool = false;
/** `last` while held (the next slot to fill). */
let heldLast: u32 = 0;
/** Ticks since the lock was taken. */
let heldTicks: i32 = 0;
const HOLD_TICKS: i32 = 64;

function ringHold(): void {
  while (atomic.cmpxchg<u32>(LOCK, 0, 1) != 0) {} // the other vCPUs hold it for a few stores
  ringHeld = true;
  heldTicks = 0;
  heldLast = atomic.load<u32>(RING + CRING_LAST);
}

/** Make the held writes visible (store `last`, after their entries) and release the lock. */
export function ringPublish(): void {
  atomic.store<u32>(RING + CRING_LAST, heldLast); // after the entries (smp_wmb)
  atomic.store<u32>(LOCK, 0);
  ringHeld = false;
}

/** One backward branch or general-path instruction while the lock is held. */
@inline export function ringTick(): void {
  if (ringHeld && ++heldTicks >= HOLD_TICKS) ringPublish();
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
  if (!ringHeld) ringHold();
  let ok = inZone(pio, addr, len);
  if (ok) {
    const first = atomic.load<u32>(RING + CRING_FIRST);
    const insert = heldLast;
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
      heldLast = next;
      return true;
    }
  }
  ringPublish(); // the exit follows: everything before it is visible first
  return false;
}
