// vCPUs: reset state, register ioctls, MSRs, mp_state, events, guest debug,
// args, CPUID table, MSR filter / user-space MSR / hypercall exit enables.
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { VCPU_STATE, VM_CONTROL } from "../src/abi/vcpu_state.ts";
import { VM_CONTROL_BASE } from "../src/abi/memory_map.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { createVm } from "../src/vm.ts";
import { InvalidArgumentError, NoSuchVcpuError, UnknownMsrError, VcpuExistsError } from "../src/errors.ts";
import { CPUID_SIGNATURE, defaultCpuid, findCpuid, MAXPHYADDR } from "../src/x86/cpuid.ts";
import { KVM_REGS_NAMES, type KvmRegs } from "../src/x86/regs.ts";

const VS = layOut(VCPU_STATE);
const VMC = layOut(VM_CONTROL);
const vm1 = () => createVm({ ramPoolSize: 1 << 20 });
const dirtyOf = (vm: ReturnType<typeof vm1>, v: { stateBase: number }) =>
  vm.dv.getUint32(v.stateBase + field(VS, "dirty").offset, true);

Deno.test("addVcpu() puts the vCPU in KVM's reset state", () => {
  const vm = vm1();
  const v = vm.addVcpu(0);
  const r = v.getRegs();
  assert.equal(r.rip, 0xfff0n);
  assert.equal(r.rflags, 2n);
  assert.equal(r.rdx, BigInt(CPUID_SIGNATURE));
  assert.equal(r.rax | r.rbx | r.rcx | r.rsp, 0n);
  const s = v.getSregs();
  assert.deepEqual([s.cs.selector, s.cs.base, s.cs.limit, s.cs.type], [0xf000, 0xffff0000n, 0xffff, 0xb]);
  assert.deepEqual([s.ds.selector, s.ds.base, s.ds.limit, s.ds.type, s.ds.present], [0, 0n, 0xffff, 3, 1]);
  assert.deepEqual([s.tr.type, s.ldt.type, s.gdt.limit, s.idt.limit], [3, 2, 0xffff, 0xffff]);
  assert.equal(s.cr0, 0x60000010n);
  assert.equal(s.efer, 0n);
  assert.equal(s.apic_base, 0xfee00900n);
  assert.deepEqual(v.getDebugRegs(), { db: [0n, 0n, 0n, 0n], dr6: 0xffff0ff0n, dr7: 0x400n });
  assert.equal(v.getMsr(0x277), 0x0007040600070406n);
  assert.equal(v.getMsr(0x1b), 0xfee00900n);
  assert.equal(v.getXcr0(), 1n);
  assert.equal(v.getMpState(), K.KVM_MP_STATE_RUNNABLE);
  assert.equal(vm.addVcpu(1).getSregs().apic_base, 0xfee00800n, "APs are not the BSP");
  assert.equal(vm.dv.getUint32(v.stateBase + field(VS, "vcpu_id").offset, true), 0);
});

