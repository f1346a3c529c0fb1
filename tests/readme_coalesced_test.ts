/** The README's coalesced MMIO/PIO example runs and prints what its comment says. */
import assert from "node:assert/strict";

Deno.test("README coalesced MMIO/PIO example runs and prints what its comment claims", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("### Coalesced MMIO/PIO"));
  const code = section.match(/```ts\n([\s\S]*?)```/)?.[1];
  assert.ok(code, "no ts block under '### Coalesced MMIO/PIO'");
  const modUrl = new URL("../mod.ts", import.meta.url).href;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, code.replaceAll('"./mod.ts"', JSON.stringify(modUrl)));
    const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", file], env: { NO_COLOR: "1" } })
      .output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const expected = [...code.matchAll(/console\.log\(.*\/\/ (.+)$/gm)].map((m) => m[1]!.trim());
    assert.equal(expected.length, 1);
    assert.equal(stdout.trim(), expected[0]);
  } finally {
    await Deno.remove(file);
  }
});
