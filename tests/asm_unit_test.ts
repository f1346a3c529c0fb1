import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
const bytes = (src: string, bits: 16 | 32 | 64 = 16, origin?: number) => hex(assemble(src, { bits, origin }).bytes);

Deno.test("labels: backward, forward, local labels scoped to the previous global label", () => {
  const r = assemble("main:\n.loop: dec cx\njnz .loop\nother:\n.loop: jmp main.loop\njmp fin\nfin: ret", { bits: 16 });
  assert.equal(hex(r.bytes), "49 75 fd eb fb eb 00 c3");
  assert.deepEqual([...r.labels], [["main", 0], ["main.loop", 0], ["other", 3], ["other.loop", 3], ["fin", 7]]);
});

Deno.test("branches: short when in range, near otherwise, forced short/near, sizes settle", () => {
  assert.equal(bytes("jmp x\nx: ret", 32), "eb 00 c3");
  assert.equal(bytes(`jmp fwd\ntimes 200 nop\nfwd: ret`, 32).slice(0, 14), "e9 c8 00 00 00");
  assert.equal(bytes("jmp short x\nx:\njmp near x", 32), "eb 00 e9 fb ff ff ff");
  assert.equal(bytes("jz x\ntimes 126 nop\nx:", 32).slice(0, 5), "74 7e"); // exactly +126 still short
  assert.equal(bytes("jz x\ntimes 128 nop\nx:", 32).slice(0, 17), "0f 84 80 00 00 00");
  assert.equal(bytes("jz x\ntimes 10 nop\nx:", 16).slice(0, 5), "74 0a");
  assert.equal(bytes("jz x\ntimes 300 nop\nx:", 16).slice(0, 11), "0f 84 2c 01");
  // A chain where growing one jump pushes the next out of range.
  const chain = assemble("a: jmp b\ntimes 124 nop\nb: jmp c\ntimes 2 nop\njmp a\ntimes 121 nop\nc: ret", { bits: 32 });
  assert.equal(chain.bytes[0], 0xeb); // a → b: 124 bytes, short
  assert.equal(chain.labels.get("b"), 126);
  assert.equal(chain.bytes[126], 0xe9); // b → c: 2 + 5 + 121 > 127 once `jmp a` is near
  assert.equal(chain.bytes[126 + 5 + 2], 0xe9); // jmp a: back 133 bytes, near
  assert.equal(bytes("call x\nx: ret", 64), "e8 00 00 00 00 c3");
  assert.equal(bytes("x: loop x\njecxz x\njrcxz x", 64), "e2 fe 67 e3 fb e3 f9");
});

Deno.test("expressions: operators, precedence, number bases, character literals, $ and $$", () => {
  const r = assemble(
    [
      "a equ 5",
      "b equ a*2+1", // 11
      "db b, (1<<4)|3, ~0 & 0xff, 100/7, 100%7, -8>>1 & 0xff, 0b1010, 0x1F, 0Ah, 'A', 'A'+1",
      "db 2+3*4, (2+3)*4, 1|2^3, 6&3|8, 1<<2+1",
      "dw $, $$, $-$$",
    ].join("\n"),
    { bits: 16, origin: 0x100 },
  );
  assert.equal(hex(r.bytes), "0b 13 ff 0e 02 fc 0a 1f 0a 41 42 0e 14 01 0a 08 10 01 00 01 10 00");
  assert.equal(r.constants.get("b"), 11n);
  assert.equal(bytes("mov eax, 'abcd'", 32), "b8 61 62 63 64");
  assert.equal(bytes("x equ y\ny equ 3\nmov al, x"), "b0 03"); // equ may refer forward
});

Deno.test("directives: org, times, align, db strings, dw/dd/dq, bits switching", () => {
  const boot = assemble("org 0x7c00\nstart: jmp start\ntimes 510-($-$$) db 0\ndw 0xaa55", { bits: 16 });
  assert.equal(boot.bytes.length, 512);
  assert.equal(hex(boot.bytes.slice(0, 2)), "eb fe");
  assert.equal(hex(boot.bytes.slice(510)), "55 aa");
  assert.equal(boot.labels.get("start"), 0x7c00);
  assert.equal(bytes(`db 'hi', "x", \`a\\n\\x41\`, 0`), "68 69 78 61 0a 41 00");
  assert.equal(
    bytes("dw 0x1234, -1\ndd 0x12345678\ndq 0x123456789abcdef0, -2"),
    "34 12 ff ff 78 56 34 12 f0 de bc 9a 78 56 34 12 fe ff ff ff ff ff ff ff",
  );
  assert.equal(bytes("dw 'abc'"), "61 62 63 00");
  assert.equal(bytes("db 1\nalign 4\ndb 2\nalign 8, 0xcc\ndb 3"), "01 90 90 90 02 cc cc cc 03");
  assert.equal(bytes("times 3 push ax\ntimes 0 nop\ntimes 2 dw $"), "50 50 50 03 00 05 00");
  assert.equal(
    bytes("bits 32\nmov eax, 1\nbits 64\nmov rax, 1\n[bits 16]\nmov ax, 1\nuse32\ninc eax"),
    "b8 01 00 00 00 48 c7 c0 01 00 00 00 b8 01 00 40",
  );
  assert.equal(bytes("db 1\norg 4\ndb 2"), "01 00 00 00 02"); // org after code pads
  assert.equal(bytes("nop ; comment\nnop # also a comment\ndb ';#', 0 ; quoted ; and # are kept"), "90 90 3b 23 00");
});

