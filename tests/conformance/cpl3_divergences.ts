/**
 * Snippets whose CPL 3 run on this host's /dev/kvm (PVM) does not meet the
 * snippet's expectation (SDM; the simulator meets it at CPL 3 too), each
 * with what the host does instead, recorded exactly: the CPL 3 test checks
 * that the host still does precisely that (`kvm`), so a listed snippet that
 * starts passing — or starts failing differently — fails the test and the
 * table stays current. None of them is a kvmsim bug.
 *
 * @module
 */
import type { Snippet } from "../snippets/types.ts";

/** What the host does instead: an exception (vector, saved RIP at the raising instruction), or run to the final HLT. */
export type Cpl3KvmOutcome = { vector: number; ripAt: "instruction" } | { finalHlt: true };

/** The CPL 3 runs: the snippet's own mode, or a protected-mode snippet in compatibility mode (`compat`). */
export type Cpl3Variant = "cpl3" | "compat";

export interface Cpl3Divergence {
  match: RegExp;
  /** The runs the entry covers. */
  runs: readonly Cpl3Variant[];
  kvm: Cpl3KvmOutcome;
  /** What the host does, in words. */
  host: string;
  /** What the snippet expects (SDM). */
  expected: string;
  reason: string;
}

export const CPL3_DIVERGENCES: readonly Cpl3Divergence[] = [
  {
    match: /^(int 5|int 0x1f) \[(long|protected)\]/,
    runs: ["cpl3", "compat"],
    kvm: { vector: 6, ripAt: "instruction" },
    host: "#UD (vector 6) with the saved RIP at the INT n (a fault), in long, protected and compatibility mode",
    expected: "INT n through the DPL-3 interrupt gate n: vector n delivered, saved RIP after the INT (a trap)",
    reason: "PVM: INT n (0xCD) from guest ring 3 is turned into #UD instead of being delivered through the guest " +
      "IDT (INT3 0xCC in long mode is delivered correctly)",
  },
  {
    match: /^(int3: #BP|into with OF = 1: #OF) \[protected\]/,
    runs: ["cpl3", "compat"],
    kvm: { vector: 6, ripAt: "instruction" },
    host: "#UD (vector 6) with the saved RIP at the INT3 / INTO, in protected and in compatibility mode",
    expected: "vector 3 / 4 through the DPL-3 gate, saved RIP after the instruction (a trap)",
    reason: "PVM: ring-3 code in protected mode without paging goes through KVM's emulator, which does not " +
      "emulate INT3 / INTO there (the CPL 0 runs fail the same way, see kvm_divergences.ts); natively run " +
      "compatibility-mode ring-3 code gets #UD for them too (INT3 in 64-bit mode is delivered correctly)",
  },
  {
    match: /^xgetbv with CR4\.OSXSAVE = 0: #UD \[long\]/,
    runs: ["cpl3"],
    kvm: { finalHlt: true },
    host: "XGETBV executes (ring-3 code runs natively with the host's CR4.OSXSAVE = 1) and the snippet reaches its HLT",
    expected: "#UD (vector 6): the guest's CR4.OSXSAVE = 0 (SDM vol. 2 XGETBV)",
    reason: "PVM: guest ring-3 code runs on the host CPU under the host's CR4, not the guest's",
  },
];

/** The divergence entry covering `s` in run `variant`, if any. */
export function cpl3Divergence(s: Snippet, variant: Cpl3Variant = "cpl3"): Cpl3Divergence | undefined {
  return CPL3_DIVERGENCES.find((d) => d.runs.includes(variant) && d.match.test(s.name));
}
