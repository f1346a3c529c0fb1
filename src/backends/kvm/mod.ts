/**
 * The real-KVM backend: `createKvmVm()` opens /dev/kvm (KVM_CREATE_VM) and
 * returns the kvm_util-style {@link BackendVm} over it. `createVm({backend:
 * "kvm"})` and `createVmWithOneVcpu({backend: "kvm"})` call it.
 *
 * @module
 */
import { BackendVm, type BackendVmOptions } from "../front.ts";
import { KvmVmFd } from "./vm_fd.ts";

export interface KvmVmOptions extends BackendVmOptions {
  /** The KVM device (default /dev/kvm). */
  device?: string;
}

/** A VM on the host's KVM. Close it (`vm.close()` or `using`) to release the fds and guest memory. */
export function createKvmVm(opts: KvmVmOptions = {}): BackendVm {
  const fd = new KvmVmFd(opts.device);
  try {
    return new BackendVm(fd, opts);
  } catch (e) {
    fd.close();
    throw e;
  }
}

export {
  KvmCapabilityError,
  KvmIoctlError,
  KvmRunTimeoutError,
  KvmUnavailableError,
  KvmUnsupportedError,
} from "./errors.ts";
export { KVM_DEVICE, KvmSystem, kvmUnavailableReason } from "./system.ts";
export { releaseWatchdog } from "./watchdog.ts";
export { KVM_CAPS, KVM_IOCTLS } from "./uapi.ts";
