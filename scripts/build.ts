/**
 * Builds `build/kvmsim.wasm`: regenerates the ABI constants, then compiles the
 * AssemblyScript core for a shared, imported, never-growing memory.
 * Run by `npm ci` (the `prepare` script) and `deno task build`.
 *
 * @module
 */
import { generateAbi } from "./gen_abi.ts";
import { STATIC_SIZE } from "../src/abi/memory_map.ts";

const root = new URL("../", import.meta.url);
await Deno.writeTextFile(new URL("assembly/abi.generated.ts", root), generateAbi());
await Deno.mkdir(new URL("build/", root), { recursive: true });

// The module is compiled for the largest memory; each VM imports its own
// memory with initial == maximum <= this (design.md §2).
const args = [
  "assembly/index.ts",
  "-o",
  "build/kvmsim.wasm",
  "--runtime",
  "stub",
  "-O3",
  "--noAssert",
  "--importMemory",
  "--sharedMemory",
  "--enable",
  "threads",
  "--initialMemory",
  "1",
  "--maximumMemory",
  "65535",
  "--memoryBase",
  String(STATIC_SIZE / 2),
  "--noExportMemory",
  // Translated blocks (src/jit/) are appended to the instance's own table and
  // called through it (assembly/x86/jit.ts).
  "--importTable",
];
const cmd = new Deno.Command("node", {
  args: ["node_modules/assemblyscript/bin/asc.js", ...args],
  cwd: root,
  stdout: "inherit",
  stderr: "inherit",
});
const { code } = await cmd.output();
if (code !== 0) {
  console.error(`asc failed with exit code ${code}`);
  Deno.exit(code);
}
const wasm = await Deno.stat(new URL("build/kvmsim.wasm", root));
console.log(`build/kvmsim.wasm: ${wasm.size} bytes`);
