// bench/exit_floor.ts: the floor core and the checked core (assembly/floor/checked.ts, which the script
// builds and whose guest state it verifies) run the io-out/switch JS loop (its handler counts every byte
// it was given) beside kvmsim's core, and the script prints all three; a bad argument is an error.
import assert from "node:assert/strict";

const script = new URL("../bench/exit_floor.ts", import.meta.url).pathname;
const run = (...args: string[]) =>
  new Deno.Command(Deno.execPath(), { args: ["run", "-A", script, ...args], stdout: "piped", stderr: "piped" })
    .outputSync();

Deno.test("exit_floor prints the floor, checked and kvmsim cores' ns per exit on the io-out/switch loop", () => {
  const out = run("--rounds", "1", "--ms", "20");
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const ns = [...text.matchAll(/: +([0-9.]+) ns \(/g)].map((m) => Number(m[1]));
  assert.match(text, /^io-out\/switch JS loop, 1 alternating rounds of 20 ms/);
  assert.equal(ns.length, 3, text);
  assert.match(text, /floor core .*\n.*checked core .*\n.*kvmsim core/, text);
  for (const n of ns) assert.ok(n > 0 && Number.isFinite(n), text);
});

Deno.test("exit_floor rejects an unknown argument with what it expected", () => {
  const out = run("--fast");
  assert.notEqual(out.code, 0);
  assert.match(new TextDecoder().decode(out.stderr), /unknown argument --fast: expected --rounds N or --ms MS/);
});
