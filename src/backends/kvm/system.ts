/**
 * The /dev/kvm system fd: open (typed error naming the path and errno),
 * KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
 * KVM_GET_SUPPORTED_CPUID — and the ioctl helpers every KVM fd uses.
 *
 * @module
 */
import { KVM_CPUID_ENTRY2 } from "../../abi/kvm_structs.ts";
import type { CpuidEntry } from "../../x86/cpuid.ts";
import { ElementCodec, StructBuf } from "./codec.ts";
import { KvmCapabilityError, KvmIoctlError, KvmUnavailableError } from "./errors.ts";
import { cString, errno, libc, O_CLOEXEC, O_RDWR } from "./libc.ts";
import { KVM_API_VERSION, KVM_CAPS, KVM_CPUID2, KVM_IOCTLS, type KvmCapName, type KvmIoctlName } from "./uapi.ts";

/** The device the backend opens by default. */
export const KVM_DEVICE = "/dev/kvm";

/** ioctl(fd, req, buf); throws KvmIoctlError on -1. Returns the (non-negative) result. */
export function ioctlBuf(fd: number, name: KvmIoctlName, buf: Uint8Array<ArrayBuffer>, detail = ""): number {
  const r = libc().ioctl_ptr(fd, KVM_IOCTLS[name], buf);
  if (r < 0) throw new KvmIoctlError(name, errno(), detail || `fd ${fd}`);
  return r;
}

/** ioctl(fd, req, arg) with an integer argument; throws KvmIoctlError on -1. */
export function ioctlInt(fd: number, name: KvmIoctlName, arg: number | bigint = 0, detail = ""): number {
  const r = libc().ioctl_int(fd, KVM_IOCTLS[name], BigInt(arg));
  if (r < 0) throw new KvmIoctlError(name, errno(), detail || `fd ${fd}, arg 0x${arg.toString(16)}`);
  return r;
}

const CPUID_ENTRY = new ElementCodec(KVM_CPUID_ENTRY2);
const CPUID_FIELDS = ["function", "index", "flags", "eax", "ebx", "ecx", "edx"] as const;

/** Encode a `struct kvm_cpuid2` with its entries. */
export function encodeCpuid2(entries: readonly CpuidEntry[]): StructBuf {
  const b = new StructBuf(KVM_CPUID2, entries.length * CPUID_ENTRY.size);
  b.set("nent", entries.length);
  const head = b.layout.size;
  entries.forEach((e, i) => {
    for (const f of CPUID_FIELDS) CPUID_ENTRY.set(b.dv, head + i * CPUID_ENTRY.size, f, e[f] >>> 0);
  });
  return b;
}

/** Decode the entries of a `struct kvm_cpuid2`. */
export function decodeCpuid2(b: StructBuf): CpuidEntry[] {
  const n = b.num("nent");
  const head = b.layout.size;
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const at = head + i * CPUID_ENTRY.size;
    const e = {} as CpuidEntry;
    for (const f of CPUID_FIELDS) e[f] = Number(CPUID_ENTRY.get(b.dv, at, f));
    out.push(e);
  }
  return out;
}

/** An open /dev/kvm. */
export class KvmSystem {
  /** Bytes of the per-vCPU kvm_run mapping. */
  readonly vcpuMmapSize: number;
  #closed = false;

  private constructor(readonly fd: number, readonly path: string) {
    this.vcpuMmapSize = ioctlInt(fd, "KVM_GET_VCPU_MMAP_SIZE");
  }

  /** Open `path` (default /dev/kvm) and check the API version; KvmUnavailableError when that fails. */
  static open(path = KVM_DEVICE): KvmSystem {
    let fd: number;
    try {
      fd = libc().open(cString(path), O_RDWR | O_CLOEXEC);
    } catch (e) {
      throw new KvmUnavailableError(
        path,
        0,
        `libc is not loadable through Deno FFI (${(e as Error).message}; run with --allow-ffi)`,
      );
    }
    if (fd < 0) throw new KvmUnavailableError(path, errno());
    const version = libc().ioctl_int(fd, KVM_IOCTLS.KVM_GET_API_VERSION, 0n);
    if (version !== KVM_API_VERSION) {
      const err = version < 0 ? errno() : 0;
      libc().close(fd);
      throw new KvmUnavailableError(
        path,
        err,
        version < 0
          ? `KVM_GET_API_VERSION failed (errno ${err}): not a KVM device`
          : `KVM_GET_API_VERSION is ${version}: expected ${KVM_API_VERSION}`,
      );
    }
    return new KvmSystem(fd, path);
  }

  /** KVM_CHECK_EXTENSION on the system fd (0 = unsupported). */
  checkExtension(cap: KvmCapName): number {
    return ioctlInt(this.fd, "KVM_CHECK_EXTENSION", KVM_CAPS[cap], cap);
  }

  /** Throw KvmCapabilityError unless `cap` is supported. */
  requireExtension(cap: KvmCapName, why: string): number {
    const v = this.checkExtension(cap);
    if (v <= 0) throw new KvmCapabilityError(cap, KVM_CAPS[cap], why);
    return v;
  }

  /** KVM_GET_SUPPORTED_CPUID (grows the buffer on E2BIG). */
  supportedCpuid(): CpuidEntry[] {
    for (let n = 64; n <= 4096; n *= 2) {
      const b = new StructBuf(KVM_CPUID2, n * CPUID_ENTRY.size);
      b.set("nent", n);
      const r = libc().ioctl_ptr(this.fd, KVM_IOCTLS.KVM_GET_SUPPORTED_CPUID, b.u8);
      if (r >= 0) return decodeCpuid2(b);
      const err = errno();
      if (err !== 7) throw new KvmIoctlError("KVM_GET_SUPPORTED_CPUID", err, `nent ${n}`);
    }
    throw new KvmIoctlError("KVM_GET_SUPPORTED_CPUID", 7, "more than 4096 entries");
  }

  /** KVM_CREATE_VM (type 0); returns the VM fd. */
  createVmFd(): number {
    return ioctlInt(this.fd, "KVM_CREATE_VM", 0, "type 0");
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().close(this.fd);
  }
}

/** Why the KVM backend cannot run here, or undefined when /dev/kvm opens (for tests that skip). */
export function kvmUnavailableReason(path = KVM_DEVICE): string | undefined {
  try {
    KvmSystem.open(path).close();
    return undefined;
  } catch (e) {
    if (e instanceof KvmUnavailableError) return e.message;
    throw e;
  }
}
