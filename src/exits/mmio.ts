/**
 * KVM_EXIT_MMIO: a guest access to a GPA outside every memslot, or a write to
 * a read-only slot. `data` is the 8-byte `mmio.data` array cut to `len`.
 *
 * Completion (KVM semantics): for a read, fill `data` before the next `run()`.
 * `data` and `fill()` throw {@link StaleExitError} once the vCPU has run again.
 *
 * `physAddr` is a number: guest physical addresses are below 2^MAXPHYADDR
 * (≤ 2^52) and therefore exact in a double.
 *
 * @module
 */
import type { RangeBus } from "../devices/bus.ts";
import { type ExitOutcome, RESUME } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_MMIO` (`kvm_run.mmio`). */
export interface MmioExit {
  readonly reason: "mmio";
  readonly generation: number;
  readonly physAddr: number;
  /** Access size in bytes (1–8). */
  readonly len: number;
  readonly isWrite: boolean;
  /** `len` bytes: write data, or read data to fill before the next run(). */
  readonly data: Uint8Array;
  /** Store `value` little-endian into the read payload. */
  fill(value: number | bigint): void;
}

/** Default handling: the access goes to the MMIO bus (unmapped reads return all-ones). */
export function handleMmio(exit: MmioExit, bus: RangeBus, vcpuId: number): ExitOutcome {
  const r = exit.isWrite ? bus.write(exit.physAddr, exit.data, vcpuId) : bus.read(exit.physAddr, exit.data, vcpuId);
  return r ?? RESUME;
}
