/**
 * A KVM vCPU fd: the kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE bytes, shared
 * with the kernel) as a {@link KvmRun}, KVM_RUN with an optional watchdog,
 * and the state ioctls (regs, sregs, MSRs, mp_state, guest debug), every
 * struct encoded through the layout tables.
 *
 * @module
 */
import { field } from "../../abi/layout.ts";
import { KVM_GUEST_DEBUG, KVM_MP_STATE, KVM_MSR_ENTRY, KVM_REGS, KVM_RUN, KVM_SREGS } from "../../abi/kvm_structs.ts";
import { KVM_CONSTANTS as K } from "../../abi/constants.ts";
import { KvmRun } from "../../exits/decode.ts";
import type { GuestDebug, MsrEntry } from "../../vcpu.ts";
import type { CpuidEntry } from "../../x86/cpuid.ts";
import { KVM_REGS_NAMES, type KvmRegs, type KvmSegment, type KvmSregs, SREGS_SEGMENTS } from "../../x86/regs.ts";
import type { VcpuBackend } from "../types.ts";
import { ElementCodec, laid, StructBuf } from "./codec.ts";
import { KvmIoctlError, KvmRunTimeoutError } from "./errors.ts";
import { EINTR, errno, libc, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from "./libc.ts";
import { encodeCpuid2, ioctlBuf, ioctlInt } from "./system.ts";
import { KVM_IOCTLS, KVM_MSRS } from "./uapi.ts";
import { armWatchdog, disarmWatchdog } from "./watchdog.ts";

const SEG_FIELDS = ["limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable"] as const;
const CRS = ["cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"] as const;
const MSR_ENTRY = new ElementCodec(KVM_MSR_ENTRY);
const RUN_EXIT_REASON = field(laid(KVM_RUN), "exit_reason").offset;
const RUN_IMMEDIATE_EXIT = field(laid(KVM_RUN), "immediate_exit").offset;
const KVM_RUN_REQ = KVM_IOCTLS.KVM_RUN;

export class KvmVcpuFd implements VcpuBackend {
  readonly kvmRun: KvmRun;
  /** Milliseconds one KVM_RUN may take before the watchdog interrupts it (undefined: no watchdog). */
  runTimeoutMs: number | undefined;
  readonly #run: Deno.PointerObject;
  readonly #mmapSize: number;
  #closed = false;

  constructor(readonly fd: number, readonly id: number, mmapSize: number, cpuid: readonly CpuidEntry[]) {
    const p = libc().mmap(null, BigInt(mmapSize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
    if (p === null || Deno.UnsafePointer.value(p) === MAP_FAILED) {
      const err = errno();
      libc().close(fd);
      throw new KvmIoctlError("mmap(kvm_run)", err, `vcpu ${id}, ${mmapSize} bytes`);
    }
    this.#run = p;
    this.#mmapSize = mmapSize;
    this.kvmRun = new KvmRun(Deno.UnsafePointerView.getArrayBuffer(p, mmapSize), 0);
    ioctlBuf(fd, "KVM_SET_CPUID2", encodeCpuid2(cpuid).u8, `vcpu ${id}, ${cpuid.length} entries`);
  }

  /** KVM_RUN. -EINTR (immediate_exit, or a signal) comes back as KVM_EXIT_INTR, as the simulator reports it. */
  run(): number {
    const timeout = this.runTimeoutMs;
    if (timeout !== undefined) armWatchdog(timeout);
    const r = libc().ioctl_int(this.fd, KVM_RUN_REQ, 0n);
    const err = r < 0 ? errno() : 0;
    if (timeout !== undefined) disarmWatchdog();
    if (r >= 0) return this.kvmRun.get32(RUN_EXIT_REASON);
    if (err !== EINTR) throw new KvmIoctlError("KVM_RUN", err, `vcpu ${this.id}`);
    this.kvmRun.set32(RUN_EXIT_REASON, K.KVM_EXIT_INTR);
    if (timeout !== undefined && this.kvmRun.get8(RUN_IMMEDIATE_EXIT) === 0) {
      throw new KvmRunTimeoutError(this.id, timeout);
    }
    return K.KVM_EXIT_INTR;
  }

  getRegs(): KvmRegs {
    const b = new StructBuf(KVM_REGS);
    ioctlBuf(this.fd, "KVM_GET_REGS", b.u8, `vcpu ${this.id}`);
    const r = {} as KvmRegs;
    for (const n of KVM_REGS_NAMES) r[n] = b.get(n);
    return r;
  }

  setRegs(regs: KvmRegs): void {
    const b = new StructBuf(KVM_REGS);
    for (const n of KVM_REGS_NAMES) b.set(n, regs[n]);
    ioctlBuf(this.fd, "KVM_SET_REGS", b.u8, `vcpu ${this.id}, rip 0x${regs.rip.toString(16)}`);
  }

  getSregs(): KvmSregs {
    const b = new StructBuf(KVM_SREGS);
    ioctlBuf(this.fd, "KVM_GET_SREGS", b.u8, `vcpu ${this.id}`);
    const seg = (n: string): KvmSegment => {
      const s = { base: b.get(`${n}.base`) } as KvmSegment;
      for (const f of SEG_FIELDS) s[f] = b.num(`${n}.${f}`);
      return s;
    };
    const out = {} as KvmSregs;
    for (const n of SREGS_SEGMENTS) out[n] = seg(n);
    out.gdt = { base: b.get("gdt.base"), limit: b.num("gdt.limit") };
    out.idt = { base: b.get("idt.base"), limit: b.num("idt.limit") };
    for (const n of CRS) out[n] = b.get(n);
    const ib = (index: number) => b.get("interrupt_bitmap", { index });
    out.interrupt_bitmap = [ib(0), ib(1), ib(2), ib(3)];
    return out;
  }

  setSregs(s: KvmSregs): void {
    const b = new StructBuf(KVM_SREGS);
    for (const n of SREGS_SEGMENTS) {
      b.set(`${n}.base`, s[n].base);
      for (const f of SEG_FIELDS) b.set(`${n}.${f}`, s[n][f]);
    }
    for (const n of ["gdt", "idt"] as const) {
      b.set(`${n}.base`, s[n].base);
      b.set(`${n}.limit`, s[n].limit);
    }
    for (const n of CRS) b.set(n, s[n]);
    s.interrupt_bitmap.forEach((w, index) => b.set("interrupt_bitmap", w, { index }));
    ioctlBuf(
      this.fd,
      "KVM_SET_SREGS",
      b.u8,
      `vcpu ${this.id}, cr0 0x${s.cr0.toString(16)} cr4 0x${s.cr4.toString(16)} efer 0x${s.efer.toString(16)}`,
    );
  }

  #msrs(entries: readonly MsrEntry[]): StructBuf {
    const b = new StructBuf(KVM_MSRS, entries.length * MSR_ENTRY.size);
    b.set("nmsrs", entries.length);
    entries.forEach((e, i) => {
      const at = b.layout.size + i * MSR_ENTRY.size;
      MSR_ENTRY.set(b.dv, at, "index", e.index >>> 0);
      MSR_ENTRY.set(b.dv, at, "data", e.data);
    });
    return b;
  }

  getMsrs(indices: readonly number[]): MsrEntry[] {
    const b = this.#msrs(indices.map((index) => ({ index, data: 0n })));
    const n = ioctlBuf(this.fd, "KVM_GET_MSRS", b.u8, `vcpu ${this.id}`);
    if (n !== indices.length) {
      throw new KvmIoctlError(
        "KVM_GET_MSRS",
        22,
        `vcpu ${this.id}: read ${n} of ${indices.length}; MSR 0x${indices[n]!.toString(16)} is not readable`,
      );
    }
    return indices.map((index, i) => ({
      index,
      data: MSR_ENTRY.get(b.dv, b.layout.size + i * MSR_ENTRY.size, "data"),
    }));
  }

  setMsrs(entries: readonly MsrEntry[]): void {
    const n = ioctlBuf(this.fd, "KVM_SET_MSRS", this.#msrs(entries).u8, `vcpu ${this.id}`);
    if (n !== entries.length) {
      throw new KvmIoctlError(
        "KVM_SET_MSRS",
        22,
        `vcpu ${this.id}: wrote ${n} of ${entries.length}; MSR 0x${entries[n]!.index.toString(16)} rejected`,
      );
    }
  }

  getMpState(): number {
    const b = new StructBuf(KVM_MP_STATE);
    ioctlBuf(this.fd, "KVM_GET_MP_STATE", b.u8, `vcpu ${this.id}`);
    return b.num("mp_state");
  }

  setGuestDebug(dbg: GuestDebug): void {
    const b = new StructBuf(KVM_GUEST_DEBUG);
    b.set("control", dbg.control >>> 0);
    (dbg.debugreg ?? []).forEach((v, index) => b.set("arch.debugreg", v, { index }));
    ioctlBuf(this.fd, "KVM_SET_GUEST_DEBUG", b.u8, `vcpu ${this.id}, control 0x${dbg.control.toString(16)}`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().munmap(this.#run, BigInt(this.#mmapSize));
    libc().close(this.fd);
  }
}

/** KVM_CREATE_VCPU on `vmFd`. */
export function createVcpuFd(
  vmFd: number,
  id: number,
  mmapSize: number,
  cpuid: readonly CpuidEntry[],
): KvmVcpuFd {
  const fd = ioctlInt(vmFd, "KVM_CREATE_VCPU", id, `vcpu id ${id}`);
  return new KvmVcpuFd(fd, id, mmapSize, cpuid);
}
