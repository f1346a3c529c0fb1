/**
 * MOV CRn (reserved bits, PG without PE, long-mode activation via EFER.LME +
 * CR0.PG), MOV DRn (DR4/DR5 aliasing with CR4.DE), LGDT/LIDT/SGDT/SIDT,
 * LMSW/SMSW/CLTS, INVLPG, XGETBV/XSETBV, through the public API.
 * Rules: Linux arch/x86/kvm/x86.c kvm_set_cr0/kvm_set_cr3/kvm_set_cr4/kvm_set_dr/
 * __kvm_set_xcr, Intel SDM vol. 3 §2.5 and the instruction pages.
 */
import assert from "node:assert/strict";
import { identityMapLow4G } from "../src/x86/setup.ts";
import { guest, SEL } from "./x86_sys_harness.ts";

/** Runs `body` at CPL 0 in `mode` with a #GP handler (h13) and a #UD handler (h6); `insn:` marks the faulting instruction. */
const withHandlers = (body: string, mode: "long" | "protected" = "long") => {
  const g = guest(`${body}\ndone: hlt\nh6: hlt\nh13: hlt`, mode);
  g.gatesFromLabels();
  return g;
};

/** The fault taken: "h13" with error code, "h6", or "done". */
function outcome(g: ReturnType<typeof withHandlers>): string {
  const e = g.run();
  assert.equal(e.reason, "hlt", `got ${e.reason}`);
  const at = Number(g.rip) - 1;
  if (at === g.at("done")) return "done";
  if (at === g.at("h6")) {
    assert.equal(g.stack(1)[0], BigInt(g.at("insn")), "#UD at the instruction");
    return "ud";
  }
  assert.equal(at, g.at("h13"), `hlt at 0x${at.toString(16)}`);
  const [err, rip] = g.stack(2);
  assert.equal(rip, BigInt(g.at("insn")), "#GP at the instruction");
  return `gp(${err})`;
}

Deno.test("MOV CR0: PG without PE, NW without CD, bits 63:32 → #GP(0); CR0 unchanged", () => {
  for (const [v, why] of [["0x80000010", "PG without PE"], ["0x20000011", "NW without CD"]] as const) {
    const g = withHandlers(`mov eax, ${v}\ninsn: mov cr0, eax`, "protected");
    assert.equal(outcome(g), "gp(0)", why);
    assert.equal(g.vcpu.getSregs().cr0, 0x11n);
  }
  const g = withHandlers(`mov rax, cr0\nbts rax, 32\ninsn: mov cr0, rax`);
  assert.equal(outcome(g), "gp(0)");
  // ET is hardwired to 1 (KVM: cr0 |= X86_CR0_ET).
  const h = withHandlers(`mov eax, 0x1\ninsn: mov cr0, eax\nmov ebx, cr0`, "protected");
  assert.equal(outcome(h), "done");
  assert.equal(h.reg("rbx"), 0x11n);
});

Deno.test("MOV CR4: reserved bits (LA57, bit 31) and PAE clear in long mode → #GP(0); CR1/CR5 → #UD", () => {
  for (const bit of [12, 31, 5]) {
    const g = withHandlers(`mov rax, cr4\n${bit === 5 ? "btr" : "bts"} rax, ${bit}\ninsn: mov cr4, rax`);
    assert.equal(outcome(g), "gp(0)", `CR4 bit ${bit}`);
  }
  // mov cr1, rax (0f 22 c8) / mov rax, cr5 (0f 20 e8) — the assembler has no CR1/CR5.
  for (const bytes of ["0x0f, 0x22, 0xc8", "0x0f, 0x20, 0xe8"]) {
    const g = withHandlers(`insn: db ${bytes}`);
    assert.equal(outcome(g), "ud", bytes);
  }
});

