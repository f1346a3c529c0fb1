import assert from "node:assert/strict";
import { resultsMarkdown } from "../bench/markdown.ts";
import { pairingOf } from "../bench/peers/pairing.ts";
import type { Results } from "../bench/report.ts";

Deno.test("bench/markdown.ts renders every row and the kvmsim/peer ratio from a results file", () => {
  const row = (engine: string, path: string, rate: number, extra: object = {}) => ({
    path,
    engine,
    unit: "exits",
    loop: "switch",
    description: "",
    exits_per_s: rate,
    ns_per_exit: 1e9 / rate,
    min: rate * 0.9,
    max: rate * 1.1,
    runs: 7,
    samples: [rate],
    ...extra,
  });
  const res = {
    machine: { cpu: "TestCPU", cores: 2, deno: "2.9.6", v8: "15", os: "linux", loadavg_1m: 1.5 },
    date: "2026-12-02T01:02:03.000Z",
    settings: { duration_s: 0.3, runs: 7, warmup: 1, filter: null, wasm: null },
    rows: [
      row("kvmsim", "io-out/switch", 10e6),
      row("qemu", "io-out/unassigned-port", 4e6, { compared_to: "io-out/switch" }),
      row("v86", "io-out/port-handler", 5e6, {
        compared_to: "io-out/switch",
        pairing: pairingOf("io-out/switch", [9e6, 10e6, 12e6], [3e6, 5e6, 5e6]),
      }),
    ],
    skipped_peers: [{ engine: "bochs", reason: "bochs not installed" }],
  } as unknown as Results;
  const md = resultsMarkdown(res);
  assert.match(md, /2026-12-02 01:02 UTC on TestCPU, 2 cores/);
  assert.match(md, /\| io-out\/switch \| kvmsim \| 10\.0 M exits\/s \| 100\.0 \| 9\.0 M \| 11\.0 M \| 7 \|/);
  assert.match(
    md,
    /\| io-out\/unassigned-port \| qemu \| 4\.0 M exits\/s \| io-out\/switch \| 10\.0 M exits\/s \| 2\.50× \|/,
  );
  assert.match(md, /\| io-out\/unassigned-port \| qemu \| .* \| 2\.50× \| no \|/);
  // Paired: the median of the per-round ratios 3, 2, 2.4 (not 10 M / 5 M), with their range.
  assert.match(
    md,
    /\| io-out\/port-handler \| v86 \| 5\.0 M exits\/s \| io-out\/switch \| 10\.0 M exits\/s \| 2\.40× \| 3 rounds, 2\.00x–3\.00x \|/,
  );
  assert.match(md, /median of per-round ratios: each peer window is bracketed by a kvmsim sample just before and one/);
  assert.match(md, /Peer bochs skipped: bochs not installed/);
});
