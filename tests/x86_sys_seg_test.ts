/**
 * Protected-mode descriptor loads (MOV/POP sreg with #GP/#NP/#SS selector error
 * codes, the accessed bit, null selectors), far JMP/CALL/RET (same privilege and
 * RETF to an outer level), IRET/IRETD/IRETQ incl. the privilege return, INT n
 * through the IDT with the TSS stack switch (protected and long mode, IST),
 * #DF and the triple fault → KVM_EXIT_SHUTDOWN.
 * Rules: Intel SDM vol. 2 (MOV, POP, JMP, CALL, RET, IRET, INT n pseudo-code),
 * vol. 3 §6.12–6.15 (event delivery, Table 6-5 double-fault conditions).
 */
import assert from "node:assert/strict";
import { flatSegment } from "../src/x86/regs.ts";
import { GDT_FREE, guest, KSTACK, SEL, USTACK } from "./x86_sys_harness.ts";

const TEST = GDT_FREE; // index 9: selector 0x48
const TSEL = TEST * 8;

/** `insn:` faults → which handler (hN) and its error code; `done:` reached → "done". */
function fault(src: string, setup: (g: ReturnType<typeof guest>) => void, mode: "long" | "protected" = "protected") {
  const g = guest(`${src}\ndone: hlt\nh6: hlt\nh10: hlt\nh11: hlt\nh12: hlt\nh13: hlt`, mode);
  g.gatesFromLabels();
  setup(g);
  const e = g.run();
  assert.equal(e.reason, "hlt", `got ${e.reason}`);
  const at = Number(g.rip) - 1;
  if (at === g.at("done")) return { g, what: "done" };
  const v = [6, 10, 11, 12, 13].find((n) => g.at(`h${n}`) === at);
  assert.ok(v !== undefined, `hlt at 0x${at.toString(16)}`);
  if (v === 6) return { g, what: "#UD" };
  const [err, rip] = g.stack(2);
  assert.equal(rip, BigInt(g.at("insn")), "the fault is reported at the instruction");
  return { g, what: `${{ 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP" }[v]}(0x${err!.toString(16)})` };
}

Deno.test("MOV DS: selector past the GDT limit, system descriptor, execute-only code → #GP(sel); not present → #NP(sel)", () => {
  const cases: [string, (g: ReturnType<typeof guest>) => void, string][] = [
    ["mov ax, 0xf8", () => {}, "#GP(0xf8)"], // index 31: inside the limit, but an all-zero descriptor
    ["mov ax, 0x100", () => {}, "#GP(0x100)"],
    ["mov ax, 0x20", () => {}, "#GP(0x20)"], // the TSS descriptor
    [`mov ax, ${TSEL}`, (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0x8)), `#GP(0x${TSEL.toString(16)})`],
    [`mov ax, ${TSEL}`, (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0x3, { present: 0 })), `#NP(0x${TSEL.toString(16)})`],
    // RPL 3 > DPL 0 is checked before presence (SDM MOV: "IF RPL > DPL or CPL > DPL THEN #GP(selector)").
    [
      `mov ax, ${TSEL | 3}`,
      (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0x3, { present: 0 })),
      `#GP(0x${TSEL.toString(16)})`,
    ],
  ];
  for (const [load, setup, want] of cases) {
    const { what } = fault(`${load}\ninsn: mov ds, ax`, setup);
    assert.equal(what, want, load);
  }
});

Deno.test("MOV DS/ES: a readable code segment loads; a null selector loads and later use faults #GP(0); LDT selector without LDT → #GP", () => {
  const ok = fault(
    `mov ax, ${TSEL}\nmov es, ax\nmov ebx, [es:0x1000]\ninsn: nop`,
    (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0xa)),
  );
  assert.equal(ok.what, "done");
  const es = ok.g.vcpu.getSregs().es;
  assert.deepEqual([es.selector, es.type], [TSEL, 0xb], "loaded with the accessed bit set");
  assert.equal((ok.g.gdtRead(TEST) >> 40n) & 1n, 1n, "the CPU set the accessed bit in the GDT");
  const nul = fault(`xor eax, eax\nmov ds, ax\ninsn: mov ebx, [0x1000]`, () => {});
  assert.equal(nul.what, "#GP(0x0)");
  assert.equal(nul.g.vcpu.getSregs().ds.unusable, 1);
  const ldt = fault(`mov ax, 0x0c\ninsn: mov ds, ax`, () => {});
  assert.equal(ldt.what, "#GP(0xc)", "the error code keeps the TI bit");
});

