/**
 * KVM_SET_GUEST_DEBUG (software breakpoints: INT3 → KVM_EXIT_DEBUG exception 3
 * with pc = the INT3; hardware breakpoints through debugreg[0..3]/[7], execute
 * and data) and the guest's own DR0–DR7 breakpoints delivered as #DB into the
 * guest, with DR6 and the RF rules (Intel SDM vol. 3 §17.2–17.3.1.1: faults other
 * than instruction-breakpoint #DB push RF = 1; RF suppresses instruction
 * breakpoints for one instruction). KVM side: svm bp/db_interception,
 * vmx handle_exception_nmi (pc = CS base + RIP, dr6 | DR6_ACTIVE_LOW).
 */
import assert from "node:assert/strict";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { guest } from "./x86_sys_harness.ts";

const SW = K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_SW_BP;
const HW = K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_HW_BP;
/** DR7 enabling breakpoint `n` locally with R/W `rw` and LEN `len` (00 = 1 byte, 01 = 2, 11 = 4, 10 = 8). */
const dr7 = (n: number, rw: number, len = 0) => BigInt((1 << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n)));
const RF = 0x10000n;

Deno.test("USE_SW_BP: INT3 (CC) and INT 3 (CD 03) exit with exception 3, pc = the instruction, RIP unchanged", () => {
  for (const insn of ["int3", "int 3"]) {
    const g = guest(`nop\nbrk: ${insn}\nhlt`);
    g.vcpu.setGuestDebug({ control: SW });
    const e = g.expect("debug");
    assert.deepEqual([e.exception, e.pc], [3, BigInt(g.at("brk"))], insn);
    assert.equal(g.rip, BigInt(g.at("brk")));
    // Running again without the debugger stepping over it exits again (KVM re-executes the INT3).
    assert.equal(g.expect("debug").pc, BigInt(g.at("brk")));
  }
});

Deno.test("USE_SW_BP in protected mode with a CS base: pc is the linear address", () => {
  const g = guest(`brk: int3\nhlt`, "protected");
  const cs = g.vcpu.getSregs().cs;
  g.vcpu.setSregs({ cs: { ...cs, base: 0x100n } });
  g.vcpu.setRegs({ rip: BigInt(g.at("brk") - 0x100) });
  g.vcpu.setGuestDebug({ control: SW });
  assert.equal(g.expect("debug").pc, BigInt(g.at("brk")));
});

Deno.test("without guest debug, INT3 is #BP in the guest (trap: frame RIP after the INT3)", () => {
  const g = guest(`int3\nafter: hlt\nh3: hlt`);
  g.gatesFromLabels();
  g.hltAt("h3");
  assert.equal(g.stack(1)[0], BigInt(g.at("after")));
});

// After an exit the fetch window is warm and the re-entry goes through the fast lane (assembly/x86/fastrun.ts),
// which makes the INT3 exit itself under USE_SW_BP and leaves the guest's #BP to the general path.
for (const mode of ["long", "protected"] as const) {
  Deno.test(`USE_SW_BP INT3 from the fast lane (${mode} mode): the same exit fields, RIP at it, not retired`, () => {
    const g = guest(`out 0x10, al\nout 0x11, al\nbrk: int3\nbrk_hlt: hlt`, mode);
    g.vcpu.setGuestDebug({ control: SW });
    g.expect("io");
    g.expect("io");
    const before = g.vcpu.instructions;
    const e = g.expect("debug");
    assert.deepEqual([e.exception, e.pc, e.dr6, e.dr7], [3, BigInt(g.at("brk")), 0xffff0ff0n, 0x400n]);
    assert.equal(g.rip, BigInt(g.at("brk")));
    assert.equal(g.vcpu.instructions - before, 1, "the second OUT retired; the INT3 did not");
    g.vcpu.setRegs({ rip: BigInt(g.at("brk") + 1) });
    g.hltAt("brk_hlt"); // the debugger stepped over it
  });
}

Deno.test("without guest debug, INT3 from the fast lane is #BP in the guest (frame RIP after the INT3)", () => {
  const g = guest(`out 0x10, al\nout 0x11, al\nint3\nafter: hlt\nh3: hlt`);
  g.gatesFromLabels();
  g.expect("io");
  g.expect("io");
  const rsp = g.reg("rsp");
  g.hltAt("h3");
  assert.equal(g.stack(1)[0], BigInt(g.at("after")));
  assert.equal(rsp - g.reg("rsp"), 40n, "one 64-bit interrupt frame (SS, RSP, RFLAGS, CS, RIP) pushed");
});

