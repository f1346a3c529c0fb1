/**
 * KVM_EXIT_INTR: KVM_RUN returned without a guest exit — like -EINTR from a
 * signal. kvmsim returns it when the instruction budget of one `run()` is
 * used up, and for `immediate_exit`.
 *
 * @module
 */
import { type ExitOutcome, RESUME } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_INTR` (no payload). */
export interface IntrExit {
  readonly reason: "intr";
  readonly generation: number;
}

/** Default handling: resume (the run loop applies its own instruction limit). */
export function handleIntr(_exit: IntrExit): ExitOutcome {
  return RESUME;
}
