/**
 * Data movement: MOV (imm8..imm64, register merge and zero-extension rules,
 * stores of sign-extended immediates, SIB addressing), XCHG, LEA (address-size
 * truncation), MOVZX/MOVSX/MOVSXD (register and memory), BSWAP, the
 * CBW/CWDE/CDQE/CWD/CDQ/CQO sign extensions, CMPXCHG, CMPXCHG8B, XADD, XLAT.
 *
 * Expectations: MOVSX/MOVZX/MOVSXD/BSWAP/CBW family/CMPXCHG/XADD register
 * forms from tests/x86_alu_vectors.json (native CPU); the rest from the SDM
 * (vol. 1 §3.4.1.1: a 32-bit destination in 64-bit mode is zero-extended to
 * 64 bits, 8/16-bit destinations keep the other bits; vol. 2 MOV/XCHG/LEA/
 * CMPXCHG/XADD/XLAT).
 *
 * Flags: MOV, XCHG, LEA, MOVZX/MOVSX, BSWAP, CBW family, XLAT change no flag
 * (all compared where listed). CMPXCHG sets OSZAPC as CMP; CMPXCHG8B sets
 * only ZF (others unchanged); XADD sets OSZAPC as ADD. Nothing undefined.
 */
import { vectorSnippets } from "./vectors.ts";
import { CF, le, OSZAPC, type Snippet, ZF } from "./types.ts";

