/**
 * bench/peers/: every peer adapter produces rows of the latest.json shape on
 * a very short run, or is skipped with a reason. Not timed: rates are only
 * checked to be positive and consistent (min ≤ median ≤ max).
 */
import assert from "node:assert/strict";
import { PATHS, STRING_OUT_SOURCE } from "../bench/paths.ts";
import { KVM_MSR_INKERNEL_SKIP, KVM_RAW_SKIP, kvmPeer } from "../bench/peers/kvm.ts";
import { CPUID_CHUNK, type CpuidLoopRegs, cpuidWindowProblem } from "../bench/peers/kvm_cpuid_cpl3.ts";
import { parsePeerList, type Peer, PEER_NAMES, splitPeersOption } from "../bench/peers/peer.ts";
import { pairingOf, runPeerAlone } from "../bench/peers/pairing.ts";
import {
  biosImage,
  stringInBuffer,
  v86LoopsFor,
  v86Peer,
  v86PortWriteProblem,
  type V86Snapshot,
  v86WindowUnits,
} from "../bench/peers/v86.ts";
import { formatPeerTable, peerRow, rateFields, type ResultRow, resultRow, rowRate } from "../bench/report.ts";
import { summarize } from "../bench/stats.ts";
import { benchPath } from "./support/bench_paths.ts";

function checkRowShape(r: ResultRow, engine: string): void {
  assert.equal(r.engine, engine);
  assert.equal(typeof r.path, "string");
  assert.match(r.path, /^[a-z0-9-]+\/[A-Za-z0-9-]+$/);
  assert.equal(typeof r.compared_to, "string", `${r.path}: compared_to`);
  assert.ok(PATHS.some((p) => p.path === r.compared_to), `${r.path}: compared_to ${r.compared_to} is a kvmsim path`);
  const rate = rowRate(r);
  const ns = "exits_per_s" in r ? r.ns_per_exit : "writes_per_s" in r ? r.ns_per_write : r.ns_per_instr;
  assert.deepEqual(
    Object.keys(rateFields(r.unit, rate)).filter((k) => k in r).length,
    2,
    `${r.path}: rate fields of ${r.unit}`,
  );
  assert.ok(Number.isFinite(rate) && rate > 0, `${r.path}: rate ${rate}`);
  assert.ok(Math.abs(ns - 1e9 / rate) < 1e-6 * ns, `${r.path}: ns ${ns} vs rate ${rate}`);
  assert.ok(r.min <= rate && rate <= r.max, `${r.path}: ${r.min} <= ${rate} <= ${r.max}`);
  assert.equal(r.runs, 1);
  assert.equal(r.samples.length, 1);
}

async function shortRun(peer: Peer, ids: string[]) {
  return await runPeerAlone(peer, { durationMs: 20, runs: 1, warmup: 0, paths: ids.map(benchPath) });
}

