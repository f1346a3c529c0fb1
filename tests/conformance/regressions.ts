/**
 * Regression snippets from the differential fuzzer (tests/fuzz/diff.ts) and
 * from cross-backend bugs, written as table snippets with the native-CPU /
 * SDM expectation. tests/conformance_kvm_test.ts runs them on both backends
 * (KNOWN_SIM_FAILURES / kvm_divergences.ts list the ones a backend is known
 * to get wrong). The fuzzer's own mechanical record of every divergence it
 * finds (minimised, with seed and flag contract) is
 * tests/conformance/fuzz_regressions.json (tests/fuzz/regressions.ts).
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
  {
    // From fuzz:diff (seeds 1-5, tests/conformance/fuzz_regressions.json): POP r/m with an RSP-based memory
    // destination. SDM vol. 2 POP: "If the ESP register is used as a base register for addressing a destination
    // operand in memory, the POP instruction computes the effective address of the operand after it increments
    // the ESP register." Checked natively at CPL3 on this host (gcc inline asm, Intel Xeon): `push; popq
    // -0x34(%rsp)` writes at the restored RSP - 0x34. KVM agrees.
    name: "regression: pop qword [rsp-0x34] addresses from RSP after the pop's increment",
    mode: "long",
    asm: "mov rax, 0x1122334455667788\npush rax\npop qword [rsp-0x34]\nhlt",
    expect: {
      regs: { rax: 0x1122334455667788n, rsp: 0x300000n },
      memory: [{
        gpa: 0x300000 - 0x3c,
        bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11],
      }],
    },
  },
  {
    // The same rule with a 16-bit operand (66 8F /0): checked natively at CPL3 too (`popw -0x10(%rsp)`).
    name: "regression: pop word [rsp-0x10] addresses from RSP after the pop's increment",
    mode: "long",
    asm: "mov cx, 0x1122\npush cx\npop word [rsp-0x10]\nhlt",
    expect: { regs: { rsp: 0x300000n }, memory: [{ gpa: 0x300000 - 0x12, bytes: [0, 0, 0x22, 0x11] }] },
  },
];

/** Regression snippets the simulator is known to fail (kvmsim bugs), with the reason. None at present. */
export const KNOWN_SIM_FAILURES: ReadonlyMap<string, string> = new Map();
