/**
 * Test helpers over bench/paths.ts and the process peers: look a path up by
 * id, and the row check the QEMU and Bochs peer tests share.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type BenchPath, PATHS } from "../../bench/paths.ts";
import type { Peer } from "../../bench/peers/peer.ts";
import { runPeerAlone } from "../../bench/peers/pairing.ts";

/** The bench path with id `id`; throws naming it when there is none. */
export function benchPath(id: string): BenchPath {
  const p = PATHS.find((x) => x.path === id);
  if (p === undefined) throw new Error(`no path ${id}`);
  return p;
}

/**
 * A short real run of a process peer (QEMU, Bochs) on the io-in, string-in,
 * string-out, mmio-read, in-kernel CPUID and RDMSR paths: one row each, in
 * the peer's order, compared with its kvmsim path, at a plausible rate.
 */
export async function assertProcessPeerExtraRows(peer: Peer): Promise<void> {
  const out = await runPeerAlone(peer, {
    durationMs: 30,
    runs: 1,
    warmup: 0,
    paths: [
      benchPath("io-in/switch"),
      benchPath("string-in/switch"),
      benchPath("string-out/switch"),
      benchPath("mmio-read/switch"),
      benchPath("cpuid-inkernel/budget"),
      benchPath("msr-inkernel/budget"),
    ],
  });
  assert.equal(out.kind, "rows");
  if (out.kind !== "rows") return;
  assert.deepEqual(out.rows.map((r) => [r.path, r.unit, r.compared_to]), [
    ["string-in/unassigned-port", "exits", "string-in/switch"],
    ["string-out/unassigned-port", "exits", "string-out/switch"],
    ["cpuid-inkernel/loop", "exits", "cpuid-inkernel/budget"],
    ["msr-inkernel/loop", "exits", "msr-inkernel/budget"],
    ["io-in/unassigned-port", "exits", "io-in/switch"],
    ["mmio-read/unassigned", "exits", "mmio-read/switch"],
  ]);
  for (const r of out.rows) assert.ok("exits_per_s" in r && r.exits_per_s > 1e4, `${r.path}: ${JSON.stringify(r)}`);
}
