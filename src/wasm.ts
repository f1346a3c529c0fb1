/**
 * Loads `build/kvmsim.wasm` once per process and instantiates it on a VM's
 * shared memory. Each vCPU thread (Worker) gets its own instance on the same
 * memory: module globals are per instance, state lives in the memory.
 *
 * @module
 */
import { MAX_MEMORY_BYTES, RAM_POOL_BASE, WASM_PAGE } from "./abi/memory_map.ts";
import { createJit, type JitStats } from "./jit/runtime.ts";

/** The functions the WASM core exports (docs/core-contract.md). */
export interface CoreExports {
  /** KVM_RUN: run the vCPU whose kvm_run page is at `runBase`; returns the exit reason. */
  run(runBase: number, budget: number): number;
  /** This instance's block translator counters (src/jit/runtime.ts); not a core export. */
  jitStats?: JitStats;
}

let cached: WebAssembly.Module | undefined;

/** Path of the built core; `npm ci` / `deno task build` produce it. */
export const WASM_URL = new URL("../build/kvmsim.wasm", import.meta.url);

/** Compile (once) and return the core module. */
export function coreModule(): WebAssembly.Module {
  if (cached) return cached;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = Deno.readFileSync(WASM_URL) as Uint8Array<ArrayBuffer>;
  } catch (e) {
    throw new Error(
      `cannot read ${WASM_URL.pathname} (${(e as Error).message}): run \`npm ci\` or \`deno task build\` first`,
    );
  }
  cached = new WebAssembly.Module(bytes);
  return cached;
}

/** A shared memory of `bytes` (rounded up to 64 KiB), initial == maximum. */
export function createSharedMemory(bytes: number): WebAssembly.Memory {
  if (!Number.isFinite(bytes) || bytes <= RAM_POOL_BASE || bytes > MAX_MEMORY_BYTES) {
    throw new RangeError(
      `VM memory of ${bytes} bytes is out of range: expected more than ${RAM_POOL_BASE} and at most ${MAX_MEMORY_BYTES}`,
    );
  }
  const pages = Math.ceil(bytes / WASM_PAGE);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/**
 * Instantiate the core on `memory`, with its own function table and block
 * translator (src/jit/runtime.ts): the one place where the core's imports are made.
 */
export function instantiateCore(memory: WebAssembly.Memory, module: WebAssembly.Module = coreModule()): CoreExports {
  const jit = createJit(memory);
  const instance = new WebAssembly.Instance(module, {
    env: { memory, table: jit.table, jitCompile: jit.jitCompile },
  });
  // Older builds (A/B comparisons) neither import jitCompile nor export its globals.
  if (WebAssembly.Module.imports(module).some((i) => i.name === "jitCompile")) jit.bind(instance.exports);
  return { run: instance.exports.run as CoreExports["run"], jitStats: jit.stats };
}
