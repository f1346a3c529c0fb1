/**
 * KVM_EXIT_HYPERCALL: a VMMCALL/VMCALL whose number is enabled in
 * KVM_CAP_EXIT_HYPERCALL (today only KVM_HC_MAP_GPA_RANGE, 12). `flags` bit 0
 * is KVM_EXIT_HYPERCALL_LONG_MODE.
 *
 * Completion: `setReturn()` sets `hypercall.ret`, which KVM puts in RAX on the
 * next run(). Throws {@link StaleExitError} once the vCPU has run again.
 *
 * @module
 */
import { type ExitOutcome, RESUME } from "./outcome.ts";

/** KVM_ENOSYS (include/uapi/linux/kvm_para.h): the hypercall is not implemented. */
export const KVM_ENOSYS = 1000n;

/** Corresponds to `KVM_EXIT_HYPERCALL` (`kvm_run.hypercall`). */
export interface HypercallExit {
  readonly reason: "hypercall";
  readonly generation: number;
  readonly nr: bigint;
  readonly args: readonly bigint[];
  readonly flags: bigint;
  /** `flags & KVM_EXIT_HYPERCALL_LONG_MODE`. */
  readonly longMode: boolean;
  /** Set `hypercall.ret` (the guest's RAX). */
  setReturn(value: bigint): void;
}

/** Default handling: answer -KVM_ENOSYS, as KVM does for a hypercall nobody implements. */
export function handleHypercall(exit: HypercallExit): ExitOutcome {
  exit.setReturn(BigInt.asUintN(64, -KVM_ENOSYS));
  return RESUME;
}
