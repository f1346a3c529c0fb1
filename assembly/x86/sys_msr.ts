// RDMSR / WRMSR / RDTSC / RDTSCP. Each exec* completes its instruction (a
// user-space MSR exit completes on the next run(), kvm/run.ts).
import { VS_CR4, VS_TSC_AUX } from "../abi.generated";
import { RAX, RCX, RDX, S, reg64, setReg64, setRip } from "./cpu";
import { nextIp } from "./decode_state";
import { gp0 } from "./exceptions";
import { CR4_TSD, cpl } from "./mode";
import { MSR_GP, MSR_OK, msrRead, msrValue, msrWrite, tscNow } from "../kvm/msr";

export function execRdmsr(): void {
  if (cpl() != 0) { gp0(); return; }
  const r = msrRead(<u32>reg64(RCX));
  if (r == MSR_GP) { gp0(); return; }
  if (r != MSR_OK) return;
  setReg64(RAX, msrValue & 0xffffffff);
  setReg64(RDX, msrValue >> 32);
  setRip(nextIp);
}

export function execWrmsr(): void {
  if (cpl() != 0) { gp0(); return; }
  const v = (reg64(RDX) << 32) | (reg64(RAX) & 0xffffffff);
  const r = msrWrite(<u32>reg64(RCX), v);
  if (r == MSR_GP) { gp0(); return; }
  if (r != MSR_OK) return;
  setRip(nextIp);
}

/**
 * RDTSC: #GP(0) with CR4.TSD at CPL > 0. The TSC advances with retired instructions,
 * exactly: the ones stepMany() has not counted yet are included (kvm/msr.ts tscNow).
 */
export function execRdtsc(): void {
  if ((load<u64>(S + VS_CR4) & CR4_TSD) != 0 && cpl() != 0) { gp0(); return; }
  const t = tscNow();
  setReg64(RAX, t & 0xffffffff);
  setReg64(RDX, t >> 32);
  setRip(nextIp);
}

/** RDTSCP: RDTSC plus ECX = TSC_AUX. */
export function execRdtscp(): void {
  if ((load<u64>(S + VS_CR4) & CR4_TSD) != 0 && cpl() != 0) { gp0(); return; }
  const t = tscNow();
  setReg64(RAX, t & 0xffffffff);
  setReg64(RDX, t >> 32);
  setReg64(RCX, load<u64>(S + VS_TSC_AUX) & 0xffffffff);
  setRip(nextIp);
}
