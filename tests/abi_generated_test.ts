import assert from "node:assert/strict";
import { generateAbi } from "../scripts/gen_abi.ts";

Deno.test("assembly/abi.generated.ts is up to date with src/abi/*.ts", async () => {
  const current = await Deno.readTextFile(new URL("../assembly/abi.generated.ts", import.meta.url));
  assert.ok(
    current === generateAbi(),
    "assembly/abi.generated.ts is stale: run `deno run -A scripts/gen_abi.ts` (or `deno task build`)",
  );
});
