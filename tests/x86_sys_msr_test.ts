/**
 * CPUID from the VM's table, in-kernel MSRs, KVM_X86_SET_MSR_FILTER,
 * KVM_CAP_X86_USER_SPACE_MSR exits (KVM_EXIT_X86_RDMSR/WRMSR, msr.error → #GP),
 * RDTSC/RDTSCP/TSC_AUX, through the public API (createVmWithOneVcpu + run()).
 * Semantics: Linux arch/x86/kvm/cpuid.c kvm_cpuid(), x86.c kvm_msr_allowed(),
 * kvm_msr_user_space(), complete_fast_rdmsr()/complete_fast_msr_access().
 */
import assert from "node:assert/strict";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { defaultCpuid } from "../src/x86/cpuid.ts";
import type { CpuidEntry } from "../src/x86/cpuid.ts";
import { guest } from "./x86_sys_harness.ts";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import { releaseWatchdog } from "../src/backends/kvm/mod.ts";
import { NO_KVM } from "./support/kvm_guard.ts";
import { layOut, offsetOf } from "../src/abi/layout.ts";
import { VCPU_STATE } from "../src/abi/vcpu_state.ts";

const MSR_STAR = 0xc0000081, MSR_LSTAR = 0xc0000082, MSR_EFER = 0xc0000080, MSR_TSC_AUX = 0xc0000103;

/** `mov ecx, idx; rdmsr; hlt` plus a #GP handler at h13. */
const rdmsrGuest = (idx: number) =>
  guest(`
    mov ecx, ${idx}
  insn:
    rdmsr
  done:
    hlt
  h13:
    hlt`);

const str4 = (s: string) => [...s].reduceRight((a, c) => a * 256 + c.charCodeAt(0), 0) >>> 0;
const leaf = (fn: number, eax: number, index = 0, flags = 0): CpuidEntry => ({
  function: fn >>> 0,
  index,
  flags,
  eax,
  ebx: eax + 1,
  ecx: eax + 2,
  edx: eax + 3,
});

const cpuidProg = (fn: number, idx: number) =>
  guest(`mov rbx, -1\nmov rdx, -1\nmov eax, ${fn}\nmov ecx, ${idx}\ncpuid\nhlt`);

function cpuidOf(table: CpuidEntry[] | undefined, fn: number, idx = 0): number[] {
  const g = cpuidProg(fn, idx);
  if (table) g.vm.setCpuid(table);
  assert.equal(g.run().reason, "hlt");
  const r = g.vcpu.getRegs();
  return [r.rax, r.rbx, r.rcx, r.rdx].map(Number);
}

Deno.test("CPUID: default table (AuthenticAMD, max basic 0xd), upper register halves cleared", () => {
  const [eax, ebx, ecx, edx] = cpuidOf(undefined, 0);
  assert.equal(eax, 0xd);
  assert.deepEqual([ebx, edx, ecx], [str4("Auth"), str4("enti"), str4("cAMD")]);
  const r = cpuidProg(0x40000000, 0);
  assert.equal(r.run().reason, "hlt");
  assert.equal(r.reg("rbx"), BigInt(str4("KVMK")), "RBX upper half cleared by CPUID (was -1)");
});

Deno.test("CPUID: KVM_CPUID_FLAG_SIGNIFCANT_INDEX selects the sub-leaf; otherwise ECX is ignored", () => {
  const table = [leaf(0, 7), leaf(4, 0x40, 0, 1), leaf(4, 0x41, 1, 1), leaf(2, 0x20, 5, 0)];
  assert.deepEqual(cpuidOf(table, 4, 0), [0x40, 0x41, 0x42, 0x43]);
  assert.deepEqual(cpuidOf(table, 4, 1), [0x41, 0x42, 0x43, 0x44]);
  // Sub-leaf 2 of leaf 4 is absent: within the basic range (4 <= 7) → zeros (no fallback).
  assert.deepEqual(cpuidOf(table, 4, 2), [0, 0, 0, 0]);
  // Leaf 2 without the flag: any ECX matches.
  assert.deepEqual(cpuidOf(table, 2, 9), [0x20, 0x21, 0x22, 0x23]);
});

