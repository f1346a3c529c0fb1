/**
 * Real-mode addressing: linear = segment × 16 + offset for DS/ES/SS and
 * overrides, BP-based forms defaulting to SS, 16-bit effective addresses
 * wrapping at 64 KiB, addresses above 1 MiB (segment 0xffff, A20 enabled as
 * under KVM), 32-bit operands and addresses with 66/67, MOV to/from segment
 * registers, far JMP/CALL/RETF changing CS, string ops through DS:SI / ES:DI,
 * an operand crossing the 64 KiB segment limit (#GP through the IVT).
 *
 * Expectations: SDM vol. 3 ch. 20 (real-address mode: 20.1.1 address
 * translation; an effective address is computed modulo 64 KiB; 20.1.4 IVT),
 * vol. 1 §3.3.6 (segment limit checks in real mode: a word access at offset
 * 0xffff raises #GP, or #SS for SS), vol. 2 JMP/CALL/RET far forms.
 *
 * Flags: not compared.
 */
import { le, type Snippet } from "./types.ts";
import { ivt } from "./idt.ts";

const L = 0x1000;
export const snippets: Snippet[] = [
  {
    name: "DS = 0x800: [0x10] is linear 0x8010",
    mode: "real",
    asm: "mov ax, 0x800\nmov ds, ax\nmov bx, [0x10]\nhlt",
    memory: [{ gpa: 0x8010, bytes: [0x34, 0x12] }],
    expect: { regs: { rbx: 0x1234n } },
  },
  {
    name: "16-bit effective address wraps: [bx + si] = 0xfff0 + 0x20 → offset 0x10",
    mode: "real",
    asm: "mov ax, 0x800\nmov ds, ax\nmov ax, [bx + si]\nhlt",
    regs: { rbx: 0xfff0n, rsi: 0x20n },
    memory: [{ gpa: 0x8010, bytes: [0xcd, 0xab] }, { gpa: 0x18010, bytes: [0x11, 0x11] }],
    expect: { regs: { rax: 0xabcdn } },
  },
  {
    name: "disp16 wrap: [di + 0xfffe] with DI = 4 → offset 2",
    mode: "real",
    asm: "mov ax, 0x900\nmov ds, ax\nmov al, [di + 0xfffe]\nhlt",
    regs: { rdi: 4n },
    memory: [{ gpa: 0x9002, bytes: [0x77] }],
    expect: { regs: { rax: 0x0977n } },
  },
  {
    name: "[bp + di] defaults to SS",
    mode: "real",
    asm: "mov ax, 0x700\nmov ss, ax\nmov ax, 0x800\nmov ds, ax\nmov cx, [bp + di]\nmov dx, [ds:bp + di]\nhlt",
    regs: { rbp: 0x10n, rdi: 0x2n },
    memory: [{ gpa: 0x7012, bytes: [0x11, 0x22] }, { gpa: 0x8012, bytes: [0x33, 0x44] }],
    expect: { regs: { rcx: 0x2211n, rdx: 0x4433n } },
  },
  {
    name: "segment overrides es:/fs:/gs:/cs:",
    mode: "real",
    asm:
      "mov ax, 0x800\nmov es, ax\nmov ax, 0x900\nmov fs, ax\nmov ax, 0xa00\nmov gs, ax\nmov al, [es:0]\nmov bl, [fs:0]\nmov cl, [gs:0]\nmov dl, [cs:0x8000]\nhlt",
    memory: [{ gpa: 0x8000, bytes: [1] }, { gpa: 0x9000, bytes: [2] }, { gpa: 0xa000, bytes: [3] }],
    expect: { regs: { rax: 0x0a01n, rbx: 2n, rcx: 3n, rdx: 1n } },
  },
  {
    name: "segment 0xffff: offset 0x10 is linear 0x100000 (above 1 MiB, no A20 wrap)",
    mode: "real",
    asm: "mov ax, 0xffff\nmov ds, ax\nmov ebx, [0x10]\nmov dword [0x20], 0xcafef00d\nhlt",
    memory: [{ gpa: 0x100000, bytes: le(0x87654321, 4) }, { gpa: 0x10, bytes: le(0x11111111, 4) }],
    expect: { regs: { rbx: 0x87654321n }, memory: [{ gpa: 0x100010, bytes: le(0xcafef00d, 4) }] },
  },
  {
    name: "67 prefix: 32-bit address [ebx + ecx*4] within the 64 KiB limit",
    mode: "real",
    asm: "mov ax, 0x800\nmov ds, ax\nmov eax, [ebx + ecx*4]\nhlt",
    regs: { rbx: 0x100n, rcx: 0x4n },
    memory: [{ gpa: 0x8110, bytes: le(0x12345678, 4) }],
    expect: { regs: { rax: 0x12345678n } },
  },
  {
    name: "66 prefix: 32-bit operands and arithmetic",
    mode: "real",
    asm: "mov eax, 0x12345678\nadd eax, 0x11111111\nmov ebx, eax\nshr ebx, 16\nhlt",
    expect: { regs: { rax: 0x23456789n, rbx: 0x2345n } },
  },
  {
    name: "mov sreg / mov from sreg; les-like load through ES:DI with stosb",
    mode: "real",
    asm: "mov ax, 0x1234\nmov es, ax\nmov bx, es\nmov ax, 0x800\nmov es, ax\nmov di, 5\nmov al, 0x99\nstosb\nhlt",
    expect: { regs: { rbx: 0x1234n, rdi: 6n }, memory: [{ gpa: 0x8005, bytes: [0x99] }] },
  },
  {
    name: "movsb copies DS:SI → ES:DI with different segments",
    mode: "real",
    asm: "mov ax, 0x800\nmov ds, ax\nmov ax, 0x900\nmov es, ax\nmov si, 0x10\nmov di, 0x20\nmov cx, 3\nrep movsb\nhlt",
    memory: [{ gpa: 0x8010, bytes: [1, 2, 3] }],
    expect: { regs: { rsi: 0x13n, rdi: 0x23n, rcx: 0n }, memory: [{ gpa: 0x9020, bytes: [1, 2, 3] }] },
  },
  {
    name: "stosb: DI wraps from 0xffff to 0 within ES",
    mode: "real",
    asm: "mov ax, 0x800\nmov es, ax\nmov di, 0xffff\nmov cx, 2\nmov al, 0x5a\nrep stosb\nhlt",
    expect: {
      regs: { rdi: 1n, rcx: 0n },
      memory: [{ gpa: 0x8000 + 0xffff, bytes: [0x5a] }, { gpa: 0x8000, bytes: [0x5a] }],
    },
  },
  {
    name: "far jmp 0x0100:off sets CS = 0x100 (same linear code)",
    mode: "real",
    asm: `jmp 0x100:(t - ${L} + 0x0)\nhlt\nt: mov ax, cs\nhlt`,
    expect: { regs: { rax: 0x100n } },
  },
  {
    name: "far call / retf: CS:IP pushed and restored",
    mode: "real",
    asm:
      `mov sp, 0x8000\ncall 0x100:(f - ${L})\nmov bx, cs\nhlt\nf: mov ax, cs\nmov bp, sp\nmov cx, [bp]\nmov dx, [bp + 2]\nretf`,
    expect: { regs: { rax: 0x100n, rbx: 0n, rcx: BigInt(L + 3 + 5), rdx: 0n, rsp: 0x8000n } },
  },
  {
    name: "code at CS = 0x100: near call pushes IP relative to CS",
    mode: "real",
    asm: `mov sp, 0x8000\njmp 0x100:(t - ${L})\nt: call f\nhlt\nf: mov bp, sp\nmov ax, [bp]\nret`,
    expect: { regs: { rax: BigInt(3 + 5 + 3) } }, // mov sp (3) + jmp far (5): t at IP 8; call rel16 (3)
  },
  {
    name: "word access at offset 0xffff crosses the segment limit: #GP (vector 13) via the IVT",
    mode: "real",
    asm: `${
      ivt(13, "h")
    }\nmov sp, 0x8000\nmov ax, 0x800\nmov ds, ax\nfault: mov ax, [0xffff]\nhlt\nh: pop dx\nsub dx, fault\nmov bx, 13\nhlt`,
    expect: { regs: { rbx: 13n, rdx: 0n } },
  },
  {
    name: "32-bit address beyond 0xffff: #GP (vector 13) via the IVT",
    mode: "real",
    asm: `${
      ivt(13, "h")
    }\nmov sp, 0x8000\nmov ebx, 0x10000\nfault: mov al, [ebx]\nhlt\nh: pop dx\nsub dx, fault\nmov bx, 13\nhlt`,
    expect: { regs: { rbx: 0x1000dn, rdx: 0n } },
  },
];
