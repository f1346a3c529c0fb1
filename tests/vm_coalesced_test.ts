// The simulator VM's coalesced zones in the VM control block: register /
// unregister (KVM's matching), registration order, the 64-zone limit, the
// spin lock shared with the core, the ring view, and two vCPUs in two Workers
// filling and draining one ring. Guest behaviour on both backends:
// tests/backend_kvm_coalesced_test.ts.
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { VM_CONTROL } from "../src/abi/vcpu_state.ts";
import { VM_CONTROL_BASE } from "../src/abi/memory_map.ts";
import { KVM_COALESCED_MMIO_ZONE, MAX_COALESCED_ZONES } from "../src/abi/coalesced.ts";
import { createVm, type Vm } from "../src/vm.ts";
import { CoalescedZoneLimitError, drainCoalesced } from "../src/exits/coalesced.ts";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import { vcpuHandle } from "../src/vcpu_thread.ts";
import { CoreContractError, InvalidArgumentError } from "../src/errors.ts";
import { head, produce } from "./support/coalesced_ring.ts";

const VMC = layOut(VM_CONTROL);
const ZONE = layOut(KVM_COALESCED_MMIO_ZONE);
const off = (p: string) => VM_CONTROL_BASE + field(VMC, p).offset;

/** The zone table as the core reads it: nzones and the raw entries. */
function raw(vm: Vm) {
  const n = vm.dv.getUint32(off("coalesced_nzones"), true);
  const zones = [];
  for (let i = 0; i < n; i++) {
    const e = off("coalesced_zones") + i * ZONE.size;
    zones.push({
      addr: vm.dv.getBigUint64(e + field(ZONE, "addr").offset, true),
      size: vm.dv.getUint32(e + field(ZONE, "size").offset, true),
      pio: vm.dv.getUint32(e + field(ZONE, "pio").offset, true),
    });
  }
  return { n, zones, lock: vm.dv.getUint32(off("coalesced_lock"), true) };
}

Deno.test("sim: zones go to the VM control block in registration order; unregister removes every containing zone", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.deepEqual(raw(vm), { n: 0, zones: [], lock: 0 });
  vm.registerCoalescedMmio({ addr: 0xd0000000, size: 0x1000, pio: false });
  vm.registerCoalescedMmio({ addr: 0x80, size: 2, pio: true });
  vm.registerCoalescedMmio({ addr: 0xd0000800, size: 0x10, pio: false });
  vm.registerCoalescedMmio({ addr: 0x1_0000_0000_0000, size: 0xffffffff, pio: false });
  assert.deepEqual(raw(vm), {
    n: 4,
    zones: [
      { addr: 0xd0000000n, size: 0x1000, pio: 0 },
      { addr: 0x80n, size: 2, pio: 1 },
      { addr: 0xd0000800n, size: 0x10, pio: 0 },
      { addr: 0x1_0000_0000_0000n, size: 0xffffffff, pio: 0 },
    ],
    lock: 0,
  });
  assert.deepEqual(vm.coalescedZones()[1], { addr: 0x80, size: 2, pio: true });
  // [0xd0000800, +8) lies in zones 0 and 2: both go; the PIO zone and the high one stay, in order.
  vm.unregisterCoalescedMmio({ addr: 0xd0000800, size: 8, pio: false });
  assert.deepEqual(vm.coalescedZones(), [
    { addr: 0x80, size: 2, pio: true },
    { addr: 0x1_0000_0000_0000, size: 0xffffffff, pio: false },
  ]);
  const r = raw(vm);
  assert.equal(r.n, 2);
  const third = off("coalesced_zones") + 2 * ZONE.size;
  assert.deepEqual([...vm.u8.subarray(third, third + 2 * ZONE.size)], new Array(2 * ZONE.size).fill(0), "cleared");
  vm.unregisterCoalescedMmio({ addr: 0x80, size: 2, pio: false }); // other bus: nothing, no error
  vm.unregisterCoalescedMmio({ addr: 0x4000, size: 1, pio: true }); // no match: no error
  assert.equal(vm.coalescedZones().length, 2);
  vm.unregisterCoalescedMmio({ addr: 0x82, size: 0, pio: true }); // size 0 at the zone's end still matches
  assert.deepEqual(vm.coalescedZones(), [{ addr: 0x1_0000_0000_0000, size: 0xffffffff, pio: false }]);
  vm.close();
});

Deno.test("sim: the 65th zone is refused naming the limit (KVM: ENOSPC); duplicates count", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.equal(MAX_COALESCED_ZONES, 64);
  for (let i = 0; i < 64; i++) vm.registerCoalescedMmio({ addr: 0x100, size: 1, pio: true });
  assert.throws(() => vm.registerCoalescedMmio({ addr: 0xd0000000, size: 4, pio: false }), (e) => {
    assert.ok(e instanceof CoalescedZoneLimitError);
    assert.equal(e.limit, 64);
    assert.match(e.message, /MMIO zone 0xd0000000\+0x4: all 64 zones are in use \(ENOSPC\)/);
    return true;
  });
  assert.equal(raw(vm).lock, 0, "the lock is released after the error");
  vm.unregisterCoalescedMmio({ addr: 0x100, size: 1, pio: true });
  assert.equal(vm.coalescedZones().length, 0, "one unregister removes all 64 identical zones");
  vm.close();
});

