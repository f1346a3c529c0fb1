/**
 * System half of the x86 core: run loop, IO / MMIO exits with completion,
 * string IO (KVM's: INS read-ahead batches, OUTS one element per exit), immediate_exit, memslots (read-only, dirty log), real-mode
 * IVT delivery, triple fault, guest-debug single step.
 * Guest code: 32-bit default operand size in real mode (CS.D = 1) assembled with
 * GNU as --32; the asm is beside the bytes.
 */
import assert from "node:assert/strict";
import { RawVm } from "./support/raw_vm.ts";
import { field, layOut } from "../src/abi/layout.ts";
import { VCPU_STATE, VM_CONTROL } from "../src/abi/vcpu_state.ts";
import { VM_CONTROL_BASE } from "../src/abi/memory_map.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";

const VMC = layOut(VM_CONTROL);
const VS = layOut(VCPU_STATE);

function vm32(code: number[], at = 0x1000): RawVm {
  const vm = new RawVm();
  vm.setSeg("cs", { base: 0n, limit: 0xffff, selector: 0, type: 0xb, s: 1, present: 1, db: 1 });
  // Unreal mode: DS limit 4 GiB so 32-bit addresses reach MMIO above 1 MiB.
  vm.setSeg("ds", { base: 0n, limit: 0xffffffff, selector: 0, type: 3, s: 1, present: 1, g: 1 });
  vm.write(at, code);
  vm.dv.setUint16(vm.state + field(VS, "idt.limit").offset, 0x3ff, true);
  vm.setReg("rip", BigInt(at));
  vm.setReg("rsp", 0x8000n);
  return vm;
}

Deno.test("OUT imm8 exits with KVM_EXIT_IO at the OUT, then HLT exits after the HLT", () => {
  // mov eax, 0x41 ; out 0x10, al ; hlt
  const vm = vm32([0xb8, 0x41, 0, 0, 0, 0xe6, 0x10, 0xf4]);
  assert.equal(vm.run(), K.KVM_EXIT_IO);
  assert.equal(vm.runField("io.direction"), K.KVM_EXIT_IO_OUT);
  assert.equal(vm.runField("io.size"), 1);
  assert.equal(vm.runField("io.port"), 0x10);
  assert.equal(vm.runField("io.count"), 1);
  assert.equal(vm.runField("io.data_offset"), 4096);
  assert.equal(vm.u8[vm.run0 + 4096], 0x41);
  assert.equal(vm.get64("rip"), 0x1005n);
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
  assert.equal(vm.get64("rip"), 0x1008n);
});

Deno.test("IN takes its data from the PIO page on the next run; immediate_exit completes then returns INTR", () => {
  // in al, 0x20 ; hlt
  const vm = vm32([0xe4, 0x20, 0xf4]);
  assert.equal(vm.run(), K.KVM_EXIT_IO);
  assert.equal(vm.runField("io.direction"), K.KVM_EXIT_IO_IN);
  assert.equal(vm.get64("rip"), 0x1000n);
  vm.u8[vm.run0 + 4096] = 0x5a;
  vm.setRunByte("immediate_exit", 1);
  assert.equal(vm.run(), K.KVM_EXIT_INTR);
  assert.equal(vm.reg("rax") & 0xffn, 0x5an);
  assert.equal(vm.get64("rip"), 0x1002n);
  vm.setRunByte("immediate_exit", 0);
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
});

Deno.test("REP INSB is one read-ahead exit (count 5 = RCX here), nothing committed at it; completion stores the batch", () => {
  // mov ecx, 5 ; mov edx, 0x60 ; mov edi, 0x3000 ; rep insb ; hlt
  const vm = vm32([0xb9, 5, 0, 0, 0, 0xba, 0x60, 0, 0, 0, 0xbf, 0, 0x30, 0, 0, 0xf3, 0x6c, 0xf4]);
  assert.equal(vm.run(), K.KVM_EXIT_IO);
  assert.equal(vm.runField("io.count"), 5);
  assert.equal(vm.runField("io.port"), 0x60);
  assert.equal(vm.get64("rip"), 0x100fn);
  assert.equal(vm.reg("rdi"), 0x3000n);
  assert.equal(vm.reg("rcx"), 5n);
  vm.u8.set([1, 2, 3, 4, 5], vm.run0 + 4096);
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
  assert.deepEqual([...vm.read(0x3000, 5)], [1, 2, 3, 4, 5]);
  assert.equal(vm.reg("rcx"), 0n);
  assert.equal(vm.reg("rdi"), 0x3005n);
});

