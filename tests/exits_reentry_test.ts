// Re-entry after an exit (assembly/kvm/run.ts): the shortcut that keeps the cached
// state (lazy flags, mode, fetch window) when nothing was written since the last
// run, the fast completions of OUT / MMIO writes / IN / MMIO loads into a register
// (KVM's complete_fast_pio_*, complete_emulated_mmio),
// and the fallbacks they must not hide (RIP moved by user space, immediate_exit,
// guest debug single-step, a register or segment write between runs).
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { createVmWithOneVcpu, type GuestMode } from "../src/x86/setup.ts";
import { guest as sysGuest } from "./x86_sys_harness.ts";
import { setSyncReg, setSyncRegsValid, syncReg } from "../src/exits/sync_regs.ts";

const bitsOf = (m: GuestMode) => (m === "long" ? 64 : m === "protected" ? 32 : 16);
function guest(src: string, mode: GuestMode = "long", load = 0x1000) {
  const code = assemble(src, { bits: bitsOf(mode), origin: load }).bytes;
  return { ...createVmWithOneVcpu({ code, mode, load }), code };
}
const BUDGET = 100_000;
const CF = 1n, ZF = 0x40n;

Deno.test("IN completion on re-entry: AL and AX merge into RAX, EAX zero-extends; each IN retires once", () => {
  const { vcpu } = guest(`
    mov rax, -1
    in al, 0x10
    mov rbx, rax
    mov rax, -1
    in ax, 0x10
    mov rcx, rax
    mov rax, -1
    in eax, 0x10
    hlt`);
  const answers = [0x12, 0x3456, 0x89abcdef];
  const sizes = [1, 2, 4];
  for (let i = 0; i < 3; i++) {
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "io" && e.direction === "in" && e.port === 0x10, `exit ${i}: ${e.reason}`);
    assert.equal(e.size, sizes[i]);
    e.fill(answers[i]!);
  }
  const before = vcpu.instructions;
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rbx, 0xffff_ffff_ffff_ff12n);
  assert.equal(r.rcx, 0xffff_ffff_ffff_3456n);
  assert.equal(r.rax, 0x89abcdefn);
  // The last IN and the HLT: 2 instructions.
  assert.equal(vcpu.instructions - before, 2);
  // 3 × (mov rax, in, mov) - the last mov + hlt = 9 instructions in all.
  assert.equal(vcpu.instructions, 9);
});

for (const mode of ["protected", "real"] as const) {
  Deno.test(`${mode} mode: IN completion on re-entry writes AX and moves RIP past the IN`, () => {
    const { vcpu } = guest("mov dx, 0x60\nin ax, dx\nmov bx, ax\nhlt", mode);
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "io" && e.direction === "in" && e.size === 2, `got ${e.reason}`);
    e.fill(0xbeef);
    assert.equal(vcpu.run(BUDGET).reason, "hlt");
    assert.equal(vcpu.getRegs().rbx & 0xffffn, 0xbeefn);
  });
}

Deno.test("IN exit, then user space moves RIP: the data is dropped and the guest runs from the new RIP", () => {
  const { vcpu } = guest("mov eax, 7\nin al, 0x10\nhlt\nother: mov ebx, 5\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.direction === "in");
  e.fill(0x42);
  const rip = vcpu.getRegs().rip;
  vcpu.setRegs({ rip: rip + 3n }); // in al, imm8 (2 bytes) + hlt (1 byte) → `other`
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rax, 7n);
  assert.equal(r.rbx, 5n);
});

Deno.test("IN exit with immediate_exit: the next run completes the IN and returns KVM_EXIT_INTR", () => {
  const { vcpu } = guest("in al, 0x10\nmov ebx, 1\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.direction === "in");
  e.fill(0x33);
  const rip = vcpu.getRegs().rip;
  vcpu.immediateExit = true;
  assert.equal(vcpu.runRaw(), K.KVM_EXIT_INTR);
  vcpu.immediateExit = false;
  const r = vcpu.getRegs();
  assert.equal(r.rax & 0xffn, 0x33n);
  assert.equal(r.rip, rip + 2n);
  assert.equal(r.rbx, 0n);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rbx, 1n);
});

