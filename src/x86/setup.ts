/**
 * Ready-made x86 guests (kvm_util's `vm_create_with_one_vcpu` and
 * `vcpu_setup`): one RAM region at GPA 0 (slot 0), code loaded at `load`,
 * and the CPU in real, protected or long mode.
 *
 * Layout (the `kvmsim exec` contract):
 * - long mode: the low 4 GiB are identity-mapped with 2 MiB pages (so MMIO
 *   below 4 GiB is reachable), PML4/PDPT/PDs, GDT, IDT, TSS and exception
 *   stubs live in the last 1 MiB of RAM;
 * - protected mode: flat 4 GiB 32-bit segments, paging off, GDT/IDT/TSS in the
 *   last 1 MiB;
 * - real mode: CS = 0 and IP = load, every segment register 0.
 * All GPRs start at 0, RFLAGS at 0x2, RIP at `load`. With `stack` (default
 * in protected and long mode) RSP is the start of the reserved last 1 MiB, so
 * the stack grows down below the tables.
 *
 * The IDT has 256 not-present gates by default, so an exception ends in a
 * triple fault (KVM_EXIT_SHUTDOWN). With `exceptionPort`, vectors 0–31 get
 * stubs that do `mov dx, port; mov al, vector; out dx, al; hlt` — the
 * vector arrives as an IO exit.
 *
 * @module
 */
import { createVm, type CreateVmOptions, type Vm } from "../vm.ts";
import type { Vcpu } from "../vcpu.ts";
import type { BackendVcpu, BackendVm } from "../backends/front.ts";
import type { BackendName, GuestVcpu, GuestVm } from "../backends/types.ts";
import { InvalidArgumentError } from "../errors.ts";
import { idtGate32, idtGate64, segmentDescriptor, systemDescriptor64, systemSegment } from "./descriptors.ts";
import { PAGE_2M, PTE_RW } from "./page_tables.ts";
import { flatSegment, type KvmSegment, type KvmSregs, realSegment } from "./regs.ts";

export type GuestMode = "real" | "protected" | "long";

/** Size of the reserved area at the top of RAM. */
export const RESERVED_SIZE = 1 << 20;
/** Offsets inside the reserved area. */
export const LAYOUT = {
  pml4: 0x0000,
  pdpt: 0x1000,
  pd: 0x2000, // four pages: 0x2000-0x5fff
  gdt: 0x6000,
  idt: 0x7000,
  tss: 0x8000,
  stubs: 0x9000,
} as const;

export const SEL_CODE64 = 0x08;
export const SEL_DATA = 0x10;
export const SEL_CODE32 = 0x18;
export const SEL_TSS = 0x20;

const CR0_PE = 1n, CR0_ET = 0x10n, CR0_NE = 0x20n, CR0_WP = 0x10000n, CR0_PG = 0x80000000n;
const CR4_PAE = 0x20n;
const EFER_LME = 0x100n, EFER_LMA = 0x400n, EFER_NXE = 0x800n;

export interface ModeSetupOptions {
  /** Give the guest a stack below the reserved area (default true; ignored in real mode). */
  stack?: boolean;
  /** Port for the exception-reporting stubs (vectors 0–31); default none (not-present gates). */
  exceptionPort?: number;
}

/** Where the setup put things (GPAs). */
export interface GuestLayout {
  readonly mode: GuestMode;
  readonly reservedBase: number;
  readonly pml4?: number;
  readonly gdt?: number;
  readonly idt?: number;
  readonly tss?: number;
  readonly stackTop?: number;
}

function ramEnd(vm: GuestVm): number {
  const r = vm.memoryRegion(0);
  if (r.gpa !== 0 || r.size < 2 * RESERVED_SIZE) {
    throw new InvalidArgumentError(
      "guest RAM",
      `slot 0 at 0x${r.gpa.toString(16)} size 0x${r.size.toString(16)}: expected RAM at GPA 0 of at least 2 MiB`,
    );
  }
  return r.size;
}

