/**
 * A debug-exit port like QEMU's `isa-debug-exit` (whose default iobase is
 * 0x501; kvmsim defaults to 0xf4, the port commonly configured with
 * `-device isa-debug-exit,iobase=0xf4,iosize=0x04`): the guest writes a value, the run stops with `{kind: "debug-exit", value,
 * code}` where `code = (value << 1) | 1` is the exit status QEMU would use.
 * Reads return all-ones.
 *
 * @module
 */
import { type BusAccess, type BusDevice, fillBytes } from "./bus.ts";
import { leNum } from "./bytes.ts";
import { type ExitOutcome, stop } from "../exits/outcome.ts";

/** Default port (QEMU `iobase=0xf4`). */
export const DEBUG_EXIT_PORT = 0xf4;

export class DebugExitDevice implements BusDevice {
  readonly name = "debug-exit";
  /** The last value written, or undefined. */
  lastValue: number | undefined;

  read(_offset: number, data: Uint8Array, _a: BusAccess): void {
    fillBytes(data, 0xff);
  }

  write(_offset: number, data: Uint8Array, a: BusAccess): ExitOutcome {
    const value = leNum(data);
    this.lastValue = value;
    return stop({ kind: "debug-exit", value, code: ((value * 2) | 1) >>> 0, port: a.address });
  }
}
