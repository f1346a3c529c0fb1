/**
 * Entry points that no test imports (the CLI, the benchmark, the scenarios)
 * must still type-check: `deno check` them.
 */
import assert from "node:assert/strict";

Deno.test("deno check passes on cli.ts, mod.ts, bench/main.ts and scenarios/", async () => {
  const files = ["cli.ts", "mod.ts", "bench/main.ts"];
  for (const e of Deno.readDirSync(new URL("../scenarios/", import.meta.url))) {
    if (e.isFile && e.name.endsWith(".ts")) files.push(`scenarios/${e.name}`);
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", ...files],
    cwd: new URL("..", import.meta.url),
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
});
