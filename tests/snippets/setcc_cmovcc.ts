/**
 * SETcc, CMOVcc (every condition), the flag instructions LAHF, SAHF, CMC,
 * CLC, STC, CLD, STD.
 *
 * Expectations: SETcc/CMOVcc/LAHF/SAHF/CMC from tests/x86_alu_vectors.json
 * (native CPU, nine flag patterns per condition); CLC/STC/CLD/STD and CMOVcc
 * with a 16-bit/64-bit/memory operand from the SDM (vol. 2, "Jcc": the
 * condition table; "CMOVcc": a 32-bit CMOV in 64-bit mode zero-extends the
 * destination even when the condition is false).
 *
 * Flags: SETcc/CMOVcc change none (all six compared: unchanged). SAHF loads
 * SF ZF AF PF CF from AH, OF unchanged. CMC/CLC/STC change only CF,
 * CLD/STD only DF. No flag is undefined.
 */
import { vectorSnippets } from "./vectors.ts";
import { CF, DF, le, OF, OSZAPC, SF, type Snippet, ZF } from "./types.ts";
import { CONDITIONS } from "./ref.ts";

const CONDS = CONDITIONS;
const FLAG_SETS = [0x2n | CF | ZF, 0x2n | SF | OF];

const extra: Snippet[] = [];
for (const [cc, holds] of CONDS) {
  for (const f of FLAG_SETS.slice(0, 1)) {
    const t = holds(f);
    extra.push({
      name: `cmov${cc} r64 flags=${f.toString(16)}`,
      mode: "long",
      asm: `cmov${cc} rax, rbx\nhlt`,
      regs: { rax: 0x1111222233334444n, rbx: 0x8888999900001234n, rflags: f },
      expect: { regs: { rax: t ? 0x8888999900001234n : 0x1111222233334444n, rflags: f }, flagsMask: OSZAPC },
      cpl3: true,
    });
  }
  const f = FLAG_SETS[1]!;
  const t = holds(f);
  extra.push({
    name: `cmov${cc} r32 zero-extends (64-bit mode) flags=${f.toString(16)}`,
    mode: "long",
    asm: `cmov${cc} eax, ebx\nhlt`,
    regs: { rax: 0xffffffff00000005n, rbx: 0xaaaaaaaa00000009n, rflags: f },
    expect: { regs: { rax: t ? 9n : 5n } },
    cpl3: true,
  });
  extra.push({
    name: `cmov${cc} r16, [mem] (real mode) flags=${f.toString(16)}`,
    mode: "real",
    asm: `cmov${cc} ax, [0x8000]\nhlt`,
    regs: { rax: 0x5555n, rflags: f },
    memory: [{ gpa: 0x8000, bytes: le(0xbeef, 2) }],
    expect: { regs: { rax: t ? 0xbeefn : 0x5555n } },
    cpl3: true,
  });
  extra.push({
    name: `set${cc} dh / byte [mem] (protected) flags=${f.toString(16)}`,
    mode: "protected",
    asm: `set${cc} dh\nset${cc} byte [0x8000]\nhlt`,
    regs: { rdx: 0xffffn, rflags: f },
    memory: [{ gpa: 0x8000, bytes: [0x77] }],
    expect: { regs: { rdx: t ? 0x01ffn : 0x00ffn }, memory: [{ gpa: 0x8000, bytes: [t ? 1 : 0] }] },
    cpl3: true,
  });
}
for (const mode of ["real", "protected", "long"] as const) {
  for (
    const [insn, f0, f1] of [
      ["clc", 0x2n | OSZAPC, 0x2n | (OSZAPC & ~CF)],
      ["stc", 0x2n, 0x3n],
      ["cmc", 0x2n | CF, 0x2n],
      ["cld", 0x2n | DF | OSZAPC, 0x2n | OSZAPC],
      ["std", 0x2n, 0x2n | DF],
    ] as const
  ) {
    extra.push({
      name: `${insn} [${mode}] flags=${f0.toString(16)}`,
      mode,
      asm: `${insn}\nhlt`,
      regs: { rflags: f0 },
      expect: { regs: { rflags: f1 }, flagsMask: OSZAPC | DF },
      cpl3: true,
    });
  }
}

export const snippets: Snippet[] = [
  ...vectorSnippets({
    match: /^set(n?[oszp]|n?[bel]|ae|be|a|ge|le|g|np|ns|no|ne)$/,
    long: 2,
    second: 1,
    real: 0,
    memForm: true,
  }),
  ...vectorSnippets({ match: /^cmov\w+32$/, long: 2, second: 1, real: 1 }),
  ...vectorSnippets({ match: /^(lahf|sahf|cmc)$/, long: 2, second: 1, real: 1 }),
  ...extra,
];
