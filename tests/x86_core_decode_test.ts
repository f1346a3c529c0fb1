/**
 * Decoder tests: prefixes, operand/address sizes, ModRM/SIB/displacement in 16-,
 * 32- and 64-bit code, RIP-relative addressing, REX registers, the 15-byte limit,
 * #UD and internal-error cases. Guest code is GNU-as output (bytes beside the asm;
 * refresh with `deno run -A tests/oracle/fill_snippets.ts tests/x86_core_decode_test.ts`).
 */
import assert from "node:assert/strict";
import { CODE, code, CoreVm, DATA, KVM_EXIT_INTERNAL_ERROR } from "./x86_core_harness.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";

Deno.test("16-bit ModRM forms: BX+SI, BP+DI (SS default), disp16, segment override, 64 KiB wrap", () => {
  const c = new CoreVm("real");
  // DS base 0x10000, SS base 0, ES base 0x20000.
  c.vm.setSeg("ds", { base: 0x10000n, limit: 0xffff, selector: 0x1000, type: 3, s: 1, present: 1 });
  c.vm.setSeg("es", { base: 0x20000n, limit: 0xffff, selector: 0x2000, type: 3, s: 1, present: 1 });
  c.poke(0x10000 + 0x322, 2, 0x1111); // DS:[bx+si]
  c.poke(0x400 + 0x33 + 4, 2, 0x2222); // SS:[bp+di+4]
  c.poke(0x10000 + 0x5678, 2, 0x3333); // DS:[0x5678]
  c.poke(0x20000 + 0x300, 2, 0x4444); // ES:[bx]
  c.poke(0x10000 + 0xfff8, 2, 0x5555); // DS:[bx+si-...] wrapping: 0x300+0xfcf8 = 0xfff8
  c.load(code(
    16,
    `
    mov bx, 0x300
    mov si, 0x22
    mov bp, 0x400
    mov di, 0x33
    mov ax, [bx+si]
    mov cx, [bp+di+4]
    mov dx, [0x5678]
    mov sp, es:[bx]
    mov si, 0xfcf8
    mov si, [bx+si]
    hlt
  `,
    "bb0003be2200bd0004bf33008b008b4b048b167856268b27bef8fc8b30f4",
  ));
  c.set({ rsp: 0 });
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 0x1111n);
  assert.equal(c.reg("rcx"), 0x2222n);
  assert.equal(c.reg("rdx"), 0x3333n);
  assert.equal(c.reg("rsp"), 0x4444n);
  assert.equal(c.reg("rsi"), 0x5555n);
});

Deno.test("real mode: 66/67 prefixes give 32-bit operands and addresses", () => {
  const c = new CoreVm("real");
  c.poke(0x2345, 4, 0xdeadbeef);
  c.load(code(
    16,
    `
    mov eax, 0x2340
    mov ebx, [eax+5]
    mov ecx, 0x89abcdef
    add cx, 1
    hlt
  `,
    "66b84023000067668b580566b9efcdab8983c101f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rbx"), 0xdeadbeefn);
  assert.equal(c.reg("rcx"), 0x89abcdf0n);
});

Deno.test("32-bit SIB forms: base+index*scale+disp, ESP base, EBP base (SS), no base", () => {
  const c = new CoreVm("prot");
  c.poke(DATA + 0x10 + 3 * 4 + 0x100, 4, 0x11111111);
  c.poke(0x6ff0 + 8, 4, 0x22222222);
  c.poke(DATA - 4, 4, 0x33333333);
  c.poke(3 * 8 + 0x9000, 4, 0x44444444);
  c.load(code(
    32,
    `
    mov eax, 0x8010
    mov ecx, 3
    mov ebx, [eax+ecx*4+0x100]
    mov esp, 0x6ff0
    mov edx, [esp+8]
    mov ebp, 0x8000
    mov esi, [ebp-4]
    mov edi, [ecx*8+0x9000]
    lea eax, [eax+ecx*2+7]
    hlt
  `,
    "b810800000b9030000008b9c8800010000bcf06f00008b542408bd008000008b75fc8b3ccd009000008d444807f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rbx"), 0x11111111n);
  assert.equal(c.reg("rdx"), 0x22222222n);
  assert.equal(c.reg("rsi"), 0x33333333n);
  assert.equal(c.reg("rdi"), 0x44444444n);
  assert.equal(c.reg("rax"), BigInt(DATA + 0x10 + 6 + 7));
});

