/**
 * Control flow, stack and string instructions through the real run(): Jcc/JMP/
 * CALL/RET forms, LOOP family with the address-size counter, PUSH/POP forms,
 * PUSHA/POPA, ENTER/LEAVE, PUSHF/POPF, REP string ops (direction, REPE/REPNE,
 * restartable after a #PF mid-way), memory RMW ops, #DE/#PF precision.
 * Refresh bytes: deno run -A tests/oracle/fill_snippets.ts tests/x86_core_flow_test.ts
 */
import assert from "node:assert/strict";
import { CODE, code, CoreVm, DATA, HOLE, KVM_EXIT_HLT } from "./x86_core_harness.ts";

Deno.test("dec/jnz loop, Jcc rel32, JMP r/m, CALL/RET, RET imm16 (64-bit)", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov ecx, 1000
  l1:
    dec ecx
    jnz l1
    xor eax, eax
    cmp eax, 1
    jl far1
    hlt
    .skip 200, 0x90
  far1:
    lea rbx, [rip + t2]
    jmp rbx
    hlt
  t2:
    push 7
    call f
    add rax, 1
    hlt
  f:
    mov rax, [rsp + 8]
    ret 8
  `,
    "b9e8030000ffc975fc31c083f8010f8cc9000000f49090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090488d1d03000000ffe3f46a07e8050000004883c001f4488b442408c20800",
  ));
  const o = c.run();
  assert.equal(o.kind, "hlt");
  assert.equal(c.reg("rcx"), 0n);
  assert.equal(c.reg("rax"), 8n);
  assert.equal(c.reg("rsp"), 0x7000n);
  // mov + 1000 × (dec, jnz) + xor/cmp/jl (over the NOPs) + lea/jmp + push/call + mov/ret + add + hlt:
  // every retired instruction counted exactly once (fast path and general path alike).
  assert.equal(c.vm.get64("instructions"), 2012n);
});

Deno.test("LOOP/LOOPE/LOOPNE/JECXZ/JRCXZ: counter at the address size (67 → ECX)", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rcx, 5
    xor eax, eax
  a: inc eax
    loop a
    mov rcx, 0x100000003
    xor ebx, ebx
  b: inc ebx
    addr32 loop b
    mov rdx, rcx
    mov rcx, 10
    xor esi, esi
  c: inc esi
    cmp esi, 4
    loopne c
    xor ecx, ecx
    jrcxz d
    hlt
  d: mov edi, 1
    hlt
  `,
    "48c7c10500000031c0ffc0e2fc48b9030000000100000031dbffc367e2fb4889ca48c7c10a00000031f6ffc683fe04e0f931c9e301f4bf01000000f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 5n);
  assert.equal(c.reg("rbx"), 3n);
  assert.equal(c.reg("rdx"), 0n); // ECX written as a 32-bit register (checked natively: upper half cleared)
  assert.equal(c.reg("rsi"), 4n);
  assert.equal(c.reg("rdi"), 1n);
});

