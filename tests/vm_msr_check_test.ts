// KVM_SET_MSRS values (src/x86/msr_check.ts): what KVM refuses the simulator refuses with a typed error
// naming the MSR and the value, writing none of the entries; what KVM changes (EFER.LMA kept, SYSENTER
// made canonical, TSC_AUX's upper half dropped on AMD) it changes alike. On /dev/kvm the same writes are
// checked to be refused or taken alike, and to read back alike, with the simulator given the host's CPUID.
import assert from "node:assert/strict";
import { createVm } from "../src/vm.ts";
import { InvalidArgumentError } from "../src/errors.ts";
import { releaseWatchdog } from "../src/backends/kvm/mod.ts";
import { kvmHostVaBits, NO_KVM } from "./support/kvm_guard.ts";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";

const EFER = 0xc0000080, APIC_BASE = 0x1b, PAT = 0x277, TSC_AUX = 0xc0000103, TSC = 0x10;
/** Non-canonical with 48-bit virtual addresses (the simulator's host), canonical with 57 (an LA57 host). */
const NONCANONICAL = 0x0000800000000000n;
/** Non-canonical at 48 and at 57 bits, and made canonical alike at both (bits 56 and 47 are 0). */
const BIT63 = 0x8000000000001000n;
/** The MSRs KVM checks (FS/GS/KERNEL_GS base, LSTAR, CSTAR) or makes (SYSENTER_ESP/EIP) canonical. */
const CANONICAL_MSRS = [0xc0000100, 0xc0000101, 0xc0000102, 0xc0000082, 0xc0000083, 0x175, 0x176];
/** `v` is canonical with `bits`-bit virtual addresses: bits 63 down to bits - 1 all equal. */
const canonicalAt = (v: bigint, bits: number) => {
  const top = v >> BigInt(bits - 1);
  return top === 0n || top === (1n << BigInt(65 - bits)) - 1n;
};

/** [name, MSR, value]: every rule of msr_check.ts and values each takes as is. */
const CASES: readonly (readonly [string, number, bigint])[] = [
  ["EFER reserved bit 1", EFER, 2n],
  ["EFER bit 20", EFER, 1n << 20n],
  ["EFER SCE", EFER, 1n],
  ["EFER SCE NXE", EFER, 0x801n],
  ["EFER LMA (not written)", EFER, 0x400n],
  ["EFER SVME", EFER, 0x1000n],
  ["EFER FFXSR", EFER, 0x4000n],
  ["PAT type 2", PAT, 0x0007040600070402n],
  ["PAT type 8", PAT, 0x0007040600070408n],
  ["PAT valid", PAT, 0x0007040600070406n],
  ["APIC_BASE bit 9", APIC_BASE, 0xfee00b00n],
  ["APIC_BASE x2APIC without enable", APIC_BASE, 0xfee00400n],
  ["APIC_BASE beyond MAXPHYADDR", APIC_BASE, (1n << 50n) | 0x900n],
  ["APIC_BASE disabled", APIC_BASE, 0xfee00000n],
  ...[0xc0000100, 0xc0000101, 0xc0000102, 0xc0000082, 0xc0000083].map((m) =>
    [`0x${m.toString(16)} non-canonical`, m, NONCANONICAL] as const
  ),
  ["FS_BASE canonical high", 0xc0000100, 0xffff800000001000n],
  ["SYSENTER_ESP non-canonical", 0x175, NONCANONICAL],
  ["SYSENTER_EIP non-canonical", 0x176, NONCANONICAL | 0x1234n],
  ...CANONICAL_MSRS.map((m) => [`0x${m.toString(16)} bit 63`, m, BIT63] as const),
  ["SYSENTER_CS", 0x174, 0x10n],
  ["TSC_AUX upper half", TSC_AUX, (1n << 40n) | 7n],
  ["STAR all ones", 0xc0000081, (1n << 64n) - 1n],
  ["SFMASK all ones", 0xc0000084, (1n << 64n) - 1n],
  ["MISC_ENABLE all ones", 0x1a0, (1n << 64n) - 1n],
];

interface MsrVcpu {
  getMsr(index: number): bigint;
  setMsrs(entries: readonly { index: number; data: bigint }[]): void;
}

/** Each case on `vcpu`: refused (value unchanged) or the value read back; the MSR is restored after. */
function outcomes(vcpu: MsrVcpu): string[] {
  return CASES.map(([name, index, data]) => {
    const before = vcpu.getMsr(index);
    try {
      vcpu.setMsrs([{ index, data }]);
    } catch {
      assert.equal(vcpu.getMsr(index), before, `${name}: a refused write changed the MSR`);
      return `${name}: refused`;
    }
    const after = vcpu.getMsr(index);
    vcpu.setMsrs([{ index, data: before }]);
    return `${name}: reads 0x${after.toString(16)}`;
  });
}

