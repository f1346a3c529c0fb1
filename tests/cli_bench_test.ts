import assert from "node:assert/strict";
import { benchJson, kvmsim } from "./cli_support.ts";

Deno.test("kvmsim bench --json prints rows {path, engine, exits_per_s, ns_per_exit, min, max, runs}", async () => {
  const { json: j } = await benchJson([
    "--filter",
    "^io-out/switch$",
    "--runs",
    "1",
    "--warmup",
    "0",
    "--duration",
    "0.05",
    "--peers",
    "none",
    "--no-write",
  ]);
  assert.ok(j.machine && typeof j.date === "string");
  assert.equal(j.rows.length, 1);
  const r = j.rows[0];
  assert.equal(r.path, "io-out/switch");
  assert.equal(r.engine, "kvmsim");
  for (const k of ["exits_per_s", "ns_per_exit", "min", "max", "runs"]) assert.equal(typeof r[k], "number", k);
  assert.ok(r.exits_per_s > 0 && r.min <= r.exits_per_s && r.exits_per_s <= r.max);
});

Deno.test("kvmsim bench with a bad option exits 2 and names it", async () => {
  const out = await kvmsim(["bench", "--bogus"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /unknown option "--bogus"/);
});
