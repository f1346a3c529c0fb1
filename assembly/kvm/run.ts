// KVM_RUN for one vCPU (placeholder until the interpreter lands: returns
// KVM_EXIT_INTERNAL_ERROR / UNEXPECTED_EXIT_REASON so nothing looks like it ran).
import { KVM_EXIT_INTERNAL_ERROR, KVM_RUN_EXIT_REASON } from "../abi.generated";
import { RUN, selectVcpu } from "../x86/cpu";

export function run(runBase: i32, budget: i32): i32 {
  selectVcpu(runBase);
  store<u32>(RUN + KVM_RUN_EXIT_REASON, KVM_EXIT_INTERNAL_ERROR);
  return KVM_EXIT_INTERNAL_ERROR + budget * 0;
}
