/**
 * `kvmsim run` and `kvmsim scenarios`: the built-in scenarios run and report,
 * a scenario module loads by (relative) path, and bad input is exit code 2
 * with one line on stderr.
 */
import assert from "node:assert/strict";
import { kvmsim } from "./cli_support.ts";

const BUILTIN = ["demo", "real-mode", "paging-fault", "dirty-log"];
const MOD = new URL("../mod.ts", import.meta.url).href;

Deno.test("scenarios lists the built-ins with descriptions; unknown scenario lists them; help", async () => {
  const [list, json, unknown, help] = await Promise.all([
    kvmsim(["scenarios"]),
    kvmsim(["scenarios", "--json"]),
    kvmsim(["run", "nosuch"]),
    kvmsim(["--help"]),
  ]);
  assert.equal(list.code, 0);
  const lines = list.stdout.trimEnd().split("\n");
  assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), BUILTIN);
  for (const l of lines) assert.match(l, /^\S+\s{2,}\S.{10,}$/, `"${l}" has a description`);
  assert.deepEqual(JSON.parse(json.stdout).map((s: { name: string }) => s.name), BUILTIN);

  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, "");
  assert.match(
    unknown.stderr,
    /^kvmsim: unknown scenario "nosuch": expected one of demo, real-mode, paging-fault, dirty-log, or a path/,
  );
  assert.equal(unknown.stderr.trimEnd().split("\n").length, 1);

  assert.equal(help.code, 0);
  for (const c of ["run <scenario>", "exec [options]", "scenarios [options]"]) assert.ok(help.stdout.includes(c), c);
});

Deno.test("run demo: greeting on the serial port, MMIO exits, debug-exit stop, exits per second", async () => {
  const r = await kvmsim(["run", "demo"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Hello from a 64-bit kvmsim guest!\n/);
  assert.match(r.stdout, /× mmio write phys_addr 0xd0000000 len 4 data 0x12345678\n/);
  assert.match(r.stdout, /× mmio read phys_addr 0xd0000008 len 8 data 0x123456789abcdef\n/);
  assert.match(r.stdout, /× io out port 0xf4 size 1 count 1 data 0x0\n/);
  assert.match(r.stdout, /stop: debug-exit value 0/);
  const m = /io-out exits: ([0-9.]+) M\/s \((\d+) exits in ([0-9.]+) s/.exec(r.stdout);
  assert.ok(m, `exits-per-second line in:\n${r.stdout}`);
  assert.ok(Number(m[1]) > 0 && Number(m[3]) >= 0.5, `measured over at least 0.5 s: ${m[0]}`);
});

Deno.test("run real-mode: a real-mode guest prints through its own INT 0x40 handler", async () => {
  const real = await kvmsim(["run", "real-mode"]);
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, /guest printed: "Hello from real mode, printed by an INT 0x40 handler!\\n"/);
  assert.match(real.stdout, /stop: hlt at cs:ip 0000:/);
});

Deno.test("run paging-fault: #PF through the IDT, CR2 and error code, handler maps the page, IRETQ", async () => {
  const pf = await kvmsim(["run", "paging-fault"]);
  assert.equal(pf.code, 0, pf.stderr);
  assert.match(
    pf.stdout,
    /#PF handled 1 time\(s\): CR2 = 0x100000000, error code 0x2 \(not present, write, supervisor\)/,
  );
  assert.match(pf.stdout, /guest read back 0x1234; GPA 0 holds 0x1234/);
});

Deno.test("run dirty-log: KVM_GET_DIRTY_LOG after each round, cleared on read", async () => {
  const dirty = await kvmsim(["run", "dirty-log"]);
  assert.equal(dirty.code, 0, dirty.stderr);
  assert.match(
    dirty.stdout,
    /round 1 \(pause\): dirty pages \[0, 3, 5, 15\]\nround 2 \(pause\): dirty pages \[1\]\nround 3 \(hlt\): dirty pages \[\]\n/,
  );
});

Deno.test("run <path>: a scenario module by relative path; bad modules are exit code 2, a failing scenario exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvmsim_cli_" });
  try {
    await Deno.writeTextFile(
      `${dir}/mine.ts`,
      `
import { createVmWithOneVcpu } from "${MOD}";
export const scenario = {
  name: "mine",
  description: "one OUT, one HLT",
  run(ctx: { log(line: string): void }) {
    const { vcpu } = createVmWithOneVcpu({ code: [0xb0, 0x41, 0xe6, 0xe9, 0xf4] });
    const e = vcpu.run();
    ctx.log(\`first exit: \${e.reason} port 0x\${e.reason === "io" ? e.port.toString(16) : "?"}\`);
    ctx.log(\`second exit: \${vcpu.run().reason}\`);
  },
};
`,
    );
    await Deno.writeTextFile(`${dir}/noexport.ts`, "export const other = 1;\n");
    await Deno.writeTextFile(`${dir}/badshape.ts`, "export const scenario = { name: 'x', description: 'y' };\n");
    await Deno.writeTextFile(`${dir}/syntax.ts`, "export const scenario = {\n");
    await Deno.writeTextFile(
      `${dir}/throws.ts`,
      "export const scenario = { name: 't', description: 'd', run() { throw new Error('guest did not say hello'); } };\n",
    );
    const [mine, missing, noexport, badshape, syntax, throws] = await Promise.all([
      kvmsim(["run", "./mine.ts"], dir),
      kvmsim(["run", "./missing.ts"], dir),
      kvmsim(["run", `${dir}/noexport.ts`]),
      kvmsim(["run", `${dir}/badshape.ts`]),
      kvmsim(["run", `${dir}/syntax.ts`]),
      kvmsim(["run", `${dir}/throws.ts`]),
    ]);
    assert.equal(mine.code, 0, mine.stderr);
    assert.equal(mine.stdout, "first exit: io port 0xe9\nsecond exit: hlt\n");
    const bad: [typeof missing, RegExp][] = [
      [missing, /^kvmsim: scenario module \.\/missing\.ts: cannot read/],
      [noexport, /noexport\.ts: does not export `scenario`/],
      [badshape, /badshape\.ts: `scenario\.run` is not a function/],
      [syntax, /syntax\.ts: cannot load/],
    ];
    for (const [r, re] of bad) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    }
    assert.equal(throws.code, 1);
    assert.match(throws.stderr, /^kvmsim: guest did not say hello\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