const M = 0x8000;
const hand: Snippet[] = [
  {
    name: "mov r64, imm64",
    mode: "long",
    asm: "mov rax, 0x123456789abcdef0\nmov r9, -2\nhlt",
    expect: { regs: { rax: 0x123456789abcdef0n, r9: 0xfffffffffffffffen } },
    cpl3: true,
  },
  {
    name: "mov r32 zero-extends in 64-bit mode",
    mode: "long",
    asm: "mov eax, -1\nmov r10d, ebx\nhlt",
    regs: { rax: 0xdeadbeefcafebaben, rbx: 0x1111111180000000n, r10: -1n & 0xffffffffffffffffn },
    expect: { regs: { rax: 0xffffffffn, r10: 0x80000000n } },
    cpl3: true,
  },
  {
    name: "mov r16/r8 merge: ax, al, ah, r8w, r15b, sil",
    mode: "long",
    asm: "mov ax, 0x1234\nmov bl, 0x56\nmov bh, 0x78\nmov r8w, 0x9abc\nmov r15b, 0xde\nmov sil, 0xf0\nhlt",
    regs: {
      rax: 0xffffffffffffffffn,
      rbx: 0xffffffffffffffffn,
      r8: 0x1111111111111111n,
      r15: 0x2222222222222222n,
      rsi: 0x3333333333333333n,
    },
    expect: {
      regs: {
        rax: 0xffffffffffff1234n,
        rbx: 0xffffffffffff7856n,
        r8: 0x1111111111119abcn,
        r15: 0x22222222222222den,
        rsi: 0x33333333333333f0n,
      },
    },
    cpl3: true,
  },
  {
    name: "mov loads: byte/word/dword/qword from memory",
    mode: "long",
    asm: `mov al, [${M}]\nmov bx, [${M}]\nmov ecx, [${M}]\nmov rdx, [${M}]\nhlt`,
    regs: { rax: 0xaaaaaaaaaaaaaaaan, rbx: 0xbbbbbbbbbbbbbbbbn, rcx: 0xccccccccccccccccn },
    memory: [{ gpa: M, bytes: [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88] }],
    expect: {
      regs: { rax: 0xaaaaaaaaaaaaaa01n, rbx: 0xbbbbbbbbbbbb0201n, rcx: 0x04030201n, rdx: 0x8807060504030201n },
    },
    cpl3: true,
  },
  {
    name: "mov stores: sign-extended imm32 to qword, imm to dword/word/byte",
    mode: "long",
    asm: `mov qword [${M}], -2\nmov dword [${M + 8}], 0x80000000\nmov word [${M + 12}], 0x1234\nmov byte [${
      M + 14
    }], 0x99\nhlt`,
    memory: [{ gpa: M, bytes: new Array(16).fill(0x55) }],
    expect: {
      memory: [{ gpa: M, bytes: [...le(-2n, 8), ...le(0x80000000, 4), 0x34, 0x12, 0x99, 0x55] }],
    },
    cpl3: true,
  },
  {
    name: "mov with SIB: [rbx + rcx*8 + 0x10]",
    mode: "long",
    asm: "mov [rbx + rcx*8 + 0x10], eax\nmov edx, [rbx + rcx*8 + 0x10]\nhlt",
    regs: { rax: 0xcafef00dn, rbx: BigInt(M), rcx: 3n },
    memory: [{ gpa: M + 0x28, bytes: [0, 0, 0, 0, 0xee] }],
    expect: { regs: { rdx: 0xcafef00dn }, memory: [{ gpa: M + 0x28, bytes: [0x0d, 0xf0, 0xfe, 0xca, 0xee] }] },
    cpl3: true,
  },
  {
    name: "mov with SIB (32-bit): [esp + 4], [ebp - 4] (SS), [eax*2 + disp32]",
    mode: "protected",
    asm: `mov esp, ${M + 0x100}\nmov ebp, ${
      M + 0x40
    }\nmov eax, 0x10\nmov ebx, [esp + 4]\nmov ecx, [ebp - 4]\nmov edx, [eax*2 + ${M}]\nhlt`,
    memory: [
      { gpa: M + 0x104, bytes: le(0x11111111, 4) },
      { gpa: M + 0x3c, bytes: le(0x22222222, 4) },
      { gpa: M + 0x20, bytes: le(0x33333333, 4) },
    ],
    expect: { regs: { rbx: 0x11111111n, rcx: 0x22222222n, rdx: 0x33333333n } },
    cpl3: true,
  },
  {
    name: "xchg r64 / r32 (zero-extends both) / r8 with memory",
    mode: "long",
    asm: `xchg rax, rbx\nxchg ecx, edx\nxchg [${M}], sil\nhlt`,
    regs: {
      rax: 0x1111111111111111n,
      rbx: 0x2222222222222222n,
      rcx: 0xffffffff33333333n,
      rdx: 0xffffffff44444444n,
      rsi: 0x77n,
    },
    memory: [{ gpa: M, bytes: [0x99] }],
    expect: {
      regs: { rax: 0x2222222222222222n, rbx: 0x1111111111111111n, rcx: 0x44444444n, rdx: 0x33333333n, rsi: 0x99n },
      memory: [{ gpa: M, bytes: [0x77] }],
    },
    cpl3: true,
  },
  {
    name: "lea: 32-bit destination truncates and zero-extends; 64-bit full; flags unchanged",
    mode: "long",
    asm: "lea eax, [rbx + rcx*4 + 8]\nlea rdx, [rbx + rcx*4 + 8]\nlea rsi, [rbx - 1]\nhlt",
    regs: { rbx: 0x00000001fffffff0n, rcx: 2n, rflags: 0x2n | OSZAPC },
    expect: {
      regs: { rax: 0x00000000n, rdx: 0x0000000200000000n, rsi: 0x00000001ffffffefn, rflags: 0x2n | OSZAPC },
      flagsMask: OSZAPC,
    },
    cpl3: true,
  },
  {
    name: "lea with a 67 prefix (32-bit address) in 64-bit mode wraps at 4 GiB",
    mode: "long",
    asm: "lea rax, [ebx + 0x20]\nhlt",
    regs: { rbx: 0x12345678fffffff0n },
    expect: { regs: { rax: 0x10n } },
    cpl3: true,
  },
  {
    name: "lea in real mode: [bx + si + disp] wraps at 64 KiB",
    mode: "real",
    asm: "lea ax, [bx + si + 0x20]\nlea ecx, [bx + di]\nhlt",
    regs: { rbx: 0xfff0n, rsi: 0x8n, rdi: 0x20n, rcx: 0xffff0000n },
    expect: { regs: { rax: 0x18n, rcx: 0x10n } },
    cpl3: true,
  },
  {
    name: "movzx/movsx/movsxd from memory",
    mode: "long",
    asm:
      `movzx eax, byte [${M}]\nmovsx rbx, word [${M}]\nmovsxd rcx, dword [${M}]\nmovzx dx, byte [${M}]\nmovsx esi, byte [${M}]\nhlt`,
    regs: { rax: -1n & 0xffffffffffffffffn, rdx: 0x7777777777777777n },
    memory: [{ gpa: M, bytes: [0x81, 0x92, 0xa3, 0xb4] }],
    expect: {
      regs: {
        rax: 0x81n,
        rbx: 0xffffffffffff9281n,
        rcx: 0xffffffffb4a39281n,
        rdx: 0x7777777777770081n,
        rsi: 0xffffff81n,
      },
    },
    cpl3: true,
  },
  {
    name: "xlatb: AL = [RBX + AL]",
    mode: "long",
    asm: "db 0xd7 ; xlatb (not in the assembler)\nhlt",
    regs: { rax: 0x1234567800000003n, rbx: BigInt(M) },
    memory: [{ gpa: M, bytes: [0x10, 0x20, 0x30, 0x40, 0x50] }],
    expect: { regs: { rax: 0x1234567800000040n } },
    cpl3: true,
  },
  {
    name: "xlatb in real mode: DS:[BX + AL] (16-bit address)",
    mode: "real",
    asm: "db 0xd7 ; xlatb\nhlt",
    regs: { rax: 0xff02n, rbx: BigInt(M) },
    memory: [{ gpa: M, bytes: [0x10, 0x20, 0x30] }],
    expect: { regs: { rax: 0xff30n } },
    cpl3: true,
  },
];