Deno.test("MOV SS: null → #GP(0); RPL/DPL != CPL or read-only → #GP(sel); not present → #SS(sel); POP SS/DS faults keep ESP", () => {
  const ro = (g: ReturnType<typeof guest>) => g.gdtEntry(TEST, flatSegment(TSEL, 0x1));
  const np = (g: ReturnType<typeof guest>) => g.gdtEntry(TEST, flatSegment(TSEL, 0x3, { present: 0 }));
  const dpl3 = (g: ReturnType<typeof guest>) => g.gdtEntry(TEST, flatSegment(TSEL, 0x3, { dpl: 3 }));
  const h = (v: number) => `0x${v.toString(16)}`;
  assert.equal(fault(`xor eax, eax\ninsn: mov ss, ax`, () => {}).what, "#GP(0x0)");
  assert.equal(fault(`mov ax, ${TSEL}\ninsn: mov ss, ax`, ro).what, `#GP(${h(TSEL)})`);
  assert.equal(fault(`mov ax, ${TSEL}\ninsn: mov ss, ax`, np).what, `#SS(${h(TSEL)})`);
  assert.equal(fault(`mov ax, ${TSEL}\ninsn: mov ss, ax`, dpl3).what, `#GP(${h(TSEL)})`);
  assert.equal(fault(`mov ax, 0x13\ninsn: mov ss, ax`, () => {}).what, "#GP(0x10)");
  const p = fault(`push 0x100\ninsn: pop ds`, () => {});
  assert.equal(p.what, "#GP(0x100)");
  assert.equal(p.g.stack(5)[4], 0x100n, "ESP at the fault still points at the popped value (above the 4-dword frame)");
  const s = fault(`push ${TSEL}\ninsn: pop ss`, np);
  assert.equal(s.what, `#SS(${h(TSEL)})`);
});

Deno.test("MOV DS at CPL 3 with a DPL-0 data segment → #GP(sel); a DPL-3 one loads", () => {
  const g = guest(`user: mov ax, ${SEL.udata}\nmov ds, ax\nmov ax, 0x10\ninsn: mov ds, ax\nhlt\nh13: hlt`, "protected");
  g.ring3("user");
  g.hltAt("h13");
  const [err, rip] = g.stack(2);
  assert.deepEqual([err, rip], [0x10n, BigInt(g.at("insn"))]);
});

Deno.test("far JMP/CALL/RETF in protected mode: CS loaded from the GDT, CS:EIP pushed, same-privilege return", () => {
  const g = guest(
    `
    jmp ${TSEL}:next
  next:
    mov eax, cs
    call 0x18:func
    mov ecx, cs
    hlt
  func:
    mov ebx, [esp + 4]
    mov edx, cs
    retf`,
    "protected",
  );
  g.gdtEntry(TEST, flatSegment(TSEL, 0xa));
  assert.equal(g.run().reason, "hlt");
  const r = g.vcpu.getRegs();
  assert.deepEqual([r.rax, r.rbx, r.rcx, r.rdx], [BigInt(TSEL), BigInt(TSEL), BigInt(TSEL), 0x18n]);
  assert.equal(r.rsp, BigInt(g.layout.stackTop!));
});

Deno.test("far JMP: data segment or conforming-DPL mismatch → #GP(sel); not present → #NP(sel); null → #GP(0)", () => {
  const h = `0x${TSEL.toString(16)}`;
  assert.equal(fault(`insn: jmp ${TSEL}:done`, (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0x3))).what, `#GP(${h})`);
  assert.equal(
    fault(`insn: jmp ${TSEL}:done`, (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0xa, { present: 0 }))).what,
    `#NP(${h})`,
  );
  assert.equal(
    fault(`insn: jmp ${TSEL}:done`, (g) => g.gdtEntry(TEST, flatSegment(TSEL, 0xa, { dpl: 3 }))).what,
    `#GP(${h})`,
  );
  assert.equal(fault(`insn: jmp 0:done`, () => {}).what, "#GP(0x0)");
});

