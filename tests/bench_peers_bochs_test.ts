/**
 * bench/peers/bochs.ts: the bochsrc text, the shutdown sequence and the
 * tick-count check (pure), then a short real run of Bochs — skipped with a
 * note when it is missing (install: sh scripts/install-peers.sh).
 */
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import {
  BOCHS_EXIT_ASM,
  BOCHS_LOOPS,
  BOCHS_REP_TICKS,
  bochsConfig,
  bochsEndProblem,
  bochsEngine,
  bochsExpectedTicks,
  bochsMissing,
  bochsPeer,
} from "../bench/peers/bochs.ts";
import { instructionsPerChunk, MARKER_PORT } from "../bench/peers/chunked.ts";
import { PeerCheckError } from "../bench/peers/peer.ts";
import { runPeerAlone } from "../bench/peers/pairing.ts";
import { rowRate } from "../bench/report.ts";
import { loopsFor, measureProcessLoop } from "../bench/peers/process_peer.ts";
import { assertProcessPeerExtraRows, benchPath } from "./support/bench_paths.ts";

const MISSING = bochsMissing();

Deno.test("bochsrc: the ROM as romimage, term display, port 0xE9 hack, log to stderr, panics fatal", () => {
  const rc = bochsConfig("/tmp/d/rom.bin", "/usr/share/vgabios/vgabios.bin").split("\n");
  for (
    const line of [
      "romimage: file=/tmp/d/rom.bin",
      "vgaromimage: file=/usr/share/vgabios/vgabios.bin",
      "display_library: term",
      "port_e9_hack: enabled=1",
      "clock: sync=none",
      "log: -",
      "panic: action=fatal",
    ]
  ) assert.ok(rc.includes(line), `${line} in\n${rc.join("\n")}`);
  assert.ok(!rc.some((l) => l.startsWith("boot:")), "no boot device: the ROM never boots");
  assert.equal(MARKER_PORT, 0xe9, "markers use the port_e9_hack port");
  assert.throws(() => bochsConfig("/tmp/a b/rom.bin", "/v.bin"), /expected no spaces, commas or quotes/);
});

Deno.test('bochs exit sequence: "Shutdown" byte-wise to port 0x8900', () => {
  const { bytes } = assemble(BOCHS_EXIT_ASM, { bits: 16, origin: 0 });
  const want = [0xba, 0x00, 0x89, ...[..."Shutdown"].flatMap((c) => [0xb0, c.charCodeAt(0), 0xee])];
  assert.deepEqual([...bytes], want);
});