Deno.test("CPUID out of range: Intel vendor → the max basic leaf with the same index; AMD vendor → zeros", () => {
  const intel = (maxBasic: number): CpuidEntry[] => [
    { function: 0, index: 0, flags: 0, eax: maxBasic, ebx: str4("Genu"), ecx: str4("ntel"), edx: str4("ineI") },
    leaf(5, 0x50, 0, 1),
    leaf(5, 0x51, 1, 1),
    leaf(0x80000000, 0x80000004),
  ];
  // Above the basic maximum (5): leaf 5 with the requested index (kvm_cpuid: "the index of the original leaf is observed").
  assert.deepEqual(cpuidOf(intel(5), 0x6, 1), [0x51, 0x52, 0x53, 0x54]);
  // Extended class present and the function above its maximum → max basic leaf.
  assert.deepEqual(cpuidOf(intel(5), 0x80000005, 0), [0x50, 0x51, 0x52, 0x53]);
  // Within the extended class's range but absent: zeros.
  assert.deepEqual(cpuidOf(intel(5), 0x80000003, 0), [0, 0, 0, 0]);
  // The hypervisor range with no 0x40000000 entry (no class) → max basic leaf.
  assert.deepEqual(cpuidOf(intel(5), 0x40000010, 0), [0x50, 0x51, 0x52, 0x53]);
  // AMD (the default table's vendor): zeros past the maximum.
  const amd = defaultCpuid();
  assert.deepEqual(cpuidOf(amd, 0x20, 0), [0, 0, 0, 0]);
  assert.deepEqual(cpuidOf(amd, 0x80000020, 0), [0, 0, 0, 0]);
  // No table at all: zeros.
  assert.deepEqual(cpuidOf([], 0, 0), [0, 0, 0, 0]);
});

Deno.test("CPUID leaf 1 follows the vCPU: ECX.OSXSAVE = CR4.OSXSAVE, EDX.APIC = APIC_BASE.EN (kvm_update_cpuid_runtime)", () => {
  const g = guest(`
    mov eax, 1
    cpuid
    mov esi, ecx
    mov edi, edx
    mov rax, cr4
    or eax, 0x40000
    mov cr4, rax
    mov ecx, 0x1b
    rdmsr
    and eax, 0xfffff7ff
    wrmsr
    mov eax, 1
    cpuid
    hlt`);
  assert.equal(g.run().reason, "hlt");
  const r = g.vcpu.getRegs();
  assert.equal((r.rsi >> 27n) & 1n, 0n);
  assert.equal((r.rdi >> 9n) & 1n, 1n, "APIC present: the reset APIC base is enabled");
  assert.equal((r.rcx >> 27n) & 1n, 1n);
  assert.equal((r.rdx >> 9n) & 1n, 0n, "APIC bit cleared with the APIC disabled");
  assert.equal(r.rbx >> 24n, 0n, "initial APIC ID = vCPU id 0");
});

Deno.test("in-kernel MSRs: WRMSR/RDMSR round trip without exits; KVM_GET/SET_MSRS see the same storage", () => {
  const g = guest(`
    mov ecx, ${MSR_STAR}
    mov eax, 0x11223344
    mov edx, 0x55667788
    wrmsr
    xor eax, eax
    xor edx, edx
    rdmsr
    mov r8, rax
    mov r9, rdx
    mov ecx, ${MSR_LSTAR}
    rdmsr
    hlt`);
  g.vcpu.setMsr(MSR_LSTAR, 0xffff800012345678n);
  assert.equal(g.run().reason, "hlt");
  const r = g.vcpu.getRegs();
  assert.deepEqual([r.r8, r.r9], [0x11223344n, 0x55667788n]);
  assert.deepEqual([r.rax, r.rdx], [0x12345678n, 0xffff8000n]);
  assert.equal(g.vcpu.getMsr(MSR_STAR), 0x5566778811223344n);
});

Deno.test("RDMSR/WRMSR of an unknown MSR without KVM_CAP_X86_USER_SPACE_MSR: #GP(0) at the instruction", () => {
  const g = rdmsrGuest(0xc0011234);
  g.gatesFromLabels();
  g.hltAt("h13");
  const [err, rip] = g.stack(2);
  assert.deepEqual([err, rip], [0n, BigInt(g.at("insn"))]);
});

