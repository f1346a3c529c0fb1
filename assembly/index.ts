// kvmsim WASM core entry points. The module imports one shared memory per VM
// and exports only functions over i32 (64-bit values cross through memory),
// plus what only translated blocks import (assembly/x86/jit.ts, src/jit/): the
// lazy-flag globals, jitIp, and the CPUID / RDMSR / OUT helpers with their result globals.
export { run } from "./kvm/run";
export { ccA, ccB, ccCarry, ccFlags, ccOp, ccRes, ccSize } from "./x86/flags";
export { jitCpuid, jitIp, jitOut, jitRdmsr } from "./x86/jit";
export { cpuidEax, cpuidEbx, cpuidEcx, cpuidEdx } from "./kvm/cpuid";
export { msrValue } from "./kvm/msr";
