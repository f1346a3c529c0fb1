/**
 * KVM_EXIT_IO: the guest executed IN/OUT/INS/OUTS on a port no in-kernel
 * device handles. The payload (`count` × `size` bytes) sits in the PIO data
 * page of the kvm_run mapping at `data_offset`. As in KVM, REP INS reads
 * ahead a batch of elements into one exit (`count > 1`); OUTS exits once per
 * element (`count` 1).
 *
 * Completion (KVM semantics): for `in`, fill `data` before the next `run()`;
 * the core copies it into the guest on re-entry. `data` and `fill()` throw
 * {@link StaleExitError} once the vCPU has run again.
 *
 * @module
 */
import type { RangeBus } from "../devices/bus.ts";
import { type ExitOutcome, RESUME } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_IO` (`kvm_run.io`). */
export interface IoExit {
  readonly reason: "io";
  /** Run generation of the vCPU when this exit was decoded. */
  readonly generation: number;
  /** `KVM_EXIT_IO_IN` → "in", `KVM_EXIT_IO_OUT` → "out". */
  readonly direction: "in" | "out";
  readonly port: number;
  /** Bytes per element: 1, 2 or 4. */
  readonly size: number;
  /** Elements (> 1 for string IO). */
  readonly count: number;
  /** Offset of the payload in the kvm_run mapping (`io.data_offset`, 4096 = the PIO page). */
  readonly dataOffset: number;
  /** `count * size` bytes in the PIO page: OUT data to read, or IN data to fill before the next run(). */
  readonly data: Uint8Array;
  /** Fill every element of the payload with `value` (little-endian, `size` bytes each). */
  fill(value: number | bigint): void;
}

/** Default handling: each element goes to the PIO bus (unmapped IN reads all-ones). */
export function handleIo(exit: IoExit, bus: RangeBus, vcpuId: number): ExitOutcome {
  const data = exit.data;
  let outcome: ExitOutcome | undefined;
  for (let i = 0; i < exit.count; i++) {
    const elem = data.subarray(i * exit.size, (i + 1) * exit.size);
    const r = exit.direction === "in" ? bus.read(exit.port, elem, vcpuId) : bus.write(exit.port, elem, vcpuId);
    if (r && r.kind !== "resume" && outcome === undefined) outcome = r;
  }
  return outcome ?? RESUME;
}