Deno.test("invalid values of in-kernel MSRs: #GP, or KVM_MSR_EXIT_REASON_INVAL when enabled; nothing written", () => {
  // EFER bit 2 is reserved; a non-canonical LSTAR; PAT type 2.
  for (const [idx, hi, lo] of [[MSR_EFER, 0, 4], [MSR_LSTAR, 0x8000, 0], [0x277, 0, 2]] as const) {
    const src = `mov ecx, ${idx}\nmov eax, ${lo}\nmov edx, ${hi}\ninsn: wrmsr\nhlt\nh13: hlt`;
    const a = guest(src);
    a.gatesFromLabels();
    const before = a.vcpu.getMsr(idx);
    a.hltAt("h13");
    assert.deepEqual(a.stack(2), [0n, BigInt(a.at("insn"))], `MSR ${idx.toString(16)}`);
    assert.equal(a.vcpu.getMsr(idx), before);
    const b = guest(src);
    b.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_INVAL);
    const e = b.expect("x86_wrmsr");
    assert.deepEqual([e.index, e.msrReason, e.data], [
      idx,
      K.KVM_MSR_EXIT_REASON_INVAL,
      (BigInt(hi) << 32n) | BigInt(lo),
    ]);
    assert.equal(b.rip, BigInt(b.at("insn")), "RIP stays at the WRMSR while userspace handles it");
  }
});

Deno.test("user-space RDMSR exit: fields, RIP at the RDMSR during the exit, completion into EDX:EAX", () => {
  const g = rdmsrGuest(0xc0011234);
  g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  g.vcpu.setRegs({ rax: 0xaaaaaaaa_bbbbbbbbn, rdx: 0xccccn });
  const e = g.expect("x86_rdmsr");
  assert.deepEqual([e.index, e.msrReason, e.data], [0xc0011234, K.KVM_MSR_EXIT_REASON_UNKNOWN, 0n]);
  assert.equal(g.rip, BigInt(g.at("insn")));
  e.setData(0xdeadbeef_cafef00dn);
  g.hltAt("done");
  const r = g.vcpu.getRegs();
  assert.deepEqual([r.rax, r.rdx], [0xcafef00dn, 0xdeadbeefn], "EAX/EDX written as 32-bit registers");
});

Deno.test("user-space MSR exit with msr.error set: #GP(0) into the guest at the RDMSR/WRMSR", () => {
  for (const insn of ["rdmsr", "wrmsr"]) {
    const g = guest(`mov ecx, 0xc0011234\nmov eax, 5\ninsn: ${insn}\nhlt\nh13: hlt`);
    g.gatesFromLabels();
    g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
    const e = g.expect(insn === "rdmsr" ? "x86_rdmsr" : "x86_wrmsr");
    if (insn === "wrmsr") assert.equal(e.data, 5n);
    e.setError();
    g.hltAt("h13");
    assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))], insn);
    assert.equal(g.reg("rax"), 5n, "RAX untouched");
  }
});

Deno.test("user-space WRMSR exit completes past the WRMSR; the unknown MSR is not stored", () => {
  const g = guest(`mov ecx, 0xc0011234\nmov eax, 1\nmov edx, 2\ninsn: wrmsr\ndone: hlt`);
  g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  const e = g.expect("x86_wrmsr");
  assert.equal(e.data, 0x200000001n);
  g.hltAt("done");
});

Deno.test("user-space RDMSR exit with immediate_exit: the next run completes it into EDX:EAX and returns KVM_EXIT_INTR", () => {
  const g = guest(`mov ecx, 0xc0011234\ninsn: rdmsr\nmov ebx, 1\ndone: hlt`);
  g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  g.expect("x86_rdmsr").setData(0x11223344_55667788n);
  g.vcpu.immediateExit = true;
  assert.equal(g.vcpu.runRaw(), K.KVM_EXIT_INTR);
  g.vcpu.immediateExit = false;
  const r = g.vcpu.getRegs();
  assert.deepEqual([r.rax, r.rdx, r.rbx, r.rip], [0x55667788n, 0x11223344n, 0n, BigInt(g.at("insn") + 2)]);
  g.hltAt("done");
  assert.equal(g.reg("rbx"), 1n);
});

// KVM completes a user-space MSR exit with kvm_skip_emulated_instruction, which single-steps right after
// the RDMSR (checked on this host's /dev/kvm too): the debug exit comes before the next instruction runs.
for (const backend of NO_KVM === undefined ? (["sim", "kvm"] as const) : (["sim"] as const)) {
  Deno.test(`user-space RDMSR exit, then KVM_GUESTDBG_SINGLESTEP (${backend}): the debug exit right after the RDMSR`, () => {
    const { bytes, labels } = assemble(`mov ecx, 0xc0011234\ninsn: rdmsr\nmov ebx, 1\nhlt`, {
      bits: 64,
      origin: 0x1000,
    });
    const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, mode: "long", load: 0x1000, backend });
    try {
      vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
      const e = vcpu.run(100_000);
      assert.ok(e.reason === "x86_rdmsr", `got ${e.reason}`);
      e.setData(7n);
      vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });
      const d = vcpu.run(100_000);
      assert.ok(d.reason === "debug", `got ${d.reason}`);
      const r = vcpu.getRegs();
      assert.deepEqual([r.rax, r.rbx, r.rip], [7n, 0n, BigInt(labels.get("insn")! + 2)]);
      assert.equal(d.pc, r.rip);
    } finally {
      vm.close();
      releaseWatchdog();
    }
  });
}

