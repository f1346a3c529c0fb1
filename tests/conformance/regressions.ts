/**
 * Regression snippets from the differential fuzzer (tests/fuzz/diff.ts) and
 * from cross-backend bugs: each divergence the fuzzer found, minimised, with
 * the native-CPU / SDM expectation. tests/conformance_kvm_test.ts runs them
 * on both backends (KNOWN_SIM_FAILURES / kvm_divergences.ts list the ones a
 * backend is known to get wrong).
 *
 * @module
 */
import type { Snippet } from "../snippets/types.ts";
import { CF, OF, PF, SF, ZF } from "../fuzz/gen.ts";

export const REGRESSIONS: readonly Snippet[] = [
  {
    // From fuzz:diff --seed 2: a false positive of the fuzzer itself (its CL-count flag contract was wrong), kept
    // as a regression of that contract: a shift by CL = 0
    // must leave every flag as it was, including ZF from MUL (here set by the earlier flags), so only the
    // flags MUL defines (CF, OF) and the ones no instruction touches are compared.
    name: "regression: mul r14 (r14 = 0) then shl r8d, cl (cl = 0) leaves flags as mul left them",
    mode: "long",
    asm: "mul r14\nshl r8d, cl\nhlt",
    regs: { rax: 0x119938529fe16b4dn, rcx: 0n, rdx: 0x2fn, r8: 0x4ed5da86980b24b6n, r14: 0n, rflags: 0x806n },
    expect: {
      regs: { rax: 0n, rdx: 0n, r8: 0x980b24b6n, rflags: 0x2n },
      flagsMask: BigInt(CF | OF),
    },
  },
  {
    name: "regression: shl r8d, cl with cl = 0 leaves CF PF ZF SF OF unchanged",
    mode: "long",
    asm: "shl r8d, cl\nhlt",
    regs: { rcx: 0x100n, r8: 0x4ed5da86980b24b6n, rflags: 0x2n | BigInt(CF | PF | ZF | SF | OF) },
    expect: {
      regs: { r8: 0x980b24b6n, rflags: 0x2n | BigInt(CF | PF | ZF | SF | OF) },
      flagsMask: BigInt(CF | PF | ZF | SF | OF),
    },
  },
];

/** Regression snippets the simulator is known to fail (kvmsim bugs), with the reason. */
export const KNOWN_SIM_FAILURES: ReadonlyMap<string, string> = new Map();
