/**
 * An exit kvmsim does not decode: an exit reason it has no family for, or a
 * malformed payload. Carried, never thrown (kvm-ioctls `Unsupported(u32)`);
 * the default handling is KVM's own answer to an unexpected exit,
 * KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON with the code in `data[0]`.
 *
 * @module
 */
import { KVM_CONSTANTS } from "../abi/constants.ts";
import { type ExitOutcome, internalError } from "./outcome.ts";

/** Corresponds to any `KVM_EXIT_*` without a family here (or a payload that fails validation). */
export interface UnknownExit {
  readonly reason: "unknown";
  readonly generation: number;
  /** `kvm_run.exit_reason`. */
  readonly raw: number;
  /** `exitReasonName(raw)`. */
  readonly name: string;
  /** Set when the reason is known but its payload is invalid. */
  readonly malformed?: string;
  /** The 256-byte exit union, for logging (stale-checked). */
  readonly payload: Uint8Array;
}

/** Default handling: an internal error that keeps the raw code. */
export function handleUnknown(exit: UnknownExit): ExitOutcome {
  const what = exit.malformed
    ? `malformed ${exit.name}: ${exit.malformed}`
    : `unexpected exit reason ${exit.raw} (${exit.name})`;
  return internalError(what, KVM_CONSTANTS.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON, [BigInt(exit.raw)]);
}