Deno.test("REP OUTSW: one exit per element (count 1), RSI/RCX moved at the exit, RIP at the REP until RCX 0 is seen", () => {
  // mov ecx, 3 ; mov edx, 0x70 ; mov esi, 0x3000 ; rep outsw (66 f3 6f, at 0x100f) ; hlt
  const vm = vm32([0xb9, 3, 0, 0, 0, 0xba, 0x70, 0, 0, 0, 0xbe, 0, 0x30, 0, 0, 0x66, 0xf3, 0x6f, 0xf4]);
  vm.write(0x3000, [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
  for (let i = 0; i < 3; i++) {
    assert.equal(vm.run(), K.KVM_EXIT_IO, `exit ${i}`);
    assert.equal(vm.runField("io.size"), 2);
    assert.equal(vm.runField("io.count"), 1);
    assert.equal(vm.dv.getUint16(vm.run0 + 4096, true), [0x2211, 0x4433, 0x6655][i]);
    assert.deepEqual([vm.reg("rsi"), vm.reg("rcx"), vm.get64("rip")], [
      0x3002n + 2n * BigInt(i),
      BigInt(2 - i),
      0x100fn,
    ]);
  }
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
  assert.equal(vm.reg("rsi"), 0x3006n);
  assert.equal(vm.get64("rip"), 0x1013n);
});

Deno.test("a load from a GPA in no memslot is an MMIO read exit completed from mmio.data", () => {
  // mov ebx, 0x200000 ; mov eax, [ebx] ; hlt
  const vm = vm32([0xbb, 0, 0, 0x20, 0, 0x8b, 0x03, 0xf4]);
  assert.equal(vm.run(), K.KVM_EXIT_MMIO);
  assert.equal(vm.runField("mmio.phys_addr"), 0x200000);
  assert.equal(vm.runField("mmio.len"), 4);
  assert.equal(vm.runField("mmio.is_write"), 0);
  assert.equal(vm.get64("rip"), 0x1005n);
  vm.dv.setUint32(vm.run0 + 40, 0xdeadbeef, true); // kvm_run.mmio.data
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
  assert.equal(vm.reg("rax"), 0xdeadbeefn);
});

Deno.test("a store to MMIO exits with the data; a store crossing into MMIO is split in fragments", () => {
  // mov ebx, 0xffffe ; mov eax, 0x44332211 ; mov [ebx], eax ; hlt   (RAM ends at 0x100000)
  const vm = vm32([0xbb, 0xfe, 0xff, 0x0f, 0, 0xb8, 0x11, 0x22, 0x33, 0x44, 0x89, 0x03, 0xf4]);
  assert.equal(vm.run(), K.KVM_EXIT_MMIO);
  assert.equal(vm.runField("mmio.phys_addr"), 0x100000);
  assert.equal(vm.runField("mmio.len"), 2);
  assert.equal(vm.runField("mmio.is_write"), 1);
  assert.equal(vm.dv.getUint16(vm.run0 + 40, true), 0x4433);
  assert.deepEqual([...vm.read(0xffffe, 2)], [0x11, 0x22]);
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
});

Deno.test("read-only slot: loads read RAM, stores exit as MMIO writes; dirty-log slot records written pages", () => {
  const vm = vm32([
    0xbb,
    0,
    0x20,
    0,
    0, //     mov ebx, 0x2000
    0x8b,
    0x03, //              mov eax, [ebx]
    0x89,
    0x03, //              mov [ebx], eax
    0xf4, //                    hlt
  ]);
  const c = VM_CONTROL_BASE;
  const slots = field(VMC, "slots").offset;
  // Split slot 0: [0, 0x2000) logs dirty pages, slot 1 [0x2000, 0x3000) read-only.
  const bitmap = RawVmBitmap(vm);
  vm.dv.setBigUint64(c + slots + 8, 0x2000n, true);
  vm.dv.setUint32(c + slots + 20, bitmap, true);
  vm.dv.setUint32(c + slots + 24, K.KVM_MEM_LOG_DIRTY_PAGES, true);
  const s1 = c + slots + 32;
  vm.dv.setBigUint64(s1, 0x2000n, true);
  vm.dv.setBigUint64(s1 + 8, 0x1000n, true);
  vm.dv.setUint32(s1 + 16, vm.dv.getUint32(c + slots + 16, true) + 0x2000, true);
  vm.dv.setUint32(s1 + 24, K.KVM_MEM_READONLY, true);
  vm.dv.setUint32(s1 + 28, 1, true);
  vm.dv.setUint32(c + field(VMC, "nslots").offset, 2, true);
  vm.dv.setUint32(c + field(VMC, "memslot_gen").offset, 2, true);
  vm.write(0x2000, [0x78, 0x56, 0x34, 0x12]);
  assert.equal(vm.run(), K.KVM_EXIT_MMIO);
  assert.equal(vm.runField("mmio.phys_addr"), 0x2000);
  assert.equal(vm.runField("mmio.is_write"), 1);
  assert.equal(vm.dv.getUint32(vm.run0 + 40, true), 0x12345678);
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
  // The stack page 0x7000 was not written; page 1 (code at 0x1000) neither: bitmap stays 0 so far.
  assert.equal(vm.u8[bitmap], 0);
});

function RawVmBitmap(vm: RawVm): number {
  // A dirty bitmap in RAM beyond what the guest uses (guest page 0xf0000).
  return vm.dv.getUint32(VM_CONTROL_BASE + field(VMC, "slots").offset + 16, true) + 0xf0000;
}

Deno.test("dirty log: a store sets the page's bit", () => {
  // mov ebx, 0x5000 ; mov [ebx], eax ; hlt
  const vm = vm32([0xbb, 0, 0x50, 0, 0, 0x89, 0x03, 0xf4]);
  const c = VM_CONTROL_BASE;
  const slots = field(VMC, "slots").offset;
  const bitmap = RawVmBitmap(vm);
  vm.dv.setUint32(c + slots + 20, bitmap, true);
  vm.dv.setUint32(c + slots + 24, K.KVM_MEM_LOG_DIRTY_PAGES, true);
  assert.equal(vm.run(), K.KVM_EXIT_HLT);
  assert.equal(vm.u8[bitmap], 1 << 5);
});

Deno.test("real mode: #UD is delivered through the IVT with FLAGS/CS/IP pushed", () => {
  // ud2 at 0x1000 ; handler at 0x2000: out 0x99, al ; hlt
  const vm = vm32([0x0f, 0x0b]);
  vm.write(0x2000, [0xe6, 0x99, 0xf4]);
  vm.write(6 * 4, [0x00, 0x20, 0x00, 0x00]); // IVT[6] = 0000:2000
  assert.equal(vm.run(), K.KVM_EXIT_IO);
  assert.equal(vm.runField("io.port"), 0x99);
  assert.equal(vm.reg("rsp"), 0x8000n - 6n);
  const frame = vm.read(0x8000 - 6, 6);
  assert.equal(frame[0]! | (frame[1]! << 8), 0x1000); // IP of the faulting UD2
  assert.equal(frame[2]! | (frame[3]! << 8), 0); // CS
});

Deno.test("a fault with no usable IVT entry escalates to a triple fault: KVM_EXIT_SHUTDOWN", () => {
  const vm = vm32([0x0f, 0x0b]);
  vm.dv.setUint16(vm.state + field(VS, "idt.limit").offset, 0, true);
  assert.equal(vm.run(), K.KVM_EXIT_SHUTDOWN);
});

Deno.test("KVM_GUESTDBG_SINGLESTEP exits after each instruction with pc, dr6.BS", () => {
  // mov eax, 1 ; mov ebx, 2 ; hlt
  const vm = vm32([0xb8, 1, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0xf4]);
  vm.dv.setUint32(
    vm.state + field(VS, "guest_debug_control").offset,
    K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP,
    true,
  );
  assert.equal(vm.run(), K.KVM_EXIT_DEBUG);
  assert.equal(vm.runField("debug.arch.exception"), 1);
  assert.equal(vm.runField("debug.arch.pc"), 0x1005);
  assert.equal(vm.runField("debug.arch.dr6"), 0xffff4ff0);
  assert.equal(vm.run(), K.KVM_EXIT_DEBUG);
  assert.equal(vm.runField("debug.arch.pc"), 0x100a);
  assert.equal(vm.reg("rbx"), 2n);
});

Deno.test("budget exhausted → KVM_EXIT_INTR, run() resumes the loop", () => {
  // jmp $
  const vm = vm32([0xeb, 0xfe]);
  assert.equal(vm.run(1000), K.KVM_EXIT_INTR);
  assert.equal(vm.get64("rip"), 0x1000n);
  assert.equal(vm.get64("instructions"), 1000n);
});
