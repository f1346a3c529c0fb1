/**
 * Snippets whose expectation (native CPU / SDM) the KVM backend does not meet,
 * each with the reason. The host's /dev/kvm is PVM (software-nested): ring-0
 * guest code goes through KVM's x86 instruction emulator, so most of these are
 * emulator / PVM deviations, not kvmsim bugs — the simulator passes every one of
 * them (tests/snippets_test.ts). An entry with `onHost` is a property of the
 * host's CPU (KVM follows the hardware there) and applies only where it holds.
 * Each is shown against the expectation the snippet holds; a listed snippet that
 * starts passing on KVM fails the conformance test so the table stays current.
 *
 * @module
 */
import { kvmHostVaBits } from "../support/kvm_guard.ts";

export interface KvmDivergence {
  /** A snippet name, or a RegExp over snippet names (a family pattern). */
  match: string | RegExp;
  /** Only on hosts where this holds (checked when a KVM test asks; /dev/kvm works then); absent: on every host. */
  onHost?: { what: string; applies(): boolean };
  /** What KVM does instead. */
  kvm: string;
  /** What the snippet expects (native CPU / SDM). */
  expected: string;
  reason: string;
}

export const KVM_DIVERGENCES: readonly KvmDivergence[] = [
  {
    match:
      /^(int3|int 5|int 0x1f|int3 is a trap|int n then iretq|int 0x80 then iretd|into with OF = 1)[: ].*\[(long|protected)\]/,
    kvm: "KVM_EXIT_INTERNAL_ERROR (KVM_INTERNAL_ERROR_EMULATION) at the INT3 / INT n / INTO",
    expected: "the exception or software interrupt delivered through the IDT (vector 3 / n / 4), the handler runs",
    reason: "PVM emulator: software interrupts (INT3, INT n, INTO) at CPL0 in protected and long mode are not emulated",
  },
  {
    match: /^xgetbv with CR4\.OSXSAVE = 0: #UD \[(long|protected)\]/,
    kvm: "KVM_EXIT_INTERNAL_ERROR (emulation) at XGETBV",
    expected: "#UD (vector 6): CR4.OSXSAVE = 0 (SDM vol. 2 XGETBV)",
    reason: "PVM emulator: XGETBV at CPL0 is not emulated",
  },
  {
    match: "cmpxchg ebx, edx [long] #1",
    kvm: "RBX = 0x6: the failed compare writes EBX back zero-extended (upper half cleared)",
    expected: "RBX = 0xdeadbeef00000006 unchanged (native AMD CPU, checked at CPL3 on this host with gcc inline asm: " +
      "fail leaves rbx = deadbeef00000006; a register destination is not written when the compare fails)",
    reason: "KVM emulator em_cmpxchg writes the old destination value back on failure, which zero-extends a 32-bit " +
      "register in 64-bit mode",
  },
  {
    match:
      /^32-bit paging: (#PF on a not-present 4 KiB page, error 0, CR2|a remapped page reads the other frame) \[protected\]$/,
    kvm: "#GP(0) at the MOV CR0 that sets CR0.PG (EIP of the MOV CR0 on the exception frame); with the snippet's own " +
      "IDT (no #GP gate) that escalates to a triple fault (KVM_EXIT_SHUTDOWN)",
    expected: "paging enabled with 32-bit (non-PAE) page tables; the load translates / #PF with CR2",
    reason: "PVM: 32-bit non-PAE paging is not supported (PAE and 4-level paging snippets pass)",
  },
  {
    match: /^wrmsr SYSENTER_(ESP|EIP) non-canonical: read back sign-extended from bit 47 \[long\]$/,
    onHost: { what: "the host CPU has LA57 (57-bit virtual addresses)", applies: () => kvmHostVaBits() === 57 },
    kvm: "RDX = 0x8000: 0x0000800000001234 reads back unchanged",
    expected: "RDX = 0xffff8000: the value sign-extended from bit 47 (a host with 48-bit virtual addresses)",
    reason: "KVM makes SYSENTER_ESP/EIP canonical at max_host_virt_addr_bits() (kvm_set_msr_common: " +
      "__canonical_address(data, max_host_virt_addr_bits())), which is 57 on a host whose CPU has LA57 even when " +
      "the guest does not; the simulator models a host with 48-bit virtual addresses (no 5-level paging)",
  },
];

/** The divergence entry whose pattern covers snippet `name`, on any host. */
export function divergenceEntry(name: string): KvmDivergence | undefined {
  return KVM_DIVERGENCES.find((d) => (typeof d.match === "string" ? d.match === name : d.match.test(name)));
}

/** The divergence entry covering snippet `name` on this host's /dev/kvm, if any. */
export function kvmDivergence(name: string): KvmDivergence | undefined {
  const d = divergenceEntry(name);
  return d === undefined || d.onHost === undefined || d.onHost.applies() ? d : undefined;
}
