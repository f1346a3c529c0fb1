/**
 * What an exit handler decided (design.md §4; firecracker's `VcpuEmulation`,
 * KVM's "1 = resume guest, 0 = exit to userspace"). Every handler returns one
 * of these; the run loop never guesses.
 *
 * @module
 */

/** Why a handler stopped the run. */
export type StopWhy =
  /** KVM_EXIT_HLT with nothing to wake the vCPU. */
  | { readonly kind: "hlt" }
  /** KVM_EXIT_SHUTDOWN (triple fault). */
  | { readonly kind: "shutdown" }
  /** KVM_EXIT_SYSTEM_EVENT: `type` is KVM_SYSTEM_EVENT_*. */
  | {
    readonly kind: "system_event";
    readonly type: number;
    readonly typeName: string;
    readonly data: readonly bigint[];
  }
  /** KVM_EXIT_DEBUG (guest debugging: breakpoint, single step, watchpoint). */
  | { readonly kind: "debug"; readonly exception: number; readonly pc: bigint }
  /** The guest wrote `value` to a debug-exit port; `code` is QEMU isa-debug-exit's `(value << 1) | 1`. */
  | { readonly kind: "debug-exit"; readonly value: number; readonly code: number; readonly port: number }
  /** A user handler or device asked to stop. */
  | { readonly kind: "handler"; readonly detail: string };

/** The result of handling one exit. */
export type ExitOutcome =
  /** Re-enter the guest. */
  | { readonly kind: "resume" }
  /** Stop the run loop and report `why`. */
  | { readonly kind: "stop"; readonly why: StopWhy }
  /** Return to the caller with the vCPU resumable (the exit is fully completed). */
  | { readonly kind: "pause" }
  /** The VMM cannot continue: an exit it cannot handle or a KVM_EXIT_INTERNAL_ERROR. */
  | {
    readonly kind: "internal_error";
    readonly message: string;
    readonly suberror?: number;
    readonly data?: readonly bigint[];
  };

/** The shared `resume` outcome (no allocation on the hot path). */
export const RESUME: ExitOutcome = Object.freeze({ kind: "resume" });
/** The shared `pause` outcome. */
export const PAUSE: ExitOutcome = Object.freeze({ kind: "pause" });

/** `{kind: "stop", why}`. */
export function stop(why: StopWhy): ExitOutcome {
  return { kind: "stop", why };
}

/** `{kind: "internal_error", message, …}`. */
export function internalError(message: string, suberror?: number, data?: readonly bigint[]): ExitOutcome {
  if (suberror === undefined) return { kind: "internal_error", message };
  return data === undefined
    ? { kind: "internal_error", message, suberror }
    : { kind: "internal_error", message, suberror, data };
}
