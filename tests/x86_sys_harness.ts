/**
 * Shared helpers of the x86 system-instruction tests (tests/x86_sys_*_test.ts):
 * guests assembled with the mini assembler on top of createVmWithOneVcpu, IDT
 * gates pointing at labels of the guest (`h13: hlt` style handlers, so a test
 * sees which vector arrived from the RIP after the HLT and reads the frame at
 * RSP), extra GDT entries (ring-3 and test descriptors), the TSS stack
 * pointers and user-accessible page tables for ring-3 long-mode code.
 */
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu, type GuestLayout, type GuestMode, type OneVcpuOptions } from "../src/x86/setup.ts";
import { segmentDescriptor } from "../src/x86/descriptors.ts";
import { flatSegment, type KvmSegment } from "../src/x86/regs.ts";
import type { Vm } from "../src/vm.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { VcpuExit } from "../src/exits/exit.ts";

export const BUDGET = 100_000;
/** Kernel stack top the harness puts in the TSS for ring-3 tests, and the ring-3 stack. */
export const KSTACK = 0x80000;
export const USTACK = 0x70000;
export const LOAD = 0x1000;

export const bitsOf = (m: GuestMode) => (m === "long" ? 64 : m === "protected" ? 32 : 16);

/** Selectors of the extra GDT entries installed by {@link Guest.userSegments}. */
export const SEL = {
  code64: 0x08,
  data: 0x10,
  code32: 0x18,
  tss: 0x20,
  /** Ring-3 64-bit code (index 6), RPL 3. */
  ucode64: 0x33,
  /** Ring-3 writable data (index 7), RPL 3. */
  udata: 0x3b,
  /** Ring-3 32-bit code (index 8), RPL 3. */
  ucode32: 0x43,
} as const;
/** First GDT index free for a test's own descriptors. */
export const GDT_FREE = 9;
/** GDT entries the harness reserves room for (limit = 8 * GDT_ENTRIES - 1). */
export const GDT_ENTRIES = 32;

/** The exit variant(s) whose `reason` admits R (MsrExit carries "x86_rdmsr" | "x86_wrmsr"). */
export type ExitFor<R> = VcpuExit extends infer E ? (E extends { reason: infer Q } ? (R extends Q ? E : never) : never)
  : never;

export class Guest {
  readonly labels: Map<string, number>;
  constructor(
    readonly vm: Vm,
    readonly vcpu: Vcpu,
    readonly layout: GuestLayout,
    readonly mode: GuestMode,
    labels: Map<string, number>,
  ) {
    this.labels = labels;
    // Room for test descriptors in the GDT (the setup writes 6 entries; the rest of its page is free).
    const gdt = layout.gdt;
    if (gdt !== undefined) {
      for (let i = 6; i < GDT_ENTRIES; i++) vm.write64(gdt + 8 * i, 0n);
      vcpu.setSregs({ gdt: { base: BigInt(gdt), limit: 8 * GDT_ENTRIES - 1 } });
    }
  }

  /** Address of a label of the guest source. */
  at(label: string): number {
    const a = this.labels.get(label);
    if (a === undefined) throw new Error(`no label ${label} (have ${[...this.labels.keys()].join(", ")})`);
    return a;
  }

  run(budget = BUDGET): VcpuExit {
    return this.vcpu.run(budget);
  }

  /** Run and expect `reason`; returns the exit narrowed to it. */
  expect<R extends VcpuExit["reason"]>(reason: R, budget = BUDGET): ExitFor<R> {
    const e = this.vcpu.run(budget);
    assert.equal(e.reason, reason, `expected ${reason}, got ${JSON.stringify(e, big)}`);
    return e as ExitFor<R>;
  }

  /** Run to a HLT and check it is the one right after `label` (`label: hlt`). */
  hltAt(label: string, budget = BUDGET): void {
    const e = this.vcpu.run(budget);
    assert.equal(e.reason, "hlt", `expected hlt at ${label}, got ${JSON.stringify(e, big)} rip ${hx(this.rip)}`);
    assert.equal(
      this.rip,
      BigInt(this.at(label) + 1),
      `hlt at ${hx(this.rip - 1n)}, expected ${label} ${hx(this.at(label))}`,
    );
  }

  get rip(): bigint {
    return this.vcpu.getRegs().rip;
  }
  reg(name: keyof ReturnType<Vcpu["getRegs"]>): bigint {
    return this.vcpu.getRegs()[name];
  }

  /** Stack slots at RSP (8 bytes each in long mode, else 4; 2 with `width` 2). */
  stack(n: number, width = this.mode === "long" ? 8 : 4): bigint[] {
    const r = this.vcpu.getRegs();
    const ss = this.vcpu.getSregs().ss;
    const sp = Number(this.mode === "long" ? r.rsp : (ss.db ? r.rsp & 0xffffffffn : r.rsp & 0xffffn) + ss.base);
    return Array.from({ length: n }, (_, i) => {
      const b = this.vm.readGuest(sp + i * width, width);
      return b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
    });
  }

