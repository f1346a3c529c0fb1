// Memory regions: kvm_util's checks as typed errors, flags, removal, the
// memslot table the core reads, dirty logging, host view of guest memory.
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { MEMSLOT, VM_CONTROL } from "../src/abi/vcpu_state.ts";
import { RAM_POOL_BASE, VM_CONTROL_BASE } from "../src/abi/memory_map.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { createVm } from "../src/vm.ts";
import {
  BeyondMaxGfnError,
  DirtyLogDisabledError,
  DuplicateSlotError,
  InvalidMemoryFlagsError,
  MemoryRegionOverlapError,
  NoGuestMemoryError,
  NoHostMappingError,
  NoPhysPageError,
  NoSuchSlotError,
  NotPageAlignedError,
  PoolExhaustedError,
} from "../src/errors.ts";

const VMC = layOut(VM_CONTROL);
const SLOT_STRIDE = layOut(MEMSLOT).size;
const slotField = (vm: { dv: DataView }, i: number, f: string) => {
  const p = VM_CONTROL_BASE + field(VMC, "slots").offset + i * SLOT_STRIDE + field(VMC, `slots.${f}`).offset -
    field(VMC, "slots").offset;
  return f === "gpa" || f === "size" ? Number(vm.dv.getBigUint64(p, true)) : vm.dv.getUint32(p, true);
};

Deno.test("createVm() sizes the shared memory once: RAM_POOL_BASE + pool", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.equal(vm.buffer.byteLength, RAM_POOL_BASE + (1 << 20));
  assert.equal(vm.controlField("ram_base"), RAM_POOL_BASE);
  assert.equal(vm.controlField("ram_size"), 1 << 20);
  assert.equal(createVm().buffer.byteLength, RAM_POOL_BASE + (64 << 20));
});

Deno.test("addMemoryRegion() rejects a GPA not on a page boundary", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.throws(
    () => vm.addMemoryRegion({ slot: 0, gpa: 0x1001, size: 0x1000 }),
    (e: Error) =>
      e instanceof NotPageAlignedError &&
      e.message === "guest physical address 0x1001 is not on a page boundary: expected a multiple of 0x1000",
  );
  assert.throws(() => vm.addMemoryRegion({ slot: 0, gpa: 0, size: 0x1800 }), NotPageAlignedError);
});

Deno.test("addMemoryRegion() rejects a range beyond the maximum GFN", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.equal(vm.maxGfn, 2 ** 36 - 1);
  assert.throws(() => vm.addMemoryRegion({ slot: 0, gpa: 2 ** 48 - 0x1000, pages: 2 }), BeyondMaxGfnError);
  vm.addMemoryRegion({ slot: 0, gpa: 2 ** 48 - 0x1000, pages: 1 });
});

Deno.test("addMemoryRegion() rejects an overlap, naming the existing slot and range", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  vm.addMemoryRegion({ slot: 0, gpa: 0, size: 0x10000 });
  assert.throws(
    () => vm.addMemoryRegion({ slot: 1, gpa: 0x1000, size: 0x2000 }),
    (e: Error) =>
      e instanceof MemoryRegionOverlapError && e.message === "memory region 0x1000-0x2fff overlaps slot 0 (0x0-0xffff)",
  );
  vm.addMemoryRegion({ slot: 1, gpa: 0x10000, size: 0x1000 });
});

Deno.test("addMemoryRegion() rejects a duplicate slot id", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  vm.addMemoryRegion({ slot: 3, gpa: 0, size: 0x1000 });
  assert.throws(
    () => vm.addMemoryRegion({ slot: 3, gpa: 0x100000, size: 0x1000 }),
    (e: Error) => e instanceof DuplicateSlotError && /slot 3 is already in use by the region at 0x0/.test(e.message),
  );
});

Deno.test("addMemoryRegion() reports pool exhaustion and leaves the pool usable", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.throws(() => vm.addMemoryRegion({ slot: 0, gpa: 0, size: 2 << 20 }), PoolExhaustedError);
  vm.addMemoryRegion({ slot: 0, gpa: 0, size: 1 << 20 });
  assert.throws(() => vm.addMemoryRegion({ slot: 1, gpa: 1 << 20, size: 0x1000 }), /guest RAM pool exhausted/);
});

