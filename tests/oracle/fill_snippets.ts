/**
 * Fills in the machine code of guest snippets in test files: every
 * `code(BITS, \`asm…\`, "hex")` call gets "hex" replaced by the bytes GNU `as`
 * produces for the asm (Intel syntax, `.codeBITS`, origin 0x1000 = CODE). The tests
 * then need no assembler at run time; rerun after editing a snippet:
 *   deno run -A tests/oracle/fill_snippets.ts tests/x86_core_*_test.ts
 */
const RE = /code\(\s*(16|32|64),\s*`([^`]*)`,\s*"([0-9a-f]*)"(,?\s*)\)/g;

async function assemble(bits: string, asm: string): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a.s`, `.intel_syntax noprefix\n.code${bits}\n${asm}\n`);
  const as = await new Deno.Command("as", { args: ["--64", "-o", `${dir}/a.o`, `${dir}/a.s`], stderr: "piped" })
    .output();
  if (!as.success) throw new Error(`as failed on:\n${asm}\n${new TextDecoder().decode(as.stderr)}`);
  const ld = await new Deno.Command("ld", {
    args: ["-Ttext=0x1000", "--oformat=binary", "-o", `${dir}/a.bin`, `${dir}/a.o`],
    stderr: "piped",
  }).output();
  if (!ld.success) throw new Error(`ld failed: ${new TextDecoder().decode(ld.stderr)}`);
  const b = await Deno.readFile(`${dir}/a.bin`);
  await Deno.remove(dir, { recursive: true });
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

for (const file of Deno.args) {
  const src = await Deno.readTextFile(file);
  let out = "";
  let last = 0;
  let n = 0;
  for (const m of src.matchAll(RE)) {
    // Replace only the hex string, keeping the call's formatting.
    const hexAt = m[0].lastIndexOf(`"${m[3]}"`);
    const hex = await assemble(m[1]!, m[2]!);
    out += src.slice(last, m.index!) + m[0].slice(0, hexAt) + `"${hex}"` + m[0].slice(hexAt + m[3]!.length + 2);
    last = m.index! + m[0].length;
    n++;
  }
  out += src.slice(last);
  if (out !== src) await Deno.writeTextFile(file, out);
  console.log(`${file}: ${n} snippets`);
}
