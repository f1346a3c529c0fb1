/**
 * KVM_EXIT_INTERNAL_ERROR: KVM could not continue the guest. For
 * `KVM_INTERNAL_ERROR_EMULATION` with
 * `KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES` the
 * `emulation_failure` view carries the instruction bytes — kvmsim reports an
 * instruction it does not implement this way, never by executing it wrongly.
 *
 * @module
 */
import { type ExitOutcome, internalError } from "./outcome.ts";

/** KVM_INTERNAL_ERROR_* names by suberror. */
export const INTERNAL_ERROR_SUBERRORS: Readonly<Record<number, string>> = {
  1: "KVM_INTERNAL_ERROR_EMULATION",
  2: "KVM_INTERNAL_ERROR_SIMUL_EX",
  3: "KVM_INTERNAL_ERROR_DELIVERY_EV",
  4: "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON",
};

/** Corresponds to `KVM_EXIT_INTERNAL_ERROR` (`kvm_run.internal` / `kvm_run.emulation_failure`). */
export interface InternalErrorExit {
  readonly reason: "internal_error";
  readonly generation: number;
  readonly suberror: number;
  readonly suberrorName: string;
  /** Valid entries in `data` (clamped to 16). */
  readonly ndata: number;
  readonly data: readonly bigint[];
  /** For EMULATION with the instruction-bytes flag: `emulation_failure.flags`. */
  readonly emulationFlags?: bigint;
  /** For EMULATION with the instruction-bytes flag: a copy of `insn_bytes[insn_size]`. */
  readonly insnBytes?: Uint8Array;
}

/** A one-line description (`KVM_INTERNAL_ERROR_EMULATION: insn 0f 0b`). */
export function describeInternalError(exit: InternalErrorExit): string {
  const insn = exit.insnBytes
    ? ` insn ${[...exit.insnBytes].map((b) => b.toString(16).padStart(2, "0")).join(" ")}`
    : "";
  const data = exit.data.length ? ` data [${exit.data.map((d) => `0x${d.toString(16)}`).join(", ")}]` : "";
  return `${exit.suberrorName}${insn}${data}`;
}

/** Default handling: the VM cannot continue. */
export function handleInternalError(exit: InternalErrorExit): ExitOutcome {
  return internalError(describeInternalError(exit), exit.suberror, exit.data);
}