Deno.test("user-space RDMSR exit in an STI shadow: its completion ends the shadow (kvm_skip_emulated_instruction)", () => {
  const g = guest(`mov ecx, 0xc0011234\nsti\nrdmsr\ndone: hlt`);
  g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  g.expect("x86_rdmsr").setData(1n);
  assert.equal(g.vcpu.getEvents().interrupt.shadow, 1, "the RDMSR exited inside the STI shadow");
  g.hltAt("done");
  assert.equal(g.vcpu.getEvents().interrupt.shadow, 0);
});

Deno.test("user-space RDMSR exit with the guest's TF set: #DB into the guest right after the RDMSR", () => {
  const g = guest(`mov ecx, 0xc0011234\ninsn: rdmsr\nafter: mov ebx, 1\nhlt\nh1: hlt`);
  g.gatesFromLabels();
  g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  const e = g.expect("x86_rdmsr");
  e.setData(7n);
  g.vcpu.setRegs({ rflags: g.vcpu.getRegs().rflags | 0x100n });
  g.hltAt("h1");
  assert.equal(g.stack(1)[0], BigInt(g.at("after")), "the #DB trap's frame: RIP after the RDMSR");
  assert.equal(g.reg("rbx"), 0n);
});

Deno.test("MSR filter: a denied in-kernel RDMSR exits with FILTER; without FILTER in the mask it is #GP", () => {
  const filter = {
    flags: 0,
    ranges: [{ flags: K.KVM_MSR_FILTER_READ, nmsrs: 4, base: MSR_STAR, bitmap: Uint8Array.of(0b1110) }],
  };
  // STAR is bit 0 (denied), LSTAR bit 1 (allowed).
  const a = rdmsrGuest(MSR_STAR);
  a.vm.setMsrFilter(filter);
  a.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_FILTER);
  const e = a.expect("x86_rdmsr");
  assert.deepEqual([e.index, e.msrReason], [MSR_STAR, K.KVM_MSR_EXIT_REASON_FILTER]);
  e.setData(7n);
  a.hltAt("done");
  assert.equal(a.reg("rax"), 7n);

  const b = rdmsrGuest(MSR_LSTAR);
  b.vm.setMsrFilter(filter);
  b.vcpu.setMsr(MSR_LSTAR, 0x1234n);
  b.hltAt("done");
  assert.equal(b.reg("rax"), 0x1234n, "an allowed MSR is handled in the kernel");

  const c = rdmsrGuest(MSR_STAR);
  c.vm.setMsrFilter(filter);
  c.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  c.gatesFromLabels();
  c.hltAt("h13");

  // The filter's range is read-only: WRMSR of STAR is still allowed.
  const d = guest(`mov ecx, ${MSR_STAR}\nmov eax, 9\nxor edx, edx\nwrmsr\nhlt`);
  d.vm.setMsrFilter(filter);
  assert.equal(d.run().reason, "hlt");
  assert.equal(d.vcpu.getMsr(MSR_STAR), 9n);
});

Deno.test("MSR filter: DEFAULT_DENY denies MSRs outside every range, but x2APIC MSRs are never filtered", () => {
  const a = rdmsrGuest(MSR_TSC_AUX);
  a.vm.setMsrFilter({ flags: K.KVM_MSR_FILTER_DEFAULT_DENY, ranges: [] });
  a.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_FILTER | K.KVM_MSR_EXIT_REASON_UNKNOWN);
  assert.equal(a.expect("x86_rdmsr").msrReason, K.KVM_MSR_EXIT_REASON_FILTER);
  // kvm_msr_allowed(): "x2APIC MSRs do not support filtering" — 0x800-0x8ff skip the filter, so
  // an x2APIC MSR kvmsim has no APIC for is UNKNOWN, not FILTER.
  const b = rdmsrGuest(0x802);
  b.vm.setMsrFilter({ flags: K.KVM_MSR_FILTER_DEFAULT_DENY, ranges: [] });
  b.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_FILTER | K.KVM_MSR_EXIT_REASON_UNKNOWN);
  assert.equal(b.expect("x86_rdmsr").msrReason, K.KVM_MSR_EXIT_REASON_UNKNOWN);
  // Removing the filter (flags 0, no ranges) allows everything again.
  const c = rdmsrGuest(MSR_TSC_AUX);
  c.vm.setMsrFilter({ flags: K.KVM_MSR_FILTER_DEFAULT_DENY, ranges: [] });
  c.vm.setMsrFilter({ flags: 0, ranges: [] });
  c.hltAt("done");
});

