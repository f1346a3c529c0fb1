/**
 * A KVM VM fd (KVM_CREATE_VM) as a {@link VmBackend}: memory regions backed by
 * anonymous mmap'd host memory (KVM_SET_USER_MEMORY_REGION; the host view is
 * an ArrayBuffer over the mapping), KVM_GET_DIRTY_LOG, KVM_ENABLE_CAP for
 * user-space MSR and hypercall exits, KVM_SET_TSS_ADDR, coalesced MMIO/PIO
 * zones (KVM_REGISTER/UNREGISTER_COALESCED_MMIO) and the ring page in the
 * vCPU mmap, and vCPU creation.
 *
 * @module
 */
import { KVM_USERSPACE_MEMORY_REGION } from "../../abi/kvm_structs.ts";
import { COALESCED_RING_BYTES, KVM_COALESCED_MMIO_ZONE } from "../../abi/coalesced.ts";
import type { CoalescedZone } from "../../exits/coalesced.ts";
import type { CpuidEntry } from "../../x86/cpuid.ts";
import type { HostMemory, VmBackend } from "../types.ts";
import { StructBuf } from "./codec.ts";
import { KvmIoctlError, KvmUnsupportedError } from "./errors.ts";
import { errno, libc, MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "./libc.ts";
import { ioctlBuf, ioctlInt, KvmSystem } from "./system.ts";
import { KVM_CAPS, KVM_DIRTY_LOG, KVM_ENABLE_CAP, type KvmCapName } from "./uapi.ts";
import { createVcpuFd, type KvmVcpuFd } from "./vcpu_fd.ts";

/** Where the TSS pages go for VMX real mode (QEMU's and kvm_util's choice: 3 pages below the BIOS). */
const TSS_ADDR = 0xfffbd000;
const hx = (v: number | bigint) => `0x${v.toString(16)}`;

interface Mapping {
  readonly ptr: Deno.PointerObject;
  readonly size: number;
  readonly gpa: number;
  flags: number;
}

export class KvmVmFd implements VmBackend {
  readonly name = "kvm" as const;
  readonly fd: number;
  readonly #sys: KvmSystem;
  readonly #maps = new Map<number, Mapping>();
  readonly #vcpus: KvmVcpuFd[] = [];
  #closed = false;
  #ring: Uint8Array | undefined;

  /** KVM_CREATE_VM on `path` (default /dev/kvm). Throws KvmUnavailableError when the device cannot be used. */
  constructor(path?: string) {
    this.#sys = KvmSystem.open(path);
    try {
      this.fd = this.#sys.createVmFd();
      if (this.#sys.checkExtension("KVM_CAP_SET_TSS_ADDR") > 0) {
        ioctlInt(this.fd, "KVM_SET_TSS_ADDR", TSS_ADDR, `tss at ${hx(TSS_ADDR)}`);
      }
    } catch (e) {
      this.#sys.close();
      throw e;
    }
  }

  /** The open /dev/kvm. */
  get system(): KvmSystem {
    return this.#sys;
  }

  #setRegion(slot: number, flags: number, gpa: number, size: number, hva: bigint): void {
    const b = new StructBuf(KVM_USERSPACE_MEMORY_REGION);
    b.set("slot", slot);
    b.set("flags", flags);
    b.set("guest_phys_addr", gpa);
    b.set("memory_size", size);
    b.set("userspace_addr", hva);
    ioctlBuf(
      this.fd,
      "KVM_SET_USER_MEMORY_REGION",
      b.u8,
      `slot ${slot} flags ${hx(flags)} gpa ${hx(gpa)} size ${hx(size)}`,
    );
  }

  addMemoryRegion(slot: number, flags: number, gpa: number, size: number): HostMemory {
    const ptr = libc().mmap(
      null,
      BigInt(size),
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
      -1,
      0n,
    );
    if (ptr === null || Deno.UnsafePointer.value(ptr) === MAP_FAILED) {
      throw new KvmIoctlError("mmap(guest memory)", errno(), `slot ${slot}, ${hx(size)} bytes`);
    }
    const hva = Deno.UnsafePointer.value(ptr) as bigint;
    try {
      this.#setRegion(slot, flags, gpa, size, hva);
    } catch (e) {
      libc().munmap(ptr, BigInt(size));
      throw e;
    }
    this.#maps.set(slot, { ptr, size, gpa, flags });
    return { u8: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, size)), hva: Number(hva) };
  }

  #mapping(slot: number): Mapping {
    const m = this.#maps.get(slot);
    if (!m) throw new KvmIoctlError("KVM_SET_USER_MEMORY_REGION", 22, `slot ${slot} is not registered`);
    return m;
  }

  setMemoryRegionFlags(slot: number, flags: number): void {
    const m = this.#mapping(slot);
    this.#setRegion(slot, flags, m.gpa, m.size, Deno.UnsafePointer.value(m.ptr) as bigint);
    m.flags = flags;
  }

  removeMemoryRegion(slot: number): void {
    const m = this.#mapping(slot);
    this.#setRegion(slot, 0, m.gpa, 0, 0n);
    libc().munmap(m.ptr, BigInt(m.size));
    this.#maps.delete(slot);
  }

  getDirtyLog(slot: number, bytes: number): Uint8Array {
    const bitmap = new Uint8Array(bytes);
    const b = new StructBuf(KVM_DIRTY_LOG);
    b.set("slot", slot);
    b.set("dirty_bitmap", Deno.UnsafePointer.value(Deno.UnsafePointer.of(bitmap)) as bigint);
    ioctlBuf(this.fd, "KVM_GET_DIRTY_LOG", b.u8, `slot ${slot}`);
    return bitmap;
  }

  supportedCpuid(): CpuidEntry[] {
    return this.#sys.supportedCpuid();
  }

  #enableCap(cap: KvmCapName, arg0: number, why: string): void {
    this.#sys.requireExtension(cap, why);
    const b = new StructBuf(KVM_ENABLE_CAP);
    b.set("cap", KVM_CAPS[cap]);
    b.set("args", arg0, { index: 0 });
    ioctlBuf(this.fd, "KVM_ENABLE_CAP", b.u8, `${cap} args[0] ${hx(arg0)}`);
  }

  enableUserSpaceMsr(mask: number): void {
    this.#enableCap("KVM_CAP_X86_USER_SPACE_MSR", mask, "user-space MSR exits");
  }

  enableHypercallExit(mask: number): void {
    this.#enableCap("KVM_CAP_EXIT_HYPERCALL", mask, "hypercall exits");
  }

  #zoneIoctl(name: "KVM_REGISTER_COALESCED_MMIO" | "KVM_UNREGISTER_COALESCED_MMIO", zone: CoalescedZone): void {
    this.#sys.requireExtension("KVM_CAP_COALESCED_MMIO", "coalesced MMIO zones");
    if (zone.pio) this.#sys.requireExtension("KVM_CAP_COALESCED_PIO", "coalesced PIO zones");
    const b = new StructBuf(KVM_COALESCED_MMIO_ZONE);
    b.set("addr", zone.addr);
    b.set("size", zone.size);
    b.set("pio", zone.pio ? 1 : 0);
    ioctlBuf(this.fd, name, b.u8, `${zone.pio ? "pio" : "mmio"} zone ${hx(zone.addr)} size ${hx(zone.size)}`);
  }

  /** KVM_REGISTER_COALESCED_MMIO (checks KVM_CAP_COALESCED_MMIO, and KVM_CAP_COALESCED_PIO for a PIO zone). */
  registerCoalescedMmio(zone: CoalescedZone): void {
    this.#zoneIoctl("KVM_REGISTER_COALESCED_MMIO", zone);
  }

  /** KVM_UNREGISTER_COALESCED_MMIO: removes every zone of the bus containing the range (none: still 0). */
  unregisterCoalescedMmio(zone: CoalescedZone): void {
    this.#zoneIoctl("KVM_UNREGISTER_COALESCED_MMIO", zone);
  }

  /**
   * The ring page: page KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO) of the
   * first vCPU's kvm_run mapping (KVM maps the same page into every vCPU's).
   */
  coalescedRing(): Uint8Array {
    if (this.#ring) return this.#ring;
    const page = this.#sys.requireExtension("KVM_CAP_COALESCED_MMIO", "the coalesced MMIO ring");
    const v = this.#vcpus[0];
    if (!v) {
      throw new KvmUnsupportedError(
        "the coalesced MMIO ring",
        "KVM maps it into each vCPU's kvm_run mmap: add a vCPU first",
      );
    }
    const off = page * COALESCED_RING_BYTES;
    const u8 = v.kvmRun.u8;
    if (off + COALESCED_RING_BYTES > u8.byteLength) {
      throw new KvmIoctlError(
        "KVM_CHECK_EXTENSION",
        22,
        `KVM_CAP_COALESCED_MMIO answers page ${page}, beyond the ${u8.byteLength}-byte vCPU mmap`,
      );
    }
    return this.#ring = u8.subarray(off, off + COALESCED_RING_BYTES);
  }

  createVcpu(id: number, cpuid: readonly CpuidEntry[]): KvmVcpuFd {
    const v = createVcpuFd(this.fd, id, this.#sys.vcpuMmapSize, cpuid);
    this.#vcpus.push(v);
    return v;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring = undefined;
    for (const v of this.#vcpus) v.close();
    libc().close(this.fd);
    for (const m of this.#maps.values()) libc().munmap(m.ptr, BigInt(m.size));
    this.#maps.clear();
    this.#sys.close();
  }
}
