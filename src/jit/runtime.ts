/**
 * The JS side of translated blocks for one core instance: its function table
 * and the `jitCompile` import (assembly/x86/jit.ts has the contract). Each
 * instance (each vCPU Worker) gets its own, made by src/wasm.ts instantiateCore.
 *
 * @module
 */
import { decodeLoop, JIT_FUNCS, JIT_GLOBALS, loopModule } from "./translate.ts";

/** Translations per instance at most (self-modifying loops would otherwise grow the table without end). */
export const MAX_TRANSLATIONS = 4096;

/** Counters of one instance's translator (tests and measurements read them). */
export interface JitStats {
  /** Translations made. */
  compiled: number;
  /** Blocks looked at and declined (not a translatable loop). */
  declined: number;
  /** Total milliseconds spent decoding, emitting and compiling. */
  ms: number;
  /** Modules WebAssembly rejected (a translator bug; the loop is then interpreted), and the last message. */
  errors: number;
  lastError?: string;
}

/** The imports one core instance needs for translated blocks, and how to connect them to its exports. */
export interface JitImports {
  table: WebAssembly.Table;
  jitCompile(host: number, ip: bigint, m64: number, avail: number): number;
  /** Call once with the instance's exports (the lazy-flag globals, jitIp, the CPUID / RDMSR helpers and their globals). */
  bind(exports: WebAssembly.Exports): void;
  stats: JitStats;
}

export function createJit(memory: WebAssembly.Memory): JitImports {
  const table = new WebAssembly.Table({ initial: 1, element: "anyfunc" });
  let globals: Record<string, WebAssembly.Global | ((...a: number[]) => number | void)> | undefined;
  const stats: JitStats = { compiled: 0, declined: 0, ms: 0, errors: 0 };
  return {
    table,
    stats,
    bind(exports) {
      const g: Record<string, WebAssembly.Global | ((...a: number[]) => number | void)> = {};
      for (const { name } of JIT_GLOBALS) {
        const v = exports[name];
        if (!(v instanceof WebAssembly.Global)) {
          throw new Error(`core export ${name} is ${typeof v}: expected a WebAssembly.Global (assembly/index.ts)`);
        }
        g[name] = v;
      }
      for (const { name } of JIT_FUNCS) {
        const v = exports[name];
        if (typeof v !== "function") {
          throw new Error(`core export ${name} is ${typeof v}: expected a function (assembly/index.ts)`);
        }
        g[name] = v as (...a: number[]) => number | void;
      }
      globals = g;
    },
    jitCompile(host, ip, m64, avail) {
      if (!globals || stats.compiled >= MAX_TRANSLATIONS) return 0;
      const t0 = performance.now();
      try {
        const code = new Uint8Array(memory.buffer, host, Math.min(avail, 256)).slice();
        const loop = decodeLoop(code, BigInt.asUintN(64, ip), m64 !== 0);
        if (!loop) {
          stats.declined++;
          return 0;
        }
        const bytes = loopModule(loop, code, BigInt.asUintN(64, ip), host, m64 !== 0);
        let inst: WebAssembly.Instance;
        try {
          inst = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), {
            env: { memory, ...globals },
          });
        } catch (e) {
          if (!(e instanceof WebAssembly.CompileError || e instanceof WebAssembly.LinkError)) throw e;
          // Interpreting stays exact; tests assert that this never happens.
          stats.errors++;
          stats.lastError = `block at 0x${BigInt.asUintN(64, ip).toString(16)}: ${e.message}`;
          return 0;
        }
        const idx = table.grow(1);
        table.set(idx, inst.exports.f as () => number);
        stats.compiled++;
        return idx;
      } finally {
        stats.ms += performance.now() - t0;
      }
    },
  };
}
