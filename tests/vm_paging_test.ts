// Guest page tables (virt_pg_map / addr_gva2gpa), vaddrAlloc, memcmp, and the
// long/protected/real-mode setups of createVmWithOneVcpu.
import assert from "node:assert/strict";
import { createVm } from "../src/vm.ts";
import { UnmappedGvaError, VirtualMemoryError } from "../src/errors.ts";
import { PAGE_1G, PAGE_2M, PTE_NX, PTE_RW } from "../src/x86/page_tables.ts";
import { createVmWithOneVcpu, LAYOUT, RESERVED_SIZE, SEL_CODE64, SEL_DATA } from "../src/x86/setup.ts";

function vmWithRam(pages = 256) {
  const vm = createVm({ ramPoolSize: 4 << 20 });
  vm.addMemoryRegion({ slot: 0, gpa: 0, pages });
  return vm;
}

Deno.test("virtPgMap() builds 4-level tables; gva2gpa() walks them", () => {
  const vm = vmWithRam();
  vm.virtPgMap(0x400000n, 0x5000);
  vm.virtPgMap(0xffff_ffff_8000_0000n, 0x6000);
  assert.equal(vm.gva2gpa(0x400123n), 0x5123);
  assert.equal(vm.gva2gpa(0xffff_ffff_8000_0fffn), 0x6fff);
  const t = vm.translate(0x400000n);
  assert.equal(t.level, 1);
  assert.equal(t.entry & 3n, 3n); // P | RW
  // PML4 + (PDPT, PD, PT) per mapping, from physPageAlloc at >= 0x2000.
  assert.equal(vm.pgd, 0x2000);
  assert.throws(
    () => vm.gva2gpa(0x401000n),
    (e: Error) =>
      e instanceof UnmappedGvaError && /0x401000 is not mapped: entry not present \(level 1\)/.test(e.message),
  );
  assert.throws(() => vm.gva2gpa(0x0000_8000_0000_0000n), /non-canonical/);
});

Deno.test("virtPgMap() rejects unaligned, non-canonical and already-mapped addresses", () => {
  const vm = vmWithRam();
  vm.virtPgMap(0x1000n, 0x9000);
  assert.throws(
    () => vm.virtPgMap(0x1000n, 0xa000),
    (e: Error) => e instanceof VirtualMemoryError && /already mapped/.test(e.message),
  );
  assert.throws(() => vm.virtPgMap(0x1001n, 0xa000), /page boundary/);
  assert.throws(() => vm.virtPgMap(0x2000n, 0xa001), /physical address 0xa001 not on a/);
  assert.throws(() => vm.virtPgMap(0x0000_8000_0000_0000n, 0xa000), /not canonical/);
});

Deno.test("large pages: 2 MiB and 1 GiB leaves translate with the page offset", () => {
  const vm = vmWithRam();
  vm.virtPgMap(0x4000_0000n, 0x20_0000, { pageSize: PAGE_2M });
  vm.virtPgMap(0x80_0000_0000n, 0x4000_0000, { pageSize: PAGE_1G, flags: PTE_RW | PTE_NX });
  assert.equal(vm.gva2gpa(0x4012_3456n), 0x32_3456);
  const t = vm.translate(0x80_1234_5678n);
  assert.deepEqual([t.gpa, t.level, t.pageSize], [0x5234_5678, 3, PAGE_1G]);
  assert.throws(() => vm.virtPgMap(0x4000_1000n, 0x9000), /large page/);
});

Deno.test("virtMap() maps a range page by page and checks for overflow", () => {
  const vm = vmWithRam();
  vm.virtMap(0x10_0000n, 0x3_0000, 0x3000);
  assert.deepEqual([0x10_0000n, 0x10_1000n, 0x10_2fffn].map((a) => vm.gva2gpa(a)), [0x3_0000, 0x3_1000, 0x3_2fff]);
  assert.throws(() => vm.virtMap(0xffff_ffff_ffff_f000n, 0x3_0000, 0x2000), /overflows/);
});

Deno.test("vaddrAlloc() finds the lowest free range >= vaddrMin with fresh physical pages", () => {
  const vm = vmWithRam();
  vm.virtPgMap(0x10000n, 0x8000);
  const a = vm.vaddrAlloc(0x2001);
  assert.equal(a, 0x11000n);
  const pa = [0, 1, 2].map((i) => vm.gva2gpa(a + BigInt(i * 0x1000)));
  assert.equal(new Set(pa).size, 3);
  assert.ok(pa.every((p) => p >= 0x2000 && p !== vm.pgd));
  assert.equal(vm.vaddrAlloc(1, 0x20000n), 0x20000n);
  assert.equal(vm.vaddrAlloc(1, 0x11000n), 0x14000n);
});

