/**
 * KVM_EXIT_DEBUG (x86): a guest-debug event requested with KVM_SET_GUEST_DEBUG
 * — software breakpoint (INT3, `exception` 3), single step or hardware
 * breakpoint/watchpoint (`exception` 1, cause in `dr6`).
 *
 * @module
 */
import { type ExitOutcome, stop } from "./outcome.ts";

/** Corresponds to `KVM_EXIT_DEBUG` (`kvm_run.debug.arch`, x86 `struct kvm_debug_exit_arch`). */
export interface DebugExit {
  readonly reason: "debug";
  readonly generation: number;
  /** Vector: 1 (#DB) or 3 (#BP). */
  readonly exception: number;
  /** Linear address of the instruction (RIP + CS base). */
  readonly pc: bigint;
  readonly dr6: bigint;
  readonly dr7: bigint;
}

/** Default handling: stop the run with `debug` (a debugger decides what happens next). */
export function handleDebug(exit: DebugExit): ExitOutcome {
  return stop({ kind: "debug", exception: exit.exception, pc: exit.pc });
}