Deno.test("setRegs()/getRegs() round-trip kvm_regs and set the dirty flag", () => {
  const vm = vm1();
  const v = vm.addVcpu(0);
  vm.dv.setUint32(v.stateBase + field(VS, "dirty").offset, 0, true);
  v.setRegs({ rax: 0x1122334455667788n, r15: -1n, rip: 0x1000n });
  // KVM_SET_REGS alone: the register-only dirty bit (core-contract.md "State ownership").
  assert.equal(dirtyOf(vm, v), 2);
  const r = v.getRegs();
  assert.equal(r.rax, 0x1122334455667788n);
  assert.equal(r.r15, 0xffffffffffffffffn);
  assert.equal(r.rip, 0x1000n);
  // State-block GPRs are in encoding order: rax, rcx, rdx, rbx, ...
  v.setRegs({ rbx: 7n });
  assert.equal(vm.dv.getBigUint64(v.stateBase + field(VS, "gpr").offset + 3 * 8, true), 7n);
  assert.throws(() => v.setRegs({ rax: 1 as unknown as bigint }), InvalidArgumentError);
  // RFLAGS bit 1 is forced on, as KVM_SET_REGS does (checked on /dev/kvm); the rest is kept.
  v.setRegs({ rflags: 0x8000n });
  assert.equal(v.getRegs().rflags, 0x8002n);
  // Every field is checked before any is written: a bad one leaves all as they were.
  const before = v.getRegs();
  assert.throws(
    () => v.setRegs({ rax: 5n, rip: "0x2000" as unknown as bigint }),
    (e: Error) => e instanceof InvalidArgumentError && /regs\.rip/.test(e.message) && /0x2000/.test(e.message),
  );
  assert.deepEqual(v.getRegs(), before);
  // The record has kvm_regs' fields in struct order, each a fresh bigint.
  assert.deepEqual(Object.keys(before), [...KVM_REGS_NAMES]);
  const all = Object.fromEntries(KVM_REGS_NAMES.map((n, i) => [n, BigInt(i + 1) << 40n])) as unknown as KvmRegs;
  v.setRegs(all);
  assert.deepEqual(v.getRegs(), { ...all, rflags: all.rflags | 2n });
});

Deno.test("setSregs()/getSregs() round-trip segments, tables and control registers", () => {
  const v = vm1().addVcpu(0);
  const cs = {
    base: 0n,
    limit: 0xffffffff,
    selector: 8,
    type: 0xb,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 1,
    g: 1,
    avl: 0,
    unusable: 0,
  };
  v.setSregs({ cs, gdt: { base: 0x5000n, limit: 0x27 }, cr0: 0x80010031n, cr3: 0x9000n, cr4: 0x20n, efer: 0xd00n });
  const s = v.getSregs();
  assert.deepEqual(s.cs, cs);
  assert.deepEqual(s.gdt, { base: 0x5000n, limit: 0x27 });
  assert.deepEqual([s.cr0, s.cr3, s.cr4, s.efer], [0x80010031n, 0x9000n, 0x20n, 0xd00n]);
  assert.equal(v.getMsr(0xc0000080), 0xd00n, "EFER is one state field");
  assert.throws(() => v.setSregs({ interrupt_bitmap: [1n, 0n, 0n, 0n] }), InvalidArgumentError);
  // The rejected call wrote nothing, although it came with other fields.
  assert.throws(() => v.setSregs({ cr3: 0x7000n, interrupt_bitmap: [0n, 0n, 2n, 0n] }), InvalidArgumentError);
  assert.equal(v.getSregs().cr3, 0x9000n);
  // Every segment, both tables and every control register round-trip.
  const t = v.getSregs();
  const segs = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;
  segs.forEach((n, i) => (t[n] = { ...t[n], base: BigInt(i + 1) << 20n, selector: 0x10 + 8 * i, dpl: i & 3 }));
  t.idt = { base: 0xabc000n, limit: 0xfff };
  Object.assign(t, { cr2: 0x1234n, cr8: 3n, apic_base: 0xfee00900n });
  v.setSregs(t);
  assert.deepEqual(v.getSregs(), t);
});

Deno.test("KVM_SET_DEBUGREGS: DR6/DR7 with bits 63:32 and more than four DRn are refused, writing nothing", () => {
  const v = vm1().addVcpu(0);
  v.setDebugRegs({ db: [1n, 2n, 3n, 4n], dr6: 0xffff0ff1n, dr7: 0x401n });
  const before = v.getDebugRegs();
  assert.deepEqual(before, { db: [1n, 2n, 3n, 4n], dr6: 0xffff0ff1n, dr7: 0x401n });
  assert.throws(
    () => v.setDebugRegs({ db: [9n, 9n, 9n, 9n], dr7: 1n << 32n }),
    (e: Error) =>
      e instanceof InvalidArgumentError && /debugregs\.dr7: 0x100000000: bits 63:32 are reserved/.test(e.message),
  );
  assert.throws(() => v.setDebugRegs({ dr6: -1n }), /debugregs\.dr6: 0xffffffffffffffff/);
  const five = [0n, 0n, 0n, 0n, 5n] as unknown as [bigint, bigint, bigint, bigint]; // from untyped callers
  assert.throws(() => v.setDebugRegs({ db: five }), /5 entries: expected at most 4/);
  assert.deepEqual(v.getDebugRegs(), before);
});

