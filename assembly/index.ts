// kvmsim WASM core entry points. The module imports one shared memory per VM
// and exports only functions over i32 (64-bit values cross through memory).
export { run } from "./kvm/run";