Deno.test("sim: bad zones are refused before the table changes", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  assert.throws(() => vm.registerCoalescedMmio({ addr: -4, size: 4, pio: false }), InvalidArgumentError);
  assert.throws(() => vm.unregisterCoalescedMmio({ addr: 0, size: 2 ** 32, pio: false }), InvalidArgumentError);
  assert.deepEqual(raw(vm), { n: 0, zones: [], lock: 0 });
  vm.close();
});

Deno.test("sim: register waits for the core's lock and reports a lock never released", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const lock = new Int32Array(vm.buffer, off("coalesced_lock"), 1);
  Atomics.store(lock, 0, 1); // as if a vCPU's core held it forever
  const t0 = Date.now();
  assert.throws(() => vm.registerCoalescedMmio({ addr: 0x80, size: 1, pio: true }), (e) => {
    assert.ok(e instanceof CoreContractError);
    assert.match(e.message, /coalesced_lock is 1 after 1000 ms: expected the core to release it/);
    return true;
  });
  assert.ok(Date.now() - t0 >= 1000);
  assert.equal(raw(vm).n, 0);
  Atomics.store(lock, 0, 0);
  vm.registerCoalescedMmio({ addr: 0x80, size: 1, pio: true });
  assert.deepEqual(raw(vm), { n: 1, zones: [{ addr: 0x80n, size: 1, pio: 1 }], lock: 0 });
  vm.close();
});

Deno.test("sim: the ring is the control block's coalesced_ring page of the shared memory", () => {
  const vm = createVm({ ramPoolSize: 1 << 20 });
  const ring = vm.coalescedRing();
  assert.equal(ring.buffer, vm.buffer);
  assert.equal(ring.byteOffset, off("coalesced_ring"));
  assert.equal(ring.byteLength, 4096);
  assert.ok(ring.byteOffset % 8 === 0);
  assert.equal(vm.coalescedRing(), ring);
  produce(ring, { pio: true, addr: 0x80, data: [7] });
  assert.deepEqual(head(ring), { first: 0, last: 1 });
  assert.equal(vm.dv.getUint32(off("coalesced_ring") + 4, true), 1);
  vm.close();
});

Deno.test("sim: two vCPUs in two Workers fill one ring under the core's lock and drain it together: every write once", async () => {
  const N = 3000;
  const asm = `mov ecx, ${N}\nl: out dx, ax\ninc eax\ndec ecx\njnz l\nhlt`;
  const { vm, vcpu: v0 } = createVmWithOneVcpu({ code: assemble(asm, { bits: 64, origin: 0x1000 }).bytes });
  const v1 = vm.addVcpu(1);
  v1.setSregs(v0.getSregs());
  v1.setRegs(v0.getRegs());
  v0.setRegs({ rdx: 0x80n, rax: 0n });
  v1.setRegs({ rdx: 0x80n, rax: 0x8000n });
  vm.registerCoalescedMmio({ addr: 0x80, size: 2, pio: true });
  const ringAt = vm.coalescedRing().byteOffset;
  const results = [v0, v1].map((v) => {
    const w = new Worker(new URL("./support/coalesced_vcpu_worker.ts", import.meta.url).href, { type: "module" });
    const done = new Promise<{ drained: number[]; exited: number[] }>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`vcpu worker: ${e.message}`));
      };
    });
    w.postMessage({ handle: vcpuHandle(vm, v), ring: ringAt });
    return done;
  });
  const [a, b] = await Promise.all(results);
  const left: number[] = [];
  drainCoalesced(vm.coalescedRing(), (_p, _a, _l, d) => void left.push(d[0]! | d[1]! << 8));
  const all = [...a!.drained, ...a!.exited, ...b!.drained, ...b!.exited, ...left].sort((x, y) => x - y);
  const want = [...Array.from({ length: N }, (_, i) => i), ...Array.from({ length: N }, (_, i) => 0x8000 + i)];
  assert.equal(
    all.length,
    want.length,
    `drained ${a!.drained.length} + ${b!.drained.length}, exits ${a!.exited.length} + ${
      b!.exited.length
    }, left ${left.length}`,
  );
  assert.deepEqual(all, want);
  for (const list of [a!.drained, b!.drained]) {
    for (const src of [0, 0x8000]) {
      const mine = list.filter((v) => (v & 0x8000) === src);
      mine.forEach((v, i) => i > 0 && assert.ok(v > mine[i - 1]!, "a drainer sees each vCPU's writes in order"));
    }
  }
  assert.ok(a!.drained.length + b!.drained.length > N, "most writes were coalesced");
  assert.equal(vm.controlField("coalesced_lock"), 0);
  vm.close();
});