Deno.test("IN exit, then KVM_GUESTDBG_SINGLESTEP: the IN completes (by replay) and single-steps", () => {
  const { vcpu } = guest("in al, 0x10\nmov ebx, 1\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.direction === "in");
  e.fill(0x44);
  const rip = vcpu.getRegs().rip;
  vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
  const d = vcpu.run(BUDGET);
  assert.ok(d.reason === "debug", `got ${d.reason}`);
  const r = vcpu.getRegs();
  assert.equal(r.rip, rip + 2n);
  assert.equal(r.rax & 0xffn, 0x44n);
  assert.equal(r.rbx, 0n);
});

Deno.test("OUT exit, then KVM_GUESTDBG_SINGLESTEP: the OUT retires once and single-steps", () => {
  const { vcpu } = guest("out 0x10, al\nmov ebx, 1\nhlt");
  assert.equal(vcpu.run(BUDGET).reason, "io");
  const rip = vcpu.getRegs().rip;
  const before = vcpu.instructions;
  vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
  assert.equal(vcpu.run(BUDGET).reason, "debug");
  assert.equal(vcpu.getRegs().rip, rip + 2n);
  assert.equal(vcpu.instructions - before, 1);
});

// The exit of the second OUT comes from the fast lane (the first run starts with an empty fetch
// window and goes through the general loop), and run() then trusts RIP and plainStepping() only while
// nothing was written (run.ts plainExit): these check that a write in between still counts.
Deno.test("fast-lane OUT exit, then user space moves RIP: the OUT is not retired over the new RIP", () => {
  const { vcpu } = guest("out 0x10, al\nout 0x11, al\nhlt\nother: mov ebx, 5\nhlt");
  assert.equal(vcpu.run(BUDGET).reason, "io");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.port === 0x11, `got ${e.reason}`);
  const rip = vcpu.getRegs().rip;
  vcpu.setRegs({ rip: rip + 3n }); // out imm8, al (2 bytes) + hlt (1 byte) → `other`
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rbx, 5n);
});

Deno.test("fast-lane OUT exit, then KVM_GUESTDBG_SINGLESTEP: the OUT retires once and single-steps", () => {
  const { vcpu } = guest("out 0x10, al\nout 0x11, al\nmov ebx, 1\nhlt");
  assert.equal(vcpu.run(BUDGET).reason, "io");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.port === 0x11, `got ${e.reason}`);
  const rip = vcpu.getRegs().rip;
  const before = vcpu.instructions;
  vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
  assert.equal(vcpu.run(BUDGET).reason, "debug");
  assert.equal(vcpu.getRegs().rip, rip + 2n);
  assert.equal(vcpu.getRegs().rbx, 0n);
  assert.equal(vcpu.instructions - before, 1);
});

Deno.test("single-step exit, then another vCPU's fast-lane exit: the first vCPU still single-steps", () => {
  const src = "nop\nnop\nnop\nhlt\nb: out 0x10, al\nout 0x11, al\nhlt";
  const { vm, vcpu } = guest(src);
  const b = assemble(src, { bits: 64, origin: 0x1000 }).labels.get("b")!;
  const other = vm.addVcpu(1);
  other.setSregs(vcpu.getSregs());
  other.setRegs({ ...vcpu.getRegs(), rip: BigInt(b) });
  vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
  assert.equal(vcpu.run(BUDGET).reason, "debug");
  assert.equal(other.run(BUDGET).reason, "io");
  const e = other.run(BUDGET);
  assert.ok(e.reason === "io" && e.port === 0x11, `got ${e.reason}`);
  assert.equal(vcpu.run(BUDGET).reason, "debug");
  assert.equal(vcpu.getRegs().rip, 0x1002n);
});

Deno.test("a fast-lane exit, then an OUT exit in an STI shadow: its completion still ends the shadow", () => {
  const { vcpu } = guest("out 0x10, al\nout 0x11, al\nsti\nout 0x12, al\nhlt");
  for (const port of [0x10, 0x11, 0x12]) {
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "io" && e.port === port, `got ${e.reason}`);
  }
  assert.equal(vcpu.getEvents().interrupt.shadow, 1); // the OUT after STI exited inside the shadow
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getEvents().interrupt.shadow, 0);
});