Deno.test("16-bit code: IP wraps in 16 bits for near jumps, CALL/RET push 16-bit values", () => {
  const c = new CoreVm("real");
  c.load(code(
    16,
    `
    call f
    mov bx, sp
    hlt
  f:
    mov ax, 0x1234
    ret
  `,
    "e8030089e3f4b83412c3",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 0x1234n);
  assert.equal(c.reg("rbx"), 0x7000n);
  assert.equal(c.peek(0x7000 - 2, 2), BigInt(CODE + 3));
});

Deno.test("PUSHA/POPA, ENTER/LEAVE, PUSHF/POPF, push esp, pop to memory (32-bit)", () => {
  const c = new CoreVm("prot");
  c.load(code(
    32,
    `
    mov eax, 1
    mov ecx, 2
    mov edx, 3
    mov ebx, 4
    mov ebp, 5
    mov esi, 6
    mov edi, 7
    pusha
    mov eax, [esp + 12]
    xor ecx, ecx
    xor edx, edx
    popa
    push esp
    pop dword ptr [0x8000]
    enter 16, 0
    mov dword ptr [ebp - 4], 0x55
    leave
    stc
    pushfd
    pop dword ptr [0x8004]
    push 0x8d5
    popfd
    hlt
  `,
    "b801000000b902000000ba03000000bb04000000bd05000000be06000000bf07000000608b44240c31c931d261548f0500800000c8100000c745fc55000000c9f99c8f050480000068d50800009df4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rcx"), 2n);
  assert.equal(c.reg("rdx"), 3n);
  assert.equal(c.reg("rax"), 1n);
  assert.equal(c.peek(DATA, 4), 0x7000n);
  assert.equal(c.reg("rsp"), 0x7000n);
  assert.equal(c.reg("rbp"), 5n);
  assert.equal(c.peek(0x7000 - 4 - 4, 4), 0x55n);
  assert.equal(c.peek(DATA + 4, 4) & 1n, 1n);
  assert.equal(c.reg("rflags") & 0xfffn, 0x8d7n);
});

Deno.test("REP MOVSB/STOSD forward and backward, REPE CMPSB stops at a mismatch, REPNE SCASB", () => {
  const c = new CoreVm("long");
  c.vm.write(DATA, [...new TextEncoder().encode("hello, world")]);
  c.load(code(
    64,
    `
    mov rsi, 0x8000
    mov rdi, 0x9000
    mov rcx, 12
    rep movsb
    mov r8, rcx
    mov eax, 0xabcdef01
    mov rdi, 0x9100
    mov ecx, 4
    rep stosd
    std
    mov rsi, 0x800b
    mov rdi, 0x920b
    mov ecx, 12
    rep movsb
    cld
    mov rsi, 0x8000
    mov rdi, 0x9000
    mov byte ptr [0x9005], 0x21
    mov ecx, 12
    repe cmpsb
    mov r9, rcx
    mov r10, rsi
    mov al, 0x7a
    mov rdi, 0x8000
    mov ecx, 12
    repne scasb
    mov r11, rcx
    hlt
  `,
    "48c7c60080000048c7c70090000048c7c10c000000f3a44989c8b801efcdab48c7c700910000b904000000f3abfd48c7c60b80000048c7c70b920000b90c000000f3a4fc48c7c60080000048c7c700900000c604250590000021b90c000000f3a64989c94989f2b07a48c7c700800000b90c000000f2ae4989cbf4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(new TextDecoder().decode(c.vm.read(0x9000, 12)), "hello! world");
  assert.equal(c.reg("r8"), 0n);
  for (let i = 0; i < 4; i++) assert.equal(c.peek(0x9100 + 4 * i, 4), 0xabcdef01n);
  assert.equal(new TextDecoder().decode(c.vm.read(0x9200, 12)), "hello, world");
  assert.equal(c.reg("r9"), 6n); // stopped after comparing index 5
  assert.equal(c.reg("r10"), 0x8006n);
  assert.equal(c.reg("r11"), 0n); // not found: ran to the end
});

Deno.test("REP STOSB faulting mid-way (#PF) leaves RDI/RCX at the remaining work and RIP on the instruction", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rdi, 0x200ff0
    mov ecx, 0x40
    mov al, 0x5a
    rep stosb
    hlt
  `,
    "48c7c7f00f2000b940000000b05af3aaf4",
  ));
  const o = c.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 14);
  assert.equal(o.faultRip, BigInt(CODE + 14)); // the REP STOSB (after 7 + 5 + 2 bytes)
  assert.equal(c.reg("rdi"), BigInt(HOLE));
  assert.equal(c.reg("rcx"), 0x30n);
  assert.equal(c.vm.get64("cr2"), BigInt(HOLE));
  assert.equal(c.peek(0x200fff, 1), 0x5an);
});

Deno.test("a faulting memory RMW commits nothing: ADC to a not-present page keeps flags and registers", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rbx, 0x201008
    stc
    mov eax, 5
    adc dword ptr [rbx], eax
    hlt
  `,
    "48c7c308102000f9b8050000001103f4",
  ));
  const o = c.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 14);
  assert.equal(o.faultRip, BigInt(CODE + 13));
  // Carry still set: the ADC did not run.
  const c2 = new CoreVm("long");
  c2.load(code(
    64,
    `
    stc
    mov rbx, 0x201008
    adc dword ptr [rbx], eax
  `,
    "f948c7c3081020001103",
  ));
  const o2 = c2.run();
  assert.equal(o2.kind, "exception");
  // The handler frame holds RFLAGS after RIP and CS.
  const sp = Number(c2.reg("rsp"));
  assert.equal(c2.peek(sp + 8 + 16, 8) & 1n, 1n);
});

