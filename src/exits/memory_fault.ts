/**
 * KVM_EXIT_MEMORY_FAULT: KVM_RUN failed with EFAULT/EHWPOISON on a guest
 * access that userspace must resolve (e.g. a private/shared mismatch,
 * KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3).
 *
 * @module
 */
import { type ExitOutcome, internalError } from "./outcome.ts";

/** `KVM_MEMORY_EXIT_FLAG_PRIVATE`. */
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1n << 3n;

/** Corresponds to `KVM_EXIT_MEMORY_FAULT` (`kvm_run.memory_fault`). */
export interface MemoryFaultExit {
  readonly reason: "memory_fault";
  readonly generation: number;
  readonly flags: bigint;
  readonly gpa: bigint;
  readonly size: bigint;
  readonly private: boolean;
}

/** Default handling: nobody converts memory here, so the VM cannot continue. */
export function handleMemoryFault(exit: MemoryFaultExit): ExitOutcome {
  return internalError(
    `KVM_EXIT_MEMORY_FAULT at gpa 0x${exit.gpa.toString(16)} size 0x${exit.size.toString(16)} flags 0x${
      exit.flags.toString(16)
    }`,
  );
}
