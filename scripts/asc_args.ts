/**
 * The AssemblyScript compiler's arguments for a module that runs over a VM's memory:
 * shared, imported, never growing, static data above the VM's static region
 * (design.md §2). `scripts/build.ts` builds the core with them, `bench/exit_floor.ts`
 * its measuring stand-in (assembly/floor/checked.ts).
 *
 * @module
 */
import { STATIC_SIZE } from "../src/abi/memory_map.ts";

/** `node <asc> ...` arguments compiling `entry` to `out`; `importTable`: the module imports its function table. */
export function ascArgs(entry: string, out: string, opts: { importTable?: boolean } = {}): string[] {
  return [
    "node_modules/assemblyscript/bin/asc.js",
    entry,
    "-o",
    out,
    "--runtime",
    "stub",
    "-O3",
    "--noAssert",
    "--importMemory",
    "--sharedMemory",
    "--enable",
    "threads",
    // The module is compiled for the largest memory; each VM imports its own
    // memory with initial == maximum <= this.
    "--initialMemory",
    "1",
    "--maximumMemory",
    "65535",
    "--memoryBase",
    String(STATIC_SIZE / 2),
    "--noExportMemory",
    // Translated blocks (src/jit/) are appended to the instance's own table and
    // called through it (assembly/x86/jit.ts).
    ...(opts.importTable ? ["--importTable"] : []),
  ];
}
