/**
 * INC, DEC, NEG, NOT (register and memory-destination forms).
 *
 * Expectations: tests/x86_alu_vectors.json (native CPU).
 *
 * Flags (SDM): INC/DEC set OF SF ZF AF PF and leave CF unchanged (mask 0x8d5
 * still compares CF: it must keep its input value). NEG sets all six (CF =
 * source ≠ 0). NOT changes no flag (mask 0x8d5: all must be unchanged).
 * Nothing is undefined.
 */
import { vectorSnippets } from "./vectors.ts";
import type { Snippet } from "./types.ts";

export const snippets: Snippet[] = [
  ...vectorSnippets({ match: /^(inc|dec|neg|not)(8|16|32|64)$/, long: 3, second: 2, real: 1, memForm: true }),
];
