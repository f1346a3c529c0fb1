/**
 * What the KVM backend needs of the uapi beyond src/abi/kvm_structs.ts: the
 * ioctl-argument headers (`struct kvm_msrs`, `kvm_cpuid2`, `kvm_dirty_log`,
 * `kvm_enable_cap`), `struct itimerval` for the watchdog, the capability
 * numbers, and the ioctl request numbers — computed with `_IO/_IOR/_IOW/_IOWR`
 * from the laid-out struct sizes (`<asm-generic/ioctl.h>`), never typed in.
 * tests/backend_kvm_uapi_test.ts checks every one against gcc on the
 * installed `<linux/kvm.h>`.
 *
 * @module
 */
import { layOut, type Member, type StructDef } from "../../abi/layout.ts";
import {
  KVM_CPUID_ENTRY2,
  KVM_GUEST_DEBUG,
  KVM_MP_STATE,
  KVM_MSR_ENTRY,
  KVM_REGS,
  KVM_SREGS,
  KVM_USERSPACE_MEMORY_REGION,
} from "../../abi/kvm_structs.ts";
import { KVM_COALESCED_MMIO_ZONE } from "../../abi/coalesced.ts";

const m = (name: string, type: Member["type"], count?: number): Member =>
  count === undefined ? { name, type } : { name, type, count };
const struct = (name: string, members: Member[]): StructDef => ({ kind: "struct", name, members });

/** `struct kvm_msrs` (header; `entries[]` of kvm_msr_entry follow). */
export const KVM_MSRS = struct("kvm_msrs", [m("nmsrs", "u32"), m("pad", "u32")]);
/** `struct kvm_cpuid2` (header; `entries[]` of kvm_cpuid_entry2 follow). */
export const KVM_CPUID2 = struct("kvm_cpuid2", [m("nent", "u32"), m("padding", "u32")]);
/** `struct kvm_dirty_log` (the bitmap pointer shares a union with a u64). */
export const KVM_DIRTY_LOG = struct("kvm_dirty_log", [
  m("slot", "u32"),
  m("padding1", "u32"),
  m("dirty_bitmap", "u64"),
]);
/** `struct kvm_enable_cap`. */
export const KVM_ENABLE_CAP = struct("kvm_enable_cap", [
  m("cap", "u32"),
  m("flags", "u32"),
  m("args", "u64", 4),
  m("pad", "u8", 64),
]);
const TIMESPEC = struct("timespec", [m("tv_sec", "ulong"), m("tv_nsec", "ulong")]);
/** `struct itimerspec` (timer_settime). */
export const ITIMERSPEC = struct("itimerspec", [m("it_interval", TIMESPEC), m("it_value", TIMESPEC)]);
/**
 * `struct sigevent` (glibc x86-64) for SIGEV_THREAD_ID: the thread id goes in
 * `_sigev_un._tid` (the kernel's `sigev_notify_thread_id`), the first int of a
 * 48-byte union.
 */
export const SIGEVENT = struct("sigevent", [
  m("sigev_value", "u64"),
  m("sigev_signo", "i32"),
  m("sigev_notify", "i32"),
  m("_sigev_un", { kind: "union", name: "", members: [m("_tid", "i32"), m("_pad", "i32", 12)] }),
]);

/** Every struct whose layout the backend uses, by C name (checked against gcc). */
export const BACKEND_STRUCTS: readonly StructDef[] = [
  KVM_MSRS,
  KVM_CPUID2,
  KVM_DIRTY_LOG,
  KVM_ENABLE_CAP,
  ITIMERSPEC,
  SIGEVENT,
];

/** `KVMIO`, the ioctl type of every KVM request. */
const KVMIO = 0xae;
const IOC_NONE = 0, IOC_WRITE = 1, IOC_READ = 2;

/** `_IOC(dir, type, nr, size)` for x86-64 (14-bit size, 2-bit direction). */
export function ioc(dir: number, type: number, nr: number, size: number): bigint {
  if (size < 0 || size >= 1 << 14) throw new RangeError(`ioctl size ${size}: expected 0..16383 (_IOC_SIZEBITS 14)`);
  return (BigInt(dir) << 30n) | (BigInt(size) << 16n) | (BigInt(type) << 8n) | BigInt(nr);
}
const size = (s: StructDef) => layOut(s).size;
const io = (nr: number) => ioc(IOC_NONE, KVMIO, nr, 0);
const ior = (nr: number, s: StructDef) => ioc(IOC_READ, KVMIO, nr, size(s));
const iow = (nr: number, s: StructDef | number) => ioc(IOC_WRITE, KVMIO, nr, typeof s === "number" ? s : size(s));
const iowr = (nr: number, s: StructDef) => ioc(IOC_READ | IOC_WRITE, KVMIO, nr, size(s));

/** The KVM ioctl requests the backend issues. */
export const KVM_IOCTLS = {
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, KVM_CPUID2),
  KVM_CREATE_VCPU: io(0x41),
  KVM_GET_DIRTY_LOG: iow(0x42, KVM_DIRTY_LOG),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, KVM_USERSPACE_MEMORY_REGION),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  KVM_REGISTER_COALESCED_MMIO: iow(0x67, KVM_COALESCED_MMIO_ZONE),
  KVM_UNREGISTER_COALESCED_MMIO: iow(0x68, KVM_COALESCED_MMIO_ZONE),
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, KVM_REGS),
  KVM_SET_REGS: iow(0x82, KVM_REGS),
  KVM_GET_SREGS: ior(0x83, KVM_SREGS),
  KVM_SET_SREGS: iow(0x84, KVM_SREGS),
  KVM_GET_MSRS: iowr(0x88, KVM_MSRS),
  KVM_SET_MSRS: iow(0x89, KVM_MSRS),
  KVM_SET_CPUID2: iow(0x90, KVM_CPUID2),
  KVM_GET_MP_STATE: ior(0x98, KVM_MP_STATE),
  KVM_GET_CPUID2: iowr(0x91, KVM_CPUID2),
  KVM_SET_GUEST_DEBUG: iow(0x9b, KVM_GUEST_DEBUG),
  KVM_ENABLE_CAP: iow(0xa3, KVM_ENABLE_CAP),
} as const;

export type KvmIoctlName = keyof typeof KVM_IOCTLS;

/** The `KVM_CAP_*` numbers the backend checks. */
export const KVM_CAPS = {
  KVM_CAP_SET_TSS_ADDR: 4,
  KVM_CAP_NR_MEMSLOTS: 10,
  /** Answers the page offset of the coalesced-MMIO ring in the vCPU mmap (x86: 2). */
  KVM_CAP_COALESCED_MMIO: 15,
  KVM_CAP_SET_GUEST_DEBUG: 23,
  KVM_CAP_SET_IDENTITY_MAP_ADDR: 37,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_COALESCED_PIO: 162,
  KVM_CAP_X86_USER_SPACE_MSR: 188,
  KVM_CAP_EXIT_HYPERCALL: 201,
} as const;

export type KvmCapName = keyof typeof KVM_CAPS;

/** KVM_GET_API_VERSION's only value (KVM_API_VERSION). */
export const KVM_API_VERSION = 12;

/** Sizes used to allocate the variable-length ioctl arguments. */
export const SIZES = {
  msrEntry: size(KVM_MSR_ENTRY),
  cpuidEntry: size(KVM_CPUID_ENTRY2),
} as const;
