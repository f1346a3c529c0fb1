/**
 * KVM_EXIT_SHUTDOWN: the guest triple-faulted (or the VM was shut down).
 *
 * @module
 */
import { type ExitOutcome, stop } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_SHUTDOWN` (no payload). */
export interface ShutdownExit {
  readonly reason: "shutdown";
  readonly generation: number;
}

/** Default handling: stop the run with `shutdown`. */
export function handleShutdown(_exit: ShutdownExit): ExitOutcome {
  return stop({ kind: "shutdown" });
}