Deno.test("64-bit: far JMP through memory (m16:32) to a 32-bit segment enters compatibility mode; far RET returns to 64-bit", () => {
  const g = guest(
    `
    jmp far [ptr]
  back:
    mov rbx, cs
    hlt
  ptr:
    dd compat
    dw 0x18
  compat:
    bits 32
    mov esi, cs
    push 0x08
    push back
    retf`,
    "long",
  );
  assert.equal(g.run().reason, "hlt");
  assert.deepEqual([g.reg("rsi"), g.reg("rbx")], [0x18n, 0x08n]);
});

Deno.test("RETF to an outer privilege level pops SS:ESP, loads CPL 3, and nullifies DS/ES that CPL 3 may not use", () => {
  const g = guest(
    `
    push ${SEL.udata}
    push ${USTACK}
    push ${SEL.ucode32}
    push user
    retf
  user:
    mov eax, cs
    mov ebx, ss
    mov ecx, ds
    mov edx, 0x3000
  insn:
    mov [edx], eax
    hlt
  h13: hlt`,
    "protected",
  );
  g.userSegments();
  g.gatesFromLabels();
  g.tss({ sp0: KSTACK });
  g.hltAt("h13");
  const r = g.vcpu.getRegs();
  assert.deepEqual([r.rax, r.rbx, r.rcx], [BigInt(SEL.ucode32), BigInt(SEL.udata), 0n], "DS (DPL 0) nulled");
  // The #GP from ring 3 went through the TSS stack: the frame holds SS:ESP of ring 3.
  const [err, eip, cs, _fl, esp, ss] = g.stack(6);
  assert.deepEqual([err, eip, cs, esp, ss], [
    0n,
    BigInt(g.at("insn")),
    BigInt(SEL.ucode32),
    BigInt(USTACK),
    BigInt(SEL.udata),
  ]);
  assert.equal(r.rsp, BigInt(KSTACK - 24), "ESP0 minus the six-dword frame");
});

Deno.test("protected mode: IRETD to ring 3, INT 0x80 (DPL-3 gate) switches to ESP0/SS0, IRETD back; DPL-0 gate from ring 3 → #GP(vector*8+2)", () => {
  const g = guest(
    `
    push ${SEL.udata}
    push ${USTACK}
    pushfd
    push ${SEL.ucode32}
    push user
    iretd
  user:
    mov eax, 0x1234
    int 0x80
    mov ecx, esp
  insn:
    int 0x81
  after81:
    hlt
  h128:
    mov ebx, esp
    mov esi, ss
    iretd
  h13: hlt`,
    "protected",
  );
  g.userSegments();
  g.gatesFromLabels();
  g.gate(0x80, "h128", { dpl: 3 });
  g.gate(0x81, "h128", { dpl: 0 });
  g.tss({ sp0: KSTACK, ss0: SEL.data });
  g.hltAt("h13");
  const r = g.vcpu.getRegs();
  assert.equal(r.rbx, BigInt(KSTACK - 20), "INT 0x80 frame on the ring-0 stack: EIP CS EFLAGS ESP SS");
  assert.equal(r.rsi, BigInt(SEL.data));
  assert.equal(r.rcx, BigInt(USTACK), "IRETD restored the ring-3 ESP");
  const [err, eip, cs, , esp, ss] = g.stack(6);
  assert.deepEqual([err, eip, cs, esp, ss], [
    0x81n * 8n + 2n,
    BigInt(g.at("insn")),
    BigInt(SEL.ucode32),
    BigInt(USTACK),
    BigInt(SEL.udata),
  ]);
});

