/**
 * KVM_EXIT_SYSTEM_EVENT: the guest asked for a platform action (shutdown,
 * reset, crash, SEV termination, …). `ndata` and `data[16]` follow the fixed
 * ABI (Linux commit d495f942f40a, KVM_CAP_SYSTEM_EVENT_DATA); `flags` is the
 * old name of `data[0]`.
 *
 * @module
 */
import { type ExitOutcome, stop } from "./outcome.ts";

/** KVM_SYSTEM_EVENT_* names by type (shared/spec/kvm_run_arm64.md §2.2). */
export const SYSTEM_EVENT_TYPES: Readonly<Record<number, string>> = {
  1: "KVM_SYSTEM_EVENT_SHUTDOWN",
  2: "KVM_SYSTEM_EVENT_RESET",
  3: "KVM_SYSTEM_EVENT_CRASH",
  4: "KVM_SYSTEM_EVENT_WAKEUP",
  5: "KVM_SYSTEM_EVENT_SUSPEND",
  6: "KVM_SYSTEM_EVENT_SEV_TERM",
  7: "KVM_SYSTEM_EVENT_TDX_FATAL",
};

/** Corresponds to `KVM_EXIT_SYSTEM_EVENT` (`kvm_run.system_event`). */
export interface SystemEventExit {
  readonly reason: "system_event";
  readonly generation: number;
  readonly type: number;
  readonly typeName: string;
  /** Valid entries in `data` (clamped to 16). */
  readonly ndata: number;
  readonly data: readonly bigint[];
  /** `data[0]` under its pre-5.18 name. */
  readonly flags: bigint;
}

/** Default handling: stop the run with `system_event`. */
export function handleSystemEvent(exit: SystemEventExit): ExitOutcome {
  return stop({ kind: "system_event", type: exit.type, typeName: exit.typeName, data: exit.data });
}
