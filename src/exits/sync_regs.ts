/**
 * KVM_CAP_SYNC_REGS through kvm_run (the kvm_regs part): with KVM_SYNC_X86_REGS in
 * `kvm_valid_regs` every exit leaves the GPRs, RIP and RFLAGS in `kvm_run.s.regs.regs`;
 * with it in `kvm_dirty_regs` the next KVM_RUN loads them from there first and clears
 * the bit. An exit handler can then read and move RIP without KVM_GET_REGS /
 * KVM_SET_REGS. kvmsim syncs only the registers (KVM also has SREGS and EVENTS): any
 * other bit makes KVM_RUN fail, as KVM fails on bits outside its valid fields.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../abi/constants.ts";
import { field, layOut } from "../abi/layout.ts";
import { KVM_REGS, KVM_RUN } from "../abi/kvm_structs.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { KvmRegs } from "../x86/regs.ts";
import type { KvmRun } from "./decode.ts";

const RUN = layOut(KVM_RUN), REGS = layOut(KVM_REGS);
const VALID = field(RUN, "kvm_valid_regs").offset, DIRTY = field(RUN, "kvm_dirty_regs").offset;
/** Byte offset in kvm_run of each synced register (`s.regs.regs.<name>`). */
const AT = Object.fromEntries(
  REGS.fields.map((f) => [f.path, field(RUN, "s").offset + f.offset]),
) as Record<keyof KvmRegs, number>;

/** The bits of kvm_valid_regs / kvm_dirty_regs kvmsim syncs. */
export const SYNC_REGS_SUPPORTED = K.KVM_SYNC_X86_REGS;

/** Ask for the registers in kvm_run at every exit (`on`), or stop. */
export function setSyncRegsValid(run: KvmRun, on: boolean): void {
  run.set64(VALID, on ? BigInt(K.KVM_SYNC_X86_REGS) : 0n);
}

/** Register `name` as the last exit left it in kvm_run.s.regs. */
export function syncReg(run: KvmRun, name: keyof KvmRegs): bigint {
  return run.get64(AT[name]);
}

/**
 * Set register `name` in kvm_run.s.regs and mark the registers dirty: the next KVM_RUN
 * loads all of them from there (set the others first or leave them as the exit stored them).
 */
export function setSyncReg(run: KvmRun, name: keyof KvmRegs, v: bigint): void {
  run.set64(AT[name], v);
  run.set64(DIRTY, run.get64(DIRTY) | BigInt(K.KVM_SYNC_X86_REGS));
}

/** The error for a KVM_RUN the core refused (`code` < 0): kvm_valid_regs / kvm_dirty_regs bits it does not sync. */
export function runRefused(run: KvmRun, code: number): InvalidArgumentError {
  const valid = run.get64(VALID), dirty = run.get64(DIRTY);
  return new InvalidArgumentError(
    "kvm_run.kvm_valid_regs / kvm_dirty_regs",
    `0x${valid.toString(16)} / 0x${dirty.toString(16)}: kvmsim syncs only KVM_SYNC_X86_REGS (0x${
      SYNC_REGS_SUPPORTED.toString(16)
    }); KVM_RUN fails (${code})`,
  );
}
