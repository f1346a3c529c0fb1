/**
 * bench/peers/qemu.ts: the command line and the exit-code check (pure), then
 * a short real run of qemu-system-x86_64 — skipped with a note when the
 * binary is missing (install: sh scripts/install-peers.sh).
 */
import assert from "node:assert/strict";
import { findOnPath } from "../bench/peers/chunked.ts";
import { PeerCheckError } from "../bench/peers/peer.ts";
import { runPeerAlone } from "../bench/peers/pairing.ts";
import { rowRate } from "../bench/report.ts";
import { loopsFor, measureProcessLoop } from "../bench/peers/process_peer.ts";
import {
  QEMU_BINARY,
  QEMU_EXIT_CODE,
  QEMU_LOOPS,
  qemuArgs,
  qemuEndProblem,
  qemuEngine,
  qemuPeer,
} from "../bench/peers/qemu.ts";
import { assertProcessPeerExtraRows, benchPath } from "./support/bench_paths.ts";

const HAVE_QEMU = findOnPath(QEMU_BINARY) !== undefined;

Deno.test("qemu command line: TCG, the ROM as -bios, debugcon markers on stdout, isa-debug-exit at 0xf4", () => {
  const a = qemuArgs("/tmp/x/rom.bin");
  const after = (flag: string) => a[a.indexOf(flag) + 1];
  assert.equal(after("-accel"), "tcg");
  assert.equal(after("-bios"), "/tmp/x/rom.bin");
  assert.equal(after("-display"), "none");
  assert.ok(a.includes("-nodefaults"));
  assert.equal(after("-chardev"), "stdio,id=marker,signal=off");
  const devices = a.flatMap((x, i) => (x === "-device" ? [a[i + 1]] : []));
  assert.deepEqual(devices, ["isa-debugcon,iobase=0xe9,chardev=marker", "isa-debug-exit,iobase=0xf4,iosize=1"]);
});

Deno.test("qemu end check: only exit code (0x31 << 1) | 1 = 99 passes; others are named with stderr", () => {
  assert.equal(QEMU_EXIT_CODE, 99);
  assert.equal(qemuEndProblem({ code: 99, signal: null, stderr: "" }), undefined);
  assert.equal(
    qemuEndProblem({ code: 1, signal: null, stderr: "qemu: could not load PC BIOS 'x'\n" }),
    "exit code 1: expected 99 from isa-debug-exit value 0x31; stderr: qemu: could not load PC BIOS 'x'",
  );
  assert.match(qemuEndProblem({ code: 137, signal: "SIGKILL", stderr: "" })!, /^exit code 137 \(signal SIGKILL\)/);
});

Deno.test("qemu loops follow --filter through compared_to", () => {
  assert.deepEqual(loopsFor(QEMU_LOOPS, [benchPath("io-out/switch")]).map((l) => l.spec.path), [
    "io-out/unassigned-port",
  ]);
  assert.deepEqual(loopsFor(QEMU_LOOPS, [benchPath("raw/dec-jnz")]).map((l) => l.spec.path), ["raw/dec-jnz"]);
  assert.deepEqual(loopsFor(QEMU_LOOPS, [benchPath("mmio-write/switch")]).map((l) => l.spec.path), [
    "mmio-write/unassigned",
  ]);
  assert.deepEqual(loopsFor(QEMU_LOOPS, [benchPath("io-out/runUntil"), benchPath("hlt/switch")]), []);
  assert.deepEqual(
    loopsFor(QEMU_LOOPS, [
      benchPath("string-in/switch"),
      benchPath("string-out/switch"),
      benchPath("cpuid-inkernel/budget"),
      benchPath("msr-inkernel/budget"),
    ]).map((
      l,
    ) => [l.spec.path, l.body.kind]),
    [
      ["string-in/unassigned-port", "string-in"],
      ["string-out/unassigned-port", "string-out"],
      ["cpuid-inkernel/loop", "cpuid"],
      ["msr-inkernel/loop", "rdmsr"],
    ],
  );
  const plan = qemuPeer.plan([benchPath("hlt/switch"), benchPath("debug-int3/switch"), benchPath("io-out/switch")]);
  assert.deepEqual(plan.loops.map((l) => l.spec.path), ["io-out/unassigned-port"]);
  assert.equal(plan.notes.length, 2);
  assert.match(plan.notes[0]!, /^hlt\/switch not run on qemu: TCG has no HLT exit/);
  assert.match(plan.notes[1]!, /^debug-int3\/switch not run on qemu: a guest INT3 goes to the guest's IDT/);
  const coalesced = qemuPeer.plan([benchPath("mmio-write/coalesced")]);
  assert.deepEqual(coalesced.loops, []);
  assert.match(
    coalesced.notes[0]!,
    /^mmio-write\/coalesced not run on qemu: TCG dispatches every MMIO write .* -accel kvm$/,
  );
});

Deno.test("qemu peer: a short real run gives checked rows — or is skipped naming the install command", async () => {
  const lines: string[] = [];
  const out = await runPeerAlone(qemuPeer, {
    durationMs: 30,
    runs: 1,
    warmup: 0,
    paths: [benchPath("raw/dec-jnz"), benchPath("io-out/switch"), benchPath("hlt/switch")],
    log: (l) => lines.push(l),
  });
  if (!HAVE_QEMU) {
    assert.equal(out.kind, "skipped");
    if (out.kind === "skipped") assert.match(out.reason, /qemu-system-x86_64 not found on PATH; install: sh scripts/);
    console.log(`SKIPPED real qemu run: ${QEMU_BINARY} is not installed (sh scripts/install-peers.sh)`);
    return;
  }
  assert.equal(out.kind, "rows");
  if (out.kind !== "rows") return;
  assert.deepEqual(out.rows.map((r) => [r.path, r.engine, r.unit, r.compared_to]), [
    ["raw/dec-jnz", "qemu", "instructions", "raw/dec-jnz"],
    ["io-out/unassigned-port", "qemu", "exits", "io-out/switch"],
  ]);
  for (const r of out.rows) {
    const rate = rowRate(r);
    assert.ok(Number.isFinite(rate) && rate > 1e5, `${r.path}: rate ${rate}`);
    assert.ok(r.min <= rate && rate <= r.max && r.runs === 1);
  }
  assert.ok(lines.some((l) => /hlt\/switch not run on qemu: TCG has no HLT exit/.test(l)), lines.join("\n"));
});

Deno.test("qemu peer: io-in, mmio-read, string-in, string-out, cpuid and msr rows from short real runs — or skipped", {
  ignore: !HAVE_QEMU,
}, async () => {
  await assertProcessPeerExtraRows(qemuPeer);
});

Deno.test("qemu peer: a guest that exits with another isa-debug-exit value fails the check", {
  ignore: !HAVE_QEMU,
}, async () => {
  const wrongExit = { ...qemuEngine, exitAsm: "  mov al, 0x30\n  out 0xf4, al" };
  await assert.rejects(
    measureProcessLoop(wrongExit, QEMU_LOOPS[1]!, { durationMs: 20, runs: 1, warmup: 0 }),
    (e: unknown) => e instanceof PeerCheckError && /exit code 97: expected 99/.test(e.message),
  );
});
