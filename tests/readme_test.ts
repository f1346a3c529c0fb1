/** The README's scripting example runs and prints what its comments say. */
import assert from "node:assert/strict";
import { runReadmeExample } from "./support/readme_example.ts";

Deno.test("README scripting example runs and prints what its comments claim", async () => {
  const { stdout, expected } = await runReadmeExample("## Scripting a VM");
  // Every `// a b c` comment on a console.log line is the expected output.
  assert.ok(expected.length >= 2);
  for (const e of expected) assert.ok(stdout.includes(e), `expected "${e}" in output:\n${stdout}`);
  assert.ok(stdout.includes("K"), "the serial device printed the guest's byte");
});