// CMPXCHG with a memory destination (SDM: equal → ZF = 1, dest = src; else ZF = 0, accumulator = dest).
for (
  const [w, kw, acc, src] of [[8, "byte", "al", "cl"], [16, "word", "ax", "cx"], [32, "dword", "eax", "ecx"], [
    64,
    "qword",
    "rax",
    "rcx",
  ]] as const
) {
  const mask = (1n << BigInt(w)) - 1n;
  const memVal = 0x8877665544332211n & mask;
  for (const equal of [true, false]) {
    const raxIn = equal ? memVal | (0xabn << 56n) & ~mask : 0x0123456789abcdefn;
    const accIn = raxIn & mask;
    // Flags of CMP accumulator, memory.
    const diff = (accIn - memVal) & mask;
    const sign = 1n << BigInt(w - 1);
    const cf = accIn < memVal;
    const of = ((accIn ^ memVal) & (accIn ^ diff) & sign) !== 0n;
    const pf = [...(diff & 0xffn).toString(2)].filter((c) => c === "1").length % 2 === 0;
    const af = ((accIn ^ memVal ^ diff) & 0x10n) !== 0n;
    const flags = 0x2n | (cf ? CF : 0n) | (pf ? 0x4n : 0n) | (af ? 0x10n : 0n) | (diff === 0n ? ZF : 0n) |
      ((diff & sign) !== 0n ? 0x80n : 0n) | (of ? 0x800n : 0n);
    let raxOut = equal ? raxIn : (raxIn & ~mask) | memVal;
    if (!equal && w === 32) raxOut = memVal; // 32-bit write zero-extends RAX
    hand.push({
      name: `cmpxchg ${kw} [mem], ${src} (${equal ? "equal" : "not equal"})`,
      mode: "long",
      asm: `cmpxchg ${kw} [${M}], ${src}\nhlt`,
      regs: { rax: raxIn, rcx: 0x5a5a5a5a5a5a5a5an },
      memory: [{ gpa: M, bytes: le(memVal, w / 8) }],
      expect: {
        regs: { rax: raxOut, rflags: flags },
        flagsMask: OSZAPC,
        memory: [{ gpa: M, bytes: le(equal ? 0x5a5a5a5a5a5a5a5an : memVal, w / 8) }],
      },
      cpl3: true,
    });
  }
  void acc;
}
// CMPXCHG8B (protected mode) and XADD with memory.
hand.push(
  {
    name: "cmpxchg8b equal: stores ECX:EBX, ZF = 1",
    mode: "protected",
    asm: `db 0x0f, 0xc7, 0x0d ; cmpxchg8b [disp32] (not in the assembler)\ndd ${M}\nhlt`,
    regs: { rax: 0x44332211n, rdx: 0x88776655n, rbx: 0xaaaaaaaan, rcx: 0xbbbbbbbbn, rflags: 0x2n | CF },
    memory: [{ gpa: M, bytes: le(0x8877665544332211n, 8) }],
    expect: {
      regs: { rax: 0x44332211n, rdx: 0x88776655n, rflags: 0x2n | CF | ZF },
      flagsMask: OSZAPC,
      memory: [{ gpa: M, bytes: [...le(0xaaaaaaaa, 4), ...le(0xbbbbbbbb, 4)] }],
    },
    cpl3: true,
  },
  {
    name: "cmpxchg8b not equal: loads EDX:EAX, ZF = 0",
    mode: "protected",
    asm: `db 0x0f, 0xc7, 0x0d ; cmpxchg8b [disp32] (not in the assembler)\ndd ${M}\nhlt`,
    regs: { rax: 0x44332211n, rdx: 0x0n, rbx: 0xaaaaaaaan, rcx: 0xbbbbbbbbn, rflags: 0x2n | ZF },
    memory: [{ gpa: M, bytes: le(0x8877665544332211n, 8) }],
    expect: {
      regs: { rax: 0x44332211n, rdx: 0x88776655n, rflags: 0x2n },
      flagsMask: OSZAPC,
      memory: [{ gpa: M, bytes: le(0x8877665544332211n, 8) }],
    },
    cpl3: true,
  },
  {
    name: "xadd dword [mem], ebx: mem = sum, ebx = old, flags of the add",
    mode: "protected",
    asm: `xadd [${M}], ebx\nhlt`,
    regs: { rbx: 0x00000001n },
    memory: [{ gpa: M, bytes: le(0xffffffff, 4) }],
    expect: {
      regs: { rbx: 0xffffffffn, rflags: 0x2n | CF | ZF | 0x4n | 0x10n },
      flagsMask: OSZAPC,
      memory: [{ gpa: M, bytes: le(0, 4) }],
    },
    cpl3: true,
  },
  {
    name: "xadd byte [mem], al: signed overflow",
    mode: "real",
    asm: `xadd [${M}], al\nhlt`,
    regs: { rax: 0x1201n },
    memory: [{ gpa: M, bytes: [0x7f] }],
    expect: {
      regs: { rax: 0x127fn, rflags: 0x2n | 0x800n | 0x80n | 0x10n },
      flagsMask: OSZAPC,
      memory: [{ gpa: M, bytes: [0x80] }],
    },
    cpl3: true,
  },
);

export const snippets: Snippet[] = [
  ...vectorSnippets({ match: /^(movsx|movzx|movsxd|bswap)$/, long: 2, second: 2, real: 1 }),
  ...vectorSnippets({ match: /^(cbw|cwde|cdqe|cwd|cdq|cqo)$/, long: 2, second: 1, real: 1 }),
  ...vectorSnippets({ match: /^(cmpxchg|xadd)(8|16|32|64)$/, long: 2, second: 1, real: 1 }),
  ...hand,
];