Deno.test("MOV CR3: bits above MAXPHYADDR and bit 63 without CR4.PCIDE → #GP(0); CR8 > 15 → #GP(0)", () => {
  const a = withHandlers(`mov rax, cr3\nbts rax, 50\ninsn: mov cr3, rax`);
  assert.equal(outcome(a), "gp(0)", "bit 50 with MAXPHYADDR 48");
  const b = withHandlers(`mov rax, cr3\nbts rax, 63\ninsn: mov cr3, rax`);
  assert.equal(outcome(b), "gp(0)", "bit 63 (PCID no-flush) without PCIDE");
  const c = withHandlers(`mov eax, 16\ninsn: mov cr8, rax`);
  assert.equal(outcome(c), "gp(0)");
  const d = withHandlers(`mov eax, 9\ninsn: mov cr8, rax\nmov rbx, cr8`);
  assert.equal(outcome(d), "done");
  assert.equal(d.reg("rbx"), 9n);
  assert.equal(d.vcpu.getSregs().cr8, 9n);
});

Deno.test("MOV CRn / DRn at CPL 3 → #GP(0)", () => {
  for (const insn of ["mov cr0, rax", "mov rax, cr3", "mov rax, dr7", "mov dr0, rax"]) {
    const g = guest(`user: insn: ${insn}\nhlt\nh13: hlt`);
    g.ring3("user");
    g.hltAt("h13");
    assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))], insn);
  }
});

Deno.test("long-mode activation: PAE + EFER.LME + CR0.PG sets EFER.LMA (compatibility mode), a far JMP enters 64-bit mode", () => {
  // The default 16 MiB guest: reserved area at 15 MiB, PML4 at its start (setup.ts LAYOUT).
  const g = guest(
    `
  PML4 equ 0xf00000
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, PML4
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov ecx, 0xc0000080
    rdmsr
    mov esi, eax
    jmp 0x08:long64
  long64:
    bits 64
    mov rbx, 0x123456789
    hlt`,
    "protected",
  );
  assert.equal(identityMapLow4G(g.vm, g.layout.reservedBase), 0xf00000);
  assert.equal(g.run().reason, "hlt");
  const r = g.vcpu.getRegs();
  assert.equal(r.rsi & 0x500n, 0x500n, "LME and LMA read back after CR0.PG");
  assert.equal(r.rbx, 0x123456789n, "64-bit code ran");
  const s = g.vcpu.getSregs();
  assert.equal(s.efer & 0x500n, 0x500n);
  assert.equal(s.cs.selector, SEL.code64);
  assert.equal(s.cs.l, 1);
});

Deno.test("long-mode activation refused: CR0.PG with LME but no PAE → #GP; clearing PG in 64-bit mode → #GP; WRMSR EFER.LME with PG on → #GP", () => {
  const a = withHandlers(
    `
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000
  insn:
    mov cr0, eax`,
    "protected",
  );
  assert.equal(outcome(a), "gp(0)");
  assert.equal(a.vcpu.getSregs().efer & 0x400n, 0n, "LMA stays clear");
  const b = withHandlers(`mov rax, cr0\nbtr eax, 31\ninsn: mov cr0, rax`);
  assert.equal(outcome(b), "gp(0)");
  const c = withHandlers(`mov ecx, 0xc0000080\nrdmsr\nbtr eax, 8\ninsn: wrmsr`);
  assert.equal(outcome(c), "gp(0)");
});

Deno.test("MOV DRn: DR4/DR5 alias DR6/DR7 with CR4.DE = 0, #UD with CR4.DE = 1; fixed bits; DR6/DR7 bits 63:32 → #GP", () => {
  const g = withHandlers(`
    mov eax, 0x1
    mov dr5, rax
    mov rbx, dr7
    mov rcx, dr4
    mov rax, 0x12345678
    mov dr0, rax
    mov rdx, dr0
    mov rax, cr4
    or eax, 8
    mov cr4, rax
  insn:
    mov rax, dr4`);
  assert.equal(outcome(g), "ud");
  const r = g.vcpu.getRegs();
  assert.equal(r.rbx, 0x401n, "DR7 written through DR5, bit 10 reads as 1");
  assert.equal(r.rcx, 0xffff0ff0n, "DR6 through DR4: the fixed-1 bits");
  assert.equal(r.rdx, 0x12345678n);
  assert.equal(g.vcpu.getDebugRegs().dr7, 0x401n);
  for (const dr of ["dr6", "dr7"]) {
    const h = withHandlers(`mov rax, 1\nshl rax, 40\ninsn: mov ${dr}, rax`);
    assert.equal(outcome(h), "gp(0)", dr);
  }
});