Deno.test("bochs tick check: reset jump + xor + chunks × instructions + exit sequence before its last OUT", () => {
  const io = { kind: "io-out", rounds: 1 } as const;
  assert.equal(bochsExpectedTicks(io, 40), 2 + 40 * instructionsPerChunk(io) + 16);
  // mmio-write adds the 11-instruction unreal-mode entry.
  const mmio = { kind: "mmio-write", rounds: 1 } as const;
  assert.equal(bochsExpectedTicks(mmio, 3), 2 + 11 + 3 * instructionsPerChunk(mmio) + 16);
  const want = bochsExpectedTicks(io, 40);
  const line = (t: number) =>
    `00000000000i[      ] reading configuration from bochsrc\n${
      String(t).padStart(11, "0")
    }p[UNMAP ] >>PANIC<< Shutdown port: shutdown requested\n=====\n`;
  assert.equal(bochsEndProblem(line(want), io, 40), undefined);
  assert.equal(
    bochsEndProblem(line(want - 2), io, 40),
    `shut down at tick ${want - 2}: expected ${want} (= instructions of 40 chunks and the exit sequence)`,
  );
  assert.match(bochsEndProblem("00000000000p[MEM0  ] >>PANIC<< ROM: couldn't open\n", io, 40)!, /no "Shutdown port/);
  // string-in: Bochs ticks once per REP iteration (16 per INSB); no prologue.
  const str = { kind: "string-in", iterations: 10 } as const;
  assert.equal(BOCHS_REP_TICKS, true);
  assert.equal(bochsExpectedTicks(str, 3), 2 + 3 * (2 + 10 * (4 + 16) + 7) + 16);
  assert.notEqual(bochsExpectedTicks(str, 3), 2 + 3 * instructionsPerChunk(str) + 16);
  // string-out: the buffer fill first (mov di, mov al, mov cx, 16 × (stosb, add, loop)), then per chunk mov edi,
  // mov dx, mov ebp, 10 × (mov si, mov cx, 16 REP ticks, dec, jnz), mov esi, the tail.
  const outs = { kind: "string-out", iterations: 10 } as const;
  assert.equal(bochsExpectedTicks(outs, 3), 2 + 51 + 3 * (4 + 10 * (4 + 16) + 7) + 16);
});

Deno.test("bochs loops follow --filter through compared_to", () => {
  assert.deepEqual(loopsFor(BOCHS_LOOPS, [benchPath("io-out/switch")]).map((l) => l.spec.path), [
    "io-out/unassigned-port",
  ]);
  assert.deepEqual(loopsFor(BOCHS_LOOPS, [benchPath("mmio-write/switch")]).map((l) => l.spec.path), [
    "mmio-write/unassigned",
  ]);
  assert.deepEqual(loopsFor(BOCHS_LOOPS, [benchPath("hlt/switch")]), []);
});

Deno.test("bochs peer: a short real run gives tick-checked rows — or is skipped naming the install command", async () => {
  const lines: string[] = [];
  const out = await runPeerAlone(bochsPeer, {
    durationMs: 30,
    runs: 1,
    warmup: 0,
    paths: [
      benchPath("raw/dec-jnz"),
      benchPath("io-out/switch"),
      benchPath("mmio-write/switch"),
      benchPath("hlt/runUntil"),
    ],
    log: (l) => lines.push(l),
  });
  if (MISSING !== undefined) {
    assert.equal(out.kind, "skipped");
    if (out.kind === "skipped") assert.match(out.reason, /install: sh scripts\/install-peers\.sh/);
    console.log(`SKIPPED real bochs run: ${MISSING}`);
    return;
  }
  assert.equal(out.kind, "rows");
  if (out.kind !== "rows") return;
  assert.deepEqual(out.rows.map((r) => [r.path, r.engine, r.unit, r.compared_to]), [
    ["raw/dec-jnz", "bochs", "instructions", "raw/dec-jnz"],
    ["io-out/unassigned-port", "bochs", "exits", "io-out/switch"],
    ["mmio-write/unassigned", "bochs", "exits", "mmio-write/switch"],
  ]);
  for (const r of out.rows) {
    const rate = rowRate(r);
    assert.ok(Number.isFinite(rate) && rate > 1e5, `${r.path}: rate ${rate}`);
    assert.ok(r.min <= rate && rate <= r.max && r.runs === 1);
  }
  assert.ok(lines.some((l) => /hlt\/runUntil not run on bochs: Bochs has no HLT exit/.test(l)), lines.join("\n"));
});

Deno.test(
  "bochs peer: io-in, mmio-read, string-in, string-out, cpuid and msr rows, tick-checked, from short real runs",
  {
    ignore: MISSING !== undefined,
  },
  async () => {
    await assertProcessPeerExtraRows(bochsPeer);
  },
);

Deno.test("bochs peer: a tick count that is not the program's instruction count fails the check", {
  ignore: MISSING !== undefined,
}, async () => {
  // Expect one chunk more than the ROM runs: the real tick count is then one chunk short.
  const strict = {
    ...bochsEngine,
    checkEnd: (
      run: Parameters<typeof bochsEngine.checkEnd>[0],
      body: Parameters<typeof bochsEngine.checkEnd>[1],
      chunks: number,
    ) => bochsEngine.checkEnd(run, body, chunks + 1),
  };
  await assert.rejects(
    measureProcessLoop(strict, BOCHS_LOOPS[1]!, { durationMs: 20, runs: 1, warmup: 0 }),
    (e: unknown) => e instanceof PeerCheckError && /shut down at tick \d+: expected \d+/.test(e.message),
  );
});