Deno.test("64-bit: RIP-relative loads/stores (with immediates after the ModRM), REX registers", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rax, [rip + data]
    mov dword ptr [rip + data + 8], 0x11223344
    test byte ptr [rip + data + 7], 0x80
    setnz r9b
    add qword ptr [rip + data], 0x10
    mov r8, [rip + data]
    lea r10, [rip + data]
    mov r11d, [rip + data + 8]
    hlt
    .balign 8
  data:
    .quad 0x8000000000000001
    .quad 0
  `,
    "488b0539000000c7053700000044332211f6052f00000080410f95c14883051c000000104c8b05150000004c8d150e000000448b1d0f000000f4660f1f44000001000000000000800000000000000000",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 0x8000000000000001n);
  assert.equal(c.reg("r9"), 1n);
  assert.equal(c.reg("r8"), 0x8000000000000011n);
  const data = c.reg("r10");
  assert.equal(c.peek(Number(data) + 8, 4), 0x11223344n);
  assert.equal(c.reg("r11"), 0x11223344n);
});

Deno.test("64-bit: SIB with R12/R13 bases, REX.X index, 67 address size", () => {
  const c = new CoreVm("long");
  c.poke(DATA + 0x40, 8, 0x1234n);
  c.poke(DATA + 0x80 + 5 * 8, 8, 0x5678n);
  c.poke(0x9000, 4, 0xabcdn);
  c.load(code(
    64,
    `
    mov r12, 0x8000
    mov r13, 0x8080
    mov r14, 5
    mov rax, [r12 + 0x40]
    mov rbx, [r13 + r14*8]
    mov rcx, 0xffffffff00009000
    mov edx, [ecx]
    hlt
  `,
    "49c7c40080000049c7c58080000049c7c605000000498b4424404b8b5cf50048b900900000ffffffff678b11f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 0x1234n);
  assert.equal(c.reg("rbx"), 0x5678n);
  assert.equal(c.reg("rdx"), 0xabcdn);
});

Deno.test("8-bit registers: AH..BH without REX, SPL..DIL and R8B with REX", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rax, 0x1122334455667788
    mov rsi, 0x0102030405060708
    mov ah, 0xaa
    mov sil, 0xbb
    mov bl, ah
    mov cl, sil
    mov r8b, 0xcc
    hlt
  `,
    "48b8887766554433221148be0807060504030201b4aa40b6bb88e34088f141b0ccf4",
  ));
  c.set({ rbx: 0xffff, rcx: 0xffff, r8: 0x1ff });
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 0x112233445566aa88n);
  assert.equal(c.reg("rsi"), 0x01020304050607bbn);
  assert.equal(c.reg("rbx"), 0xffaan);
  assert.equal(c.reg("rcx"), 0xffbbn);
  assert.equal(c.reg("r8"), 0x1ccn);
});

Deno.test("operand sizes in 64-bit mode: 32-bit writes zero-extend, 16/8-bit merge, imm64, REX.W", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    mov rax, -1
    mov eax, 5
    mov rbx, -1
    mov bx, 6
    movabs rcx, 0x123456789abcdef0
    mov rdx, -1
    add edx, 1
    mov rsi, -1
    inc si
    push 0x1234
    pop rdi
    push word ptr 0x55aa
    pop r8w
    hlt
  `,
    "48c7c0ffffffffb80500000048c7c3ffffffff66bb060048b9f0debc9a7856341248c7c2ffffffff83c20148c7c6ffffffff66ffc668341200005f6668aa55664158f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 5n);
  assert.equal(c.reg("rbx"), 0xffffffffffff0006n);
  assert.equal(c.reg("rcx"), 0x123456789abcdef0n);
  assert.equal(c.reg("rdx"), 0n);
  assert.equal(c.reg("rsi"), 0xffffffffffff0000n);
  assert.equal(c.reg("rdi"), 0x1234n);
  assert.equal(c.reg("r8") & 0xffffn, 0x55aan);
  assert.equal(c.reg("rsp"), 0x7000n);
});

Deno.test("REX before a legacy prefix is ignored; REX must be the last prefix", () => {
  const c = new CoreVm("long");
  // 48 66 89 c3: REX.W then 66 → REX dropped: mov bx, ax (16-bit).
  c.load([0x48, 0x66, 0x89, 0xc3, 0xf4]);
  c.set({ rax: 0x1111222233334444n, rbx: -1 });
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rbx"), 0xffffffffffff4444n);
});

Deno.test("moffs forms A0-A3 with a segment override; XLAT; MOV Sreg", () => {
  const c = new CoreVm("real");
  c.poke(0x2345, 1, 0x77);
  c.poke(0x10000 + 0x2345, 2, 0xbeef);
  c.poke(0x500 + 3, 1, 0x99);
  c.load(code(
    16,
    `
    mov al, [0x2345]
    mov bx, 0x1000
    mov es, bx
    mov cx, es
    mov ax, es:[0x2345]
    mov [0x3000], ax
    mov bx, 0x500
    mov dl, al
    mov al, 3
    xlat
    hlt
  `,
    "a04523bb00108ec38cc126a14523a30030bb000588c2b003d7f4",
  ));
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rcx"), 0x1000n);
  assert.equal(c.peek(0x3000, 2), 0xbeefn);
  assert.equal(c.reg("rax") & 0xffn, 0x99n);
  assert.equal(c.reg("rdx") & 0xffn, 0xefn);
});

Deno.test("NOP forms: 90, PAUSE, 0F 1F multi-byte NOP, LOCK accepted, xchg r8,rax with REX.B", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    nop
    pause
    nop dword ptr [rax + rax*1 + 0]
    .byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0
    lock add dword ptr [rip + d], 1
    xchg r8, rax
    hlt
  d: .long 41
  `,
    "90f3900f1f0400662e0f1f840000000000f0830503000000014990f429000000",
  ));
  c.set({ rax: 1, r8: 2 });
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax"), 2n);
  assert.equal(c.reg("r8"), 1n);
});

