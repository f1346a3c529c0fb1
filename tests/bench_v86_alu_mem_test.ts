// raw/alu-mem on the v86 peer (bench/peers/v86_alu_mem.ts): the real-mode variant's result check, offline on a
// CPU view built from the closed forms, and on v86 itself when the npm package is installed.
import assert from "node:assert/strict";
import { ALU_MEM_ARRAY, aluMemExpected, PATHS } from "../bench/paths.ts";
import { runPeerAlone } from "../bench/peers/pairing.ts";
import { v86LoopsFor, v86Peer } from "../bench/peers/v86.ts";
import {
  V86_ALU_MEM_PROLOGUE,
  V86_ALU_MEM_SP,
  v86AluMemCheck,
  v86AluMemState,
  type V86CpuView,
} from "../bench/peers/v86_alu_mem.ts";

/** A v86 CPU view holding what the loop computes after `retired` instructions. */
function viewAt(retired: number): V86CpuView {
  const s = aluMemExpected(retired, V86_ALU_MEM_PROLOGUE);
  const mem8 = new Uint8Array(0x10000);
  const dv = new DataView(mem8.buffer);
  s.a.forEach((v, k) => dv.setUint32(ALU_MEM_ARRAY + 4 * k, v, true));
  dv.setUint32(ALU_MEM_ARRAY + 32, s.r9d, true);
  dv.setUint32(V86_ALU_MEM_SP - 4, s.stack, true);
  const reg32 = new Int32Array(8);
  reg32[4] = V86_ALU_MEM_SP + (s.rspDelta === 0 ? 0 : -4);
  reg32[5] = s.r8d | 0;
  reg32[6] = s.esi | 0;
  reg32[7] = s.edi | 0;
  return { reg32, mem8 };
}

Deno.test("v86 raw/alu-mem check: passes on the loop's state at every position, names what differs", () => {
  for (let n = 0; n < V86_ALU_MEM_PROLOGUE + 3 * 16; n++) assert.equal(v86AluMemCheck(viewAt(n), n), undefined, `${n}`);
  assert.equal(v86AluMemCheck(viewAt(123_456_789), 123_456_789), undefined);
  const cpu = viewAt(10_000);
  assert.deepEqual(v86AluMemState(cpu).a, aluMemExpected(10_000, V86_ALU_MEM_PROLOGUE).a);
  cpu.reg32[5]! ^= 1;
  cpu.mem8[ALU_MEM_ARRAY + 8]! ^= 1;
  assert.match(
    v86AluMemCheck(cpu, 10_000)!,
    /^after 10000 instructions: ebp \d+ \(expected \d+\), a\[2\] \d+ \(expected \d+\)$/,
  );
  // One instruction off changes the state at an effect: the count must be exact.
  assert.notEqual(v86AluMemCheck(viewAt(8 + 16 * 5 + 3), 8 + 16 * 5 + 2), undefined);
});

Deno.test("v86 peer: a raw/alu-mem row, result checked after the window — or skipped with a reason", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const p = PATHS.find((x) => x.path === "raw/alu-mem")!;
  assert.deepEqual(v86LoopsFor([p]).map((l) => l.spec.path), ["raw/alu-mem"]);
  const out = await runPeerAlone(v86Peer, { durationMs: 20, runs: 1, warmup: 0, paths: [p] });
  if (out.kind === "skipped") {
    assert.match(out.reason, /v86/);
    return;
  }
  assert.equal(out.rows.length, 1);
  const r = out.rows[0]!;
  assert.equal(r.path, "raw/alu-mem");
  assert.equal(r.engine, "v86");
  assert.equal(r.compared_to, "raw/alu-mem");
  assert.ok("instr_per_s" in r && r.instr_per_s > 0);
});