Deno.test("MSRs: the in-kernel table, FS/GS base aliases, unknown index is a typed error", () => {
  const v = vm1().addVcpu(0);
  v.setMsrs([{ index: 0xc0000082, data: 0xffffffff81000000n }, { index: 0xc0000100, data: 0x7000n }]);
  assert.deepEqual(v.getMsrs([0xc0000082, 0xc0000100]), [{ index: 0xc0000082, data: 0xffffffff81000000n }, {
    index: 0xc0000100,
    data: 0x7000n,
  }]);
  assert.equal(v.getSregs().fs.base, 0x7000n);
  assert.throws(
    () => v.getMsr(0x12345),
    (e: Error) => e instanceof UnknownMsrError && /MSR 0x12345 is not in kvmsim's MSR table/.test(e.message),
  );
  // Nothing is written when one index is unknown.
  assert.throws(() => v.setMsrs([{ index: 0xc0000082, data: 1n }, { index: 0x999, data: 2n }]), UnknownMsrError);
  assert.equal(v.getMsr(0xc0000082), 0xffffffff81000000n);
});

Deno.test("mp_state, vcpu events and guest debug validate and round-trip", () => {
  const v = vm1().addVcpu(0);
  v.setMpState(K.KVM_MP_STATE_HALTED);
  assert.equal(v.getMpState(), 3);
  assert.throws(() => v.setMpState(9), /expected KVM_MP_STATE_RUNNABLE/);
  v.setEvents({
    exception: { injected: 1, nr: 13, has_error_code: 1, pending: 0, error_code: 0x18 },
    nmi: { injected: 0, pending: 1, masked: 1 },
  });
  const ev = v.getEvents();
  assert.deepEqual(ev.exception, { injected: 1, nr: 13, has_error_code: 1, pending: 0, error_code: 0x18 });
  assert.deepEqual(ev.nmi, { injected: 0, pending: 1, masked: 1 });
  assert.throws(() => v.setEvents({ interrupt: { injected: 1, nr: 32, soft: 0, shadow: 0 } }), InvalidArgumentError);
  assert.throws(
    () => v.setEvents({ exception: { injected: 1, nr: 40, has_error_code: 0, pending: 0, error_code: 0 } }),
    /vector 0-31/,
  );
  v.setGuestDebug({
    control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_HW_BP,
    debugreg: [0x1000n, 0n, 0n, 0n, 0n, 0n, 0n, 0x1n],
  });
  assert.equal(v.stateField("guest_debug_dr"), 0x1000n);
  assert.throws(() => v.setGuestDebug({ control: 0x4 }), /unknown bits 0x4/);
});

Deno.test("argsSet() sets rdi, rsi, rdx, rcx, r8, r9 and checks the count", () => {
  const v = vm1().addVcpu(0);
  v.argsSet(1, 2n, 3, 4, 5, 6);
  const r = v.getRegs();
  assert.deepEqual([r.rdi, r.rsi, r.rdx, r.rcx, r.r8, r.r9], [1n, 2n, 3n, 4n, 5n, 6n]);
  assert.throws(() => v.argsSet(), /0 arguments: expected 1 to 6/);
  assert.throws(() => v.argsSet(1, 2, 3, 4, 5, 6, 7), InvalidArgumentError);
});

Deno.test("vCPU ids: duplicates, out of range, removal", () => {
  const vm = vm1();
  const v = vm.addVcpu(3);
  assert.throws(() => vm.addVcpu(3), VcpuExistsError);
  assert.throws(() => vm.addVcpu(64), NoSuchVcpuError);
  assert.equal(vm.controlField("nvcpus"), 1);
  vm.removeVcpu(3);
  assert.throws(() => v.getRegs(), /removed/);
  assert.throws(() => vm.vcpu(3), /vcpu not found/);
  assert.equal(vm.controlField("nvcpus"), 0);
  vm.addVcpu(3);
});

