/**
 * bench/peers/: every peer adapter produces rows of the latest.json shape on
 * a very short run, or is skipped with a reason. Not timed: rates are only
 * checked to be positive and consistent (min ≤ median ≤ max).
 */
import assert from "node:assert/strict";
import { PATHS } from "../bench/paths.ts";
import { KVM_RAW_SKIP, kvmPeer } from "../bench/peers/kvm.ts";
import { parsePeerList, type Peer, PEER_NAMES, splitPeersOption } from "../bench/peers/peer.ts";
import { biosImage, v86LoopsFor, v86Peer } from "../bench/peers/v86.ts";
import { formatPeerTable, peerRow, type ResultRow, resultRow } from "../bench/report.ts";
import { summarize } from "../bench/stats.ts";

const path = (id: string) => {
  const p = PATHS.find((x) => x.path === id);
  if (p === undefined) throw new Error(`no path ${id}`);
  return p;
};

function checkRowShape(r: ResultRow, engine: string): void {
  assert.equal(r.engine, engine);
  assert.equal(typeof r.path, "string");
  assert.match(r.path, /^[a-z0-9-]+\/[A-Za-z0-9-]+$/);
  assert.equal(typeof r.compared_to, "string", `${r.path}: compared_to`);
  assert.ok(PATHS.some((p) => p.path === r.compared_to), `${r.path}: compared_to ${r.compared_to} is a kvmsim path`);
  const rate = "exits_per_s" in r ? r.exits_per_s : r.instr_per_s;
  const ns = "exits_per_s" in r ? r.ns_per_exit : r.ns_per_instr;
  assert.equal(r.unit === "exits", "exits_per_s" in r, `${r.path}: rate field matches unit ${r.unit}`);
  assert.ok(Number.isFinite(rate) && rate > 0, `${r.path}: rate ${rate}`);
  assert.ok(Math.abs(ns - 1e9 / rate) < 1e-6 * ns, `${r.path}: ns ${ns} vs rate ${rate}`);
  assert.ok(r.min <= rate && rate <= r.max, `${r.path}: ${r.min} <= ${rate} <= ${r.max}`);
  assert.equal(r.runs, 1);
  assert.equal(r.samples.length, 1);
}

async function shortRun(peer: Peer, ids: string[]) {
  return await peer.run({ durationMs: 20, runs: 1, warmup: 0, paths: ids.map(path) });
}

Deno.test("kvm peer: rows of the result shape for the exit paths, raw left out — or skipped with a reason", async () => {
  const lines: string[] = [];
  const out = await kvmPeer.run({
    durationMs: 20,
    runs: 1,
    warmup: 0,
    paths: [path("raw/dec-jnz"), path("io-out/switch"), path("hlt/runUntil")],
    log: (l) => lines.push(l),
  });
  if (out.kind === "skipped") {
    assert.match(out.reason, /\/dev\/kvm unusable: \S/);
    return;
  }
  assert.deepEqual(out.rows.map((r) => r.path), ["io-out/switch", "hlt/runUntil"]);
  for (const r of out.rows) checkRowShape(r, "kvm");
  assert.ok(lines.some((l) => l.includes(KVM_RAW_SKIP)), "the raw skip is logged");
});

Deno.test("v86 peer: io-out and raw rows of the result shape — or skipped with a reason", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const out = await shortRun(v86Peer, ["raw/dec-jnz", "io-out/switch"]);
  if (out.kind === "skipped") {
    assert.match(out.reason, /v86/);
    return;
  }
  assert.deepEqual(out.rows.map((r) => [r.path, r.unit]), [["raw/dec-jnz", "instructions"], [
    "io-out/port-handler",
    "exits",
  ]]);
  for (const r of out.rows) checkRowShape(r, "v86");
});

Deno.test("v86 loops follow --filter: only those whose kvmsim counterpart is selected", () => {
  assert.deepEqual(v86LoopsFor([path("io-out/switch")]).map((l) => l.spec.path), ["io-out/port-handler"]);
  assert.deepEqual(v86LoopsFor([path("hlt/switch")]), []);
});

Deno.test("v86 BIOS image: 64 KiB, loop code at 0, far jump F000:0000 at the reset vector", () => {
  const img = biosImage("top:\n  jmp top\n");
  assert.equal(img.length, 0x10000);
  assert.deepEqual([...img.subarray(0, 2)], [0xeb, 0xfe]);
  assert.deepEqual([...img.subarray(0xfff0, 0xfff5)], [0xea, 0x00, 0x00, 0x00, 0xf0]);
});

Deno.test("--peers: all by default, none, a comma list; bad names are named", () => {
  assert.deepEqual(splitPeersOption(["--runs", "3"]), { rest: ["--runs", "3"], peers: [...PEER_NAMES] });
  assert.deepEqual(splitPeersOption(["--peers", "none", "--json"]), { rest: ["--json"], peers: [] });
  assert.deepEqual(splitPeersOption(["--peers=v86,kvm,v86"]).peers, ["v86", "kvm"]);
  assert.deepEqual(parsePeerList("all"), ["kvm", "v86", "qemu", "bochs"]);
  assert.throws(() => parsePeerList("kvm,tcg"), /peer "tcg": expected one of kvm, v86, qemu, bochs/);
  assert.throws(() => splitPeersOption(["--peers"]), /--peers: expected a value/);
});

Deno.test("peer table: kvmsim/peer ratio from the same run's rows; skipped peers keep their reason", () => {
  const ours = resultRow(path("io-out/switch"), summarize([4e6]));
  const theirs = peerRow({
    path: "io-out/switch",
    engine: "kvm",
    unit: "exits",
    loop: "switch",
    description: "d",
    compared_to: "io-out/switch",
    note: "pvm",
  }, summarize([40e3]));
  const lines = formatPeerTable([ours, theirs], [{ engine: "v86", reason: "npm package v86 not installed" }]).split(
    "\n",
  );
  assert.equal(lines.length, 4);
  assert.match(lines[2]!, /^io-out\/switch\s+kvm\s+40\.0 k exits\s+io-out\/switch\s+4\.0 M exits\s+100\.0x\s+pvm$/);
  assert.match(lines[3]!, /^-\s+v86\s+skipped .* npm package v86 not installed$/);
  assert.ok("exits_per_s" in theirs && theirs.ns_per_exit === 25_000);
});
