// IO-out exit throughput with a TS device handler in the loop (runUntil's bus
// fast path). Not a test: `deno run -A tests/vm_io_speed.ts [exits]`.
// Guest: `spin: out 0x80, al; jmp spin` (one exit per 2 instructions).
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import type { BusDevice } from "../src/devices/bus.ts";

const N = Number(Deno.args[0] ?? 20_000_000);
class Counter implements BusDevice {
  readonly name = "counter";
  writes = 0;
  sum = 0;
  read(_o: number, d: Uint8Array) {
    d[0] = 0;
  }
  write(_o: number, d: Uint8Array) {
    this.writes++;
    this.sum += d[0]!;
  }
}
const code = assemble("mov al, 1\nspin: out 0x80, al\njmp spin", { bits: 64, origin: 0x1000 }).bytes;
const rates: number[] = [];
for (let rep = 0; rep < 7; rep++) {
  const { vm, vcpu } = createVmWithOneVcpu({ code });
  const dev = new Counter();
  vm.pio.insert(dev, 0x80, 1);
  const t0 = performance.now();
  const r = vm.runUntil(vcpu, { maxExits: N });
  const dt = (performance.now() - t0) / 1000;
  if (r.stop.kind !== "max-exits" || dev.writes !== N || dev.sum !== N) {
    throw new Error(`unexpected: ${JSON.stringify(r.stop)} ${dev.writes}`);
  }
  rates.push(N / dt);
}
rates.sort((a, b) => a - b);
const med = rates[3]!;
console.log(
  `IO-out exits/s with a TS device handler (runUntil fast path): median ${
    (med / 1e6).toFixed(1)
  } M/s over 7 runs of ${N} exits (min ${(rates[0]! / 1e6).toFixed(1)}, max ${(rates[6]! / 1e6).toFixed(1)})`,
);

// The raw floor for comparison: runRaw() + accessors, no bus.
{
  const { vcpu } = createVmWithOneVcpu({ code });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) vcpu.runRaw();
  const dt = (performance.now() - t0) / 1000;
  console.log(`bare runRaw() loop (no handler): ${(N / dt / 1e6).toFixed(1)} M exits/s`);
}

// The TS side alone: the same runUntil fast path against a zero-cost fake core
// that returns KVM_EXIT_IO (out, port 0x80, size 1) instantly. This is the
// ceiling the VMM side allows once the core's run() entry is cheap.
{
  const { Vcpu } = await import("../src/vcpu.ts");
  const { PioBus } = await import("../src/devices/bus.ts");
  const { runUntil } = await import("../src/exits/run_loop.ts");
  const { field, layOut } = await import("../src/abi/layout.ts");
  const { KVM_RUN } = await import("../src/abi/kvm_structs.ts");
  const L = layOut(KVM_RUN);
  const buffer = new SharedArrayBuffer(1 << 20);
  const dv = new DataView(buffer);
  const base = 0x10000;
  dv.setUint32(base + field(L, "exit_reason").offset, 2, true);
  dv.setUint8(base + field(L, "io.direction").offset, 1);
  dv.setUint8(base + field(L, "io.size").offset, 1);
  dv.setUint16(base + field(L, "io.port").offset, 0x80, true);
  dv.setUint32(base + field(L, "io.count").offset, 1, true);
  dv.setBigUint64(base + field(L, "io.data_offset").offset, 4096n, true);
  dv.setUint8(base + 4096, 1);
  const vcpu = new Vcpu({ core: { run: () => 2 }, buffer, cpuidSignature: () => 0, cpuidTable: () => [] }, 0, 0, base);
  const rates: number[] = [];
  for (let rep = 0; rep < 7; rep++) {
    const pio = new PioBus();
    const dev = new Counter();
    pio.insert(dev, 0x80, 1);
    const t0 = performance.now();
    runUntil(vcpu, { pio, maxExits: N });
    rates.push(N / ((performance.now() - t0) / 1000));
    if (dev.writes !== N) throw new Error("fake-core run lost exits");
  }
  rates.sort((a, b) => a - b);
  console.log(
    `TS side only (fake zero-cost core): median ${(rates[3]! / 1e6).toFixed(1)} M exits/s (${
      (1e9 / rates[3]!).toFixed(1)
    } ns per exit)`,
  );
}