Deno.test("LGDT/LIDT/SGDT/SIDT: 10-byte operands in 64-bit mode, 6-byte in 32-bit; 16-bit operand size keeps 24 base bits", () => {
  const g = guest(`
    sgdt [0x3000]
    sidt [0x3010]
    lgdt [desc]
    sgdt [0x3020]
    lidt [desc]
    sidt [0x3030]
    hlt
  desc:
    dw 0x1ff
    dq 0x123456789abc`);
  const before = g.vcpu.getSregs();
  assert.equal(g.run().reason, "hlt");
  const r16 = (a: number) => g.vm.readGuest(a, 2).reduceRight((x, b) => x * 256 + b, 0);
  assert.deepEqual([r16(0x3000), g.vm.read64(0x3002)], [before.gdt.limit, before.gdt.base]);
  assert.deepEqual([r16(0x3010), g.vm.read64(0x3012)], [before.idt.limit, before.idt.base]);
  assert.deepEqual([r16(0x3020), g.vm.read64(0x3022)], [0x1ff, 0x123456789abcn]);
  const s = g.vcpu.getSregs();
  assert.deepEqual([s.gdt.limit, s.gdt.base, s.idt.limit, s.idt.base], [
    0x1ff,
    0x123456789abcn,
    0x1ff,
    0x123456789abcn,
  ]);

  const p = guest(
    `
    lgdt [desc]
    sgdt [0x3000]
    o16 lidt [desc]
    hlt
  desc:
    dw 0x2f
    dd 0xaabbccdd`,
    "protected",
  );
  assert.equal(p.run().reason, "hlt");
  const ps = p.vcpu.getSregs();
  assert.equal(ps.gdt.base, 0xaabbccddn);
  assert.equal(ps.idt.base, 0xbbccddn, "16-bit operand size: 24-bit base");
  assert.equal(ps.idt.limit, 0x2f);
  assert.equal(p.vm.read64(0x3000) & 0xffffffffffffn, 0xaabbccdd002fn);
});

Deno.test("LGDT with a non-canonical base → #GP(0); LGDT at CPL 3 → #GP(0); SGDT at CPL 3 is allowed (no UMIP)", () => {
  const a = withHandlers(`insn: lgdt [desc]\njmp done\ndesc: dw 0x2f\ndq 0x0000800000000000`);
  assert.equal(outcome(a), "gp(0)");
  const b = guest(`user: sgdt [0x3000]\ninsn: lgdt [0x3000]\nhlt\nh13: hlt`);
  b.ring3("user");
  b.hltAt("h13");
  assert.deepEqual(b.stack(2), [0n, BigInt(b.at("insn"))]);
  assert.equal(b.vm.read64(0x3002), BigInt(b.layout.gdt!));
});

Deno.test("LMSW sets MP/EM/TS and PE but never clears PE; SMSW to a register and memory; CLTS clears TS", () => {
  const g = guest(`
    mov eax, 0xe
    lmsw ax
    smsw ebx
    xor eax, eax
    lmsw ax
    smsw word [0x3000]
    mov eax, 0xf
    lmsw ax
    clts
    mov rcx, cr0
    hlt`);
  assert.equal(g.run().reason, "hlt");
  const cr0 = 0x80010031n; // PG WP NE ET PE from the long-mode setup
  const r = g.vcpu.getRegs();
  assert.equal(r.rbx, cr0 | 0xen);
  assert.equal(g.vm.readGuest(0x3000, 2)[0], 0x31, "PE kept by LMSW 0");
  assert.equal(r.rcx, cr0 | 0x6n, "CLTS cleared TS only");
  const p = guest(
    `mov eax, cr0\nand eax, 0x7ffffffe\nmov cr0, eax\nmov eax, 1\nlmsw ax\nmov ebx, cr0\nhlt`,
    "protected",
  );
  assert.equal(p.run().reason, "hlt");
  assert.equal(p.reg("rbx") & 1n, 1n, "LMSW can set PE");
});