Deno.test("addMemoryRegion() rejects unknown flags; size xor pages", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.throws(() => vm.addMemoryRegion({ slot: 0, gpa: 0, size: 0x1000, flags: 4 }), InvalidMemoryFlagsError);
  assert.throws(() => vm.addMemoryRegion({ slot: 0, gpa: 0, size: 0x1000, pages: 1 }), /exactly one of size or pages/);
});

Deno.test("the memslot table in the VM control block follows adds and removals; memslot_gen bumps", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const g0 = vm.memslotGen;
  const a = vm.addMemoryRegion({ slot: 5, gpa: 0x100000, pages: 4, flags: K.KVM_MEM_READONLY });
  vm.addMemoryRegion({ slot: 2, gpa: 0, pages: 1 });
  assert.equal(vm.memslotGen, g0 + 2);
  assert.equal(vm.controlField("nslots"), 2);
  // Sorted by GPA, compact.
  assert.deepEqual(
    [0, 1].map((
      i,
    ) => [slotField(vm, i, "id"), slotField(vm, i, "gpa"), slotField(vm, i, "size"), slotField(vm, i, "flags")]),
    [
      [2, 0, 0x1000, 0],
      [5, 0x100000, 0x4000, K.KVM_MEM_READONLY],
    ],
  );
  assert.equal(slotField(vm, 1, "host"), a.hva);
  assert.equal(slotField(vm, 2, "id"), 0xffffffff);
  vm.removeMemoryRegion(2);
  assert.equal(vm.controlField("nslots"), 1);
  assert.equal(slotField(vm, 0, "id"), 5);
  assert.equal(vm.memslotGen, g0 + 3);
  assert.throws(() => vm.removeMemoryRegion(2), NoSuchSlotError);
  // The freed backing is reused.
  vm.addMemoryRegion({ slot: 2, gpa: 0, pages: 1 });
});

Deno.test("setMemoryRegionFlags() toggles dirty logging; READONLY cannot change", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  vm.addMemoryRegion({ slot: 0, gpa: 0, pages: 16 });
  assert.throws(() => vm.getDirtyLog(0), DirtyLogDisabledError);
  vm.setMemoryRegionFlags(0, K.KVM_MEM_LOG_DIRTY_PAGES);
  assert.notEqual(vm.memoryRegion(0).dirtyBitmap, 0);
  assert.equal(slotField(vm, 0, "dirty"), vm.memoryRegion(0).dirtyBitmap);
  assert.throws(
    () => vm.setMemoryRegionFlags(0, K.KVM_MEM_READONLY),
    (e: Error) => e instanceof InvalidMemoryFlagsError && /KVM_MEM_READONLY cannot change/.test(e.message),
  );
  vm.setMemoryRegionFlags(0, 0);
  assert.equal(vm.memoryRegion(0).dirtyBitmap, 0);
  assert.equal(slotField(vm, 0, "dirty"), 0);
});

Deno.test("getDirtyLog() returns the bitmap the core sets and clears it (KVM_GET_DIRTY_LOG)", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const r = vm.addMemoryRegion({ slot: 1, gpa: 0x200000, pages: 100, flags: K.KVM_MEM_LOG_DIRTY_PAGES });
  // As the core's markDirty does: bit (page & 7) of byte page >> 3.
  vm.u8[r.dirtyBitmap] = vm.u8[r.dirtyBitmap]! | (1 << 3);
  vm.u8[r.dirtyBitmap + 12] = vm.u8[r.dirtyBitmap + 12]! | (1 << 1); // page 97
  const log = vm.getDirtyLog(1);
  assert.equal(log.length, 16); // 100 pages → two 64-bit words
  assert.deepEqual(
    [...log].flatMap((b, i) => [0, 1, 2, 3, 4, 5, 6, 7].filter((k) => b & (1 << k)).map((k) => i * 8 + k)),
    [3, 97],
  );
  assert.ok(vm.getDirtyLog(1).every((b) => b === 0));
});