Deno.test("RDMSR/WRMSR at CPL 3: #GP(0) before the filter or any exit", () => {
  const g = guest(`user: mov ecx, 0xc0011234\ninsn: rdmsr\nhlt\nh13: hlt`);
  g.userSegments();
  g.userPages();
  g.gatesFromLabels();
  g.tss({ sp0: 0x80000 });
  g.vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  g.enterRing3("user", 0x70000);
  g.hltAt("h13");
  const [err, rip, cs] = g.stack(3);
  assert.deepEqual([err, rip, cs], [0n, BigInt(g.at("insn")), 0x33n]);
});

Deno.test("RDTSC advances with retired instructions; WRMSR IA32_TSC sets it; RDTSCP returns TSC_AUX in ECX", () => {
  const g = guest(`
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r8, rax
    nop
    nop
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r9, rax
    mov ecx, 0x10
    mov eax, 0x1000
    xor edx, edx
    wrmsr
    rdtscp
    hlt`);
  g.vcpu.setMsr(0x10, 1_000_000n);
  g.vcpu.setMsr(MSR_TSC_AUX, 0x77n);
  assert.equal(g.run().reason, "hlt");
  const r = g.vcpu.getRegs();
  assert.ok(r.r8 >= 1_000_000n && r.r8 < 1_000_010n, `first RDTSC ${r.r8}`);
  // One tick per retired instruction: the first RDTSC and the five after it.
  assert.equal(r.r9 - r.r8, 6n, "the TSC moved by the instructions retired");
  // The value WRMSR wrote, plus the WRMSR itself.
  assert.deepEqual([r.rax, r.rdx], [0x1001n, 0n], `after WRMSR TSC: ${r.rax}`);
  assert.equal(r.rcx, 0x77n);
  assert.ok(g.vcpu.getMsr(0x10) >= r.rax, "KVM_GET_MSRS sees the TSC the guest set, advanced");
});

Deno.test("the TSC counts every retired instruction on every path: fastRun, translated loops, RDTSC, RDMSR", () => {
  // r8: RDTSC after a translated loop of 3 x 400 instructions; r9 - r8: RDMSR after
  // the RDTSC, a MOV and a NOP (fastRun); r10 - r9: RDTSC after that RDMSR and a MOV.
  const g = guest(`
    mov r12d, 400
  top:
    add r13, 1
    dec r12d
    jnz top
    rdtsc
    mov r8d, eax
    nop
    mov ecx, 0x10
    rdmsr
    mov r9d, eax
    rdtsc
    mov r10d, eax
    hlt`);
  const hot = new DataView(g.vm.memory.buffer);
  hot.setUint32(g.vcpu.stateBase + offsetOf(layOut(VCPU_STATE), "jit_hot"), 4, true);
  g.vcpu.setMsr(0x10, 5000n);
  assert.equal(g.run().reason, "hlt");
  assert.ok(g.vm.core.jitStats!.compiled > 0, "the loop ran translated");
  const r = g.vcpu.getRegs();
  // 1 + 3 x 400 instructions before the first RDTSC; then RDTSC, MOV, NOP, MOV ECX; then RDMSR, MOV.
  assert.deepEqual([r.r8, r.r9 - r.r8, r.r10 - r.r9], [5000n + 1201n, 4n, 2n]);
});

Deno.test("RDTSC with CR4.TSD at CPL 3 is #GP(0); at CPL 0 it is allowed", () => {
  const g = guest(`user: insn: rdtsc\nhlt\nh13: hlt`);
  g.userSegments();
  g.userPages();
  g.gatesFromLabels();
  g.tss({ sp0: 0x80000 });
  g.vcpu.setSregs({ cr4: g.vcpu.getSregs().cr4 | 4n });
  g.enterRing3("user", 0x70000);
  g.hltAt("h13");
  assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))]);
  const k = guest(`mov rax, cr4\nor eax, 4\nmov cr4, rax\nrdtsc\nhlt`);
  assert.equal(k.run().reason, "hlt");
});
