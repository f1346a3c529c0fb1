// Range buses: overlap errors naming both ranges, offsets, unmapped all-ones.
import assert from "node:assert/strict";
import { type BusAccess, type BusDevice, MmioBus, PioBus } from "../src/devices/bus.ts";
import { BusOverlapError, InvalidArgumentError } from "../src/errors.ts";

class Rec implements BusDevice {
  log: string[] = [];
  constructor(readonly name: string) {}
  read(offset: number, data: Uint8Array, a: BusAccess) {
    this.log.push(`r ${offset} ${data.length} @${a.address.toString(16)}`);
    data.fill(offset);
  }
  write(offset: number, data: Uint8Array, a: BusAccess) {
    this.log.push(`w ${offset} ${[...data]} @${a.address.toString(16)}`);
  }
}

Deno.test("insert() rejects an overlapping range with a typed error naming both ranges", () => {
  const bus = new PioBus();
  bus.insert(new Rec("com1"), 0x3f8, 8);
  assert.throws(() => bus.insert(new Rec("other"), 0x3fc, 8), (e: Error) => {
    assert.ok(e instanceof BusOverlapError);
    assert.equal(e.message, "pio range 0x3fc-0x403 (other) overlaps 0x3f8-0x3ff (com1)");
    return true;
  });
  assert.throws(() => bus.insert(new Rec("below"), 0x3f0, 9), /overlaps 0x3f8-0x3ff \(com1\)/);
  bus.insert(new Rec("adjacent-low"), 0x3f0, 8);
  bus.insert(new Rec("adjacent-high"), 0x400, 1);
  assert.deepEqual(bus.ranges().map((r) => r.device.name), ["adjacent-low", "com1", "adjacent-high"]);
});

Deno.test("insert() validates the range against the bus limit", () => {
  assert.throws(() => new PioBus().insert(new Rec("x"), 0xfffe, 4), InvalidArgumentError);
  assert.throws(() => new MmioBus().insert(new Rec("x"), 0x1000, 0), InvalidArgumentError);
});

Deno.test("devices see offsets into their range; the access carries the absolute address", () => {
  const bus = new MmioBus();
  const d = new Rec("dev");
  bus.insert(d, 0xfee00000, 0x1000);
  const data = new Uint8Array(4);
  bus.read(0xfee00030, data, 2);
  bus.write(0xfee00ff0, Uint8Array.of(1, 2), 2);
  assert.deepEqual(d.log, ["r 48 4 @fee00030", "w 4080 1,2 @fee00ff0"]);
  assert.deepEqual([...data], [48, 48, 48, 48]);
});

Deno.test("unmapped reads return all-ones and are counted, as are unmapped writes and straddling accesses", () => {
  const bus = new PioBus();
  const d = new Rec("d");
  bus.insert(d, 0x100, 4);
  const data = new Uint8Array([1, 2, 3, 4]);
  bus.read(0x200, data);
  assert.deepEqual([...data], [0xff, 0xff, 0xff, 0xff]);
  bus.read(0x102, new Uint8Array(4)); // straddles the end of 0x100-0x103
  bus.write(0x50, Uint8Array.of(9));
  assert.deepEqual(bus.stats, { reads: 2, writes: 1, unmappedReads: 2, unmappedWrites: 1 });
  assert.deepEqual(d.log, []);
});

Deno.test("remove() unmaps a range and lookups stop hitting it", () => {
  const bus = new PioBus();
  const d = new Rec("d");
  bus.insert(d, 0x80, 1);
  bus.write(0x80, Uint8Array.of(1));
  assert.equal(bus.remove(0x80), d);
  bus.write(0x80, Uint8Array.of(1));
  assert.equal(d.log.length, 1);
  assert.equal(bus.stats.unmappedWrites, 1);
  assert.throws(() => bus.remove(0x80), InvalidArgumentError);
});

Deno.test("lookup finds the right device among many (binary search + hit cache)", () => {
  const bus = new PioBus();
  const devs = Array.from({ length: 50 }, (_, i) => new Rec(`d${i}`));
  devs.forEach((d, i) => bus.insert(d, 0x1000 + i * 0x10, 0x10));
  for (const i of [7, 7, 49, 0, 23]) bus.write(0x1000 + i * 0x10 + 3, Uint8Array.of(i));
  assert.deepEqual(devs.filter((d) => d.log.length).map((d) => `${d.name}:${d.log.length}`), [
    "d0:1",
    "d7:2",
    "d23:1",
    "d49:1",
  ]);
});