Deno.test("memcmp() compares host bytes with guest-virtual memory across pages", () => {
  const vm = vmWithRam();
  vm.virtPgMap(0x7000_0000n, 0x20000);
  vm.virtPgMap(0x7000_1000n, 0x40000); // physically discontiguous
  const bytes = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  vm.writeGuest(0x20ff0, bytes.subarray(0, 16));
  vm.writeGuest(0x40000, bytes.subarray(16));
  assert.equal(vm.memcmp(bytes, 0x7000_0ff0n), 0);
  const other = bytes.slice();
  other[20] = 0;
  assert.ok(vm.memcmp(other, 0x7000_0ff0n) < 0);
  assert.ok(vm.memcmp(Uint8Array.of(0xff), 0x7000_0ff0n) > 0);
});

Deno.test("long-mode setup: low 4 GiB identity-mapped with 2 MiB pages, tables in the last 1 MiB", () => {
  const { vm, vcpu, layout } = createVmWithOneVcpu({ code: [0xf4], memSize: 8 << 20 });
  assert.equal(layout.reservedBase, (8 << 20) - RESERVED_SIZE);
  assert.equal(layout.pml4, layout.reservedBase + LAYOUT.pml4);
  for (const a of [0x1000n, 0x7f_f000n, 0xd000_0000n, 0xffff_ffffn]) assert.equal(vm.gva2gpa(a), Number(a));
  assert.equal(vm.translate(0xfee0_0000n).pageSize, PAGE_2M);
  assert.throws(() => vm.gva2gpa(0x1_0000_0000n), UnmappedGvaError);
  const s = vcpu.getSregs();
  assert.deepEqual([s.cs.selector, s.cs.l, s.cs.db, s.ds.selector], [SEL_CODE64, 1, 0, SEL_DATA]);
  assert.equal(s.cr3, BigInt(layout.pml4!));
  assert.equal(s.efer & 0x500n, 0x500n);
  assert.equal(s.cr0 & 0x80000001n, 0x80000001n);
  assert.equal(s.gdt.base, BigInt(layout.gdt!));
  const r = vcpu.getRegs();
  assert.deepEqual([r.rip, r.rflags, r.rsp, r.rax, r.rdx], [0x1000n, 2n, BigInt(layout.reservedBase), 0n, 0n]);
  assert.equal(vm.readGuest(0x1000, 1)[0], 0xf4);
  // GDT: 64-bit code descriptor at 0x08.
  assert.equal(vm.read64(layout.gdt! + 8), 0x00af9b000000ffffn);
  assert.equal(vm.read64(layout.gdt! + 16), 0x00cf93000000ffffn);
  // vaddrAlloc steps over the identity map.
  assert.equal(vm.vaddrAlloc(0x1000), 0x1_0000_0000n);
});

Deno.test("long-mode setup: exceptionPort installs 64-bit gates to report stubs", () => {
  const { vm, layout } = createVmWithOneVcpu({ code: [0xf4], exceptionPort: 0x1234 });
  const stub = layout.reservedBase + LAYOUT.stubs + 16 * 14;
  const lo = vm.read64(layout.idt! + 16 * 14);
  assert.equal(Number(lo & 0xffffn) | Number((lo >> 48n) & 0xffffn) << 16, stub);
  assert.equal(Number((lo >> 40n) & 0xffn), 0x8e);
  assert.deepEqual([...vm.readGuest(stub, 10)], [0x66, 0xba, 0x34, 0x12, 0xb0, 14, 0xee, 0xf4, 0xeb, 0xfd]);
  const plain = createVmWithOneVcpu({ code: [0xf4] });
  assert.equal(plain.vm.read64(plain.layout.idt! + 16 * 14), 0n, "no stubs: gates not present");
});

Deno.test("protected and real-mode setups", () => {
  const p = createVmWithOneVcpu({ code: [0xf4], mode: "protected" });
  const ps = p.vcpu.getSregs();
  assert.deepEqual([ps.cs.selector, ps.cs.db, ps.cs.l, ps.cr0 & 0x80000001n], [0x18, 1, 0, 1n]);
  assert.equal(p.vm.read64(p.layout.gdt! + 0x18), 0x00cf9b000000ffffn);
  const r = createVmWithOneVcpu({ code: [0xf4], mode: "real", load: 0x7c00 });
  const rs = r.vcpu.getSregs();
  for (const seg of [rs.cs, rs.ds, rs.es, rs.fs, rs.gs, rs.ss]) {
    assert.deepEqual([seg.selector, seg.base, seg.limit], [0, 0n, 0xffff]);
  }
  assert.equal(rs.cr0 & 1n, 0n);
  assert.deepEqual([r.vcpu.getRegs().rip, r.vcpu.getRegs().rsp], [0x7c00n, 0n]);
  assert.throws(
    () => createVmWithOneVcpu({ code: new Uint8Array(0x100), mode: "real", load: 0xff80 }),
    /below 0x10000/,
  );
});
