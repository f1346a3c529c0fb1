/**
 * Protected mode (32-bit, flat environment GDT): selector loads, far JMP/CALL
 * /RETF through the 32-bit code selector, a guest-built GDT with a based,
 * byte-granular data segment (base added, limit checked → #GP), a 16-bit
 * operand/address override, segment registers read back.
 *
 * Expectations: SDM vol. 3 ch. 3 (3.4.2 selectors, 3.4.5 descriptors: base,
 * limit, G bit; 5.3 limit checking: an access beyond the limit → #GP(0), or
 * #SS for SS), vol. 2 JMP/CALL/RET far, MOV Sreg.
 *
 * The environment's GDT (createVmWithOneVcpu): 0x08 64-bit code, 0x10 flat
 * data, 0x18 flat 32-bit code, 0x20 TSS.
 *
 * Flags: not compared.
 */
import { ENV } from "./run.ts";
import { exceptionExits, le, type Snippet } from "./types.ts";

const P = ENV.exceptionPort;
const GDT = 0x31000;
// A GDT built by the guest: copy of the environment's flat entries plus
// 0x28: data, base 0x8000, limit 0xff, byte granular; 0x30: data, base 0x9000, limit 0 (G=1: 4 KiB).
const gdtSetup = [
  `mov dword [${GDT}], 0\nmov dword [${GDT + 4}], 0`,
  `mov dword [${GDT + 0x10}], 0x0000ffff\nmov dword [${GDT + 0x14}], 0x00cf9300`,
  `mov dword [${GDT + 0x18}], 0x0000ffff\nmov dword [${GDT + 0x1c}], 0x00cf9b00`,
  `mov dword [${GDT + 0x28}], 0x800000ff\nmov dword [${GDT + 0x2c}], 0x00409300`,
  `mov dword [${GDT + 0x30}], 0x90000000\nmov dword [${GDT + 0x34}], 0x00c09300`,
  `mov word [${GDT - 8}], 0x37\nmov dword [${GDT - 6}], ${GDT}\nlgdt [${GDT - 8}]`,
].join("\n");

export const snippets: Snippet[] = [
  {
    name: "segment registers read back: CS 0x18, DS/SS 0x10",
    mode: "protected",
    asm: "mov ax, cs\nmov bx, ds\nmov cx, ss\nhlt",
    expect: { regs: { rax: 0x18n, rbx: 0x10n, rcx: 0x10n } },
  },
  {
    name: "far jmp 0x18:label keeps running 32-bit code",
    mode: "protected",
    asm: "jmp 0x18:t\nhlt\nt: mov eax, 0x12345678\nmov bx, cs\nhlt",
    expect: { regs: { rax: 0x12345678n, rbx: 0x18n } },
  },
  {
    name: "far call 0x18:f / retf: CS and EIP pushed as dwords",
    mode: "protected",
    asm: "call 0x18:f\nhlt\nf: mov eax, [esp + 4]\nmov ebx, [esp]\nretf",
    expect: { regs: { rax: 0x18n, rbx: BigInt(ENV.load + 7), rsp: BigInt(ENV.stackTop) } },
  },
  {
    name: "guest GDT: data segment with base 0x8000 adds its base",
    mode: "protected",
    asm:
      `${gdtSetup}\nmov ax, 0x28\nmov ds, ax\nmov ebx, [0x10]\nmov dword [0x20], 0xfeedface\nmov ax, 0x10\nmov ds, ax\nhlt`,
    memory: [{ gpa: 0x8010, bytes: le(0x0badf00d, 4) }],
    expect: { regs: { rbx: 0x0badf00dn }, memory: [{ gpa: 0x8020, bytes: le(0xfeedface, 4) }] },
  },
  {
    name: "guest GDT: the last byte inside a byte-granular limit (0xff) is accessible",
    mode: "protected",
    asm: `${gdtSetup}\nmov ax, 0x28\nmov es, ax\nmov bl, [es:0xff]\nhlt`,
    memory: [{ gpa: 0x80ff, bytes: [0x42] }],
    expect: { regs: { rbx: 0x42n } },
  },
  {
    name: "guest GDT: a dword at offset 0xfd crosses the limit 0xff: #GP",
    mode: "protected",
    asm: `${gdtSetup}\nmov ax, 0x28\nmov es, ax\nmov ebx, [es:0xfd]\nhlt`,
    exits: exceptionExits(P, 13),
    expect: {},
  },
  {
    name: "guest GDT: offset 0x100 beyond limit 0xff: #GP",
    mode: "protected",
    asm: `${gdtSetup}\nmov ax, 0x28\nmov es, ax\nmov byte [es:0x100], 1\nhlt`,
    exits: exceptionExits(P, 13),
    expect: {},
  },
  {
    name: "guest GDT: G = 1 limit 0 covers 4 KiB (offset 0xfff ok)",
    mode: "protected",
    asm: `${gdtSetup}\nmov ax, 0x30\nmov fs, ax\nmov bl, [fs:0xfff]\nhlt`,
    memory: [{ gpa: 0x9fff, bytes: [0x37] }],
    expect: { regs: { rbx: 0x37n } },
  },
  {
    name: "guest GDT: G = 1 limit 0, offset 0x1000: #GP",
    mode: "protected",
    asm: `${gdtSetup}\nmov ax, 0x30\nmov fs, ax\nmov bl, [fs:0x1000]\nhlt`,
    exits: exceptionExits(P, 13),
    expect: {},
  },
  {
    name: "guest GDT: SS with base 0x8000: push at ESP 0x100 writes linear 0x80fc",
    mode: "protected",
    asm:
      `${gdtSetup}\nmov ax, 0x28\nmov ss, ax\nmov esp, 0x100\npush eax\nmov ebx, esp\nmov ax, 0x10\nmov ss, ax\nmov esp, ${ENV.stackTop}\nhlt`,
    expect: { regs: { rbx: 0xfcn }, memory: [{ gpa: 0x80fc, bytes: [0x28, 0, 0, 0] }] },
  },
  {
    name: "67 prefix in 32-bit code: [bx + si] 16-bit addressing",
    mode: "protected",
    asm: "mov ax, [bx + si]\nhlt",
    regs: { rbx: 0x18000n + 0x7ff0n, rsi: 0x20n },
    memory: [{ gpa: 0x10, bytes: [0xef, 0xbe] }], // (0xfff0 + 0x20) mod 64 KiB
    expect: { regs: { rax: 0xbeefn } },
  },
  {
    name: "16-bit operand (66) in 32-bit code merges into EAX",
    mode: "protected",
    asm: "mov eax, 0x11112222\nmov ax, 0x3333\nadd ax, 0xffff\nhlt",
    expect: { regs: { rax: 0x11113332n } },
  },
];