Deno.test("the default CPUID table is installed in the VM control block; setCpuid() replaces it", () => {
  const vm = vm1();
  const def = defaultCpuid();
  assert.equal(vm.controlField("ncpuid"), def.length);
  const leaf8 = findCpuid(vm.getCpuid(), 0x80000008)!;
  assert.equal(leaf8.eax & 0xff, MAXPHYADDR);
  const base = VM_CONTROL_BASE + field(VMC, "cpuid").offset;
  assert.equal(vm.dv.getUint32(base + field(VMC, "cpuid.ebx").offset - field(VMC, "cpuid").offset, true), 0x68747541); // "Auth"
  vm.setCpuid([{ function: 1, index: 0, flags: 0, eax: 0x806f0, ebx: 0, ecx: 0, edx: 0 }]);
  assert.equal(vm.controlField("ncpuid"), 1);
  assert.equal(vm.addVcpu(0).getRegs().rdx, 0x806f0n, "RDX at reset is CPUID.1.EAX");
  assert.throws(() => vm.setCpuid(Array(129).fill(def[0])), /E2BIG/);
});

Deno.test("user-space MSR, MSR filter and hypercall-exit enables validate and land in the control block", () => {
  const vm = vm1();
  vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_FILTER | K.KVM_MSR_EXIT_REASON_UNKNOWN);
  assert.equal(vm.controlField("user_msr_mask"), 6);
  assert.throws(() => vm.enableUserSpaceMsr(8), InvalidArgumentError);
  vm.setMsrFilter({
    flags: K.KVM_MSR_FILTER_DEFAULT_DENY,
    ranges: [{ flags: K.KVM_MSR_FILTER_READ, nmsrs: 16, base: 0xc0000080, bitmap: Uint8Array.of(0x01, 0x80) }],
  });
  assert.equal(vm.controlField("msr_filter_flags"), 1);
  assert.equal(vm.controlField("msr_filter_nranges"), 1);
  assert.equal(vm.controlField("msr_filter.base"), 0xc0000080);
  assert.equal(vm.controlField("msr_filter.bitmap"), 0, "byte offset into msr_bitmaps");
  assert.equal(vm.u8[VM_CONTROL_BASE + field(VMC, "msr_bitmaps").offset + 1], 0x80);
  assert.throws(
    () => vm.setMsrFilter({ flags: 0, ranges: [{ flags: 0, nmsrs: 1, base: 0, bitmap: new Uint8Array(1) }] }),
    /expected KVM_MSR_FILTER_READ/,
  );
  assert.throws(
    () => vm.setMsrFilter({ flags: 0, ranges: [{ flags: 1, nmsrs: 64, base: 0, bitmap: new Uint8Array(1) }] }),
    /bitmap/,
  );
  vm.enableHypercallExit(1 << 12);
  assert.equal(vm.controlField("hypercall_exit_mask"), 0x1000);
  assert.throws(() => vm.enableHypercallExit(1), /only KVM_HC_MAP_GPA_RANGE/);
});

Deno.test("budget validation and immediate_exit flag", () => {
  const v = vm1().addVcpu(0);
  assert.throws(() => (v.budget = 0), InvalidArgumentError);
  v.budget = 1000;
  assert.equal(v.budget, 1000);
  v.immediateExit = true;
  assert.equal(v.immediateExit, true);
});

Deno.test("dump() of a vCPU and a VM is readable text", () => {
  const vm = vm1();
  vm.addMemoryRegion({ slot: 0, gpa: 0, pages: 16 });
  const v = vm.addVcpu(0);
  const d = v.dump();
  assert.match(d, /rip: 0x000000000000fff0/);
  assert.match(d, /cs : base: 0x00000000ffff0000 limit: 0x0000ffff selector: 0xf000/);
  const vd = vm.dump();
  assert.match(vd, /slot: 0 guest_phys: 0x0 size: 0x10000/);
  assert.match(vd, /VCPUs:\n {2}vcpu 0/);
});
