/**
 * Restart-with-replay through the real run(): an instruction whose MMIO read
 * exits commits nothing (RIP on the instruction), and the next run() re-executes it
 * with the data; an MMIO write exits with its instruction committed, as KVM writes
 * back an emulated write (RIP past it, flags set); a read-modify-write gives a read
 * exit then a write exit; REP MOVSB from MMIO commits one iteration per exit
 * (RSI/RDI/RCX describe the remaining work at every exit).
 * Refresh bytes: deno run -A tests/oracle/fill_snippets.ts tests/x86_core_restart_test.ts
 */
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { KVM_RUN } from "../src/abi/kvm_structs.ts";
import { CODE, code, CoreVm, KVM_EXIT_HLT, KVM_EXIT_MMIO } from "./x86_core_harness.ts";

const RUNL = layOut(KVM_RUN);
function mmioData(c: CoreVm): bigint {
  return c.vm.dv.getBigUint64(c.vm.run0 + field(RUNL, "mmio.data").offset, true);
}
function setMmioData(c: CoreVm, v: bigint): void {
  c.vm.dv.setBigUint64(c.vm.run0 + field(RUNL, "mmio.data").offset, v, true);
}

Deno.test("MMIO read operand: exit, then completion; ADC RMW: read exit, write exit, flags intact", () => {
  const c = new CoreVm("prot");
  c.load(code(
    32,
    `
    mov ebx, 0xd0000000
    mov eax, 1
    add eax, [ebx]
    stc
    adc dword ptr [ebx + 8], eax
    hlt
  `,
    "bb000000d0b8010000000303f9114308f4",
  ));
  assert.equal(c.vm.run(), KVM_EXIT_MMIO);
  assert.equal(c.runField("mmio.phys_addr"), 0xd0000000);
  assert.equal(c.runField("mmio.len"), 4);
  assert.equal(c.runField("mmio.is_write"), 0);
  assert.equal(c.reg("rip"), BigInt(CODE + 10));
  assert.equal(c.reg("rax"), 1n);
  setMmioData(c, 5n);
  assert.equal(c.vm.run(), KVM_EXIT_MMIO); // the ADC's read
  assert.equal(c.reg("rax"), 6n);
  assert.equal(c.runField("mmio.phys_addr"), 0xd0000008);
  assert.equal(c.runField("mmio.is_write"), 0);
  const adcRip = c.reg("rip");
  setMmioData(c, 0x10n);
  assert.equal(c.vm.run(), KVM_EXIT_MMIO); // the ADC's write: 0x10 + 6 + CF
  assert.equal(c.runField("mmio.is_write"), 1);
  assert.equal(mmioData(c), 0x17n);
  assert.equal(c.reg("rip"), adcRip + 3n); // committed at the write exit: past the ADC, its flags set
  assert.equal(c.reg("rflags") & 1n, 0n);
  assert.equal(c.vm.run(), KVM_EXIT_HLT);
  assert.equal(c.reg("rflags") & 1n, 0n);
});

Deno.test("REP MOVSB from MMIO: one exit per byte, registers describe the remaining work", () => {
  const c = new CoreVm("prot");
  c.load(code(
    32,
    `
    mov esi, 0xd0000000
    mov edi, 0x9000
    mov ecx, 3
    rep movsb
    hlt
  `,
    "be000000d0bf00900000b903000000f3a4f4",
  ));
  const movsRip = BigInt(CODE + 15);
  for (let k = 0; k < 3; k++) {
    assert.equal(c.vm.run(), KVM_EXIT_MMIO, `exit ${k}`);
    assert.equal(c.runField("mmio.phys_addr"), 0xd0000000 + k);
    assert.equal(c.reg("rip"), movsRip);
    assert.equal(c.reg("rcx"), BigInt(3 - k));
    assert.equal(c.reg("rdi"), BigInt(0x9000 + k));
    setMmioData(c, BigInt(0x41 + k));
  }
  assert.equal(c.vm.run(), KVM_EXIT_HLT);
  assert.equal(new TextDecoder().decode(c.vm.read(0x9000, 3)), "ABC");
  assert.equal(c.reg("rcx"), 0n);
  assert.equal(c.reg("rsi"), 0xd0000003n);
});

Deno.test("MOV r, [base] / MOV [base+disp], r (the loop fast path): MMIO exits and completion, #PF precise", () => {
  const c = new CoreVm("prot");
  c.load(code(
    32,
    `
    mov ebx, 0xd0000000
    mov eax, [ebx]
    mov [ebx + 0x10], eax
    hlt
  `,
    "bb000000d08b03894310f4",
  ));
  assert.equal(c.vm.run(), KVM_EXIT_MMIO);
  assert.equal(c.reg("rip"), BigInt(CODE + 5));
  assert.equal(c.runField("mmio.len"), 4);
  setMmioData(c, 0xcafef00dn);
  assert.equal(c.vm.run(), KVM_EXIT_MMIO);
  assert.equal(c.reg("rax"), 0xcafef00dn);
  assert.equal(c.runField("mmio.is_write"), 1);
  assert.equal(c.runField("mmio.phys_addr"), 0xd0000010);
  assert.equal(mmioData(c), 0xcafef00dn);
  assert.equal(c.reg("rip"), BigInt(CODE + 10)); // the store committed at its exit, as on KVM
  assert.equal(c.vm.run(), KVM_EXIT_HLT);

  const l = new CoreVm("long");
  l.load(code(
    64,
    `
    mov rbx, 0x201000
    mov ecx, 3
    mov rax, [rbx + 8]
    hlt
  `,
    "48c7c300102000b903000000488b4308f4",
  ));
  const o = l.run();
  assert.equal(o.kind, "exception");
  assert.equal(o.vector, 14);
  assert.equal(o.faultRip, BigInt(CODE + 12));
  assert.equal(l.vm.get64("cr2"), 0x201008n);
});