Deno.test("LMSW/CLTS at CPL 3 → #GP(0); SMSW at CPL 3 is allowed", () => {
  for (const insn of ["lmsw ax", "clts"]) {
    const g = guest(`user: smsw ebx\ninsn: ${insn}\nhlt\nh13: hlt`);
    g.ring3("user");
    g.hltAt("h13");
    assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))], insn);
    assert.equal(g.reg("rbx"), 0x80010031n);
  }
});

Deno.test("INVLPG drops the stale translation after a PTE change; at CPL 3 → #GP(0)", () => {
  // PD entry for 1 GiB .. 1 GiB + 2 MiB (PD 1, entry 0 of the identity map at 15 MiB); the guest repoints it.
  const g = guest(`
  PDE equ 0xf03000
    mov rax, [0x40000000]
    mov rbx, PDE
    mov qword [rbx], 0x40200083
    invlpg [0x40000000]
    mov rcx, [0x40000000]
    hlt`);
  assert.equal(g.layout.reservedBase + 0x3000, 0xf03000);
  g.vm.addMemoryRegion({ slot: 1, gpa: 0x40000000, pages: 1024 });
  g.vm.write64(0x40000000, 0x1111n);
  g.vm.write64(0x40200000, 0x2222n);
  assert.equal(g.run().reason, "hlt");
  assert.deepEqual([g.reg("rax"), g.reg("rcx")], [0x1111n, 0x2222n]);
  const u = guest(`user: insn: invlpg [0x1000]\nhlt\nh13: hlt`);
  u.ring3("user");
  u.hltAt("h13");
  assert.deepEqual(u.stack(2), [0n, BigInt(u.at("insn"))]);
});

Deno.test("XGETBV/XSETBV: #UD without CR4.OSXSAVE; ECX != 0, no x87, unsupported bits, CPL 3 → #GP(0); XCR0 = 1 works", () => {
  const a = withHandlers(`xor ecx, ecx\ninsn: xgetbv`);
  assert.equal(outcome(a), "ud");
  const osx = `mov rax, cr4\nbts rax, 18\nmov cr4, rax\n`;
  const cases: [string, string][] = [
    ["mov ecx, 1\ninsn: xgetbv", "gp(0)"], // XINUSE needs CPUID.(0DH,1).EAX[2]
    ["xor ecx, ecx\nxor eax, eax\nxor edx, edx\ninsn: xsetbv", "gp(0)"],
    ["xor ecx, ecx\nmov eax, 3\nxor edx, edx\ninsn: xsetbv", "gp(0)"], // SSE not in CPUID.(0DH,0)
    ["xor ecx, ecx\nmov eax, 5\nxor edx, edx\ninsn: xsetbv", "gp(0)"], // AVX without SSE
    ["mov ecx, 1\nmov eax, 1\nxor edx, edx\ninsn: xsetbv", "gp(0)"],
    ["xor ecx, ecx\nmov eax, 1\nxor edx, edx\nxsetbv\nmov eax, 7\nxgetbv\ninsn: nop", "done"],
  ];
  for (const [body, want] of cases) {
    const g = withHandlers(osx + body);
    assert.equal(outcome(g), want, body);
    if (want === "done") assert.deepEqual([g.reg("rax"), g.reg("rdx"), g.vcpu.getXcr0()], [1n, 0n, 1n]);
  }
  // A table without leaf 0xD: only x87 (KVM: guest_supported_xcr0 = 0, valid bits = FP).
  const t = withHandlers(osx + "xor ecx, ecx\nmov eax, 3\nxor edx, edx\ninsn: xsetbv");
  t.vm.setCpuid(t.vm.getCpuid().filter((e) => e.function !== 0xd));
  assert.equal(outcome(t), "gp(0)");
  const u = guest(`user: xor ecx, ecx\nmov eax, 1\nxor edx, edx\ninsn: xsetbv\nhlt\nh13: hlt`);
  u.vcpu.setSregs({ cr4: u.vcpu.getSregs().cr4 | 0x40000n });
  u.ring3("user");
  u.hltAt("h13");
});