Deno.test("IRET privilege rules: at CPL 0 IRET sets IOPL and IF; at CPL 3 it keeps IOPL, and IF follows the image only when CPL <= IOPL", () => {
  const g = guest(
    `
    push ${SEL.udata}
    push ${USTACK}
    push 0x3202
    push ${SEL.ucode32}
    push user
    iretd
  user:
    pushfd
    pop eax
    push ${SEL.udata}
    push ${USTACK}
    push 0x0002
    push ${SEL.ucode32}
    push user2
    iretd
  user2:
    pushfd
    pop ebx
    hlt
  h13: hlt`,
    "protected",
  );
  g.userSegments();
  g.gatesFromLabels();
  g.tss({ sp0: KSTACK });
  // HLT at CPL 3 → #GP.
  g.hltAt("h13");
  const r = g.vcpu.getRegs();
  assert.equal(r.rax & 0x3200n, 0x3200n, "IRET at CPL 0 set IOPL 3 and IF");
  assert.equal(r.rbx & 0x3000n, 0x3000n, "IRET at CPL 3 cannot clear IOPL");
  assert.equal(r.rbx & 0x200n, 0x000n, "IF follows the image when CPL <= IOPL");
});

Deno.test("long mode: IRETQ to ring 3, INT 0x80 → RSP0 (aligned), SS = NULL with RPL 0, 5-qword frame; IST stack; IRETQ back", () => {
  const g = guest(`
    mov rax, rsp
    push ${SEL.udata}
    push ${USTACK + 8}
    pushfq
    push ${SEL.ucode64}
    lea rax, [rip + user]
    push rax
    iretq
  user:
    int 0x80
    mov rcx, rsp
    mov rdx, ss
    int 0x81
  after81:
    hlt
  h128:
    mov rbx, rsp
    mov rsi, ss
    iretq
  h129:
    mov rdi, rsp
  fin:
    hlt
  h13: hlt`);
  g.ring3("user");
  g.vcpu.setSregs({ cs: flatSegment(SEL.code64, 0xb, { l: 1, db: 0 }), ss: flatSegment(SEL.data, 3) });
  g.vcpu.setRegs({ rip: 0x1000n, rsp: BigInt(g.layout.stackTop!) });
  g.gate(0x80, "h128", { dpl: 3 });
  g.gate(0x81, "h129", { dpl: 3, ist: 2 });
  g.tss({ sp0: KSTACK + 8, ist: { 2: 0x60008 } });
  g.hltAt("fin");
  const r = g.vcpu.getRegs();
  assert.equal(r.rbx, BigInt(KSTACK - 40), "RSP0 aligned down to 16, then five qwords");
  assert.equal(r.rsi, 0n, "SS = NULL selector with RPL = new CPL (0)");
  assert.equal(r.rcx, BigInt(USTACK + 8), "IRETQ restored the ring-3 RSP");
  assert.equal(r.rdx, BigInt(SEL.udata));
  assert.equal(r.rdi, BigInt(0x60000 - 40), "IST2 used, aligned");
  const [rip, cs, , rsp, ss] = g.stack(5);
  assert.deepEqual([cs, rsp, ss], [BigInt(SEL.ucode64), BigInt(USTACK + 8), BigInt(SEL.udata)]);
  assert.equal(rip, BigInt(g.at("after81")), "return RIP after INT 0x81");
  assert.equal(g.vcpu.getSregs().cs.dpl, 0);
});

Deno.test("long mode, same privilege: INT n pushes SS:RSP too and IRETQ pops them; IF cleared by an interrupt gate, kept by a trap gate", () => {
  const g = guest(`
    mov rsp, 0x8008
    sti
    int 0x40
    pushfq
    pop rcx
    int 0x41
    hlt
  h64:
    mov rbx, rsp
    pushfq
    pop rax
    iretq
  h65:
    pushfq
    pop rdx
  fin:
    hlt`);
  g.gate(0x40, "h64");
  g.gate(0x41, "h65", { type: 0xf });
  g.hltAt("fin");
  const r = g.vcpu.getRegs();
  assert.equal(r.rbx, 0x8000n - 40n);
  assert.equal(r.rax & 0x200n, 0n, "interrupt gate cleared IF");
  assert.equal(r.rcx & 0x200n, 0x200n, "IRETQ restored IF");
  assert.equal(r.rdx & 0x200n, 0x200n, "trap gate kept IF");
  const [, , , rsp, ss] = g.stack(5);
  assert.deepEqual([rsp, ss], [0x8008n, BigInt(SEL.data)], "the saved RSP is the one before the alignment");
});