Deno.test("#DE is a fault: RIP of the DIV, RAX/RDX unchanged", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov eax, 10
    xor edx, edx
    xor ebx, ebx
    div ebx
    hlt
  `,
    "b80a00000031d231dbf7f3f4",
  ));
  const o = c.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 0);
  assert.equal(o.faultRip, BigInt(CODE + 9));
  assert.equal(c.reg("rax"), 10n);
});

Deno.test("memory forms: XCHG, XADD, CMPXCHG, CMPXCHG8B/16B, BTS with a register offset beyond the operand, SETcc, CMOV", () => {
  const c = new CoreVm("long");
  c.poke(DATA, 8, 100);
  c.poke(DATA + 0x20, 8, 0x1111);
  c.poke(DATA + 0x40, 8, 0x2222);
  c.poke(DATA + 0x48, 8, 0x3333);
  c.load(code(
    64,
    `
    mov eax, 5
    xchg [0x8000], eax
    mov ebx, 7
    lock xadd [0x8000], ebx
    mov eax, 0x1111
    mov ecx, 0x9999
    cmpxchg [0x8020], ecx
    setz r8b
    mov eax, 0
    cmpxchg [0x8020], ecx
    setz r9b
    mov eax, 0x2222
    xor edx, edx
    mov ebx, 0x44
    xor ecx, ecx
    cmpxchg8b [0x8040]
    mov r10, [0x8040]
    mov rax, 0x2222
    mov rdx, 0x3333
    mov rbx, 1
    mov rcx, 2
    cmpxchg16b [0x8040]
    mov r11, 0x80*8 + 3
    bts dword ptr [0x8000], r11d
    mov r12, -1
    bts qword ptr [0x8100], r12
    mov r13, 0x1234567800000000
    cmp eax, eax
    cmovne r13d, eax
    hlt
  `,
    "b80500000087042500800000bb07000000f00fc11c2500800000b811110000b9999900000fb10c2520800000410f94c0b8000000000fb10c2520800000410f94c1b82222000031d2bb4400000031c90fc70c25408000004c8b14254080000048c7c02222000048c7c23333000048c7c30100000048c7c102000000480fc70c254080000049c7c303040000440fab1c250080000049c7c4ffffffff4c0fab24250081000049bd000000007856341239c0440f45e8f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.peek(DATA, 4), 12n);
  assert.equal(c.reg("r8"), 1n);
  assert.equal(c.reg("r9"), 0n);
  assert.equal(c.reg("r10"), 0x44n);
  assert.equal(c.reg("rax"), 0x44n); // CMPXCHG16B mismatch loads RDX:RAX
  assert.equal(c.reg("rdx"), 0x3333n);
  assert.equal(c.peek(0x8080, 1), 8n); // bit 0x403 of the dword at 0x8000 = bit 3 of byte 0x8080
  assert.equal(c.peek(0x80ff, 1), 0x80n); // bit -1 of [0x8100] = bit 63 of the qword at 0x80f8
  assert.equal(c.reg("r13"), 0n); // CMOV with a false condition still zero-extends the 32-bit destination
});

Deno.test("real-mode string ops use SI/DI/CX (16-bit) and DS:SI with an override, ES:DI fixed", () => {
  const c = new CoreVm("real");
  c.vm.setSeg("es", { base: 0x20000n, limit: 0xffff, selector: 0x2000, type: 3, s: 1, present: 1 });
  c.vm.setSeg("fs", { base: 0x30000n, limit: 0xffff, selector: 0x3000, type: 3, s: 1, present: 1 });
  c.vm.write(0x30000 + 0x10, [1, 2, 3, 4]);
  c.load(code(
    16,
    `
    mov si, 0x10
    mov di, 0xfffe
    mov cx, 4
    rep movsb es:[di], fs:[si]
    hlt
  `,
    "be1000bffeffb9040064f3a4f4",
  ));
  c.set({ rsi: 0x12340000n, rdi: 0x56780000n, rcx: 0xabcd0000n });
  assert.equal(c.run().kind, "hlt");
  assert.deepEqual([...c.vm.read(0x20000 + 0xfffe, 2)], [1, 2]);
  assert.deepEqual([...c.vm.read(0x20000, 2)], [3, 4]); // DI wrapped at 64 KiB
  assert.equal(c.reg("rsi"), 0x12340014n);
  assert.equal(c.reg("rdi"), 0x56780002n);
  assert.equal(c.reg("rcx"), 0xabcd0000n);
  void KVM_EXIT_HLT;
});

Deno.test("real mode: INT n through the IVT (trap: the frame holds the next IP), far JMP/CALL/RETF, IRET", () => {
  const c = new CoreVm("real");
  // Handler for INT 0x40 at 0x3000: inc si; iret.
  c.poke(0x40 * 4, 2, 0x3000);
  c.poke(0x40 * 4 + 2, 2, 0);
  c.vm.write(0x3000, [0x46, 0xcf]);
  // Far target 0x0200:0x0010 (linear 0x2010): mov di, cs; retf.
  c.vm.write(0x2010, [0x8c, 0xcf, 0xcb]);
  c.load(code(
    16,
    `
    int 0x40
    int 0x40
    call 0x0200:0x0010
    mov bx, cs
    jmp 0x0000:0x1020
    .org 0x20
    mov dx, 0x77
    hlt
  `,
    "cd40cd409a100000028ccbea2010000000000000000000000000000000000000ba7700f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rsi"), 2n);
  assert.equal(c.reg("rdi"), 0x200n);
  assert.equal(c.reg("rbx"), 0n);
  assert.equal(c.reg("rdx"), 0x77n);
  assert.equal(c.reg("rsp"), 0x7000n);
});

Deno.test("CALL/JMP to a non-canonical address: #GP(0) at the branch, RSP unchanged", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rax, 0x0000800000000000
    call rax
    hlt
  `,
    "48b80000000000800000ffd0f4",
  ));
  const o = c.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 13);
  assert.equal(o.faultRip, BigInt(CODE + 10));
  const sp = Number(c.reg("rsp"));
  assert.equal(c.peek(sp, 8), 0n); // error code
  assert.equal(c.peek(sp + 32, 8), 0x7000n); // the interrupted RSP: nothing was pushed
});