function writeGdt(vm: GuestVm, at: number, tss: number): void {
  const tssDesc = systemDescriptor64(BigInt(tss), 0x67, 0xb);
  const entries = [
    0n,
    segmentDescriptor(flatSegment(SEL_CODE64, 0xb, { l: 1, db: 0 })),
    segmentDescriptor(flatSegment(SEL_DATA, 0x3)),
    segmentDescriptor(flatSegment(SEL_CODE32, 0xb)),
    tssDesc[0],
    tssDesc[1],
  ];
  entries.forEach((e, i) => vm.write64(at + 8 * i, e));
}

function exceptionStub(port: number, vector: number): number[] {
  // mov dx, port (66 ba lo hi in 32/64-bit code); mov al, vector (b0 ib); out dx, al (ee); hlt (f4); jmp $-1 (eb fd)
  return [0x66, 0xba, port & 0xff, port >> 8, 0xb0, vector, 0xee, 0xf4, 0xeb, 0xfd];
}

function writeIdt(vm: GuestVm, mode: "protected" | "long", idt: number, stubs: number, port: number | undefined): void {
  vm.guestView(idt, 0x1000).fill(0);
  if (port === undefined) return;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new InvalidArgumentError("exceptionPort", `${port}: expected a port 0x0-0xffff`);
  }
  for (let v = 0; v < 32; v++) {
    const stub = stubs + 16 * v;
    vm.writeGuest(stub, exceptionStub(port, v));
    if (mode === "long") {
      const [lo, hi] = idtGate64(BigInt(stub), SEL_CODE64);
      vm.write64(idt + 16 * v, lo);
      vm.write64(idt + 16 * v + 8, hi);
    } else {
      vm.write64(idt + 8 * v, idtGate32(stub, SEL_CODE32));
    }
  }
}

function tr(tss: number): KvmSegment {
  return systemSegment(BigInt(tss), 0x67, 0xb, SEL_TSS);
}
const unusableLdt = (): KvmSegment => systemSegment(0n, 0xffff, 2, 0, 1);

/** Identity-map the low 4 GiB with 2 MiB pages, tables at the fixed reserved-area offsets. Returns the PML4 GPA. */
export function identityMapLow4G(vm: GuestVm, reservedBase: number): number {
  const pml4 = reservedBase + LAYOUT.pml4;
  const pdpt = reservedBase + LAYOUT.pdpt;
  vm.guestView(pml4, 0x6000).fill(0);
  vm.write64(pml4, BigInt(pdpt) | 0x7n);
  for (let i = 0; i < 4; i++) {
    const pd = reservedBase + LAYOUT.pd + i * 0x1000;
    vm.write64(pdpt + 8 * i, BigInt(pd) | 0x7n);
    for (let j = 0; j < 512; j++) vm.write64(pd + 8 * j, BigInt((i * 512 + j) * PAGE_2M) | 0x1n | PTE_RW | 0x80n);
  }
  vm.pgd = pml4;
  return pml4;
}

