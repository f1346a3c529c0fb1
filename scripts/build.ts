/**
 * Builds `build/kvmsim.wasm`: regenerates the ABI constants, then compiles the
 * AssemblyScript core for a shared, imported, never-growing memory.
 * Run by `npm ci` (the `prepare` script) and `deno task build`.
 *
 * @module
 */
import { generateAbi } from "./gen_abi.ts";
import { ascArgs } from "./asc_args.ts";

const root = new URL("../", import.meta.url);
await Deno.writeTextFile(new URL("assembly/abi.generated.ts", root), generateAbi());
await Deno.mkdir(new URL("build/", root), { recursive: true });

const cmd = new Deno.Command("node", {
  args: ascArgs("assembly/index.ts", "build/kvmsim.wasm", { importTable: true }),
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