Deno.test("USE_HW_BP execute breakpoint: exit before the instruction with B0 in dr6, dr7 reported; RF steps over it", () => {
  const g = guest(`mov eax, 1\nbrk: mov ebx, 2\nmov ecx, 3\nhlt`);
  g.vcpu.setGuestDebug({ control: HW, debugreg: [BigInt(g.at("brk")), 0n, 0n, 0n, 0n, 0n, 0n, dr7(0, 0)] });
  const e = g.expect("debug");
  assert.deepEqual([e.exception, e.pc, e.dr6, e.dr7], [1, BigInt(g.at("brk")), 0xffff0ff1n, dr7(0, 0)]);
  assert.equal(g.rip, BigInt(g.at("brk")));
  assert.equal(g.reg("rax"), 1n);
  assert.equal(g.reg("rbx"), 0n, "the instruction did not run");
  assert.equal(g.vcpu.getDebugRegs().dr6 & 0xfn, 0n, "the guest's DR6 is untouched");
  // The debugger resumes with RF set: the breakpoint is ignored once, the rest runs.
  g.vcpu.setRegs({ rflags: g.vcpu.getRegs().rflags | RF });
  assert.equal(g.run().reason, "hlt");
  assert.deepEqual([g.reg("rbx"), g.reg("rcx")], [2n, 3n]);
  assert.equal(g.vcpu.getRegs().rflags & RF, 0n, "RF cleared after the instruction");
});

Deno.test("USE_HW_BP data breakpoints: write-only (RW=01) ignores reads; RW=11 catches reads; exit after the access with pc = next instruction", () => {
  const g = guest(`
    mov eax, [0x3000]
    mov dword [0x3004], 5
  w:
    mov ebx, [0x3006]
  r:
    hlt`);
  // DR1 write-only 4 bytes at 0x3004; DR2 read/write 2 bytes at 0x3006.
  const control = dr7(1, 1, 3) | dr7(2, 3, 1);
  g.vcpu.setGuestDebug({ control: HW, debugreg: [0n, 0x3004n, 0x3006n, 0n, 0n, 0n, 0n, control] });
  const a = g.expect("debug");
  // The 4-byte write at 0x3004 covers DR1 (write-only) and DR2's two bytes at 0x3006.
  assert.deepEqual([a.exception, a.pc, a.dr6], [1, BigInt(g.at("w")), 0xffff0ff0n | 0x6n]);
  assert.equal(g.vm.read64(0x3004) & 0xffffffffn, 5n, "the write was performed");
  const b = g.expect("debug");
  assert.deepEqual([b.pc, b.dr6 & 0xfn], [BigInt(g.at("r")), 0x4n], "the read hit DR2 only (DR1 is write-only)");
  assert.equal(g.reg("rbx"), 0n, "EBX = 0 read from 0x3006 (upper half of the 5 and zero)");
  assert.equal(g.run().reason, "hlt");
});

Deno.test("guest DR0 execute breakpoint → #DB fault in the guest: DR6.B0, frame RIP = the instruction, RF = 0 pushed; IRETQ with RF steps over", () => {
  const g = guest(`
    lea rax, [rip + brk]
    mov dr0, rax
    mov eax, 1
    mov dr7, rax
    nop
  brk:
    inc ecx
  fin:
    hlt
  h1:
    mov rbx, dr6
    mov rdi, [rsp + 16]
    mov rdx, [rsp]
    inc esi
    or qword [rsp + 16], 0x10000
    iretq`);
  g.gatesFromLabels();
  g.hltAt("fin");
  const r = g.vcpu.getRegs();
  assert.equal(r.rbx, 0xffff0ff1n, "DR6 = fixed bits | B0");
  assert.equal(r.rdx, BigInt(g.at("brk")), "fault: the frame RIP is the breakpoint");
  assert.equal(r.rdi & RF, 0n, "an instruction-breakpoint #DB pushes the current RF (0)");
  assert.deepEqual([r.rsi, r.rcx], [1n, 1n], "one #DB, then the instruction ran once");
  assert.equal(g.vcpu.getDebugRegs().dr6, 0xffff0ff1n);
});

Deno.test("guest data breakpoint (DR7 RW=01) → #DB trap after the write: frame RIP = next instruction, DR6.B1", () => {
  const g = guest(`
    mov eax, 0x3000
    mov dr1, rax
    mov eax, 0xd00004
    mov dr7, rax
    mov dword [0x3000], 7
  next:
    hlt
  h1:
    mov rbx, dr6
  fin:
    hlt`);
  g.gatesFromLabels();
  g.hltAt("fin");
  assert.equal(g.stack(1)[0], BigInt(g.at("next")));
  assert.equal(g.reg("rbx") & 0xfn, 0x2n);
  assert.equal(g.vm.read64(0x3000) & 0xffn, 7n);
});

Deno.test("faults push RF = 1 (SDM 17.3.1.1); traps and INT n push the current RF (0)", () => {
  const g = guest(`insn: ud2\nh6: hlt`);
  g.gatesFromLabels();
  g.hltAt("h6");
  const [rip, , rflags] = g.stack(3);
  assert.equal(rip, BigInt(g.at("insn")));
  assert.equal(rflags! & RF, RF, "#UD (a fault) pushes RF = 1");
  assert.equal(g.vcpu.getRegs().rflags & RF, 0n, "the handler runs with RF = 0");
  const t = guest(`int 0x40\nh64: hlt`);
  t.gate(0x40, "h64");
  t.hltAt("h64");
  assert.equal(t.stack(3)[2]! & RF, 0n, "INT n pushes RF = 0");
});
