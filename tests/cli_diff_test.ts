/**
 * `kvmsim diff`: identical and divergent guests on sim vs /dev/kvm (exit
 * codes 0 / 1, the divergence named by exit index and field), bad input
 * (exit 2), `exec --backend kvm` with the exec JSON contract, and the pure
 * comparison on fabricated results (runs without KVM).
 */
import assert from "node:assert/strict";
import { kvmsim, REG_NAMES } from "./cli_support.ts";
import { NO_KVM } from "./support/kvm_guard.ts";
import { firstDivergence } from "../src/cli/diff.ts";
import type { ExecResult } from "../src/cli/exec_guest.ts";

const kvmTest = (name: string, fn: () => Promise<void>) => Deno.test({ name, ignore: NO_KVM !== undefined, fn });
const T = ["--timeout", "5000"];

kvmTest("diff: identical guest (OUT, IN with --in, HLT) exits 0", async () => {
  const r = await kvmsim(["diff", "--code", "b041e6e9e460f4", "--in", "0x60=0x5a", ...T]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), "identical (3 exits, stop hlt, registers equal)");
});

kvmTest(
  "diff: int3 in long mode — sim shutdown vs KVM internal error — exits 1 naming exit 1, field reason",
  async () => {
    const [text, json] = await Promise.all([
      kvmsim(["diff", "--code", "cc", ...T]),
      kvmsim(["diff", "--code", "cc", "--json", ...T]),
    ]);
    assert.equal(text.code, 1, text.stderr);
    assert.equal(
      text.stdout.trim(),
      'first divergence: exit 1 (sim 1, kvm 1 exits), field reason\n  sim: "shutdown"\n  kvm: "internal_error"',
    );
    assert.equal(json.code, 1);
    const j = JSON.parse(json.stdout);
    assert.deepEqual(j.divergence, { exit: 1, field: "reason", sim: "shutdown", kvm: "internal_error" });
    assert.equal(j.identical, false);
    assert.equal(j.kvm.instructions, null);
    assert.equal(j.sim.instructions, 0);
  },
);

kvmTest("diff: popcnt — both internal errors, the emulation-failure payload differs", async () => {
  const r = await kvmsim(["diff", "--code", "f30fb8c0f4", "--json", ...T]);
  assert.equal(r.code, 1, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.sim.exits[0].reason, "internal_error");
  assert.equal(j.kvm.exits[0].reason, "internal_error");
  assert.equal(j.divergence.exit, 1);
  assert.equal(j.divergence.field, "data");
  assert.match(j.kvm.exits[0].insn_bytes, /^f30fb8c0/);
});

kvmTest("exec --backend kvm: the exec JSON contract, timeout stop, refused --max-insns", async () => {
  const [ok, spin, insns] = await Promise.all([
    kvmsim(["exec", "--backend", "kvm", "--mode", "real", "--code", "b041e6e9f4", "--json", ...T]),
    kvmsim(["exec", "--backend", "kvm", "--code", "ebfe", "--timeout", "300", "--json"]),
    kvmsim(["exec", "--backend", "kvm", "--code", "f4", "--max-insns", "5"]),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const j = JSON.parse(ok.stdout);
  assert.deepEqual(j.exits, [
    { reason: "io", direction: "out", port: "0xe9", size: 1, count: 1, data: "0x41" },
    { reason: "hlt" },
  ]);
  assert.equal(j.stop, "hlt");
  assert.equal(j.regs.rip, "0x1005");
  assert.equal(j.instructions, null);
  assert.equal(spin.code, 0, spin.stderr);
  assert.equal(JSON.parse(spin.stdout).stop, "timeout");
  assert.equal(insns.code, 2);
  assert.match(insns.stderr, /--max-insns 5: the kvm backend cannot count instructions/);
});

Deno.test("diff and exec: bad input exits 2", async () => {
  const [badCode, backend, badBackend] = await Promise.all([
    kvmsim(["diff", "--code", "zz"]),
    kvmsim(["diff", "--code", "f4", "--backend", "kvm"]),
    kvmsim(["exec", "--code", "f4", "--backend", "qemu"]),
  ]);
  assert.equal(badCode.code, 2);
  assert.match(badCode.stderr, /--code: "z" at position 0 is not a hex digit/);
  assert.equal(backend.code, 2);
  assert.match(backend.stderr, /diff runs both backends/);
  assert.equal(badBackend.code, 2);
  assert.match(badBackend.stderr, /--backend qemu: expected sim or kvm/);
});

const result = (over: Partial<ExecResult>): ExecResult => ({
  exits: [{ reason: "hlt" }],
  stop: "hlt",
  regs: Object.fromEntries(
    REG_NAMES
      .map((r) => [r, "0x0"]),
  ) as ExecResult["regs"],
  instructions: 1,
  ...over,
});

Deno.test("firstDivergence: exits by index and field, then stop, then registers; instructions ignored", () => {
  const a = result({});
  assert.equal(firstDivergence(a, result({ instructions: null })), undefined);
  assert.deepEqual(firstDivergence(a, result({ exits: [{ reason: "hlt" }, { reason: "hlt" }] })), {
    exit: 2,
    field: "reason",
    sim: "(no exit)",
    kvm: "hlt",
  });
  assert.deepEqual(
    firstDivergence(
      result({ exits: [{ reason: "io", port: "0x80" } as unknown as ExecResult["exits"][number]] }),
      result({ exits: [{ reason: "io", port: "0x81" } as unknown as ExecResult["exits"][number]] }),
    ),
    { exit: 1, field: "port", sim: "0x80", kvm: "0x81" },
  );
  assert.deepEqual(firstDivergence(a, result({ stop: "timeout" })), { field: "stop", sim: "hlt", kvm: "timeout" });
  assert.deepEqual(firstDivergence(a, result({ regs: { ...a.regs, rip: "0x1" } })), {
    field: "regs.rip",
    sim: "0x0",
    kvm: "0x1",
  });
});