Deno.test("gpa2hva / hva2gpa / guestView / read/writeGuest across regions", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const a = vm.addMemoryRegion({ slot: 0, gpa: 0, pages: 1 });
  const b = vm.addMemoryRegion({ slot: 1, gpa: 0x1000, pages: 1 });
  assert.equal(vm.gpa2hva(0x10), a.hva + 0x10);
  assert.equal(vm.hva2gpa(b.hva + 5), 0x1005);
  vm.writeGuest(0xffe, [1, 2, 3, 4]);
  assert.deepEqual([...vm.readGuest(0xffe, 4)], [1, 2, 3, 4]);
  assert.equal(vm.u8[b.hva + 1], 4);
  assert.deepEqual([...vm.guestView(0x1000, 2)], [3, 4]);
  assert.throws(() => vm.guestView(0xfff, 2), NoGuestMemoryError);
  assert.throws(() => vm.gpa2hva(0x5000), (e: Error) => e instanceof NoGuestMemoryError && /0x5000/.test(e.message));
  assert.throws(() => vm.hva2gpa(0), NoHostMappingError);
});

Deno.test("physPageAlloc() hands out each page once, at or above paddrMin", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  vm.addMemoryRegion({ slot: 0, gpa: 0, pages: 4 });
  assert.equal(vm.physPageAlloc(0x2000), 0x2000);
  assert.equal(vm.physPageAlloc(0x2000), 0x3000);
  assert.throws(() => vm.physPageAlloc(0x2000), NoPhysPageError);
  assert.equal(vm.physPageAlloc(0), 0);
  assert.throws(() => vm.physPageAlloc(0x10), NotPageAlignedError);
  assert.throws(() => vm.physPageAlloc(0, 9), NoSuchSlotError);
});

Deno.test("a region's backing reads zero: fresh pool memory is not rewritten, a reused backing is cleared", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const a = vm.addMemoryRegion({ slot: 0, gpa: 0, pages: 4, flags: K.KVM_MEM_LOG_DIRTY_PAGES });
  const b = vm.addMemoryRegion({ slot: 1, gpa: 0x10000, pages: 2 });
  assert.ok(vm.u8.subarray(a.hva, a.hva + 4 * 4096).every((x) => x === 0));
  vm.u8.fill(0xa5, a.hva, a.hva + 4 * 4096);
  vm.u8.fill(0x5a, b.hva, b.hva + 2 * 4096);
  vm.removeMemoryRegion(0);
  // First fit hands the freed backing (and part of it for the dirty bitmap) out again: cleared.
  const c = vm.addMemoryRegion({ slot: 2, gpa: 0x20000, pages: 4, flags: K.KVM_MEM_LOG_DIRTY_PAGES });
  assert.equal(c.hva, a.hva);
  assert.ok(vm.u8.subarray(c.hva, c.hva + 4 * 4096).every((x) => x === 0));
  assert.deepEqual(vm.getDirtyLog(2), new Uint8Array(vm.getDirtyLog(2).length));
  // Memory above the high-water mark was never handed out: still zero.
  const d = vm.addMemoryRegion({ slot: 3, gpa: 0x40000, pages: 8 });
  assert.ok(d.hva > b.hva);
  assert.ok(vm.u8.subarray(d.hva, d.hva + 8 * 4096).every((x) => x === 0));
  assert.ok(vm.u8.subarray(b.hva, b.hva + 2 * 4096).every((x) => x === 0x5a), "the live region is untouched");
});

Deno.test("close() frees every vCPU and region; a closed VM's vCPU cannot run; close is idempotent", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  vm.addMemoryRegion({ slot: 0, gpa: 0, pages: 4 });
  vm.addMemoryRegion({ slot: 1, gpa: 0x10000, pages: 2 });
  const vcpu = vm.addVcpu(0);
  vm.close();
  assert.deepEqual(vm.memoryRegions(), []);
  assert.throws(() => vcpu.runRaw(), /removed/);
  vm.close();
  {
    using vm2 = createVm({ ramPoolSize: 1 << 20 });
    vm2.addMemoryRegion({ slot: 0, gpa: 0, pages: 1 });
  }
});
