/**
 * KVM_EXIT_FAIL_ENTRY: the CPU refused to enter the guest (invalid guest
 * state); `hardware_entry_failure_reason` is the vendor's code.
 *
 * @module
 */
import { type ExitOutcome, internalError } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_FAIL_ENTRY` (`kvm_run.fail_entry`). */
export interface FailEntryExit {
  readonly reason: "fail_entry";
  readonly generation: number;
  readonly hardwareEntryFailureReason: bigint;
  readonly cpu: number;
}

/** Default handling: the VM cannot continue. */
export function handleFailEntry(exit: FailEntryExit): ExitOutcome {
  return internalError(
    `KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x${
      exit.hardwareEntryFailureReason.toString(16)
    } on cpu ${exit.cpu}`,
  );
}
