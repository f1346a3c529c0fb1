/**
 * HLT/WBINVD/INVD privilege, SWAPGS, CLI/STI with IOPL/CPL, the STI and MOV SS
 * interrupt shadow (kvm_run.ready_for_interrupt_injection, KVM_GET_VCPU_EVENTS),
 * PUSHF/POPF privileged bits, and VMMCALL as Linux kvm_emulate_hypercall()
 * (in-kernel results; KVM_EXIT_HYPERCALL only for KVM_HC_MAP_GPA_RANGE when enabled).
 */
import assert from "node:assert/strict";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { KVM_RUN } from "../src/abi/kvm_structs.ts";
import { field, layOut } from "../src/abi/layout.ts";
import { guest } from "./x86_sys_harness.ts";

const RUN = layOut(KVM_RUN);
const runByte = (g: ReturnType<typeof guest>, f: string) => g.vcpu.kvmRun.u8[g.vcpu.runBase + field(RUN, f).offset]!;
const neg = (n: bigint, bits = 64) => BigInt.asUintN(bits, -n);

Deno.test("HLT, WBINVD, INVD at CPL 3 → #GP(0) at the instruction; at CPL 0 they complete", () => {
  for (const insn of ["hlt", "wbinvd", "invd"]) {
    for (const mode of ["long", "protected"] as const) {
      const g = guest(`user: insn: ${insn}\nhlt\nh13: hlt`, mode);
      g.ring3("user");
      g.hltAt("h13");
      assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))], `${insn} ${mode}`);
    }
    const k = guest(`${insn === "hlt" ? "nop" : insn}\ndone: hlt`);
    k.hltAt("done");
  }
});

Deno.test("SWAPGS exchanges GS.base and KERNEL_GS_BASE; #GP(0) at CPL 3; #UD in 32-bit code", () => {
  const g = guest(`swapgs\nmov rax, [gs:0]\nswapgs\nmov rbx, [gs:0]\nhlt`);
  g.vcpu.setMsr(0xc0000102, 0x3000n);
  g.vcpu.setMsr(0xc0000101, 0x3008n);
  g.vm.write64(0x3000, 0xaaaan);
  g.vm.write64(0x3008, 0xbbbbn);
  assert.equal(g.run().reason, "hlt");
  assert.deepEqual([g.reg("rax"), g.reg("rbx")], [0xaaaan, 0xbbbbn]);
  assert.deepEqual([g.vcpu.getMsr(0xc0000101), g.vcpu.getMsr(0xc0000102)], [0x3008n, 0x3000n]);
  const u = guest(`user: insn: swapgs\nhlt\nh13: hlt`);
  u.ring3("user");
  u.hltAt("h13");
  assert.deepEqual(u.stack(2), [0n, BigInt(u.at("insn"))]);
  // 0f 01 f8 in 32-bit code: #UD (SWAPGS is 64-bit only).
  const p = guest(`insn: db 0x0f, 0x01, 0xf8\nhlt\nh6: hlt`, "protected");
  p.gatesFromLabels();
  p.hltAt("h6");
  assert.equal(p.stack(1)[0], BigInt(p.at("insn")));
});

Deno.test("CLI/STI: #GP(0) at CPL 3 with IOPL 0; allowed with IOPL 3; POPF at CPL 3 silently keeps IF and IOPL", () => {
  for (const insn of ["cli", "sti"]) {
    const g = guest(`user: insn: ${insn}\nhlt\nh13: hlt`);
    g.ring3("user");
    g.hltAt("h13");
    assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))], insn);
  }
  const ok = guest(`user: sti\npushfq\npop rax\ncli\npushfq\npop rbx\ninsn: hlt\nh13: hlt`);
  ok.ring3("user", { iopl: 3 });
  ok.hltAt("h13");
  assert.deepEqual([ok.reg("rax") & 0x3200n, ok.reg("rbx") & 0x3200n], [0x3200n, 0x3000n]);
  const pf = guest(`
  user:
    mov rax, 0x3202
    push rax
    popfq
    pushfq
    pop rbx
    mov rax, 0x0002
    push rax
    popfq
    pushfq
    pop rcx
    hlt
  h13: hlt`);
  pf.ring3("user", { iopl: 0 });
  pf.hltAt("h13");
  assert.equal(pf.reg("rbx") & 0x3200n, 0n, "IOPL 0 < CPL 3: POPF changes neither IF nor IOPL (no fault)");
  const io = guest(`user: mov rax, 0x0202\npush rax\npopfq\npushfq\npop rbx\nhlt\nh13: hlt`);
  io.ring3("user", { iopl: 3 });
  io.hltAt("h13");
  assert.equal(io.reg("rbx") & 0x3200n, 0x3200n, "CPL <= IOPL: IF set, IOPL kept (only CPL 0 changes it)");
});

Deno.test("POPF at CPL 0 sets IOPL and IF, never VM/RF; PUSHF clears RF and VM in the image", () => {
  const g = guest(`
    mov rax, 0x33202
    push rax
    popfq
    pushfq
    pop rbx
    hlt`);
  assert.equal(g.run().reason, "hlt");
  assert.equal(g.reg("rbx") & 0x33200n, 0x3200n);
});

