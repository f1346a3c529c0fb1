// KVM_CAP_SYNC_REGS, the kvm_regs part (Linux arch/x86/kvm/x86.c sync_regs / store_regs):
// with KVM_SYNC_X86_REGS in kvm_run.kvm_dirty_regs, run() loads the GPRs, RIP and RFLAGS
// from kvm_run.s.regs.regs before anything else (as KVM_SET_REGS would, RFLAGS bit 1 set)
// and clears that bit; with it in kvm_valid_regs, every exit stores them there. kvmsim
// syncs only the registers: any other bit in either word makes run() fail with -EINVAL
// (KVM also syncs sregs and events), as KVM fails on bits outside its valid fields.
import {
  KVM_REGS_RFLAGS, KVM_REGS_RIP, KVM_RUN_KVM_DIRTY_REGS, KVM_RUN_KVM_VALID_REGS, KVM_RUN_S, KVM_SYNC_X86_REGS, VS_GPR,
  VS_RFLAGS, VS_RIP,
} from "../abi.generated";
import { RUN, S } from "../x86/cpu";

/** kvm_valid_regs asks for the registers at this run's exit (set at every entry by syncRegsEntry). */
export let syncOut: bool = false;

/** The state-block GPR number of kvm_regs member `k` (rax rbx rcx rdx rsi rdi rsp rbp r8..r15). */
@inline function gprOf(k: i32): i32 { return k < 8 ? (0x54762130 >> (k << 2)) & 15 : k; }

/**
 * At every run() entry (vCPU selected): 0 when nothing was loaded, 1 when the registers
 * were loaded from kvm_run (RFLAGS and the mode are then due: run.ts enterRegs), -1 for
 * a bit kvmsim does not sync (run() fails with -EINVAL, nothing done).
 */
@inline export function syncRegsEntry(): i32 {
  const valid = load<u64>(RUN + KVM_RUN_KVM_VALID_REGS), dirty = load<u64>(RUN + KVM_RUN_KVM_DIRTY_REGS);
  syncOut = false;
  if ((valid | dirty) == 0) return 0;
  return syncRegsIn(valid, dirty);
}

function syncRegsIn(valid: u64, dirty: u64): i32 {
  if (((valid | dirty) & ~<u64>KVM_SYNC_X86_REGS) != 0) return -1;
  syncOut = (valid & <u64>KVM_SYNC_X86_REGS) != 0;
  if ((dirty & <u64>KVM_SYNC_X86_REGS) == 0) return 0;
  const r = RUN + KVM_RUN_S;
  for (let k = 0; k < 16; k++) store<u64>(S + VS_GPR + (gprOf(k) << 3), load<u64>(r + (k << 3)));
  store<u64>(S + VS_RIP, load<u64>(r + KVM_REGS_RIP));
  store<u64>(S + VS_RFLAGS, load<u64>(r + KVM_REGS_RFLAGS) | 2); // kvm_set_rflags(rflags | X86_EFLAGS_FIXED)
  store<u64>(RUN + KVM_RUN_KVM_DIRTY_REGS, dirty & ~<u64>KVM_SYNC_X86_REGS);
  return 1;
}

/** At an exit with syncOut: the registers (RFLAGS materialised as `flags`) into kvm_run.s.regs.regs. */
export function syncRegsStore(flags: u64): void {
  const r = RUN + KVM_RUN_S;
  for (let k = 0; k < 16; k++) store<u64>(r + (k << 3), load<u64>(S + VS_GPR + (gprOf(k) << 3)));
  store<u64>(r + KVM_REGS_RIP, load<u64>(S + VS_RIP));
  store<u64>(r + KVM_REGS_RFLAGS, flags);
}
