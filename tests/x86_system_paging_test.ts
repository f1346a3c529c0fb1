/**
 * Long mode with 4-level paging: #PF delivery through a 64-bit IDT gate with CR2
 * and the error code, A/D bit updates, NX with EFER.NXE, write protection.
 */
import assert from "node:assert/strict";
import { RawVm } from "./support/raw_vm.ts";
import { field, layOut } from "../src/abi/layout.ts";
import { VCPU_STATE } from "../src/abi/vcpu_state.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { RAM_POOL_BASE } from "../src/abi/memory_map.ts";

const VS = layOut(VCPU_STATE);
const PT = 0x13000;

function longVm(code: number[]): RawVm {
  const vm = new RawVm();
  const q = (gpa: number, v: bigint) => vm.dv.setBigUint64(RAM_POOL_BASE + gpa, v, true);
  // GDT: null, 64-bit code (8), data (0x10)
  q(0x500, 0n);
  q(0x508, 0x00af9a000000ffffn);
  q(0x510, 0x00cf92000000ffffn);
  // IDT[14] → 8:0x7000, 64-bit interrupt gate
  q(0x600 + 14 * 16, 0x00008e0000087000n);
  q(0x608 + 14 * 16, 0n);
  q(0x10000, 0x11000n | 3n);
  q(0x11000, 0x12000n | 3n);
  q(0x12000, BigInt(PT) | 3n);
  for (let i = 0; i < 512; i++) q(PT + i * 8, BigInt(i * 0x1000) | 3n);
  q(PT + 5 * 8, 0n); //                    0x5000 not present
  q(PT + 6 * 8, 0x6000n | 1n); //          0x6000 read-only
  vm.write(0x1000, code);
  vm.write(0x7000, [0xe6, 0x14, 0xf4]); // out 0x14, al ; hlt
  vm.setSeg("cs", { base: 0n, limit: 0xffffffff, selector: 8, type: 0xb, s: 1, present: 1, l: 1, g: 1 });
  for (const s of ["ds", "es", "ss"]) {
    vm.setSeg(s, { base: 0n, limit: 0xffffffff, selector: 0x10, type: 3, s: 1, present: 1, db: 1, g: 1 });
  }
  vm.setSeg("tr", { base: 0x900n, limit: 0x67, selector: 0x18, type: 11, s: 0, present: 1 });
  vm.set64("gdt.base", 0x500n);
  vm.dv.setUint16(vm.state + field(VS, "gdt.limit").offset, 0x17, true);
  vm.set64("idt.base", 0x600n);
  vm.dv.setUint16(vm.state + field(VS, "idt.limit").offset, 0xfff, true);
  vm.set64("cr0", 0x80000011n);
  vm.set64("cr3", 0x10000n);
  vm.set64("cr4", 0x20n);
  vm.set64("efer", 0x500n);
  vm.setReg("rip", 0x1000n);
  vm.setReg("rsp", 0x9000n);
  return vm;
}
function vmRam(_vm: RawVm): number {
  return RAM_POOL_BASE;
}
const pte = (vm: RawVm, page: number) => vm.dv.getBigUint64(vmRam(vm) + PT + page * 8, true);

Deno.test("#PF on a not-present page: CR2, error code 0 on the 64-bit frame; A bit on the page read", () => {
  // mov ebx, 0x4000 ; mov eax, [rbx] ; mov ebx, 0x5000 ; mov eax, [rbx] ; hlt
  const vm = longVm([0xbb, 0, 0x40, 0, 0, 0x8b, 0x03, 0xbb, 0, 0x50, 0, 0, 0x8b, 0x03, 0xf4]);
  assert.equal(vm.run(), K.KVM_EXIT_IO);
  assert.equal(vm.runField("io.port"), 0x14);
  assert.equal(vm.get64("cr2"), 0x5000n);
  const rsp = Number(vm.reg("rsp"));
  assert.equal(rsp, 0x9000 - 48);
  assert.equal(vm.dv.getBigUint64(vmRam(vm) + rsp, true), 0n); // error code
  assert.equal(vm.dv.getBigUint64(vmRam(vm) + rsp + 8, true), 0x100cn); // RIP of the faulting load
  assert.equal(pte(vm, 4) & 0x60n, 0x20n); // accessed, not dirty
});

Deno.test("a write to a read-only page faults with P|W; a write elsewhere sets D", () => {
  // mov ebx, 0x4000 ; mov [rbx], eax ; mov ebx, 0x6000 ; mov [rbx], eax ; hlt
  const vm = longVm([0xbb, 0, 0x40, 0, 0, 0x89, 0x03, 0xbb, 0, 0x60, 0, 0, 0x89, 0x03, 0xf4]);
  vm.set64("cr0", 0x80010011n); // WP
  assert.equal(vm.run(), K.KVM_EXIT_IO);
  assert.equal(vm.get64("cr2"), 0x6000n);
  assert.equal(vm.dv.getBigUint64(vmRam(vm) + Number(vm.reg("rsp")), true), 3n);
  assert.equal(pte(vm, 4) & 0x60n, 0x60n);
});