  /** Write the IDT gate for `vector` to `target` (a label or address) in the boot code segment. */
  gate(
    vector: number,
    target: string | number,
    opts: { dpl?: number; type?: number; ist?: number; sel?: number; present?: boolean } = {},
  ): void {
    const idt = this.layout.idt;
    if (idt === undefined) throw new Error("real-mode guest has no IDT");
    const off = BigInt(typeof target === "string" ? this.at(target) : target);
    const type = opts.type ?? 0xe;
    const p = opts.present === false ? 0n : 0x80n;
    const attr = p | BigInt((opts.dpl ?? 0) << 5) | BigInt(type);
    if (this.mode === "long") {
      const sel = BigInt(opts.sel ?? SEL.code64);
      const lo = (off & 0xffffn) | (sel << 16n) | (BigInt(opts.ist ?? 0) << 32n) | (attr << 40n) |
        (((off >> 16n) & 0xffffn) << 48n);
      this.vm.write64(idt + 16 * vector, lo);
      this.vm.write64(idt + 16 * vector + 8, off >> 32n);
    } else {
      const sel = BigInt(opts.sel ?? SEL.code32);
      this.vm.write64(idt + 8 * vector, (off & 0xffffn) | (sel << 16n) | (attr << 40n) | ((off >> 16n) << 48n));
    }
  }

  /** Gates for every `hN:` label of the source (vector N). */
  gatesFromLabels(opts: { dpl?: number } = {}): void {
    for (const [name] of this.labels) {
      const m = /^h(\d+)$/.exec(name);
      if (m) this.gate(Number(m[1]), name, opts);
    }
  }

  /** Write GDT entry `index` (raw 8-byte descriptor or a kvm_segment). */
  gdtEntry(index: number, d: bigint | KvmSegment): void {
    if (this.layout.gdt === undefined) throw new Error("no GDT");
    if (index >= GDT_ENTRIES) throw new Error(`GDT index ${index}: expected < ${GDT_ENTRIES}`);
    this.vm.write64(this.layout.gdt + 8 * index, typeof d === "bigint" ? d : segmentDescriptor(d));
  }
  gdtRead(index: number): bigint {
    return this.vm.read64(this.layout.gdt! + 8 * index);
  }

  /** Ring-3 code/data descriptors at SEL.ucode64 / udata / ucode32. */
  userSegments(): void {
    this.gdtEntry(6, flatSegment(SEL.ucode64, 0xb, { l: 1, db: 0, dpl: 3 }));
    this.gdtEntry(7, flatSegment(SEL.udata, 0x3, { dpl: 3 }));
    this.gdtEntry(8, flatSegment(SEL.ucode32, 0xb, { dpl: 3 }));
  }

  /** TSS stack pointers: RSP0 (long) / ESP0:SS0 (protected), and long-mode IST entries. */
  tss(opts: { sp0?: number; ss0?: number; ist?: Record<number, number> }): void {
    const tss = this.layout.tss!;
    if (this.mode === "long") {
      if (opts.sp0 !== undefined) this.vm.write64(tss + 4, BigInt(opts.sp0));
      for (const [n, v] of Object.entries(opts.ist ?? {})) this.vm.write64(tss + 0x24 + 8 * (Number(n) - 1), BigInt(v));
    } else {
      const dv = new DataView(this.vm.guestView(tss, 0x68).buffer, this.vm.guestView(tss, 0x68).byteOffset, 0x68);
      if (opts.sp0 !== undefined) dv.setUint32(4, opts.sp0 >>> 0, true);
      dv.setUint16(8, opts.ss0 ?? SEL.data, true);
    }
  }

  /** Make the identity map user-accessible (US in every PD entry) for ring-3 long-mode code. */
  userPages(): void {
    const pd = this.layout.reservedBase + 0x2000;
    for (let i = 0; i < 4 * 512; i++) this.vm.write64(pd + 8 * i, this.vm.read64(pd + 8 * i) | 0x4n);
  }

  /**
   * Run `label` at CPL 3: ring-3 descriptors, user pages, gates for every hN label,
   * TSS RSP0/ESP0 = `sp0` so the handlers run on a known kernel stack.
   */
  ring3(label: string, opts: { rsp?: number; sp0?: number; iopl?: number } = {}): void {
    this.userSegments();
    if (this.mode === "long") this.userPages();
    this.gatesFromLabels();
    this.tss({ sp0: opts.sp0 ?? KSTACK });
    this.enterRing3(label, opts.rsp ?? USTACK);
    if (opts.iopl !== undefined) this.vcpu.setRegs({ rflags: 2n | (BigInt(opts.iopl) << 12n) });
  }

  /** Switch the vCPU to ring 3 directly (CS/SS caches with DPL 3), as KVM_SET_SREGS would. */
  enterRing3(rip: string | number, rsp: number): void {
    const cs = this.mode === "long"
      ? flatSegment(SEL.ucode64, 0xb, { l: 1, db: 0, dpl: 3 })
      : flatSegment(SEL.ucode32, 0xb, { dpl: 3 });
    const ds = flatSegment(SEL.udata, 0x3, { dpl: 3 });
    this.vcpu.setSregs({ cs, ss: ds, ds: { ...ds }, es: { ...ds } });
    this.vcpu.setRegs({ rip: BigInt(typeof rip === "string" ? this.at(rip) : rip), rsp: BigInt(rsp) });
  }
}

/** A guest with `src` assembled for `mode` at 0x1000. */
export function guest(
  src: string,
  mode: GuestMode = "long",
  opts: { exceptionPort?: number; memSize?: number } = {},
): Guest {
  const asm = assemble(src, { bits: bitsOf(mode), origin: LOAD });
  const o: OneVcpuOptions & { backend?: "sim" } = { code: asm.bytes, mode, load: LOAD };
  if (opts.exceptionPort !== undefined) o.exceptionPort = opts.exceptionPort;
  if (opts.memSize !== undefined) o.memSize = opts.memSize;
  const { vm, vcpu, layout } = createVmWithOneVcpu(o);
  return new Guest(vm, vcpu, layout, mode, asm.labels);
}

export const hx = (v: bigint | number) => `0x${v.toString(16)}`;
export const big = (_k: string, v: unknown) => (typeof v === "bigint" ? hx(v) : v);
