// CPUID (0F A2): in-kernel, from the VM's table (kvm/cpuid.ts). Completes the instruction.
import { RAX, RBX, RCX, RDX, reg64, setReg64, setRip } from "./cpu";
import { nextIp } from "./decode_state";
import { cpuidEax, cpuidEbx, cpuidEcx, cpuidEdx, cpuidLookup } from "../kvm/cpuid";

export function execCpuid(): void {
  cpuidLookup(<u32>reg64(RAX), <u32>reg64(RCX));
  setReg64(RAX, <u64>cpuidEax);
  setReg64(RBX, <u64>cpuidEbx);
  setReg64(RCX, <u64>cpuidEcx);
  setReg64(RDX, <u64>cpuidEdx);
  setRip(nextIp);
}
