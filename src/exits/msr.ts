/**
 * KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR: user-space MSR exits, enabled with
 * KVM_CAP_X86_USER_SPACE_MSR for the reasons in its mask (an unknown MSR,
 * an invalid access, or one denied by the KVM_X86_SET_MSR_FILTER filter).
 *
 * Completion (KVM semantics): for RDMSR set `data` with `setData()`; for
 * either, `setError()` makes the guest take #GP(0). Both throw
 * {@link StaleExitError} once the vCPU has run again.
 *
 * @module
 */
import { type ExitOutcome, RESUME } from "./outcome.ts";

/** KVM_MSR_EXIT_REASON_* names by bit. */
export const MSR_EXIT_REASONS: Readonly<Record<number, string>> = {
  1: "KVM_MSR_EXIT_REASON_INVAL",
  2: "KVM_MSR_EXIT_REASON_UNKNOWN",
  4: "KVM_MSR_EXIT_REASON_FILTER",
};

/** Corresponds to `KVM_EXIT_X86_RDMSR` and `KVM_EXIT_X86_WRMSR` (`kvm_run.msr`). */
export interface MsrExit {
  readonly reason: "x86_rdmsr" | "x86_wrmsr";
  readonly generation: number;
  /** Why it exited: KVM_MSR_EXIT_REASON_*. */
  readonly msrReason: number;
  readonly msrReasonName: string;
  readonly index: number;
  /** The value the guest writes (WRMSR); for RDMSR what is in the run page now. */
  readonly data: bigint;
  /** RDMSR: the value the guest reads. */
  setData(value: bigint): void;
  /** Fail the access: the guest takes #GP(0). */
  setError(): void;
}

/** Default handling when nobody handles the MSR: fail it (the guest gets #GP), as an unhandled MSR does in KVM. */
export function handleMsr(exit: MsrExit): ExitOutcome {
  exit.setError();
  return RESUME;
}
