// kvmsim WASM core entry points. The module imports one shared memory per VM
// and exports only functions over i32 (64-bit values cross through memory),
// plus the lazy-flag globals and jitIp, which only translated blocks import
// (assembly/x86/jit.ts, src/jit/).
export { run } from "./kvm/run";
export { ccA, ccB, ccCarry, ccFlags, ccOp, ccRes, ccSize } from "./x86/flags";
export { jitIp } from "./x86/jit";
