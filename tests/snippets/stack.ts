/**
 * Stack: PUSH/POP of registers, immediates (sign-extended), memory and
 * segment registers; PUSH RSP (old value), POP RSP; 16-bit pushes in 64-bit
 * mode; PUSHF/POPF; PUSHA/POPA; ENTER/LEAVE; the 16-bit SP wrap in real mode.
 *
 * Expectations: from the SDM (vol. 2 "PUSH": the pushed value of RSP is the
 * value before the instruction; imm8/imm32 are sign-extended to the operand
 * size; in 64-bit mode the default operand size is 64 and 66 gives 16; "POP":
 * POP RSP loads RSP with the popped value; "PUSHA": EAX ECX EDX EBX
 * original-ESP EBP ESI EDI; "POPA" skips the ESP image; "ENTER"/"LEAVE";
 * vol. 3 §20.1: in real mode SP wraps within the 64 KiB stack segment).
 *
 * Flags: none change except POPF (loads the arithmetic flags and DF from the
 * image; compared through mask OSZAPC|DF). Nothing undefined.
 */
import { DF, le, OSZAPC, type Snippet } from "./types.ts";
import { ENV } from "./run.ts";

const T = ENV.stackTop;
const BT = BigInt(T);
const M = 0x8000;

export const snippets: Snippet[] = [
  {
    name: "push/pop r64 (LIFO), rsp restored",
    mode: "long",
    asm: "push rax\npush rbx\npop rcx\npop rdx\nhlt",
    regs: { rax: 0x1111111111111111n, rbx: 0x2222222222222222n },
    expect: {
      regs: { rcx: 0x2222222222222222n, rdx: 0x1111111111111111n, rsp: BT },
      memory: [{ gpa: T - 16, bytes: [...le(0x2222222222222222n, 8), ...le(0x1111111111111111n, 8)] }],
    },
    cpl3: true,
  },
  {
    name: "push imm8 / imm32 sign-extended to 64 bits",
    mode: "long",
    asm: "push -2\npush 0x7fffffff\npush -0x80000000\nhlt",
    expect: {
      regs: { rsp: BT - 24n },
      memory: [{ gpa: T - 24, bytes: [...le(-0x80000000n, 8), ...le(0x7fffffffn, 8), ...le(-2n, 8)] }],
    },
    cpl3: true,
  },
  {
    name: "push r16 / pop r16 in 64-bit mode move RSP by 2",
    mode: "long",
    asm: "push ax\npush bx\npop cx\nhlt",
    regs: { rax: 0xaaaan, rbx: 0xbbbbn, rcx: 0x1111111111111111n },
    expect: {
      regs: { rsp: BT - 2n, rcx: 0x111111111111bbbbn },
      memory: [{ gpa: T - 4, bytes: [0xbb, 0xbb, 0xaa, 0xaa] }],
    },
    cpl3: true,
  },
  {
    name: "push rsp pushes the old value; pop rsp loads the popped value",
    mode: "long",
    asm: "push rsp\npop rax\nmov rbx, 0x12340\npush rbx\npop rsp\nhlt",
    expect: { regs: { rax: BT, rsp: 0x12340n } },
    cpl3: true,
  },
  {
    name: "push/pop memory operands",
    mode: "long",
    asm: `push qword [${M}]\npop qword [${M + 8}]\nhlt`,
    memory: [{ gpa: M, bytes: le(0x0102030405060708n, 8) }],
    expect: {
      regs: { rsp: BT },
      memory: [{ gpa: M, bytes: [...le(0x0102030405060708n, 8), ...le(0x0102030405060708n, 8)] }],
    },
    cpl3: true,
  },
  {
    name: "pushfq/popfq round trip: arithmetic flags and DF",
    mode: "long",
    asm: "mov rax, 0xcd7\npush rax\npopfq\npushfq\npop rbx\nhlt",
    expect: { regs: { rbx: 0xcd7n, rflags: 0xcd7n, rsp: BT }, flagsMask: OSZAPC | DF },
    cpl3: true,
  },
  {
    name: "popfq clears arithmetic flags",
    mode: "long",
    asm: "push 2\npopfq\nhlt",
    regs: { rflags: 0x2n | OSZAPC | DF },
    expect: { regs: { rflags: 0x2n }, flagsMask: OSZAPC | DF },
    cpl3: true,
  },
  {
    name: "push/pop r32 and imm in 32-bit mode",
    mode: "protected",
    asm: "push eax\npush -1\npush 0x80\npop ecx\npop edx\npop ebx\nhlt",
    regs: { rax: 0xcafebaben },
    expect: { regs: { rcx: 0x80n, rdx: 0xffffffffn, rbx: 0xcafebaben, rsp: BT } },
    cpl3: true,
  },
  {
    name: "pushad / popad: order, original ESP, POPA skips ESP",
    mode: "protected",
    asm: "pushad\nmov eax, 0\nmov ecx, 0\nmov edx, 0\nmov ebx, 0\nmov ebp, 0\nmov esi, 0\nmov edi, 0\npopad\nhlt",
    regs: { rax: 1n, rcx: 2n, rdx: 3n, rbx: 4n, rbp: 6n, rsi: 7n, rdi: 8n },
    expect: {
      regs: { rax: 1n, rcx: 2n, rdx: 3n, rbx: 4n, rbp: 6n, rsi: 7n, rdi: 8n, rsp: BT },
      memory: [{ gpa: T - 32, bytes: [8, 7, 6, T, 4, 3, 2, 1].flatMap((v) => le(v, 4)) }],
    },
    cpl3: true,
  },
  {
    name: "pushfd / popfd in 32-bit mode",
    mode: "protected",
    asm: "push 0x8d7\npopfd\npushfd\npop eax\nhlt",
    expect: { regs: { rax: 0x8d7n, rflags: 0x8d7n }, flagsMask: OSZAPC | DF },
    cpl3: true,
  },
  {
    name: "enter 16, 0 / leave (32-bit)",
    mode: "protected",
    asm: "enter 16, 0\nmov eax, esp\nmov ebx, ebp\nleave\nhlt",
    regs: { rbp: 0x12345678n },
    expect: {
      regs: { rax: BigInt(T - 4 - 16), rbx: BigInt(T - 4), rbp: 0x12345678n, rsp: BT },
      memory: [{ gpa: T - 4, bytes: le(0x12345678, 4) }],
    },
    cpl3: true,
  },
  {
    name: "enter 8, 0 / leave (64-bit)",
    mode: "long",
    asm: "enter 8, 0\nmov rax, rsp\nmov rbx, rbp\nleave\nhlt",
    regs: { rbp: 0x1122334455667788n },
    expect: { regs: { rax: BT - 16n, rbx: BT - 8n, rbp: 0x1122334455667788n, rsp: BT } },
    cpl3: true,
  },
  {
    name: "real mode: push with SP = 0 wraps to 0xfffe (SS base 0)",
    mode: "real",
    asm: "push ax\npush bx\nhlt",
    regs: { rax: 0x1234n, rbx: 0x5678n, rsp: 0n },
    expect: { regs: { rsp: 0xfffcn }, memory: [{ gpa: 0xfffc, bytes: [0x78, 0x56, 0x34, 0x12] }] },
    cpl3: true,
  },
  {
    name: "real mode: pop at SP = 0xfffe wraps to 0",
    mode: "real",
    asm: "pop ax\nhlt",
    regs: { rsp: 0xfffen },
    memory: [{ gpa: 0xfffe, bytes: [0xcd, 0xab] }],
    expect: { regs: { rax: 0xabcdn, rsp: 0n } },
    cpl3: true,
  },
  {
    name: "real mode: push uses SS base (SS = 0x700)",
    mode: "real",
    asm: "mov bx, 0x700\nmov ss, bx\nmov sp, 0x100\npush ax\npush 0x1234\npop cx\nhlt",
    regs: { rax: 0xbeefn },
    expect: { regs: { rcx: 0x1234n, rsp: 0xfen }, memory: [{ gpa: 0x70fe, bytes: [0xef, 0xbe] }] },
    cpl3: true,
  },
  {
    name: "real mode: pushf/popf and 32-bit push (66)",
    mode: "real",
    asm: "mov sp, 0x8000\npush 0x0cd7\npopf\npushf\npop ax\npush eax\npop edx\nhlt",
    regs: { rax: 0x12340000n },
    expect: { regs: { rax: 0x12340cd7n, rdx: 0x12340cd7n, rsp: 0x8000n, rflags: 0xcd7n }, flagsMask: OSZAPC | DF },
    cpl3: true,
  },
  {
    name: "real mode: push/pop segment registers",
    mode: "real",
    asm: "mov sp, 0x8000\nmov ax, 0x1234\nmov es, ax\npush es\npop ds\nmov bx, ds\nhlt",
    expect: { regs: { rbx: 0x1234n, rsp: 0x8000n } },
    cpl3: true,
  },
];