Deno.test("#UD: UD2, undefined opcodes, LEA with a register operand, invalid-in-64-bit opcodes", () => {
  for (
    const [mode, bytes, what] of [
      ["long", [0x0f, 0x0b], "ud2"],
      ["long", [0x8d, 0xc0], "lea eax, eax"],
      ["long", [0x06], "push es in 64-bit mode"],
      ["long", [0x0f, 0xff, 0x00], "ud0"],
      ["real", [0xfe, 0xd0], "FE /2"],
      ["prot", [0x8e, 0xc8], "mov cs, ax"],
      ["long", [0xc7, 0xc8, 0, 0, 0, 0], "C7 /1"],
    ] as const
  ) {
    const c = new CoreVm(mode).load([...bytes]);
    const o = c.run();
    assert.equal(o.kind, "exception", what);
    assert.equal(o.vector, 6, what);
    assert.equal(o.faultRip, BigInt(CODE), what);
  }
});

Deno.test("instruction longer than 15 bytes → #GP(0) at the first byte", () => {
  const c = new CoreVm("long").load([...new Array(14).fill(0x66), 0x89, 0xc3, 0xf4]);
  const o = c.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 13);
  assert.equal(o.faultRip, BigInt(CODE));
  // 14 prefixes + opcode + ModRM = 16 bytes; 13 prefixes = 15 bytes is fine.
  const ok = new CoreVm("long").load([...new Array(13).fill(0x66), 0x89, 0xc3, 0xf4]);
  assert.equal(ok.run().kind, "hlt");
});

Deno.test("instructions outside the supported set end in KVM_EXIT_INTERNAL_ERROR with the bytes", () => {
  for (
    const [mode, bytes, what] of [
      ["long", [0xd9, 0xe8], "fld1 (x87)"],
      ["long", [0x0f, 0x28, 0xc1], "movaps (SSE)"],
      ["prot", [0x27], "daa"],
      ["long", [0xf3, 0x0f, 0xb8, 0xc1], "popcnt"],
    ] as const
  ) {
    const c = new CoreVm(mode).load([...bytes, 0xf4]);
    const o = c.run();
    assert.equal(o.kind, "exit", what);
    assert.equal(o.reason, KVM_EXIT_INTERNAL_ERROR, what);
    assert.equal(c.runField("emulation_failure.suberror"), 1, what);
    // KVM's decoder has prefetched 15 bytes (the code page does not end sooner here).
    assert.equal(c.runField("emulation_failure.insn_size"), 15, what);
    assert.equal(c.reg("rip"), BigInt(CODE), what);
  }
  // Near the end of the code page KVM stops fetching there: insn_size = the bytes left in the page.
  const { vcpu } = createVmWithOneVcpu({ code: [0xd9, 0xe8, 0xf4], load: 0x1ffd });
  const e = vcpu.run(1000);
  assert.ok(e.reason === "internal_error" && e.suberrorName === "KVM_INTERNAL_ERROR_EMULATION", e.reason);
  assert.deepEqual([...(e.insnBytes ?? [])], [0xd9, 0xe8, 0xf4]);
  // DAA is #UD in 64-bit mode.
  const c = new CoreVm("long").load([0x27]);
  assert.equal(c.run().vector, 6);
});

Deno.test("system instructions are decoded and handed to System: CPUID, RDTSC, MOV from CR0, SGDT, SMSW, IN", () => {
  const c = new CoreVm("long");
  c.load(code(
    64,
    `
    xor eax, eax
    cpuid
    rdtsc
    mov r8, cr0
    sgdt [0x8000]
    smsw r9d
    mov dx, 0x1234
    in al, dx
    hlt
  `,
    "31c00fa20f31410f20c00f01042500800000410f01e166ba3412ecf4",
  ));
  const o = c.run();
  assert.equal(o.kind, "exit"); // IN → KVM_EXIT_IO
  assert.equal(o.reason, 2);
  assert.equal(c.runField("io.port"), 0x1234);
  assert.equal(c.reg("r8"), 0x80000011n);
  assert.equal(c.peek(DATA, 2), 23n);
  assert.equal(c.peek(DATA + 2, 8), 0x500n);
  assert.equal(c.reg("r9"), 0x80000011n);
  c.vm.u8[c.vm.run0 + 4096] = 0x5a; // the PIO data page
  assert.equal(c.run().kind, "hlt");
  assert.equal(c.reg("rax") & 0xffn, 0x5an);
});
