// Devices: 16550 serial, debug-exit port, test MMIO register file.
import assert from "node:assert/strict";
import { MmioBus, PioBus } from "../src/devices/bus.ts";
import { COM1_PORT, Serial16550, SERIAL_PORTS } from "../src/devices/serial.ts";
import { BufferSink, callbackSink } from "../src/devices/sink.ts";
import { DebugExitDevice } from "../src/devices/debug_exit.ts";
import { TestMmioDevice } from "../src/devices/test_mmio.ts";

function serialBus(sink = new BufferSink()) {
  const bus = new PioBus();
  const uart = new Serial16550({ sink });
  bus.insert(uart, COM1_PORT, SERIAL_PORTS);
  return { bus, uart, sink };
}
const inb = (bus: PioBus, port: number) => {
  const d = new Uint8Array(1);
  bus.read(port, d);
  return d[0];
};
const outb = (bus: PioBus, port: number, v: number) => bus.write(port, Uint8Array.of(v));

Deno.test("serial: THR writes reach the sink; LSR reports THR empty", () => {
  const { bus, sink, uart } = serialBus();
  assert.equal(inb(bus, COM1_PORT + 5)! & 0x60, 0x60);
  for (const c of "hi\n") outb(bus, COM1_PORT, c.charCodeAt(0));
  assert.equal(sink.text(), "hi\n");
  assert.equal(uart.transmitted, 3);
});

Deno.test("serial: DLAB switches offsets 0/1 to the divisor latch (no output)", () => {
  const { bus, sink } = serialBus();
  outb(bus, COM1_PORT + 3, 0x83);
  outb(bus, COM1_PORT, 0x01);
  outb(bus, COM1_PORT + 1, 0x00);
  assert.equal(inb(bus, COM1_PORT), 0x01);
  outb(bus, COM1_PORT + 3, 0x03);
  assert.equal(inb(bus, COM1_PORT + 3), 0x03);
  assert.equal(sink.text(), "");
  outb(bus, COM1_PORT + 7, 0x5a);
  assert.equal(inb(bus, COM1_PORT + 7), 0x5a);
});

Deno.test("serial: queued input is read through RBR with LSR.DR", () => {
  const { bus, uart } = serialBus();
  uart.pushInput("ok");
  assert.equal(inb(bus, COM1_PORT + 5)! & 1, 1);
  assert.equal(inb(bus, COM1_PORT), 0x6f);
  assert.equal(inb(bus, COM1_PORT), 0x6b);
  assert.equal(inb(bus, COM1_PORT + 5)! & 1, 0);
});

Deno.test("serial: a callback sink sees every byte", () => {
  const got: number[] = [];
  const { bus } = serialBus(callbackSink((b) => got.push(b)) as BufferSink);
  outb(bus, COM1_PORT, 0x41);
  assert.deepEqual(got, [0x41]);
});

Deno.test("debug-exit: a write stops with value and QEMU's (value << 1) | 1", () => {
  const bus = new PioBus();
  const dev = new DebugExitDevice();
  bus.insert(dev, 0xf4, 4);
  assert.deepEqual(bus.write(0xf4, Uint8Array.of(3, 0, 0, 0)), {
    kind: "stop",
    why: { kind: "debug-exit", value: 3, code: 7, port: 0xf4 },
  });
  assert.equal(dev.lastValue, 3);
  assert.equal(inb(bus, 0xf4), 0xff);
});

Deno.test("test MMIO device: register file semantics and an access log", () => {
  const bus = new MmioBus();
  const dev = new TestMmioDevice(0x40);
  bus.insert(dev, 0xc000_0000, 0x40);
  bus.write(0xc000_0008, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 1);
  const d = new Uint8Array(2);
  bus.read(0xc000_000a, d, 1);
  assert.deepEqual([...d], [3, 4]);
  assert.deepEqual(dev.accesses, [
    { kind: "write", offset: 8, address: 0xc000_0008, size: 8, value: 0x0807060504030201n, vcpuId: 1 },
    { kind: "read", offset: 10, address: 0xc000_000a, size: 2, value: 0x0403n, vcpuId: 1 },
  ]);
});
