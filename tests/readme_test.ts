/** The README's scripting example runs and prints what its comments say. */
import assert from "node:assert/strict";

Deno.test("README scripting example runs and prints what its comments claim", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("## Scripting a VM"));
  const code = section.match(/```ts\n([\s\S]*?)```/)?.[1];
  assert.ok(code, "no ts block under '## Scripting a VM'");
  const modUrl = new URL("../mod.ts", import.meta.url).href;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code.replaceAll('"./mod.ts"', JSON.stringify(modUrl)));
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", file], env: { NO_COLOR: "1" } }).output();
  await Deno.remove(file);
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  // Every `// a b c` comment on a console.log line is the expected output.
  const expected = [...code.matchAll(/console\.log\(.*\/\/ (.+)$/gm)].map((m) => m[1]!.trim());
  assert.ok(expected.length >= 2);
  for (const e of expected) assert.ok(stdout.includes(e), `expected "${e}" in output:\n${stdout}`);
  assert.ok(stdout.includes("K"), "the serial device printed the guest's byte");
});