Deno.test("fast-lane OUT exit, then RIP moved through kvm_run.s.regs (KVM_CAP_SYNC_REGS): the guest goes on there", () => {
  const { vcpu } = guest("out 0x10, al\nout 0x11, al\nhlt\nother: mov ebx, 5\nhlt");
  const run = vcpu.kvmRun;
  assert.equal(vcpu.run(BUDGET).reason, "io");
  setSyncRegsValid(run, true);
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.port === 0x11, `got ${e.reason}`);
  setSyncReg(run, "rip", syncReg(run, "rip") + 3n); // → `other`
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rbx, 5n);
});

Deno.test("lazy flags survive an exit and a re-entry without register writes", () => {
  const { vcpu } = guest("mov eax, 1\ncmp eax, 1\nout 0x10, al\nsetz cl\nsetc dl\nhlt");
  assert.equal(vcpu.run(BUDGET).reason, "io");
  // At the exit the state block holds the materialised RFLAGS (KVM_GET_REGS).
  assert.equal(vcpu.getRegs().rflags & (ZF | CF), ZF);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rcx & 0xffn, 1n);
  assert.equal(r.rdx & 0xffn, 0n);
});

Deno.test("setRegs() between an exit and the re-entry: the new RFLAGS is what the guest sees", () => {
  const { vcpu } = guest("mov eax, 1\ncmp eax, 1\nout 0x10, al\nsetz cl\nsetc dl\nhlt");
  assert.equal(vcpu.run(BUDGET).reason, "io");
  const f = vcpu.getRegs().rflags;
  vcpu.setRegs({ rflags: (f & ~ZF) | CF });
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rcx & 0xffn, 0n);
  assert.equal(r.rdx & 0xffn, 1n);
  // ... and the OUT still retired: RIP went past it, not back to it.
  assert.equal(vcpu.instructions, 6);
});

Deno.test("setSregs() between an exit and the re-entry: a new CS base moves instruction fetch", () => {
  // Protected mode, flat CS. The second copy of the code, 0x1000 higher, sets BL to 2.
  const src = (v: number) => `out 0x10, al\nmov bl, ${v}\nhlt`;
  const { vm, vcpu } = guest(src(1), "protected");
  vm.writeGuest(0x2000, assemble(src(2), { bits: 32, origin: 0x1000 }).bytes);
  assert.equal(vcpu.run(BUDGET).reason, "io");
  const s = vcpu.getSregs();
  vcpu.setSregs({ cs: { ...s.cs, base: 0x1000n } });
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rbx & 0xffn, 2n);
});

Deno.test("MMIO write exit then setRegs(rip): the store retired once at the exit, the guest runs from the new RIP", () => {
  const { vcpu } = guest("mov ebx, 0xd0000000\nmov [rbx], al\nhlt\nother: mov ecx, 9\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "mmio" && e.isWrite);
  const rip = vcpu.getRegs().rip;
  assert.equal(rip, 0x1007n, "RIP past the store at its exit, as KVM writes back an emulated MMIO write");
  assert.equal(vcpu.instructions, 2);
  vcpu.setRegs({ rip: rip + 1n }); // past the hlt → `other`
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rcx, 9n);
  assert.equal(vcpu.instructions, 4);
});

Deno.test("a second vCPU run in between: re-entry of the first reloads its own state", () => {
  const src =
    "mov eax, 1\ncmp eax, 1\nout 0x10, al\nsetz cl\nhlt\nb1: mov eax, 2\ncmp eax, 1\nout 0x10, al\nsetz cl\nhlt";
  const { vm, vcpu } = guest(src);
  const b1 = assemble(src, { bits: 64, origin: 0x1000 }).labels.get("b1")!;
  const other = vm.addVcpu(1);
  other.setSregs(vcpu.getSregs());
  other.setRegs({ ...vcpu.getRegs(), rip: BigInt(b1) });
  assert.equal(vcpu.run(BUDGET).reason, "io"); // ZF = 1
  assert.equal(other.run(BUDGET).reason, "io"); // ZF = 0
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(other.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rcx & 0xffn, 1n);
  assert.equal(other.getRegs().rcx & 0xffn, 0n);
});

