/**
 * Control flow: JMP (short, near, register, memory), Jcc for every condition
 * taken and not taken, CALL/RET (near relative, register, memory; RET imm16),
 * LOOP/LOOPE/LOOPNE, JCXZ/JECXZ/JRCXZ, a backward dec/jnz loop; in long,
 * protected and real mode.
 *
 * Expectations: the SDM (vol. 2 "Jcc" condition table, "CALL": the return
 * address is the address of the next instruction; "RET imm16" pops the
 * return address then adds imm16 to RSP; "LOOP": decrement (E/R)CX, no flags,
 * branch when ≠ 0 (LOOPE also when ZF = 1, LOOPNE when ZF = 0)). Return
 * addresses: CALL rel32 is 5 bytes (32/64-bit), CALL rel16 3 bytes (16-bit).
 *
 * Flags: JMP/Jcc/CALL/RET/LOOP change none (checked unchanged where listed).
 */
import { CF, OF, OSZAPC, PF, SF, type Snippet, type SnippetMode, ZF } from "./types.ts";
import { CONDITIONS } from "./ref.ts";
import { ENV } from "./run.ts";

const T = BigInt(ENV.stackTop);
const L = BigInt(ENV.load);
const out: Snippet[] = [];

const FLAGS = [0x2n, 0x2n | CF | ZF, 0x2n | SF | OF, 0x2n | SF | PF];
for (const [cc, holds] of CONDITIONS) {
  for (const mode of ["long", "protected", "real"] as const) {
    const sets = mode === "long" ? FLAGS : mode === "protected" ? [FLAGS[1]!] : [FLAGS[2]!];
    for (const f of sets) {
      out.push({
        name: `j${cc} [${mode}] flags=${f.toString(16)} → ${holds(f) ? "taken" : "not taken"}`,
        mode,
        asm: `j${cc} t\nmov ebx, 1\nhlt\nt: mov ebx, 2\nhlt`,
        regs: { rflags: f },
        expect: { regs: { rbx: holds(f) ? 2n : 1n, rflags: f }, flagsMask: OSZAPC },
        cpl3: true,
      });
    }
  }
  out.push({
    name: `j${cc} near (rel32) over 300 bytes [long]`,
    mode: "long",
    asm: `j${cc} far_t\nmov ebx, 1\nhlt\ntimes 300 nop\nfar_t: mov ebx, 2\nhlt`,
    regs: { rflags: 0x2n | CF | ZF },
    expect: { regs: { rbx: holds(0x2n | CF | ZF) ? 2n : 1n } },
    cpl3: true,
  });
}

const callRet = (mode: SnippetMode, ret: bigint, sp0: bigint, w: bigint): Snippet => ({
  name: `call rel / ret [${mode}]: return address on the stack, SP restored`,
  mode,
  asm: `call f\nmov ebx, 1\nhlt\nf: mov ${
    mode === "long" ? "rcx, [rsp]" : mode === "protected" ? "ecx, [esp]" : "bp, sp\nmov cx, [bp]"
  }\nmov eax, 5\nret`,
  ...(mode === "real" ? { regs: { rsp: sp0 } } : {}),
  expect: { regs: { rax: 5n, rbx: 1n, rcx: ret, rsp: sp0 } },
  cpl3: true,
  ...(w ? {} : {}),
});
out.push(callRet("long", L + 5n, T, 8n), callRet("protected", L + 5n, T, 4n), callRet("real", L + 3n, 0x8000n, 2n));