/** Put `vcpu` in 64-bit long mode (kvm_util vcpu_setup for VM_MODE_PXXV48_4K). */
export function setupLongMode(vm: GuestVm, vcpu: GuestVcpu, opts: ModeSetupOptions = {}): GuestLayout {
  const end = ramEnd(vm);
  const base = end - RESERVED_SIZE;
  vm.reservePhys(base, RESERVED_SIZE);
  const pml4 = identityMapLow4G(vm, base);
  const gdt = base + LAYOUT.gdt, idt = base + LAYOUT.idt, tss = base + LAYOUT.tss;
  vm.guestView(tss, 0x1000).fill(0);
  writeGdt(vm, gdt, tss);
  writeIdt(vm, "long", idt, base + LAYOUT.stubs, opts.exceptionPort);
  const data = flatSegment(SEL_DATA, 0x3);
  const sregs: Partial<KvmSregs> = {
    cs: flatSegment(SEL_CODE64, 0xb, { l: 1, db: 0 }),
    ds: data,
    es: { ...data },
    fs: { ...data },
    gs: { ...data },
    ss: { ...data },
    tr: tr(tss),
    ldt: unusableLdt(),
    gdt: { base: BigInt(gdt), limit: 6 * 8 - 1 },
    idt: { base: BigInt(idt), limit: 256 * 16 - 1 },
    cr0: CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
    cr3: BigInt(pml4),
    cr4: CR4_PAE,
    efer: EFER_LME | EFER_LMA | EFER_NXE,
  };
  vcpu.setSregs(sregs);
  const stackTop = opts.stack === false ? undefined : base;
  if (stackTop !== undefined) vcpu.setRegs({ rsp: BigInt(stackTop) });
  return stackTop === undefined
    ? { mode: "long", reservedBase: base, pml4, gdt, idt, tss }
    : { mode: "long", reservedBase: base, pml4, gdt, idt, tss, stackTop };
}

/** Put `vcpu` in 32-bit protected mode, flat segments, paging off. */
export function setupProtectedMode(vm: GuestVm, vcpu: GuestVcpu, opts: ModeSetupOptions = {}): GuestLayout {
  const end = ramEnd(vm);
  const base = end - RESERVED_SIZE;
  vm.reservePhys(base, RESERVED_SIZE);
  const gdt = base + LAYOUT.gdt, idt = base + LAYOUT.idt, tss = base + LAYOUT.tss;
  vm.guestView(tss, 0x1000).fill(0);
  writeGdt(vm, gdt, tss);
  writeIdt(vm, "protected", idt, base + LAYOUT.stubs, opts.exceptionPort);
  const data = flatSegment(SEL_DATA, 0x3);
  vcpu.setSregs({
    cs: flatSegment(SEL_CODE32, 0xb),
    ds: data,
    es: { ...data },
    fs: { ...data },
    gs: { ...data },
    ss: { ...data },
    tr: { ...tr(tss), type: 0xb },
    ldt: unusableLdt(),
    gdt: { base: BigInt(gdt), limit: 6 * 8 - 1 },
    idt: { base: BigInt(idt), limit: 256 * 8 - 1 },
    cr0: CR0_PE | CR0_ET,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  });
  const stackTop = opts.stack === false ? undefined : base;
  if (stackTop !== undefined) vcpu.setRegs({ rsp: BigInt(stackTop) });
  return stackTop === undefined
    ? { mode: "protected", reservedBase: base, gdt, idt, tss }
    : { mode: "protected", reservedBase: base, gdt, idt, tss, stackTop };
}

/** Real mode at CS = 0: every segment register 0 (base 0, limit 0xffff), IVT at 0. */
export function setupRealMode(vm: GuestVm, vcpu: GuestVcpu): GuestLayout {
  const end = vm.memoryRegion(0).size;
  const seg = (type: number) => realSegment(0, type);
  vcpu.setSregs({
    cs: seg(0xb),
    ds: seg(3),
    es: seg(3),
    fs: seg(3),
    gs: seg(3),
    ss: seg(3),
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0x3ff },
    cr0: 0x60000010n,
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  });
  return { mode: "real", reservedBase: end };
}

export interface OneVcpuOptions extends ModeSetupOptions, Omit<CreateVmOptions, "memSize"> {
  /** Guest code, loaded at `load`. */
  code?: ArrayLike<number>;
  mode?: GuestMode;
  /** GPA of the code and initial RIP (default 0x1000). */
  load?: number;
  /** Guest RAM at GPA 0 (default 16 MiB). */
  memSize?: number;
  /** vCPU id (default 0). */
  vcpuId?: number;
  /** "sim" (default: the WASM core) or "kvm" (the host's /dev/kvm; close the VM when done). */
  backend?: BackendName;
  /** kvm backend: watchdog for every KVM_RUN, in ms (default none). */
  runTimeoutMs?: number;
}