Deno.test("IO permission: CPL 0 with IOPL 0 exits; at CPL 3 with IOPL 0 the TSS bitmap decides", () => {
  const k = guest("out 0x10, al\nhlt");
  k.vcpu.setRegs({ rflags: 2n });
  assert.equal(k.vcpu.run(BUDGET).reason, "io");
  for (const insn of ["out 0x10, al", "in al, 0x10"]) {
    const ok = sysGuest(`user: ${insn}\nhlt\nh13: hlt`);
    ok.ring3("user", { iopl: 3 });
    assert.equal(ok.run().reason, "io", `${insn} at IOPL 3`);
    // IO map base 0 (the zeroed TSS): the map's bits for port 0x10 are clear, so it is allowed.
    const map0 = sysGuest(`user: ${insn}\nhlt\nh13: hlt`);
    map0.ring3("user", { iopl: 0 });
    assert.equal(map0.run().reason, "io", `${insn} at IOPL 0, map base 0`);
    // IO map base past the TSS limit: no bitmap, #GP(0) at the instruction.
    const gp = sysGuest(`user: insn: ${insn}\nhlt\nh13: hlt`);
    gp.ring3("user", { iopl: 0 });
    const tss = gp.layout.tss!;
    gp.vm.guestView(tss + 0x66, 2).set([0x68, 0]);
    gp.hltAt("h13");
    assert.deepEqual(gp.stack(2), [0n, BigInt(gp.at("insn"))], `${insn} at IOPL 0, no map`);
  }
});

Deno.test("setRegs() then setSregs() between runs: the full refresh still happens (new CS base)", () => {
  const src = (v: number) => `out 0x10, al\nmov bl, ${v}\nhlt`;
  const { vm, vcpu } = guest(src(1), "protected");
  vm.writeGuest(0x2000, assemble(src(2), { bits: 32, origin: 0x1000 }).bytes);
  assert.equal(vcpu.run(BUDGET).reason, "io");
  vcpu.setRegs({ rcx: 5n });
  vcpu.setSregs({ cs: { ...vcpu.getSregs().cs, base: 0x1000n } });
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rbx & 0xffn, 2n);
  assert.equal(r.rcx, 5n);
});

Deno.test("setRegs() with TF between runs: the register-only entry reloads RFLAGS and the guest traps", () => {
  const g = sysGuest("out 0x10, al\nmov ebx, 1\nhlt\nh1: hlt");
  g.gatesFromLabels();
  assert.equal(g.run().reason, "io");
  const r = g.vcpu.getRegs();
  g.vcpu.setRegs({ rflags: r.rflags | 0x100n });
  g.hltAt("h1");
  // The #DB trap came after the OUT (RIP past it on the frame), before `mov ebx, 1`.
  assert.equal(g.stack(1)[0], r.rip + 2n);
  assert.equal(g.reg("rbx"), 0n);
});

Deno.test("setRegs() of RIP into another page between runs: fetch follows (register-only entry)", () => {
  const { vm, vcpu } = guest("out 0x10, al\nmov bl, 1\nhlt");
  vm.writeGuest(0x3000, assemble("mov bl, 3\nhlt", { bits: 64, origin: 0x3000 }).bytes);
  assert.equal(vcpu.run(BUDGET).reason, "io");
  vcpu.setRegs({ rip: 0x3000n });
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rbx & 0xffn, 3n);
  assert.equal(r.rip, 0x3003n);
});

const MMIO_GPA = 0xd000_0000;