Deno.test("STI opens a one-instruction interrupt shadow (ready_for_interrupt_injection = 0); STI with IF = 1 and MOV SS too", () => {
  const g = guest(`sti\nnop\nsti\nnop\nmov ax, ss\nmov ss, ax\nnop\nhlt`);
  const step = () => {
    assert.equal(g.run(1).reason, "intr");
    return [g.vcpu.getEvents().interrupt.shadow, runByte(g, "if_flag"), runByte(g, "ready_for_interrupt_injection")];
  };
  assert.deepEqual(step(), [1, 1, 0], "after STI: IF = 1 but blocked by STI");
  assert.deepEqual(step(), [0, 1, 1], "after the next instruction");
  assert.deepEqual(step(), [0, 1, 1], "STI with IF already 1: no shadow");
  step(); // nop
  step(); // mov ax, ss
  assert.deepEqual(step(), [1, 1, 0], "MOV SS blocks for one instruction");
  step();
  assert.equal(g.vcpu.getEvents().interrupt.shadow, 0);
});

Deno.test("VMMCALL in-kernel results: unknown → -KVM_ENOSYS, VAPIC_POLL_IRQ/KICK_CPU/SCHED_YIELD → 0, SEND_IPI → -EINVAL/-EOPNOTSUPP", () => {
  const cases: [number, string, bigint][] = [
    [0x1234, "", neg(1000n)],
    [1, "", 0n],
    [5, "mov ecx, 1", 0n],
    [11, "mov ebx, 1", 0n],
    [10, "mov esi, 0x800", neg(22n)],
    [10, "xor esi, esi", neg(95n)],
    [12, "", neg(1000n)], // MAP_GPA_RANGE without KVM_CAP_EXIT_HYPERCALL: ENOSYS
  ];
  for (const [nr, setup, want] of cases) {
    const g = guest(`${setup}\nmov eax, ${nr}\nvmmcall\ndone: hlt`);
    g.hltAt("done");
    assert.equal(g.reg("rax"), want, `nr ${nr}`);
  }
});

Deno.test("VMMCALL: CPL 3 → -KVM_EPERM; 32-bit mode truncates nr/args and the result; MAP_GPA_RANGE checks before exiting", () => {
  const u = guest(`user: mov eax, 1\nvmmcall\ndone: hlt\nh13: hlt`);
  u.ring3("user");
  u.hltAt("h13"); // HLT at CPL 3 → #GP, after the VMMCALL returned
  assert.equal(u.reg("rax"), neg(1n));
  const p = guest(`mov eax, 0x1234\nvmmcall\ndone: hlt`, "protected");
  p.vcpu.setRegs({ rax: 0xffffffff_00000001n });
  p.hltAt("done");
  assert.equal(p.reg("rax"), neg(1000n, 32), "result truncated to 32 bits");
  for (const [gpa, pages] of [[0x100001, 1], [0x100000, 0]] as const) {
    const g = guest(`mov eax, 12\nmov ebx, ${gpa}\nmov ecx, ${pages}\nvmmcall\ndone: hlt`);
    g.vm.enableHypercallExit(1 << K.KVM_HC_MAP_GPA_RANGE);
    g.hltAt("done");
    assert.equal(g.reg("rax"), neg(22n), `gpa ${gpa} pages ${pages}`);
  }
  const w = guest(`mov eax, 12\nmov ebx, 0x1000\nmov rcx, -1\nvmmcall\ndone: hlt`);
  w.vm.enableHypercallExit(1 << K.KVM_HC_MAP_GPA_RANGE);
  w.hltAt("done");
  assert.equal(w.reg("rax"), neg(22n), "gfn + npages wraps");
});

Deno.test("VMMCALL MAP_GPA_RANGE exit, then KVM_GUESTDBG_SINGLESTEP: the debug exit right after the VMMCALL", () => {
  const g = guest(`mov eax, 12\nmov ebx, 0x200000\nmov ecx, 1\ninsn: vmmcall\nafter: mov esi, 5\nhlt`);
  g.vm.enableHypercallExit(1 << K.KVM_HC_MAP_GPA_RANGE);
  g.expect("hypercall").setReturn(0n);
  g.vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
  const d = g.expect("debug");
  assert.deepEqual([d.pc, g.rip, g.reg("rsi"), g.reg("rax")], [BigInt(g.at("after")), BigInt(g.at("after")), 0n, 0n]);
});

Deno.test("VMMCALL MAP_GPA_RANGE exit: nr/args/flags, RIP at the VMMCALL during the exit; 32-bit: no LONG_MODE flag, ret truncated", () => {
  const g = guest(`mov eax, 12\nmov ebx, 0x200000\nmov ecx, 3\nmov edx, 0x10\ninsn: vmmcall\ndone: hlt`, "protected");
  g.vm.enableHypercallExit(1 << K.KVM_HC_MAP_GPA_RANGE);
  const e = g.expect("hypercall");
  assert.deepEqual([e.nr, e.args.slice(0, 3), e.flags, e.longMode], [12n, [0x200000n, 3n, 0x10n], 0n, false]);
  assert.equal(g.rip, BigInt(g.at("insn")));
  e.setReturn(0xffffffff_fffffff0n);
  g.hltAt("done");
  assert.equal(g.reg("rax"), 0xfffffff0n);
});
