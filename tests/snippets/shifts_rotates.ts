/**
 * Shifts and rotates: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR by CL, by 1 and by
 * imm8, SHLD/SHRD by CL; counts 0, 1, 2..width-1, = width, > width and masked
 * (counts are masked to 5 bits, 6 with REX.W), register and memory forms.
 *
 * Expectations: tests/x86_alu_vectors.json (native CPU).
 *
 * Flags (SDM): count 0 → no flag changes (all compared). SHL/SHR/SAR: CF =
 * last bit out, SF ZF PF from the result; AF undefined; OF defined only for
 * count 1 (undefined for count > 1 → masked). For SHL/SHR with a count greater
 * than the operand size (8/16-bit) CF is undefined → masked. ROL/ROR: only CF
 * and OF are affected, OF only for count 1. RCL/RCR: CF and OF, OF only for
 * count 1. SHLD/SHRD: OF only for count 1, AF undefined; a count greater than
 * the operand size (16-bit) gives an undefined result and flags — such cases
 * carry the mask the vectors record.
 */
import { vectorSnippets } from "./vectors.ts";
import type { Snippet } from "./types.ts";

export const snippets: Snippet[] = [
  ...vectorSnippets({
    match: /^(shl|shr|sar|rol|ror|rcl|rcr)(8|16|32|64)$/,
    long: 3,
    second: 1,
    real: 0,
    memForm: true,
  }),
  ...vectorSnippets({ match: /^(shl1|sar_imm|rcr1)_(8|16|32|64)$/, long: 3, second: 1, real: 1, memForm: true }),
  ...vectorSnippets({ match: /^(shld|shrd)(16|32|64)$/, long: 3, second: 2, real: 1, memForm: true }),
];
