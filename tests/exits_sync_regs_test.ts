// KVM_CAP_SYNC_REGS, the registers (src/exits/sync_regs.ts, assembly/kvm/sync_regs.ts): the exit leaves
// them in kvm_run.s.regs when asked, the next KVM_RUN takes them from there when marked dirty and clears
// the mark, RIP moved there moves the guest; the same on the simulator and on /dev/kvm.
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { field, layOut } from "../src/abi/layout.ts";
import { KVM_REGS_NAMES, KVM_RUN } from "../src/abi/kvm_structs.ts";
import { InvalidArgumentError } from "../src/errors.ts";
import { releaseWatchdog } from "../src/backends/kvm/mod.ts";
import type { BackendName } from "../src/backends/types.ts";
import { setSyncReg, setSyncRegsValid, syncReg } from "../src/exits/sync_regs.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import type { KvmRegs } from "../src/x86/regs.ts";
import { NO_KVM } from "./support/kvm_guard.ts";

const RUN = layOut(KVM_RUN);
const DIRTY = field(RUN, "kvm_dirty_regs").offset, VALID = field(RUN, "kvm_valid_regs").offset;
const SRC = `
  mov rax, 0x1122
  mov rbx, 0x3344
  hlt
  lea rcx, [rax+rbx]
  hlt
skip:
  mov rdx, 0x77
jump:
  mov rsi, 0x99
  hlt`;

const backends: BackendName[] = NO_KVM === undefined ? ["sim", "kvm"] : ["sim"];
for (const backend of backends) {
  Deno.test(`sync regs on ${backend}: stored at exits, loaded when dirty, the dirty bit cleared`, () => {
    const { bytes, labels } = assemble(SRC, { bits: 64, origin: 0x1000 });
    const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, mode: "long", load: 0x1000, backend });
    try {
      const run = vcpu.kvmRun;
      setSyncRegsValid(run, true);
      assert.equal(vcpu.runRaw(), K.KVM_EXIT_HLT);
      const synced = Object.fromEntries(KVM_REGS_NAMES.map((n) => [n, syncReg(run, n)])) as unknown as KvmRegs;
      assert.deepEqual(synced, vcpu.getRegs(), "every register as KVM_GET_REGS reads it");
      assert.deepEqual([synced.rax, synced.rbx], [0x1122n, 0x3344n]);
      // RBX changed in kvm_run only: the guest sees it.
      setSyncReg(run, "rbx", 0x10n);
      assert.equal(run.get64(DIRTY), BigInt(K.KVM_SYNC_X86_REGS));
      assert.equal(vcpu.runRaw(), K.KVM_EXIT_HLT);
      assert.equal(run.get64(DIRTY), 0n, "KVM_RUN clears the dirty bit it took");
      assert.equal(vcpu.getRegs().rcx, 0x1132n);
      assert.equal(syncReg(run, "rcx"), 0x1132n, "stored again at this exit");
      // RIP moved through kvm_run: the guest goes on there (past `skip`).
      setSyncReg(run, "rip", BigInt(labels.get("jump")!));
      setSyncReg(run, "rdx", 0n);
      assert.equal(vcpu.runRaw(), K.KVM_EXIT_HLT);
      const r = vcpu.getRegs();
      assert.deepEqual([r.rdx, r.rsi], [0n, 0x99n]);
      // No valid bit: the exit leaves kvm_run.s alone.
      setSyncRegsValid(run, false);
      setSyncReg(run, "rip", BigInt(labels.get("skip")!));
      run.set64(DIRTY, 0n);
      vcpu.setRegs({ rip: BigInt(labels.get("skip")!) });
      assert.equal(vcpu.runRaw(), K.KVM_EXIT_HLT);
      assert.equal(syncReg(run, "rdx"), 0n, "not stored");
      assert.equal(vcpu.getRegs().rdx, 0x77n);
      // A bit outside KVM's valid fields: KVM_RUN fails on both.
      run.set64(VALID, 0x100n);
      assert.throws(() => vcpu.runRaw());
      run.set64(VALID, 0n);
    } finally {
      (vm as { close?: () => void }).close?.();
      if (backend === "kvm") releaseWatchdog();
    }
  });
}

Deno.test("sync regs on the simulator: SREGS and EVENTS are refused with what kvmsim syncs, nothing run", () => {
  const { bytes } = assemble("inc rax\nhlt", { bits: 64, origin: 0x1000 });
  const { vcpu } = createVmWithOneVcpu({ code: bytes, mode: "long", load: 0x1000 });
  for (const bits of [K.KVM_SYNC_X86_SREGS, K.KVM_SYNC_X86_EVENTS]) {
    vcpu.kvmRun.set64(VALID, BigInt(bits));
    assert.throws(
      () => vcpu.runRaw(),
      (e: Error) => e instanceof InvalidArgumentError && /kvmsim syncs only KVM_SYNC_X86_REGS \(0x1\)/.test(e.message),
    );
    assert.equal(vcpu.getRegs().rax, 0n, "the guest did not run");
  }
  vcpu.kvmRun.set64(VALID, 0n);
  vcpu.kvmRun.set64(DIRTY, BigInt(K.KVM_SYNC_X86_EVENTS));
  assert.throws(() => vcpu.runRaw(), InvalidArgumentError);
});
