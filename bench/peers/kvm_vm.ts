/**
 * A long-mode VM with one vCPU on the host's /dev/kvm for a kvm peer loop
 * (bench/peers/kvm.ts, kvm_cpuid_cpl3.ts): the guest code at LOAD, every
 * KVM_RUN under a watchdog, and an idempotent close.
 *
 * @module
 */
import type { BackendVcpu, BackendVm } from "../../src/backends/front.ts";
import type { CpuidEntry } from "../../src/x86/cpuid.ts";
import { createVmWithOneVcpu, type GuestLayout } from "../../src/x86/setup.ts";
import { LOAD } from "../paths.ts";

/** Every KVM_RUN gets this watchdog, so a guest that runs away cannot hang the bench. */
export const RUN_TIMEOUT_MS = 5_000;

export interface KvmLoopVm {
  vm: BackendVm;
  vcpu: BackendVcpu;
  layout: GuestLayout;
  /** Close the VM (once; later calls do nothing). */
  close(): Promise<void>;
}

/** Open the VM for `code` (and a CPUID table, when given). */
export function openKvmLoopVm(code: Uint8Array, cpuid?: readonly CpuidEntry[]): KvmLoopVm {
  const { vm, vcpu, layout } = createVmWithOneVcpu({
    code,
    load: LOAD,
    backend: "kvm",
    runTimeoutMs: RUN_TIMEOUT_MS,
    ...(cpuid ? { cpuid } : {}),
  });
  let open = true;
  const close = () => {
    if (open) vm.close();
    open = false;
    return Promise.resolve();
  };
  return { vm, vcpu, layout, close };
}