Deno.test("KVM_SET_MSRS values on the simulator: refusals name the MSR, the value and the rule; none of the entries is written", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const v = vm.addVcpu(0);
  v.setMsrs([{ index: 0xc0000082, data: 0x1000n }]);
  assert.throws(
    () => v.setMsrs([{ index: 0xc0000082, data: 0x2000n }, { index: EFER, data: 0x1000n }]),
    (e: Error) =>
      e instanceof InvalidArgumentError &&
      /MSR_EFER \(0xc0000080\): 0x1000: bits 0x1000 are reserved \(SCE, LME, LMA, NXE only\) \(KVM_SET_MSRS refuses it; nothing was written\)/
        .test(e.message),
  );
  assert.equal(v.getMsr(0xc0000082), 0x1000n, "the entry before the bad one was not written");
  assert.throws(() => v.setMsrs([{ index: PAT, data: 2n }]), /MSR_IA32_CR_PAT \(0x277\): 0x2: a memory type other/);
  assert.throws(() => v.setMsrs([{ index: 0xc0000101, data: NONCANONICAL }]), /MSR_GS_BASE .* not a canonical/);
  assert.throws(() => v.setMsrs([{ index: APIC_BASE, data: 0xfee00400n }]), /reserved bits 0x400 are set/);
  assert.throws(() => v.setMsrs([{ index: EFER, data: 1 as unknown as bigint }]), /MSR_EFER .*: 1: expected a bigint/);
  // EFER.LMA keeps its value; SYSENTER_EIP is made canonical; TSC_AUX drops its upper half on AMD.
  v.setMsrs([{ index: EFER, data: 0x501n }, { index: 0x176, data: NONCANONICAL }, {
    index: TSC_AUX,
    data: 1n << 33n | 5n,
  }]);
  assert.deepEqual([v.getMsr(EFER), v.getMsr(0x176), v.getMsr(TSC_AUX)], [0x101n, 0xffff800000000000n, 5n]);
  // With a GenuineIntel vendor the upper half of TSC_AUX is refused.
  const leaf0 = vm.getCpuid().find((e) => e.function === 0)!;
  vm.setCpuid([
    ...vm.getCpuid().filter((e) => e.function !== 0),
    { ...leaf0, ebx: 0x756e6547, edx: 0x49656e69, ecx: 0x6c65746e },
  ]);
  assert.throws(
    () => v.setMsrs([{ index: TSC_AUX, data: 1n << 33n }]),
    /bits 63:32 are reserved \(GenuineIntel CPUID\)/,
  );
});

Deno.test({
  name: "KVM_SET_MSRS on /dev/kvm and on the simulator with the host's CPUID: the same refusals and read-backs",
  ignore: NO_KVM !== undefined,
  fn() {
    const kvm = createVm({ backend: "kvm", memSize: 1 << 20 });
    try {
      const sim = createVm({ ramPoolSize: 1 << 20 });
      sim.setCpuid(kvm.getCpuid().filter((e) => [0, 1, 7, 0x80000008].includes(e.function)));
      const kv = kvm.addVcpu(0);
      const got = outcomes(kv), want = outcomes(sim.addVcpu(0));
      const hostBits = kvmHostVaBits();
      for (let i = 0; i < got.length; i++) {
        const [name, index, data] = CASES[i]!;
        if (hostBits === 57 && CANONICAL_MSRS.includes(index) && canonicalAt(data, 57) && !canonicalAt(data, 48)) {
          // KVM checks and canonicalises these at max_host_virt_addr_bits(), 57 on this LA57 host: the value
          // is taken as is. The simulator models a host with 48-bit virtual addresses.
          assert.equal(got[i], `${name}: reads 0x${data.toString(16)}`);
          assert.notEqual(want[i], got[i]);
          continue;
        }
        // This host's kvm_pvm takes a PAT with memory type 2 or 8; upstream KVM (kvm_pat_valid) refuses it.
        if (/^PAT type/.test(want[i]!)) {
          assert.match(want[i]!, /refused$/);
          continue;
        }
        assert.equal(want[i], got[i]);
      }
      assert.ok(got.filter((o) => o.endsWith("refused")).length >= 10, got.join("\n"));
      kv.setMsrs([{ index: TSC, data: 12345n }]); // the TSC is taken on both (it counts on from the value)
    } finally {
      kvm.close();
      releaseWatchdog();
    }
  },
});

Deno.test("guest WRMSR of EFER: NXE needs NX and LME needs long mode in CPUID (__kvm_valid_efer), on both backends", async (t) => {
  const backends = NO_KVM === undefined ? (["sim", "kvm"] as const) : (["sim"] as const);
  for (const backend of backends) {
    await t.step(backend, () => {
      const probe = backend === "kvm" ? createVm({ backend: "kvm", memSize: 1 << 20 }) : createVm({});
      const table = probe.getCpuid();
      (probe as { close?: () => void }).close?.();
      // Each: [EFER bit, the 0x80000001.EDX bit it needs, the name].
      for (const [efer, edx, name] of [[0x800, 20, "NXE"], [0x100, 29, "LME"]] as const) {
        for (const has of [true, false]) {
          const cpuid = table.map((e) =>
            e.function === 0x80000001 ? { ...e, edx: has ? e.edx | (1 << edx) : e.edx & ~(1 << edx) } : e
          );
          const { bytes } = assemble(`mov ecx, 0xc0000080\nrdmsr\nor eax, ${efer}\nwrmsr\nhlt`, {
            bits: 32,
            origin: 0x1000,
          });
          const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, mode: "protected", load: 0x1000, backend, cpuid });
          try {
            const e = vcpu.run();
            // Without the feature: #GP at the WRMSR, which has no IDT here: a triple fault.
            const want = has ? ["hlt", 0x100fn] : ["shutdown", 0x100cn];
            assert.deepEqual([e.reason, vcpu.getRegs().rip], want, `${backend} ${name}, CPUID has it: ${has}`);
          } finally {
            (vm as { close?: () => void }).close?.();
            if (backend === "kvm") releaseWatchdog();
          }
        }
      }
    });
  }
});
