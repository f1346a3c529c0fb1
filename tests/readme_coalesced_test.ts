/** The README's coalesced MMIO/PIO example runs and prints what its comment says. */
import assert from "node:assert/strict";
import { runReadmeExample } from "./support/readme_example.ts";

Deno.test("README coalesced MMIO/PIO example runs and prints what its comment claims", async () => {
  const { stdout, expected } = await runReadmeExample("### Coalesced MMIO/PIO");
  assert.equal(expected.length, 1);
  assert.equal(stdout.trim(), expected[0]);
});