out.push(
  {
    name: "jmp short forward and backward",
    mode: "long",
    asm: "jmp a\nb: mov ebx, 2\nhlt\na: mov eax, 1\njmp b",
    expect: { regs: { rax: 1n, rbx: 2n } },
    cpl3: true,
  },
  {
    name: "jmp rax / jmp [mem] / call rax / call [mem]",
    mode: "long",
    asm:
      `mov rax, t1\njmp rax\nhlt\nt1: mov rbx, t2\nmov [0x8000], rbx\njmp qword [0x8000]\nhlt\nt2: mov rcx, f\ncall rcx\nmov [0x8008], rcx\ncall qword [0x8008]\nhlt\nf: inc rdx\nret`,
    expect: { regs: { rdx: 2n, rsp: T } },
    cpl3: true,
  },
  {
    name: "call rel32 forward over 300 bytes, ret imm16 drops the arguments",
    mode: "long",
    asm: "push 1\npush 2\ncall f\nhlt\ntimes 300 nop\nf: mov rax, [rsp + 8]\nadd rax, [rsp + 16]\nret 16",
    expect: { regs: { rax: 3n, rsp: T } },
    cpl3: true,
  },
  {
    name: "ret imm16 in 32-bit mode",
    mode: "protected",
    asm: "push 10\npush 20\npush 30\ncall f\nhlt\nf: mov eax, [esp + 12]\nret 12",
    expect: { regs: { rax: 10n, rsp: T } },
    cpl3: true,
  },
  {
    name: "nested calls (recursion depth 4)",
    mode: "long",
    asm: "mov ecx, 4\ncall f\nhlt\nf: inc eax\ndec ecx\njz done\ncall f\ndone: ret",
    expect: { regs: { rax: 4n, rcx: 0n, rsp: T } },
    cpl3: true,
  },
  {
    name: "dec/jnz loop 1000 times",
    mode: "long",
    asm: "mov ecx, 1000\nl: add rax, 3\ndec ecx\njnz l\nhlt",
    expect: { regs: { rax: 3000n, rcx: 0n } },
    cpl3: true,
  },
  {
    name: "loop: RCX counts down, no flags change",
    mode: "long",
    asm: "mov ecx, 5\nl: inc eax\nloop l\nhlt",
    regs: { rflags: 0x2n | CF },
    expect: { regs: { rax: 5n, rcx: 0n, rflags: 0x2n | CF }, flagsMask: CF },
    cpl3: true,
  },
  {
    name: "loopne stops when ZF = 1",
    mode: "long",
    asm: "mov ecx, 10\nl: inc eax\ncmp eax, 3\nloopne l\nhlt",
    expect: { regs: { rax: 3n, rcx: 7n } },
    cpl3: true,
  },
  {
    name: "loope stops when ZF = 0",
    mode: "protected",
    asm: "mov ecx, 10\nl: inc eax\ncmp eax, eax\ncmp eax, 4\nloope l\nhlt",
    expect: { regs: { rax: 1n, rcx: 9n } },
    cpl3: true,
  },
  {
    name: "loop in real mode uses CX only",
    mode: "real",
    asm: "mov ecx, 0x10003\nl: inc ax\nloop l\nhlt",
    expect: { regs: { rax: 3n, rcx: 0x10000n } },
    cpl3: true,
  },
  {
    name: "jrcxz taken when RCX = 0, not taken otherwise",
    mode: "long",
    asm: "jrcxz a\nmov ebx, 1\na: mov rcx, 0x100000000\njrcxz b\nmov edx, 1\nb: hlt",
    expect: { regs: { rbx: 0n, rdx: 1n } },
    cpl3: true,
  },
  {
    name: "jecxz looks at ECX only (64-bit mode, 67 prefix)",
    mode: "long",
    asm: "mov rcx, 0x100000000\njecxz a\nmov ebx, 1\na: hlt",
    expect: { regs: { rbx: 0n } },
    cpl3: true,
  },
  {
    name: "jcxz in real mode looks at CX only",
    mode: "real",
    asm: "mov ecx, 0x10000\njcxz a\nmov bx, 1\na: hlt",
    expect: { regs: { rbx: 0n } },
    cpl3: true,
  },
  {
    name: "hlt leaves RIP after the HLT",
    mode: "long",
    asm: "nop\nnop\nhlt",
    expect: { regs: { rip: L + 3n } },
  },
  {
    name: "hlt leaves IP after the HLT (real mode)",
    mode: "real",
    asm: "nop\nhlt",
    expect: { regs: { rip: L + 2n } },
  },
);

export const snippets: Snippet[] = out;
