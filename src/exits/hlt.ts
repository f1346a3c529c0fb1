/**
 * KVM_EXIT_HLT: the guest executed HLT and, with no in-kernel interrupt
 * controller, nothing can wake it. RIP already points after the HLT.
 *
 * @module
 */
import { type ExitOutcome, stop } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_HLT` (no payload). */
export interface HltExit {
  readonly reason: "hlt";
  readonly generation: number;
}

/** Default handling: stop the run with `hlt`. */
export function handleHlt(_exit: HltExit): ExitOutcome {
  return stop({ kind: "hlt" });
}