Deno.test("#DF: a #GP whose IDT entry is empty (→ #GP again, contributory) becomes #DF with error 0; no #DF gate → shutdown", () => {
  const src = `insn: mov ax, 0x100\nmov ds, ax\nhlt\nh8: hlt`;
  const g = guest(src, "protected");
  g.gatesFromLabels();
  g.hltAt("h8");
  assert.equal(g.stack(1)[0], 0n);
  const t = guest(src, "protected");
  assert.equal(t.run().reason, "shutdown");
  const l = guest(`xor eax, eax\nmov [rax - 1], eax\nhlt\nh8: hlt`);
  l.gatesFromLabels();
  // A #PF (canonical but unmapped address 0xffff…fffc → not present) with gate 14 absent: #PF → #NP → #DF.
  l.hltAt("h8");
});

Deno.test("gate checks: type before presence (empty entry → #GP), P = 0 → #NP(vector*8+2+EXT); a benign fault then is no #DF", () => {
  for (const mode of ["protected", "long"] as const) {
    const g = guest(`insn: ud2\nhlt\nh11: hlt\nh13: hlt`, mode);
    g.gatesFromLabels();
    g.gate(6, "h11", { present: false });
    g.hltAt("h11");
    const [err, eip] = g.stack(2);
    assert.deepEqual([err, eip], [6n * 8n + 3n, BigInt(g.at("insn"))], mode);
    const e = guest(`insn: ud2\nhlt\nh11: hlt\nh13: hlt`, mode);
    e.gatesFromLabels();
    e.hltAt("h13");
    assert.deepEqual(e.stack(2), [6n * 8n + 3n, BigInt(e.at("insn"))], mode);
    // #NP during the delivery of a contributory #GP: #DF.
    const d = guest(`insn: mov ax, 0x100\nmov ds, ax\nhlt\nh8: hlt\nh11: hlt`, mode);
    d.gatesFromLabels();
    d.gate(13, "h11", { present: false });
    d.hltAt("h8");
  }
});

Deno.test("INT n past the IDT limit → #GP(vector*8+2); INT3 and INTO are traps (frame RIP after the instruction)", () => {
  const g = guest(`insn: int 0x99\nhlt\nh13: hlt`, "protected");
  g.gatesFromLabels();
  g.vcpu.setSregs({ idt: { base: BigInt(g.layout.idt!), limit: 0x98 * 8 + 7 } });
  g.hltAt("h13");
  assert.deepEqual(g.stack(2), [0x99n * 8n + 2n, BigInt(g.at("insn"))]);
  const b = guest(`int3\nafter: hlt\nh3: hlt`, "protected");
  b.gatesFromLabels();
  b.hltAt("h3");
  assert.equal(b.stack(1)[0], BigInt(b.at("after")));
  const o = guest(`mov al, 0x7f\nadd al, 1\ninto\nafter: hlt\nh4: hlt`, "protected");
  o.gatesFromLabels();
  o.hltAt("h4");
  assert.equal(o.stack(1)[0], BigInt(o.at("after")));
});

Deno.test("RETF to an outer level with a bad SS: #GP(SS selector) at the RETF with CS and ESP unchanged", () => {
  const g = guest(
    `
    push 0x100
    push ${USTACK}
    push ${SEL.ucode32}
    push user
  insn:
    retf
  user:
    hlt
  h13: hlt`,
    "protected",
  );
  g.userSegments();
  g.gatesFromLabels();
  g.hltAt("h13");
  const frame = g.stack(5);
  assert.deepEqual(frame.slice(0, 3), [0x100n, BigInt(g.at("insn")), 0x18n], "CS at the fault is still the ring-0 one");
  assert.equal(frame[4], BigInt(g.at("user")), "ESP at the fault still points at the RETF's frame");
});
