#!/usr/bin/env node
// `npx kvmsim …`: runs cli.ts under the Deno that npm installed beside it.
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const root = path.join(__dirname, "..");
let deno;
try {
  deno = require.resolve("deno/deno", { paths: [root] });
} catch {
  deno = "deno";
}
const r = spawnSync(deno, ["run", "-A", "--quiet", path.join(root, "cli.ts"), ...process.argv.slice(2)], {
  stdio: "inherit",
  env: { ...process.env, RUST_BACKTRACE: "0" },
});
if (r.error) {
  console.error(`kvmsim: cannot start deno (${r.error.message}); run \`npm ci\` first`);
  process.exit(2);
}
process.exit(r.status ?? 1);