Deno.test("MMIO-read completion on re-entry: MOV r, [mmio] writes the register as the load would, every size and register form", () => {
  // Each load exits once; re-entry takes the register-write completion (no replay).
  const { vcpu } = guest(`
    mov edi, ${MMIO_GPA}
    mov rax, -1
    mov al, [rdi]
    mov r8, rax
    mov rax, -1
    mov ah, [rdi]
    mov r9, rax
    mov rsi, -1
    mov sil, [rdi]
    mov r10, rsi
    mov r12, -1
    mov r12w, [rdi]
    mov r11, r12
    mov rcx, -1
    mov ecx, [rdi]
    mov r13, rcx
    mov rdx, -1
    mov rdx, [rdi]
    mov r14, rdx
    mov rdi, [rdi]
    hlt`);
  const answers = [0x12n, 0x34n, 0x56n, 0x789an, 0x89abcdefn, 0x0123_4567_89ab_cdefn, 0x1122_3344_5566_7788n];
  const lens = [1, 1, 1, 2, 4, 8, 8];
  for (let i = 0; i < answers.length; i++) {
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "mmio" && !e.isWrite && e.physAddr === MMIO_GPA, `exit ${i}: ${e.reason}`);
    assert.equal(e.len, lens[i], `exit ${i} len`);
    e.fill(answers[i]!);
  }
  const before = vcpu.instructions;
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.instructions - before, 2, "the last load and the HLT");
  const r = vcpu.getRegs();
  assert.equal(r.r8, 0xffff_ffff_ffff_ff12n, "AL merges");
  assert.equal(r.r9, 0xffff_ffff_ffff_34ffn, "AH (no REX) merges into bits 8-15");
  assert.equal(r.r10, 0xffff_ffff_ffff_ff56n, "SIL (REX) merges into RSI");
  assert.equal(r.r11, 0xffff_ffff_ffff_789an, "R12W merges");
  assert.equal(r.r13, 0x89abcdefn, "ECX zero-extends");
  assert.equal(r.r14, 0x0123_4567_89ab_cdefn, "RDX");
  assert.equal(r.rdi, 0x1122_3344_5566_7788n, "RDI, also the address register");
});

Deno.test("MMIO-read completion falls back to replay: immediate_exit, single-step, RIP moved, split load", () => {
  const src = `mov edi, ${MMIO_GPA}\nmov rax, -1\nmov ax, [rdi]\nmov ebx, 1\nhlt\nother: mov ebx, 5\nhlt`;
  {
    const { vcpu } = guest(src);
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "mmio" && !e.isWrite);
    e.fill(0xbeefn);
    vcpu.immediateExit = true;
    assert.equal(vcpu.runRaw(), K.KVM_EXIT_INTR);
    vcpu.immediateExit = false;
    assert.equal(vcpu.getRegs().rax, 0xffff_ffff_ffff_beefn, "immediate_exit: completed by replay");
    assert.equal(vcpu.run(BUDGET).reason, "hlt");
    assert.equal(vcpu.getRegs().rbx, 1n);
  }
  {
    const { vcpu } = guest(src);
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "mmio");
    e.fill(0xcafen);
    const rip = vcpu.getRegs().rip;
    vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
    assert.equal(vcpu.run(BUDGET).reason, "debug");
    const r = vcpu.getRegs();
    assert.equal(r.rax, 0xffff_ffff_ffff_cafen, "single-step: completed by replay");
    assert.equal(r.rip, rip + 3n, "past the 3-byte load");
  }
  {
    const { vcpu } = guest(src);
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "mmio");
    e.fill(0x1111n);
    const rip = vcpu.getRegs().rip;
    vcpu.setRegs({ rip: rip + 3n + 5n + 1n }); // load (3) + mov ebx, 1 (5) + hlt (1) → other
    assert.equal(vcpu.run(BUDGET).reason, "hlt");
    const r = vcpu.getRegs();
    assert.equal(r.rax, 0xffff_ffff_ffff_ffffn, "RIP moved: the data is dropped");
    assert.equal(r.rbx, 5n);
  }
  {
    // A load that crosses from the end of RAM (16 MiB) into unmapped space: the exit is the
    // MMIO half only, so the register is assembled by replay with the RAM bytes.
    const { vm, vcpu } = guest(`mov edi, 0xfffffe\nmov rax, -1\nmov eax, [rdi]\nhlt`);
    vm.writeGuest(0xfffffe, [0x34, 0x12]);
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "mmio" && !e.isWrite && e.physAddr === 0x100_0000 && e.len === 2, `got ${e.reason}`);
    e.fill(0xabcdn);
    assert.equal(vcpu.run(BUDGET).reason, "hlt");
    assert.equal(vcpu.getRegs().rax, 0xabcd1234n, "RAM half + MMIO half, zero-extended");
  }
});
