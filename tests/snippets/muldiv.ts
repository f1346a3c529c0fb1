/**
 * MUL, IMUL (one, two and three operands), DIV, IDIV including #DE on a zero
 * divisor and on quotient overflow (delivered through the IDT to the
 * environment's exception stub, which reports vector 0).
 *
 * Expectations: tests/x86_alu_vectors.json (native CPU; #DE caught as SIGFPE).
 *
 * Flags (SDM): MUL/IMUL define only CF and OF (mask 0x801); SF ZF AF PF are
 * undefined → masked. DIV/IDIV leave all six undefined → mask 0.
 */
import { vectorSnippets } from "./vectors.ts";
import type { Snippet } from "./types.ts";

export const snippets: Snippet[] = [
  ...vectorSnippets({ match: /^(mul|imul)(8|16|32|64)$/, long: 2, second: 1, real: 1 }),
  ...vectorSnippets({ match: /^imul(2|3|3z)_(16|32|64)$/, long: 2, second: 1, real: 0 }),
  ...vectorSnippets({ match: /^(div|idiv)(8|16|32|64)$/, long: 3, second: 2, real: 1 }),
];
