/**
 * ALU family: ADD, OR, ADC, SBB, AND, SUB, XOR, CMP (register, immediate
 * imm8/imm16/imm32 and memory-destination forms) and TEST.
 *
 * Expectations: tests/x86_alu_vectors.json (native CPU) for ADD..CMP; TEST
 * from the AND vectors (SDM: TEST computes the AND, sets SF/ZF/PF the same,
 * CF = OF = 0, and discards the result).
 *
 * Flags (SDM vol. 2, APM vol. 3): ADD/ADC/SUB/SBB/CMP define OF SF ZF AF PF CF
 * (mask 0x8d5). AND/OR/XOR/TEST: OF = CF = 0, SF ZF PF from the result, AF
 * undefined → masked (0x8c5).
 */
import { vectorSnippets } from "./vectors.ts";
import type { Snippet } from "./types.ts";

const test: Snippet[] = vectorSnippets({ match: /^and(8|16|32|64)$/, long: 1, second: 1, real: 1 }).map((s) => {
  const asm = s.asm.replace(/^and /, "test ");
  // TEST writes nothing: the destination keeps its input value.
  const regs = { ...s.expect.regs, rax: s.regs!.rax! };
  return { ...s, name: s.name.replace(/^and /, "test "), asm, expect: { ...s.expect, regs } };
});

export const snippets: Snippet[] = [
  ...vectorSnippets({
    match: /^(add|or|adc|sbb|and|sub|xor|cmp)(8|16|32|64)$/,
    long: 2,
    second: 1,
    real: 0,
    memForm: true,
  }),
  ...vectorSnippets({
    match: /^(add|or|adc|sbb|and|sub|xor|cmp)i(16|32|64)$/,
    long: 1,
    second: 0,
    real: 0,
    memForm: true,
  }),
  ...test,
];
