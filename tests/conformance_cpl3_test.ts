/**
 * The CPL 3 variant of the snippet table (tests/conformance/cpl3.ts): every
 * eligible long-mode snippet runs at CPL 3 on the simulator and, where
 * /dev/kvm works, on the host's KVM (PVM: ring-3 code runs natively, so this
 * is the real-CPU reference), each compared with the snippet's expectations
 * (registers, defined flags, memory). Plus checks that the wrapper really
 * runs the body at CPL 3 and that the eligibility scan rejects privileged code.
 */
import assert from "node:assert/strict";
import { FAMILIES } from "./snippets/families.ts";
import type { Mismatch } from "./snippets/run.ts";
import type { Snippet } from "./snippets/types.ts";
import { checkCpl3, cpl3Eligibility, runCpl3, USER_CS } from "./conformance/cpl3.ts";
import { kvmDivergence } from "./conformance/kvm_divergences.ts";
import { NO_KVM } from "./support/kvm_guard.ts";

const show = (ms: Mismatch[]) => ms.map((m) => `  ${m.field}: expected ${m.expected}, actual ${m.actual}`).join("\n");
const ALL = [...FAMILIES.values()].flat();
const ELIGIBLE = ALL.filter((s) => cpl3Eligibility(s) === undefined);
const probe = (asm: string): Snippet => ({ name: `probe ${asm}`, mode: "long", asm, cpl3: true, expect: {} });

Deno.test("cpl3 eligibility: the integer families qualify, privileged code does not", () => {
  assert.ok(ELIGIBLE.length >= 800, `only ${ELIGIBLE.length} eligible snippets`);
  for (
    const f of [
      "mov",
      "alu",
      "incdec_negnot",
      "muldiv",
      "shifts_rotates",
      "bit_ops",
      "setcc_cmovcc",
      "stack",
      "control_flow",
      "string_ops",
    ]
  ) {
    assert.ok(FAMILIES.get(f)!.some((s) => cpl3Eligibility(s) === undefined), `no eligible ${f} snippet`);
  }
  for (const f of ["io", "system", "paging", "exceptions", "real_mode", "protected_mode"]) {
    assert.deepEqual(FAMILIES.get(f)!.filter((s) => cpl3Eligibility(s) === undefined).map((s) => s.name), [], f);
  }
  for (
    const asm of [
      "cli\nhlt",
      "out 0x80, al\nhlt",
      "rep outsb\nhlt",
      "mov rax, cr0\nhlt",
      "mov ds, ax\nhlt",
      "popfq\nhlt",
      "x: wrmsr\nhlt",
      "int 3\nhlt",
    ]
  ) {
    assert.notEqual(cpl3Eligibility(probe(asm)), undefined, `accepted ${JSON.stringify(asm)}`);
  }
  assert.equal(cpl3Eligibility(probe("add rax, 1 ; in a comment: cli\nhlt")), undefined);
  assert.match(cpl3Eligibility({ ...probe("hlt"), regs: { rflags: 0x102n } }) ?? "", /TF/);
  assert.match(cpl3Eligibility({ ...probe("hlt"), cpl3: false }) ?? "", /not marked/);
});

function probes(backend: "sim" | "kvm"): void {
  // The body runs at CPL 3: CS.RPL = 3 and a CLI faults at the CLI (not at the final HLT).
  const cs = runCpl3(backend, probe("mov ax, cs\nmov bx, ss\nhlt"));
  assert.equal(cs.stop, "");
  assert.equal(cs.regs.rax & 3n, 3n, `CS 0x${cs.regs.rax.toString(16)}: not CPL 3`);
  assert.equal(cs.regs.rax, BigInt(USER_CS));
  assert.equal(cs.regs.rbx & 3n, 3n, `SS 0x${cs.regs.rbx.toString(16)}`);
  assert.equal(cs.regs.rip, 0x1000n + 7n, "RIP one past the final hlt");
  assert.equal(cs.regs.rsp, 0x300000n, "ring-3 RSP from the #GP frame");
  assert.match(runCpl3(backend, probe("cli\nhlt")).stop, /#GP at rip 0x1000, not a hlt/);
  // A wrong expectation is reported (the comparison can fail).
  const wrong: Snippet = { ...probe("mov eax, 5\nhlt"), expect: { regs: { rax: 6n } } };
  assert.deepEqual(checkCpl3(backend, wrong).map((m) => m.field), ["rax"]);
}

Deno.test("cpl3 wrapper on the simulator: the body runs at CPL 3", () => probes("sim"));

const tally = { sim: 0, kvm: 0 };
function familyRuns(backend: "sim" | "kvm") {
  for (const [family, list] of FAMILIES) {
    const el = list.filter((s) => cpl3Eligibility(s) === undefined);
    if (el.length === 0) continue;
    Deno.test({
      name: `cpl3 ${backend}: ${family} (${el.length} of ${list.length})`,
      ignore: backend === "kvm" && NO_KVM !== undefined,
      fn: () => {
        const bad: string[] = [];
        for (const s of el) {
          const ms = checkCpl3(backend, s);
          if (ms.length) bad.push(`${s.name}:\n${show(ms)}`);
          else tally[backend]++;
        }
        assert.deepEqual(bad, [], `${bad.length} of ${el.length} ${family} snippets failed at CPL 3 on ${backend}`);
      },
    });
  }
}
familyRuns("sim");

Deno.test({ name: "cpl3 kvm: the body runs at CPL 3", ignore: NO_KVM !== undefined, fn: () => probes("kvm") });
familyRuns("kvm");

Deno.test({
  name: "cpl3 kvm: CPL 0 emulator divergences (KVM_DIVERGENCES) that can run at CPL 3 meet the expectation natively",
  ignore: NO_KVM !== undefined,
  fn: () => {
    const listed = ELIGIBLE.filter((s) => kvmDivergence(s.name) !== undefined);
    assert.ok(listed.length > 0, "no eligible snippet in KVM_DIVERGENCES");
    for (const s of listed) assert.deepEqual(checkCpl3("kvm", s), [], s.name);
  },
});

Deno.test("cpl3 totals", () => {
  console.log(
    `cpl3: ${ELIGIBLE.length} of ${ALL.length} snippets eligible; pass sim ${tally.sim}, ` +
      (NO_KVM === undefined ? `kvm ${tally.kvm}` : `kvm skipped (${NO_KVM})`),
  );
  assert.equal(tally.sim, ELIGIBLE.length, "every sim family test ran and passed before the totals");
  if (NO_KVM === undefined) assert.equal(tally.kvm, ELIGIBLE.length);
});