/**
 * vm_create_with_one_vcpu: a VM with RAM at 0, one vCPU in `mode` (default
 * long) with RIP at `load`, and `code` loaded there.
 *
 * ```ts
 * const { vm, vcpu } = createVmWithOneVcpu({ code: [0xf4] }); // hlt
 * vcpu.run(); // {reason: "hlt"}
 * ```
 */
export function createVmWithOneVcpu(
  opts?: OneVcpuOptions & { backend?: "sim" },
): { vm: Vm; vcpu: Vcpu; layout: GuestLayout };
export function createVmWithOneVcpu(
  opts: OneVcpuOptions & { backend: "kvm" },
): { vm: BackendVm; vcpu: BackendVcpu; layout: GuestLayout };
export function createVmWithOneVcpu(opts: OneVcpuOptions): { vm: GuestVm; vcpu: GuestVcpu; layout: GuestLayout };
export function createVmWithOneVcpu(opts: OneVcpuOptions = {}): { vm: GuestVm; vcpu: GuestVcpu; layout: GuestLayout } {
  const memSize = opts.memSize ?? 16 << 20;
  if (opts.backend === "kvm") {
    const vm = createVm({
      backend: "kvm",
      memSize,
      ...(opts.cpuid ? { cpuid: opts.cpuid } : {}),
      ...(opts.runTimeoutMs !== undefined ? { runTimeoutMs: opts.runTimeoutMs } : {}),
    });
    try {
      return loadOneVcpu(vm, opts, memSize);
    } catch (e) {
      vm.close();
      throw e;
    }
  }
  const vmOpts: CreateVmOptions = { ramPoolSize: opts.ramPoolSize ?? memSize + (4 << 20), memSize };
  if (opts.cpuid) vmOpts.cpuid = opts.cpuid;
  if (opts.module) vmOpts.module = opts.module;
  return loadOneVcpu(createVm(vmOpts), opts, memSize);
}

function loadOneVcpu(vm: GuestVm, opts: OneVcpuOptions, memSize: number) {
  const load = opts.load ?? 0x1000;
  const mode = opts.mode ?? "long";
  const vcpu = vm.addVcpu(opts.vcpuId ?? 0);
  const code = opts.code ?? [];
  if (mode === "real" && load + code.length > 0x10000) {
    throw new InvalidArgumentError(
      "load",
      `0x${load.toString(16)} + ${code.length} bytes: real mode at CS=0 needs the code below 0x10000`,
    );
  }
  if (load + code.length > memSize - (mode === "real" ? 0 : RESERVED_SIZE)) {
    throw new InvalidArgumentError(
      "load",
      `0x${load.toString(16)} + ${code.length} bytes does not fit below the reserved area`,
    );
  }
  vm.writeGuest(load, code);
  if (code.length) vm.reservePhys(load, code.length);
  const setupOpts: ModeSetupOptions = {};
  if (opts.stack !== undefined) setupOpts.stack = opts.stack;
  if (opts.exceptionPort !== undefined) setupOpts.exceptionPort = opts.exceptionPort;
  const layout = mode === "long"
    ? setupLongMode(vm, vcpu, setupOpts)
    : mode === "protected"
    ? setupProtectedMode(vm, vcpu, setupOpts)
    : setupRealMode(vm, vcpu);
  const zero = 0n;
  vcpu.setRegs({
    rax: zero,
    rbx: zero,
    rcx: zero,
    rdx: zero,
    rsi: zero,
    rdi: zero,
    rbp: zero,
    r8: zero,
    r9: zero,
    r10: zero,
    r11: zero,
    r12: zero,
    r13: zero,
    r14: zero,
    r15: zero,
    rsp: layout.stackTop !== undefined ? BigInt(layout.stackTop) : zero,
    rip: BigInt(load),
    rflags: 2n,
  });
  return { vm, vcpu, layout };
}
