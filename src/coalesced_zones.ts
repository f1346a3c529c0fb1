/**
 * The simulator VM's coalesced MMIO/PIO zones and ring, in the VM control
 * block (src/abi/vcpu_state.ts VM_CONTROL): `coalesced_nzones`, the zone table
 * `coalesced_zones` (first nzones valid, in registration order), the spin
 * lock `coalesced_lock` (0 free, 1 held: the core holds it around its zone
 * scan and ring append) and the ring page `coalesced_ring`. Zones are edited
 * only while holding the lock.
 *
 * @module
 */
import { field, layOut } from "./abi/layout.ts";
import { COALESCED_RING_BYTES, KVM_COALESCED_MMIO_ZONE, MAX_COALESCED_ZONES } from "./abi/coalesced.ts";
import { VM_CONTROL } from "./abi/vcpu_state.ts";
import { CoreContractError } from "./errors.ts";
import {
  checkCoalescedZone,
  type CoalescedZone,
  CoalescedZoneLimitError,
  zonesAfterUnregister,
} from "./exits/coalesced.ts";

const VMC = layOut(VM_CONTROL);
const ZONE = layOut(KVM_COALESCED_MMIO_ZONE);
const Z_ADDR = field(ZONE, "addr").offset;
const Z_SIZE = field(ZONE, "size").offset;
const Z_PIO = field(ZONE, "pio").offset;
/** How long register/unregister wait for the core to release the lock before reporting it stuck. */
const LOCK_TIMEOUT_MS = 1000;

export class CoalescedZoneTable {
  /** The VM's ring page (struct kvm_coalesced_mmio_ring), a view into the shared memory. */
  readonly ring: Uint8Array;
  readonly #dv: DataView;
  readonly #i32: Int32Array;
  readonly #lock: number;
  readonly #nzones: number;
  readonly #zones: number;
  #count = 0;

  /** The table of the VM control block at byte `controlBase` of `buffer`. */
  constructor(buffer: ArrayBufferLike, controlBase: number) {
    const at = (p: string) => controlBase + field(VMC, p).offset;
    this.#dv = new DataView(buffer);
    this.#i32 = new Int32Array(buffer);
    this.#lock = at("coalesced_lock");
    if (this.#lock % 4 !== 0) {
      throw new CoreContractError(`vm_control.coalesced_lock at ${this.#lock} is not 4-aligned`);
    }
    this.#nzones = at("coalesced_nzones");
    this.#zones = at("coalesced_zones");
    const ring = at("coalesced_ring");
    this.ring = new Uint8Array(buffer, ring, COALESCED_RING_BYTES);
    this.#count = this.#dv.getUint32(this.#nzones, true);
  }

  /** Zones registered. */
  get count(): number {
    return this.#count;
  }

  /** The zones, in registration order (read from the control block). */
  zones(): CoalescedZone[] {
    const out: CoalescedZone[] = [];
    const n = this.#dv.getUint32(this.#nzones, true);
    for (let i = 0; i < n; i++) {
      const e = this.#zones + i * ZONE.size;
      out.push({
        addr: Number(this.#dv.getBigUint64(e + Z_ADDR, true)),
        size: this.#dv.getUint32(e + Z_SIZE, true),
        pio: this.#dv.getUint32(e + Z_PIO, true) === 1,
      });
    }
    return out;
  }

  /** KVM_REGISTER_COALESCED_MMIO: append the zone (at most MAX_COALESCED_ZONES; KVM: ENOSPC). */
  register(zone: CoalescedZone): void {
    const z = checkCoalescedZone(zone);
    this.#locked(() => {
      const n = this.#dv.getUint32(this.#nzones, true);
      if (n >= MAX_COALESCED_ZONES) throw new CoalescedZoneLimitError(MAX_COALESCED_ZONES, z);
      this.#write(n, z);
      this.#setCount(n + 1);
    });
  }

  /** KVM_UNREGISTER_COALESCED_MMIO: drop every zone of the bus that contains the range; no match is fine. */
  unregister(zone: CoalescedZone): void {
    const z = checkCoalescedZone(zone);
    this.#locked(() => {
      const before = this.zones();
      const after = zonesAfterUnregister(before, z);
      if (after.length === before.length) return;
      after.forEach((k, i) => this.#write(i, k));
      const base = this.#zones + after.length * ZONE.size;
      new Uint8Array(this.#dv.buffer, base, (before.length - after.length) * ZONE.size).fill(0);
      this.#setCount(after.length);
    });
  }

  #write(i: number, z: CoalescedZone): void {
    const e = this.#zones + i * ZONE.size;
    this.#dv.setBigUint64(e + Z_ADDR, BigInt(z.addr), true);
    this.#dv.setUint32(e + Z_SIZE, z.size, true);
    this.#dv.setUint32(e + Z_PIO, z.pio ? 1 : 0, true);
  }

  #setCount(n: number): void {
    this.#dv.setUint32(this.#nzones, n, true);
    this.#count = n;
  }

  /** Run `fn` holding coalesced_lock (a spin lock shared with the core in every vCPU Worker). */
  #locked(fn: () => void): void {
    const i = this.#lock / 4;
    let deadline = 0;
    for (let spins = 0; Atomics.compareExchange(this.#i32, i, 0, 1) !== 0; spins++) {
      if ((spins & 0xffff) !== 0) continue;
      const now = Date.now();
      if (deadline === 0) deadline = now + LOCK_TIMEOUT_MS;
      else if (now > deadline) {
        throw new CoreContractError(
          `vm_control.coalesced_lock is ${Atomics.load(this.#i32, i)} after ${LOCK_TIMEOUT_MS} ms: ` +
            `expected the core to release it (0) between guest writes`,
        );
      }
    }
    try {
      fn();
    } finally {
      Atomics.store(this.#i32, i, 0);
    }
  }
}