Deno.test("kvm peer: rows of the result shape for the exit paths, raw left out — or skipped with a reason", async () => {
  const lines: string[] = [];
  const out = await runPeerAlone(kvmPeer, {
    durationMs: 20,
    runs: 1,
    warmup: 0,
    paths: [benchPath("raw/dec-jnz"), benchPath("io-out/switch"), benchPath("hlt/runUntil")],
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

Deno.test("kvm peer: string-in runs on /dev/kvm as one exit of count 16 per REP INSB, buffer checked — or skipped", async () => {
  const out = await shortRun(kvmPeer, ["string-in/switch"]);
  if (out.kind === "skipped") {
    assert.match(out.reason, /\/dev\/kvm unusable: \S/);
    return;
  }
  // switchStep refuses any exit other than IN from the port with count 16; timedRun checks the guest buffer.
  assert.deepEqual(out.rows.map((r) => [r.path, r.compared_to]), [["string-in/switch", "string-in/switch"]]);
  for (const r of out.rows) checkRowShape(r, "kvm");
});

Deno.test("kvm peer: string-out runs on /dev/kvm as one exit of count 1 per byte, every byte checked — or skipped", async () => {
  const out = await shortRun(kvmPeer, ["string-out/switch"]);
  if (out.kind === "skipped") {
    assert.match(out.reason, /\/dev\/kvm unusable: \S/);
    return;
  }
  // switchStep refuses any exit other than a one-byte OUT to the port carrying the next source byte; timedRun
  // checks the byte sum and RSI/RCX at the last exit (the element committed, as KVM's em_out does).
  assert.deepEqual(out.rows.map((r) => [r.path, r.unit, r.compared_to]), [[
    "string-out/switch",
    "exits",
    "string-out/switch",
  ]]);
  for (const r of out.rows) checkRowShape(r, "kvm");
});

Deno.test("kvm peer: the coalesced paths with a real KVM_REGISTER_COALESCED_MMIO zone, in writes/s — or skipped", async () => {
  const out = await shortRun(kvmPeer, ["io-out/coalesced", "mmio-write/coalesced"]);
  if (out.kind === "skipped") {
    assert.match(out.reason, /\/dev\/kvm unusable: \S/);
    return;
  }
  // The step checked every ring-full exit, >= 85 coalesced writes per exit and device calls = writes; timedRun the sum.
  assert.deepEqual(out.rows.map((r) => [r.path, r.unit, r.compared_to]), [
    ["io-out/coalesced", "writes", "io-out/coalesced"],
    ["mmio-write/coalesced", "writes", "mmio-write/coalesced"],
  ]);
  for (const r of out.rows) {
    checkRowShape(r, "kvm");
    assert.ok("writes_per_s" in r, r.path);
  }
});

Deno.test("kvm plan: rows for the exit paths and the CPL3 CPUID loop, a note naming each path it leaves out", () => {
  const plan = kvmPeer.plan([
    benchPath("raw/dec-jnz"),
    benchPath("io-out/switch"),
    benchPath("cpuid-inkernel/budget"),
    benchPath("msr-inkernel/budget"),
  ]);
  assert.deepEqual(plan.loops.map((l) => [l.spec.path, l.spec.unit, l.spec.compared_to]), [
    ["io-out/switch", "exits", "io-out/switch"],
    ["cpuid-inkernel/cpl3-loop", "exits", "cpuid-inkernel/budget"],
  ]);
  assert.match(plan.loops[1]!.spec.note!, /^loop at CPL3, as kvm_pvm emulates CPL0 code here;.*unit = one CPUID$/);
  assert.deepEqual(plan.notes, [
    `raw/dec-jnz not run on kvm: ${KVM_RAW_SKIP}`,
    `msr-inkernel/budget not run on kvm: ${KVM_MSR_INKERNEL_SKIP}`,
  ]);
  assert.match(KVM_MSR_INKERNEL_SKIP, /^RDMSR at CPL3 raises #GP\(0\), and CPL0 guest code is emulated by kvm_pvm/);
});

Deno.test("kvm peer: cpuid-inkernel at CPL3 on /dev/kvm, CPUIDs counted by the guest — or skipped", async () => {
  const lines: string[] = [];
  const out = await runPeerAlone(kvmPeer, {
    durationMs: 20,
    runs: 1,
    warmup: 0,
    paths: [benchPath("cpuid-inkernel/budget")],
    log: (l) => lines.push(l),
  });
  if (out.kind === "skipped") {
    assert.match(out.reason, /\/dev\/kvm unusable: \S/);
    return;
  }
  // Every window is checked (cpuidWindowProblem): RSI = exits × CPUID_CHUNK, a one-byte OUT per chunk.
  assert.deepEqual(out.rows.map((r) => [r.path, r.unit, r.compared_to]), [[
    "cpuid-inkernel/cpl3-loop",
    "exits",
    "cpuid-inkernel/budget",
  ]]);
  const r = out.rows[0]!;
  checkRowShape(r, "kvm");
  // A CPUID trap costs more than 10 ns and well under the 5 s watchdog of a 4096-CPUID chunk.
  assert.ok("exits_per_s" in r && r.exits_per_s > 1e3 && r.exits_per_s < 1e8, JSON.stringify(r));
  assert.ok(
    lines.some((l) => /cpuid-inkernel\/cpl3-loop: CPUID\.0 at CPL3 returned EAX 0x[1-9a-f]/.test(l)),
    lines.join("\n"),
  );
});

Deno.test("kvm CPL3 CPUID window check: RSI, EDI, RIP and the max leaf", () => {
  const after = 0x1020n, chunk = BigInt(CPUID_CHUNK);
  const ok: CpuidLoopRegs = { rax: 0x1cn, rsi: 100n + 3n * chunk, rdi: 0n, rip: after };
  assert.equal(cpuidWindowProblem(ok, 100n, 3, after, undefined), undefined);
  assert.equal(cpuidWindowProblem(ok, 100n, 3, after, 0x1cn), undefined);
  assert.equal(
    cpuidWindowProblem(ok, 100n, 2, after, undefined),
    `RSI advanced by ${3n * chunk} over 2 exits: expected ${2n * chunk}`,
  );
  assert.equal(cpuidWindowProblem(ok, 100n, 0, after, undefined), "0 exits in a window: expected at least 1");
  assert.match(cpuidWindowProblem({ ...ok, rdi: 5n }, 100n, 3, after, undefined)!, /^EDI 5 at the exit/);
  assert.match(cpuidWindowProblem({ ...ok, rip: 0x101en }, 100n, 3, after, undefined)!, /^RIP 0x101e at the exit/);
  assert.match(cpuidWindowProblem({ ...ok, rax: 0n }, 100n, 3, after, undefined)!, /^EAX 0 after CPUID/);
  assert.match(cpuidWindowProblem(ok, 100n, 3, after, 0xdn)!, /^EAX 0x1c after CPUID leaf 0: earlier windows saw 0xd$/);
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

Deno.test("v86 peer: mmio-write, io-in, mmio-read, string-in/out, cpuid and msr rows, window-checked — or skipped", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const ids = [
    "mmio-write/switch",
    "io-in/switch",
    "string-in/switch",
    "string-out/switch",
    "mmio-read/switch",
    "cpuid-inkernel/budget",
    "msr-inkernel/budget",
  ];
  const out = await shortRun(v86Peer, ids);
  if (out.kind === "skipped") {
    assert.match(out.reason, /v86/);
    return;
  }
  // string-out: every byte the port handler saw was the next source byte (else the window throws).
  assert.deepEqual(out.rows.map((r) => [r.path, r.compared_to]), [
    ["mmio-write/mmap-handler", "mmio-write/switch"],
    ["io-in/port-handler", "io-in/switch"],
    ["mmio-read/mmap-handler", "mmio-read/switch"],
    ["string-in/port-handler", "string-in/switch"],
    ["string-out/port-handler", "string-out/switch"],
    ["cpuid-inkernel/loop", "cpuid-inkernel/budget"],
    ["msr-inkernel/loop", "msr-inkernel/budget"],
  ]);
  for (const r of out.rows) checkRowShape(r, "v86");
});

Deno.test("v86 loops follow --filter: only those whose kvmsim counterpart is selected; the rest get notes", () => {
  assert.deepEqual(v86LoopsFor([benchPath("io-out/switch")]).map((l) => l.spec.path), ["io-out/port-handler"]);
  assert.deepEqual(v86LoopsFor([benchPath("hlt/switch")]), []);
  const plan = v86Peer.plan([
    benchPath("mmio-write/runUntil"),
    benchPath("hlt/switch"),
    benchPath("debug-int3/switch"),
  ]);
  assert.deepEqual(plan.loops, []);
  assert.match(plan.notes[0]!, /^hlt\/switch not run on v86: v86 has no HLT exit/);
  assert.match(plan.notes[1]!, /^debug-int3\/switch not run on v86: v86 has no debug exit: INT3 is delivered/);
  // A note by path id: the io-out family has rows, its coalesced variant none.
  const coalesced = v86Peer.plan([benchPath("io-out/switch"), benchPath("io-out/coalesced")]);
  assert.deepEqual(coalesced.loops.map((l) => l.spec.path), ["io-out/port-handler"]);
  assert.deepEqual(coalesced.notes, [
    "io-out/coalesced not run on v86: v86 has no coalesced-write ring: every port write calls its handler at once (io-out/port-handler)",
  ]);
});

Deno.test("v86 window check: units per count kind, against the retired-instruction counter", () => {
  const at = (o: Partial<V86Snapshot>): V86Snapshot => ({
    writes: 0,
    mmioWrites: 0,
    reads: 0,
    mmioReads: 0,
    insns: 0,
    esi: 0,
    ebx: 0,
    buf: [],
    ...o,
  });
  const z = at({});
  assert.deepEqual(v86WindowUnits({ kind: "port-writes", insnsPerUnit: 2 }, z, at({ writes: 100, insns: 201 })), {
    units: 100,
  });
  assert.match(
    (v86WindowUnits({ kind: "port-writes", insnsPerUnit: 2 }, z, at({ writes: 100, insns: 300 })) as {
      problem: string;
    }).problem,
    /300 instructions retired for 100 units: expected 200 ± 4/,
  );
  assert.deepEqual(v86WindowUnits({ kind: "mmio-writes", insnsPerUnit: 2 }, z, at({ mmioWrites: 50, insns: 100 })), {
    units: 50,
  });
  assert.match(
    (v86WindowUnits({ kind: "mmio-writes", insnsPerUnit: 2 }, z, at({ mmioWrites: 5, writes: 1, insns: 10 })) as {
      problem: string;
    }).problem,
    /1 port writes on a loop that does none/,
  );
  // 16 stream reads per REP INSB; the window may end inside one (1608 reads: offsets 0-7 hold reads 1600-1607,
  // 8-15 reads 1592-1599); the buffer must hold the stream's latest bytes.
  const ins = { kind: "port-in-bytes", bytesPerUnit: 16, insnsPerUnit: 4 } as const;
  const buf = stringInBuffer(1608, 16);
  assert.deepEqual(buf, [64, 65, 66, 67, 68, 69, 70, 71, 56, 57, 58, 59, 60, 61, 62, 63]);
  assert.deepEqual(stringInBuffer(3, 16), [0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(v86WindowUnits(ins, z, at({ reads: 1608, insns: 402, buf })), { units: 101 });
  assert.match(
    (v86WindowUnits(ins, z, at({ reads: 1608, insns: 402, buf: buf.map(() => 0x5a) })) as { problem: string }).problem,
    /guest buffer holds \[90, 90, .*\] after 1608 stream reads: expected \[64, 65, /,
  );
  assert.match(
    (v86WindowUnits(ins, z, at({ reads: 1608, writes: 1, insns: 402, buf })) as { problem: string }).problem,
    /1 port writes on a loop that does none/,
  );
  // string-out: a unit is one byte written (16 per REP OUTSB of 4 instructions); a window may start and end inside
  // a REP: ± 2 REPs of instructions.
  const outs = { kind: "port-out-bytes", bytesPerRep: 16, insnsPerRep: 4 } as const;
  assert.deepEqual(v86WindowUnits(outs, z, at({ writes: 1608, insns: 402 })), { units: 1608 });
  assert.deepEqual(v86WindowUnits(outs, z, at({ writes: 1608, insns: 410 })), { units: 1608 });
  assert.match(
    (v86WindowUnits(outs, z, at({ writes: 1608, insns: 1608 })) as { problem: string }).problem,
    /1608 instructions retired for 1608 bytes \(100\.5 REP OUTSBs\): expected 402\.0 ± 8/,
  );
  assert.match((v86WindowUnits(outs, z, at({ insns: 40 })) as { problem: string }).problem, /no byte written/);
  assert.match(
    (v86WindowUnits(outs, z, at({ writes: 16, mmioWrites: 1, insns: 4 })) as { problem: string }).problem,
    /1 MMIO writes on a loop that does none/,
  );
  assert.match(
    (v86WindowUnits(outs, z, at({ writes: 16, reads: 1, insns: 4 })) as { problem: string }).problem,
    /1 reads on a loop that does none/,
  );
  // Each byte written is checked in the port handler: write k must be source byte k mod 16.
  for (let k = 0; k < 40; k++) assert.equal(v86PortWriteProblem(outs, k, STRING_OUT_SOURCE[k % 16]!), undefined);
  assert.equal(
    v86PortWriteProblem(outs, 17, STRING_OUT_SOURCE[0]!),
    "port write 17 of 0x3: expected source byte 1 (0xa)",
  );
  assert.equal(v86PortWriteProblem({ kind: "port-writes", insnsPerUnit: 2 }, 5, 0x5a), undefined);
  assert.equal(v86PortWriteProblem({ kind: "port-writes", insnsPerUnit: 2 }, 5, 0x03), "port write of 0x3");
  // esi counts iterations (mod 2^32); the instruction counter wraps at 2^32 too.
  assert.deepEqual(
    v86WindowUnits(
      { kind: "esi", insnsPerUnit: 4 },
      at({ esi: 0xffff_fff0, insns: 0xffff_ffc0 }),
      at({
        esi: 0x10,
        insns: 0x40,
      }),
    ),
    { units: 0x20 },
  );
  assert.match(
    (v86WindowUnits({ kind: "esi", insnsPerUnit: 3 }, z, at({ esi: 0, insns: 1000 })) as { problem: string }).problem,
    /no unit done \(1000 instructions retired\)/,
  );
  assert.deepEqual(v86WindowUnits({ kind: "instructions" }, z, at({ insns: 12345 })), { units: 12345 });
  // Reads: the guest's ebx grows by the answered byte per read, ± one answer (window edges).
  const port = { kind: "reads", from: "port", insnsPerUnit: 3 } as const;
  assert.deepEqual(v86WindowUnits(port, z, at({ reads: 10, insns: 30, ebx: 9 * 0x5a })), { units: 10 });
  assert.match(
    (v86WindowUnits(port, z, at({ reads: 10, insns: 30, ebx: 5 * 0x5a })) as { problem: string }).problem,
    /guest's ebx grew by 450 over 10 answers of 0x5a: expected 900 ± one answer/,
  );
  assert.match(
    (v86WindowUnits(port, z, at({ reads: 10, mmioReads: 1, insns: 30, ebx: 900 })) as { problem: string }).problem,
    /1 MMIO reads on a loop that does none/,
  );
  assert.match(
    (v86WindowUnits({ kind: "port-writes", insnsPerUnit: 2 }, z, at({ writes: 5, reads: 1, insns: 10 })) as {
      problem: string;
    }).problem,
    /1 reads on a loop that does none/,
  );
  assert.match(
    (v86WindowUnits({ kind: "instructions" }, z, at({ insns: 10, mmioWrites: 2 })) as { problem: string }).problem,
    /2 MMIO writes on a loop that does none/,
  );
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
  const ours = resultRow(benchPath("io-out/switch"), summarize([4e6]));
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
  assert.match(
    lines[2]!,
    /^io-out\/switch\s+kvm\s+40\.0 k exits\s+io-out\/switch\s+4\.0 M exits\s+100\.0x\s+no\s+pvm$/,
  );
  assert.match(lines[3]!, /^-\s+v86\s+skipped .* npm package v86 not installed$/);
  assert.ok("exits_per_s" in theirs && theirs.ns_per_exit === 25_000);
});

Deno.test("peer table: a paired row shows the median of its per-round ratios and their range, not the ratio of medians", () => {
  // Rounds: kvmsim 10, 20, 30 M; peer 5, 40, 15 M → per round 2, 0.5, 2 (median 2.00); the medians' 20 / 15 is 1.33.
  const kvmsim = [10e6, 20e6, 30e6], peer = [5e6, 40e6, 15e6];
  const ours = resultRow(benchPath("io-out/switch"), summarize(kvmsim));
  const theirs = {
    ...peerRow({
      path: "io-out/port-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description: "d",
      compared_to: "io-out/switch",
    }, summarize(peer)),
    pairing: pairingOf("io-out/switch", kvmsim, peer),
  };
  assert.deepEqual(theirs.pairing.ratios, [2, 0.5, 2]);
  const line = formatPeerTable([ours, theirs]).split("\n")[2]!;
  assert.match(
    line,
    /^io-out\/port-handler\s+v86\s+15\.0 M exits\s+io-out\/switch\s+20\.0 M exits\s+2\.00x\s+3 rounds, 0\.50x–2\.00x$/,
  );
});
