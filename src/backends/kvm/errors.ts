/**
 * Typed errors of the KVM backend: the device cannot be opened, an ioctl
 * failed (with its name, errno and what was asked), a capability is missing,
 * an option the backend cannot honour, and the KVM_RUN watchdog.
 *
 * @module
 */
import { KvmsimError } from "../../errors.ts";
import { errnoName, strerror } from "./libc.ts";

/** /dev/kvm is missing, not permitted, or not a KVM device (open or KVM_GET_API_VERSION failed). */
export class KvmUnavailableError extends KvmsimError {
  constructor(readonly path: string, readonly errno: number, detail?: string) {
    super(
      "kvm_unavailable",
      `cannot use ${path}: ${detail ?? `open failed with ${errnoName(errno)} (${strerror(errno)})`}` +
        (errno === 2
          ? " (no KVM on this host)"
          : errno === 13 || errno === 1
          ? " (no permission: join group kvm or run as root)"
          : ""),
    );
  }
}

/** A KVM ioctl returned -1. */
export class KvmIoctlError extends KvmsimError {
  constructor(readonly ioctl: string, readonly errno: number, readonly detail: string) {
    super("kvm_ioctl", `${ioctl} (${detail}) failed with ${errnoName(errno)} (${strerror(errno)})`);
  }
}

/** The host KVM lacks a capability the caller asked for. */
export class KvmCapabilityError extends KvmsimError {
  constructor(readonly cap: string, readonly capNr: number, readonly why: string) {
    super("kvm_capability", `${cap} (${capNr}) is not supported by this host's KVM: needed for ${why}`);
  }
}

/** An option or call the real-KVM backend cannot honour (e.g. an instruction budget). */
export class KvmUnsupportedError extends KvmsimError {
  constructor(readonly what: string, readonly why: string) {
    super("kvm_unsupported", `${what} is not available on the kvm backend: ${why}`);
  }
}

/** KVM_RUN did not return within the watchdog time (the guest ran without exiting, or the host hung). */
export class KvmRunTimeoutError extends KvmsimError {
  constructor(readonly vcpuId: number, readonly timeoutMs: number) {
    super(
      "kvm_run_timeout",
      `KVM_RUN on vcpu ${vcpuId} did not exit within ${timeoutMs} ms (interrupted by the watchdog)`,
    );
  }
}