Deno.test("listing: one entry per emitting or labelled line, with addresses", () => {
  const r = assemble("org 0x1000\nstart:\n  mov ax, 1\n  ret", { bits: 16 });
  assert.deepEqual(
    r.listing.map((l) => [l.line, l.address, hex(l.bytes)]),
    [[2, 0x1000, ""], [3, 0x1000, "b8 01 00"], [4, 0x1003, "c3"]],
  );
});

Deno.test("memory operands: SIB forms, rsp/r12 base, rbp/r13 disp0, rip-relative, 16-bit forms, overrides", () => {
  assert.equal(
    bytes("mov eax, [rsp]\nmov eax, [r12]\nmov eax, [rbp]\nmov eax, [r13]", 64),
    "8b 04 24 41 8b 04 24 8b 45 00 41 8b 45 00",
  );
  assert.equal(
    bytes("mov eax, [rax*4]\nmov eax, [0x1000]\nmov eax, [eax]", 64),
    "8b 04 85 00 00 00 00 8b 04 25 00 10 00 00 67 8b 00",
  );
  assert.equal(bytes("mov rax, [r15+r14*8-0x80]\nmov eax, [eax+esp]", 64), "4b 8b 44 f7 80 67 8b 04 04");
  assert.equal(
    bytes("lea rax, [rel x]\nx: cmp byte [rel x], 1", 64, 0x1000),
    "48 8d 05 00 00 00 00 80 3d f9 ff ff ff 01",
  );
  assert.equal(
    bytes(
      "mov ax, [bx+si]\nmov ax, [bp]\nmov ax, [si+bx+2]\nmov ax, [bp+di-0x100]\nmov ax, [0x1234]\nmov bx, [0x1234]",
    ),
    "8b 00 8b 46 00 8b 40 02 8b 83 00 ff a1 34 12 8b 1e 34 12",
  );
  assert.equal(
    bytes("mov eax, fs:[esi]\nmov ax, [gs:bx]\nmov byte [es:0x10], 1", 32),
    "64 8b 06 65 67 66 8b 07 26 c6 05 10 00 00 00 01",
  );
  assert.equal(
    bytes("mov al, [0x123456789]\nmov [0x123456789], rax", 64),
    "a0 89 67 45 23 01 00 00 00 48 a3 89 67 45 23 01 00 00 00",
  );
});

Deno.test("immediates: imm8 vs imm32 choice, 64-bit immediates, accumulator forms", () => {
  assert.equal(
    bytes("add eax, 1\nadd eax, 0x80\nadd ebx, 0x80\nadd eax, 0xffffffff\nadd al, 1", 32),
    "83 c0 01 05 80 00 00 00 81 c3 80 00 00 00 83 c0 ff 04 01",
  );
  assert.equal(
    bytes("mov rax, 1\nmov rax, -1\nmov rax, 0xffffffff\nmov rax, 0x123456789abcdef0\nmov eax, 1", 64),
    "48 c7 c0 01 00 00 00 48 c7 c0 ff ff ff ff 48 b8 ff ff ff ff 00 00 00 00 48 b8 f0 de bc 9a 78 56 34 12 b8 01 00 00 00",
  );
  assert.equal(bytes("push 1\npush 0x80\npush word 1", 32), "6a 01 68 80 00 00 00 66 6a 01");
  assert.equal(
    bytes("shl eax, 1\nshl eax, 2\nshl eax, cl\nint 3\nint 0x80\nimul eax, 5", 32),
    "d1 e0 c1 e0 02 d3 e0 cc cd 80 6b c0 05",
  );
});

Deno.test("registers: REX for spl/bpl/sil/dil and r8b-r15b, sreg/cr/dr moves, prefixes", () => {
  assert.equal(bytes("mov sil, 1\nmov al, r15b\nmov ah, 1\nadd dil, bpl", 64), "40 b6 01 44 88 f8 b4 01 40 00 ef");
  assert.equal(
    bytes("mov ds, ax\nmov ax, ds\nmov cr8, rax\nmov rax, dr7\npush fs\npop gs", 64),
    "8e d8 66 8c d8 44 0f 22 c0 0f 21 f8 0f a0 0f a9",
  );
  assert.equal(
    bytes("lock add dword [eax], 1\nrep movsb\nrepne scasb\no16 iret\nfs lodsb", 32),
    "f0 83 00 01 f3 a4 f2 ae 66 cf 64 ac",
  );
  assert.equal(bytes("jmp 0x10:0x1000\ncall far [bx]\nretf 2", 16), "ea 00 10 10 00 ff 1f ca 02 00");
  assert.equal(bytes("push qword [rax]\npush [rax]\ncall [rax]\njmp rax", 64), "ff 30 ff 30 ff 10 ff e0");
});
