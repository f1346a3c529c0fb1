import assert from "node:assert/strict";
import { AsmError, assemble } from "../src/asm/x86.ts";

/** Asserts that assembling `src` throws an AsmError at (line, col) whose message contains `text`. */
function fails(src: string, line: number, col: number, text: string, bits: 16 | 32 | 64 = 64): void {
  assert.throws(() => assemble(src, { bits }), (e: unknown) => {
    assert.ok(e instanceof AsmError, `expected AsmError, got ${e}`);
    assert.equal(e.line, line, `line of: ${e.message}`);
    assert.equal(e.col, col, `col of: ${e.message}`);
    assert.ok(e.message.startsWith(`line ${line}, col ${col}: `), e.message);
    assert.ok(e.message.includes(text), `"${e.message}" should mention "${text}"`);
    return true;
  });
}

Deno.test("errors: unknown registers, symbols and instructions name the line and column", () => {
  fails("nop\nnop\nmov rxx, 1", 3, 5, 'unknown register "rxx"');
  fails("mov eax, [rxx+4]", 1, 11, 'unknown register "rxx"');
  fails("mov eax, foo", 1, 10, 'undefined symbol "foo"');
  fails("  frob eax", 1, 3, 'unknown instruction "frob"');
  fails("pusha", 1, 1, '"pusha" is not valid in 64-bit mode');
  fails("swapgs", 1, 1, '"swapgs" is not valid in 32-bit mode', 32);
  fails("mov r8, 1", 1, 5, 'register "r8" is only available in 64-bit mode', 32);
  fails("mov sil, 1", 1, 5, 'register "sil" is only available in 64-bit mode', 16);
});

Deno.test("errors: operand shape, size and range problems", () => {
  fails("  add [eax], 1", 1, 7, "operand size not specified", 32);
  fails("movzx eax, [ebx]", 1, 12, "operand size not specified", 32);
  fails("mov al, 300", 1, 9, "immediate 0x12c out of range (expected -0x80..0xff)");
  fails("add rax, 0xffffffff", 1, 10, "does not fit a sign-extended 32-bit field");
  fails("mov eax, bx", 1, 5, 'invalid operands for "mov": reg32, reg16');
  fails("mov ah, sil", 1, 1, "ah/bh/ch/dh cannot be encoded");
  fails("jmp short far_away\ntimes 200 nop\nfar_away:", 1, 5, "branch target is 200 bytes away", 32);
  fails("jecxz x\ntimes 130 nop\nx:", 1, 7, "expected -128..127 for a short branch", 32);
  fails("mov eax, [eax*3]", 1, 11, "bad scale 3 (expected 1, 2, 4 or 8)", 32);
  fails("mov eax, [esp*2]", 1, 10, '"esp" cannot be an index register', 32);
  fails("mov ax, [bx+cx]", 1, 9, "invalid 16-bit address", 16);
  fails("mov ax, [bp*2]", 1, 9, "no scaled index", 16);
  fails("mov eax, [ax]", 1, 10, "16-bit addressing is not available in 64-bit mode");
  fails("lea eax, [rel x]\nx:", 1, 10, "[rel ...] needs 64-bit mode", 32);
  fails("mov eax, [eax+rbx]", 1, 10, "same size");
  fails("mov eax, [eax-ebx]", 1, 15, "cannot be subtracted");
  fails("db 256", 1, 4, "value 256 does not fit 8 bits");
  fails("int 256", 1, 5, "out of range");
});

Deno.test("errors: syntax and directive problems", () => {
  fails("mov eax, ebx,", 1, 14, "expected an operand, got end of line");
  fails("mov eax, [ebx", 1, 14, 'expected "]" to close the memory operand');
  fails("mov eax, (1+2", 1, 14, 'expected ")" to close the parenthesis');
  fails("mov eax, 0xZZ", 1, 10, 'malformed number "0xZZ"');
  fails("db 'abc", 1, 4, "unterminated string");
  fails("mov eax, 1 @ 2", 1, 12, 'expected "," between operands, got "@"');
  fails("nop\nx: nop\nx: nop", 3, 1, 'symbol "x" already defined on line 2');
  fails("eax: nop", 1, 1, '"eax" is a register and cannot be a label');
  fails("bits 48", 1, 1, "bad bits 48 (expected 16, 32 or 64)");
  fails("align 3", 1, 1, "align needs a known power of two");
  fails("times -1 nop", 1, 1, "times count -1 is negative");
  fails("db 1\norg 0\ndb 2", 2, 1, "is behind the current address");
  fails("mov eax, 1/0", 1, 11, "division by zero");
  fails("rep", 1, 4, 'expected an instruction after prefix "rep"');
  fails("mov eax, `\\q`", 1, 11, 'unknown escape "\\q"');
});
