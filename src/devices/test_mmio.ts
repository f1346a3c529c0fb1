/**
 * A test MMIO device: a little-endian register file of `size` bytes that
 * records every access (kind, offset, size, value) for tests to check.
 *
 * @module
 */
import type { BusAccess, BusDevice } from "./bus.ts";
import { leBig } from "./bytes.ts";

/** One recorded access. `value` is the little-endian value read or written. */
export interface MmioAccess {
  readonly kind: "read" | "write";
  readonly offset: number;
  readonly address: number;
  readonly size: number;
  readonly value: bigint;
  readonly vcpuId: number;
}

export class TestMmioDevice implements BusDevice {
  readonly name: string;
  readonly regs: Uint8Array;
  readonly accesses: MmioAccess[] = [];

  constructor(readonly size = 0x1000, name = "test-mmio") {
    this.name = name;
    this.regs = new Uint8Array(size);
  }

  read(offset: number, data: Uint8Array, a: BusAccess): void {
    data.set(this.regs.subarray(offset, offset + data.length));
    this.accesses.push({
      kind: "read",
      offset,
      address: a.address,
      size: data.length,
      value: leBig(data),
      vcpuId: a.vcpuId,
    });
  }

  write(offset: number, data: Uint8Array, a: BusAccess): void {
    this.regs.set(data, offset);
    this.accesses.push({
      kind: "write",
      offset,
      address: a.address,
      size: data.length,
      value: leBig(data),
      vcpuId: a.vcpuId,
    });
  }

  /** Set register bytes directly (little-endian). */
  poke(offset: number, value: bigint, size: number): void {
    let v = BigInt.asUintN(size * 8, value);
    for (let i = 0; i < size; i++) {
      this.regs[offset + i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
}
