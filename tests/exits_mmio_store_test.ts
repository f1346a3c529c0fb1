// Repeated MMIO stores from the fast path: the first store to an MMIO page
// walks the page tables and fills the one-entry MMIO translation; later ones
// take it directly (mem.ts mmioStoreFinal). Every exit must carry the right
// address, length and data, RIP must move past each store on completion, and
// a TLB flush (MOV CR3) or a store to RAM in between changes nothing. Byte stores
// of AH and of REX byte registers take fastRun's MOV Eb, Gb (to the MMIO page just
// translated, and to a RAM page already in the TLB).
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import { NO_KVM } from "./support/kvm_guard.ts";

const MMIO = 0xd000_0000;

const ASM = `
    mov ebx, ${MMIO}
    mov rax, 0x1122334455667788
    mov [rbx], al
    mov [rbx + 2], ax
    mov [rbx + 4], eax
    mov [rbx + 8], rax
    mov dword [0x9000], 7
    mov [rbx + 0xff8], eax
    mov rcx, cr3
    mov cr3, rcx
    mov [rbx + 0x10], eax
    inc eax
    mov [rbx + 0x10], eax
    mov [rbx + 0x1000], al
    mov ah, 0x5a
    mov [rbx + 0x1020], ah
    mov sil, 0x6b
    mov [rbx + 0x1021], sil
    mov r9b, 0x7c
    mov [rbx + 0x1022], r9b
    mov dword [0x9008], 1
    mov [0x9004], ah
    mov [0x9005], sil
    hlt`;

function runStores(backend: "sim" | "kvm") {
  const { vm, vcpu } = createVmWithOneVcpu({ code: assemble(ASM, { bits: 64, origin: 0x1000 }).bytes, backend });
  const got: [number, number, bigint][] = [];
  const before = vcpu.instructions;
  try {
    for (;;) {
      const e = vcpu.run(100_000);
      if (e.reason === "hlt") break;
      assert.ok(e.reason === "mmio" && e.isWrite, `unexpected ${e.reason}`);
      let v = 0n;
      e.data.forEach((b, i) => (v |= BigInt(b) << BigInt(8 * i)));
      got.push([e.physAddr, e.len, v]);
    }
    const bytes = vm.readGuest(0x9004, 2);
    return { got, ram: vm.readGuest(0x9000, 4)[0], bytes: [bytes[0], bytes[1]], retired: vcpu.instructions - before };
  } finally {
    if (backend === "kvm") vm.close();
  }
}

Deno.test("long mode: back-to-back MMIO stores of every size exit with exact address, length and data", () => {
  const want: [number, number, bigint][] = [
    [MMIO, 1, 0x88n],
    [MMIO + 2, 2, 0x7788n],
    [MMIO + 4, 4, 0x55667788n],
    [MMIO + 8, 8, 0x1122334455667788n],
    [MMIO + 0xff8, 4, 0x55667788n],
    [MMIO + 0x10, 4, 0x55667788n],
    [MMIO + 0x10, 4, 0x55667789n],
    [MMIO + 0x1000, 1, 0x89n],
    [MMIO + 0x1020, 1, 0x5an],
    [MMIO + 0x1021, 1, 0x6bn],
    [MMIO + 0x1022, 1, 0x7cn],
  ];
  const { got, ram, bytes, retired } = runStores("sim");
  assert.deepEqual(got, want);
  assert.equal(ram, 7);
  assert.deepEqual(bytes, [0x5a, 0x6b], "byte stores of AH (no REX) and SIL (REX) to RAM");
  assert.equal(retired, 24, "every instruction retired once, HLT included");
});

Deno.test({
  name: "the same MMIO store sequence on /dev/kvm gives the same exits",
  ignore: NO_KVM !== undefined,
  fn: () => {
    const sim = runStores("sim");
    const kvm = runStores("kvm");
    assert.deepEqual(kvm.got, sim.got);
    assert.equal(kvm.ram, 7);
    assert.deepEqual(kvm.bytes, sim.bytes);
  },
});
