/**
 * Cross-check of the x86 assembler against GNU as: the whole corpus of each mode goes through
 * both (one `as` run per mode); bytes must match, or both encodings must disassemble (objdump)
 * to the same instruction text.
 */
import assert from "node:assert/strict";
import { assemble, type Bits } from "../src/asm/x86.ts";
import { buildCorpus } from "./asm_corpus.ts";

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const d = new TextDecoder();
    return { code: r.code, stdout: d.decode(r.stdout), stderr: d.decode(r.stderr) };
  } catch {
    return { code: -1, stdout: "", stderr: `${cmd} not found` };
  }
}

const haveTools = (await run("as", ["--version"])).code === 0 && (await run("objdump", ["--version"])).code === 0;
if (!haveTools) console.log("asm_gnu_test: SKIPPED — GNU `as`/`objdump` not found (install binutils)");

const OBJDUMP_ARCH: Record<Bits, string> = { 16: "i8086", 32: "i386", 64: "i386:x86-64" };

interface Insn {
  addr: number;
  bytes: string;
  text: string;
}

function parseObjdump(out: string): Insn[] {
  const res: Insn[] = [];
  for (const line of out.split("\n")) {
    const m = line.match(/^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$/);
    if (m) res.push({ addr: parseInt(m[1]!, 16), bytes: m[2]!.replace(/ /g, ""), text: normalize(m[3]!) });
  }
  return res;
}

const normalize = (t: string) => t.replace(/<[^>]*>/g, "").replace(/\s+/g, " ").trim();
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

/** Disassembles each encoding on its own, at a 32-byte stride, in one objdump run. */
async function decodeEach(dir: string, name: string, bits: Bits, encodings: string[]): Promise<string[]> {
  const STRIDE = 32;
  const buf = new Uint8Array(encodings.length * STRIDE).fill(0xcc);
  encodings.forEach((h, i) => {
    for (let j = 0; j < h.length / 2; j++) buf[i * STRIDE + j] = parseInt(h.slice(j * 2, j * 2 + 2), 16);
  });
  const file = `${dir}/${name}.bin`;
  await Deno.writeFile(file, buf);
  const r = await run("objdump", [
    "-D",
    "-b",
    "binary",
    "-m",
    OBJDUMP_ARCH[bits],
    "-M",
    "intel",
    "--insn-width=15",
    file,
  ]);
  const byAddr = new Map(parseObjdump(r.stdout).map((i) => [i.addr, i]));
  return encodings.map((h, i) => {
    const insn = byAddr.get(i * STRIDE);
    return insn && insn.bytes === h
      ? insn.text
      : `(did not decode as one instruction: ${insn?.bytes ?? "?"} ${insn?.text ?? ""})`;
  });
}

for (const bits of [16, 32, 64] as const) {
  Deno.test({
    name: `asm matches GNU as on the ${bits}-bit corpus`,
    ignore: !haveTools,
    fn: async () => {
      const corpus = buildCorpus(bits);
      const t0 = performance.now();
      const mine = assemble(corpus.map((e) => e.mine).join("\n"), { bits });
      const ms = performance.now() - t0;
      const myBytes = new Map<number, string>();
      for (const l of mine.listing) if (l.bytes.length) myBytes.set(l.line, hex(l.bytes));

      const dir = await Deno.makeTempDir({ prefix: "asm_gnu_" });
      const src = [".intel_syntax noprefix", `.code${bits}`, ...corpus.map((e) => e.gnu)].join("\n") + "\n";
      await Deno.writeTextFile(`${dir}/c.s`, src);
      const as = await run("as", [bits === 64 ? "--64" : "--32", "-mnaked-reg", "-o", `${dir}/c.o`, `${dir}/c.s`]);
      const failures: string[] = [];
      for (const m of as.stderr.matchAll(/c\.s:(\d+): Error: (.*)/g)) {
        failures.push(`GNU as rejected "${corpus[Number(m[1]) - 3]?.gnu}": ${m[2]}`);
      }
      assert.equal(as.code, 0, `as failed:\n${failures.slice(0, 40).join("\n")}\n${as.stderr.slice(0, 2000)}`);
      const dump = await run("objdump", [
        "-d",
        "-M",
        "intel",
        "-m",
        OBJDUMP_ARCH[bits],
        "--insn-width=15",
        `${dir}/c.o`,
      ]);
      const gnu = parseObjdump(dump.stdout);
      assert.equal(gnu.length, corpus.length, "objdump should list one instruction per corpus line");

      let identical = 0;
      const differing: number[] = [];
      corpus.forEach((_, i) => {
        const b = myBytes.get(i + 1);
        if (b === gnu[i]!.bytes) identical++;
        else differing.push(i);
      });
      let equivalent = 0;
      const notes: string[] = [];
      if (differing.length) {
        const mineText = await decodeEach(dir, "mine", bits, differing.map((i) => myBytes.get(i + 1) ?? ""));
        const gnuText = await decodeEach(dir, "gnu", bits, differing.map((i) => gnu[i]!.bytes));
        differing.forEach((i, k) => {
          const lenNote = (myBytes.get(i + 1) ?? "").length !== gnu[i]!.bytes.length ? " [length differs]" : "";
          if (mineText[k] === gnuText[k] && !mineText[k]!.startsWith("(")) {
            equivalent++;
            notes.push(
              `"${corpus[i]!.mine}": ours ${myBytes.get(i + 1)} | GNU ${gnu[i]!.bytes} = ${gnuText[k]}${lenNote}`,
            );
          } else {
            failures.push(
              `"${corpus[i]!.mine}": ours ${myBytes.get(i + 1)} = ${mineText[k]} | GNU ${gnu[i]!.bytes} = ${
                gnuText[k]
              }`,
            );
          }
        });
      }
      await Deno.remove(dir, { recursive: true });
      console.log(
        `bits ${bits}: ${corpus.length} instructions, ${identical} byte-identical, ${equivalent} same decode, ` +
          `${failures.length} failed (assembled in ${ms.toFixed(0)} ms)`,
      );
      if (Deno.env.get("ASM_GNU_VERBOSE")) console.log(notes.join("\n"));
      assert.equal(failures.length, 0, failures.slice(0, 60).join("\n"));
    },
  });
}