Deno.test("memory read-modify-write forms: shifts, rotates, INC, NEG, NOT, group 1 immediates, SHRD, BTC", () => {
  const c = new CoreVm("prot");
  c.poke(DATA, 4, 0x80000001);
  c.poke(DATA + 4, 1, 0x12);
  c.poke(DATA + 6, 2, 0xffff);
  c.poke(DATA + 8, 4, 5);
  c.poke(DATA + 0xc, 4, 0);
  c.poke(DATA + 0x10, 4, 0x11111111);
  c.poke(DATA + 0x14, 2, 1);
  c.poke(DATA + 0x18, 4, 0x12345678);
  c.poke(DATA + 0x1c, 4, 0x80000000);
  c.load(code(
    32,
    `
    shl dword ptr [0x8000], 1
    setc al
    seto ah
    rol byte ptr [0x8004], 4
    inc word ptr [0x8006]
    setz cl
    neg dword ptr [0x8008]
    setc ch
    not dword ptr [0x800c]
    add dword ptr [0x8010], 0x12345678
    sub word ptr [0x8014], 3
    setc dl
    mov ebx, 0xabcdef01
    shrd dword ptr [0x8018], ebx, 8
    btc dword ptr [0x801c], 31
    setc dh
    hlt
  `,
    "d125008000000f92c00f90c4c005048000000466ff05068000000f94c1f71d088000000f92c5f7150c8000008105108000007856341266832d14800000030f92c2bb01efcdab0fac1d18800000080fba3d1c8000001f0f92c6f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.peek(DATA, 4), 2n);
  assert.equal(c.reg("rax") & 0xffffn, 0x0101n); // CF = 1, OF = 1
  assert.equal(c.peek(DATA + 4, 1), 0x21n);
  assert.equal(c.peek(DATA + 6, 2), 0n);
  assert.equal(c.reg("rcx") & 0xffffn, 0x0101n); // ZF after INC, CF after NEG
  assert.equal(c.peek(DATA + 8, 4), 0xfffffffbn);
  assert.equal(c.peek(DATA + 0xc, 4), 0xffffffffn);
  assert.equal(c.peek(DATA + 0x10, 4), 0x23456789n);
  assert.equal(c.peek(DATA + 0x14, 2), 0xfffen);
  assert.equal(c.peek(DATA + 0x18, 4), 0x01123456n);
  assert.equal(c.peek(DATA + 0x1c, 4), 0n);
  assert.equal(c.reg("rdx") & 0xffffn, 0x0101n); // CF after SUB (borrow), CF = old bit 31 after BTC
});

Deno.test("TF single-step goes through step(): #DB after the first instruction, counted once", () => {
  const c = new CoreVm("real");
  c.load([0x41, 0x41, 0xf4]); // inc cx; inc cx; hlt
  c.set({ rflags: 0x302 });
  const o = c.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 1);
  assert.equal(o.faultRip, BigInt(CODE + 1));
  assert.equal(c.reg("rcx"), 1n);
  assert.equal(c.vm.get64("instructions"), 2n); // the INC and the handler's HLT
});
