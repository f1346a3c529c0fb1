/**
 * The vCPU-thread API (src/vcpu_thread.ts) and the scaling benchmark
 * (bench/scaling.ts): attach from this thread and from a Worker, two vCPUs
 * of one VM running at once, the Workers' checks, the CLI rows.
 */
import assert from "node:assert/strict";
import { benchJson } from "./cli_support.ts";
import { assemble } from "../src/asm/x86.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { InvalidArgumentError, NoSuchVcpuError } from "../src/errors.ts";
import { ioPort, ioSingleData } from "../src/exits/decode.ts";
import { attachVcpu, type VcpuHandle, vcpuHandle } from "../src/vcpu_thread.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import {
  portAndByte,
  runScaling,
  SCALING_ASM,
  ScalingError,
  scalingPathId,
  scalingSelected,
  splitScalingOptions,
} from "../bench/scaling.ts";
import { CONTROL_WORDS, type FromWorker, GO, STOP, TIMELINE_CAP, type ToWorker } from "../bench/scaling_protocol.ts";
import { overlapOf } from "../bench/scaling_overlap.ts";

/** A VM whose vCPU 0 loops `out dx, al; jmp` with rdx = 0x10, al = 0x5a; plus vCPU 1 with rdx = 0x11, al = 0x5b. */
function ioVm() {
  const { bytes } = assemble(SCALING_ASM, { bits: 64, origin: 0x1000 });
  const { vm, vcpu } = createVmWithOneVcpu({ code: bytes });
  const v1 = vm.addVcpu(1);
  v1.setSregs(vcpu.getSregs());
  v1.setRegs(vcpu.getRegs());
  vcpu.setRegs({ rdx: 0x10n, rax: 0x5an });
  v1.setRegs({ rdx: 0x11n, rax: 0x5bn });
  return { vm, v0: vcpu, v1 };
}

Deno.test("attachVcpu in this thread runs the vCPU's state from shared memory", () => {
  const { vm, v1 } = ioVm();
  const t = attachVcpu(vcpuHandle(vm, v1));
  assert.notEqual(t.core, vm.core, "the thread has its own core instance");
  for (let i = 0; i < 3; i++) {
    assert.equal(t.vcpu.runRaw(), K.KVM_EXIT_IO);
    assert.equal(ioPort(t.vcpu.kvmRun), 0x11);
    assert.equal(ioSingleData(t.vcpu.kvmRun)![0], 0x5b);
  }
  // The VM's own Vcpu object sees what the attached instance did: `out` x2 and `jmp` x2 (the third `out` is pending).
  assert.equal(v1.instructions, 4);
  assert.equal(v1.getRegs().rip, 0x1000n);
  assert.equal(t.vcpu.id, 1);
  assert.equal(t.cpuidSignature(), vm.cpuidSignature());
});

Deno.test("a vCPU handed back with release() continues in the VM's thread with everything the other thread did", () => {
  const { vm, v1 } = ioVm();
  for (let i = 0; i < 3; i++) assert.equal(v1.runRaw(), K.KVM_EXIT_IO);
  const t = attachVcpu(vcpuHandle(vm, v1));
  for (let i = 0; i < 3; i++) assert.equal(t.vcpu.runRaw(), K.KVM_EXIT_IO);
  t.release();
  assert.throws(() => t.vcpu.runRaw(), NoSuchVcpuError);
  assert.equal(v1.runRaw(), K.KVM_EXIT_IO);
  assert.equal(v1.stateField("exits"), 7n);
  assert.equal(v1.instructions, 12);
});

Deno.test("attachVcpu rejects a handle that names no vCPU of that memory", () => {
  const { vm, v0, v1 } = ioVm();
  const h = vcpuHandle(vm, v1);
  assert.throws(() => attachVcpu({ ...h, id: 7 }), NoSuchVcpuError);
  assert.throws(() => attachVcpu({ ...h, block: 5 }), NoSuchVcpuError);
  assert.throws(() => attachVcpu({ ...h, block: 64 }), InvalidArgumentError);
  const plain = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  assert.throws(() => attachVcpu({ ...h, memory: plain }), /expected a shared WebAssembly.Memory/);
  const other = ioVm();
  assert.throws(() => vcpuHandle(other.vm, v0), NoSuchVcpuError);
});

/** A Worker (from a blob) that attaches to the handle, runs `n` exits checking port/byte, and reports. */
function attachWorker(): Worker {
  const mod = new URL("../src/vcpu_thread.ts", import.meta.url).href;
  const dec = new URL("../src/exits/decode.ts", import.meta.url).href;
  const src = `
    import { attachVcpu } from "${mod}";
    import { ioPort, ioSingleData } from "${dec}";
    self.onmessage = (e) => {
      const { handle, n, port, byte } = e.data;
      const { vcpu } = attachVcpu(handle);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        if (vcpu.runRaw() !== 2 || ioPort(vcpu.kvmRun) !== port) throw new Error("not an IO exit to " + port);
        sum += ioSingleData(vcpu.kvmRun)[0];
      }
      self.postMessage({ sum, instructions: vcpu.instructions });
    };`;
  return new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), { type: "module" });
}

Deno.test("two vCPUs of one VM run at the same time in two Workers (attach by postMessage)", async () => {
  const { vm, v0, v1 } = ioVm();
  const n = 20_000;
  const jobs = [
    { vcpu: v0, port: 0x10, byte: 0x5a },
    { vcpu: v1, port: 0x11, byte: 0x5b },
  ].map(({ vcpu, port, byte }) => {
    const w = attachWorker();
    const done = new Promise<{ sum: number; instructions: number }>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
    });
    const handle: VcpuHandle = vcpuHandle(vm, vcpu);
    w.postMessage({ handle, n, port, byte });
    return done.finally(() => w.terminate());
  });
  const [r0, r1] = await Promise.all(jobs);
  assert.equal(r0!.sum, n * 0x5a);
  assert.equal(r1!.sum, n * 0x5b);
  // 2 instructions per exit, the last OUT pending: seen the same from this thread through shared memory.
  assert.equal(r0!.instructions, 2 * n - 2);
  assert.equal(v0.instructions, 2 * n - 2);
  assert.equal(v1.instructions, 2 * n - 2);
});

Deno.test("the scaling Worker fails its round when the bytes it gets are not its vCPU's", async () => {
  const { vm, v1 } = ioVm();
  const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
  const ctl = new Int32Array(control);
  const w = new Worker(new URL("../bench/scaling_worker.ts", import.meta.url), { type: "module" });
  const messages: FromWorker[] = [];
  let wake: () => void = () => {};
  w.onmessage = (e: MessageEvent<FromWorker>) => {
    messages.push(e.data);
    wake();
  };
  const next = () => new Promise<FromWorker>((r) => (wake = () => r(messages.at(-1)!)));
  try {
    // vCPU 1 writes 0x5b to port 0x11; tell the Worker to expect 0x5a.
    const timeline = new SharedArrayBuffer((TIMELINE_CAP + 1) * 8);
    const msg: ToWorker = {
      kind: "attach",
      index: 1,
      handle: vcpuHandle(vm, v1),
      port: 0x11,
      byte: 0x5a,
      control,
      timeline,
    };
    const ready = next();
    w.postMessage(msg);
    assert.deepEqual(await ready, { kind: "ready", index: 1 });
    const failed = next();
    Atomics.store(ctl, GO, 1);
    Atomics.notify(ctl, GO);
    Atomics.store(ctl, STOP, 1);
    const m = await failed;
    assert.equal(m.kind, "error");
    assert.match((m as { message: string }).message, /vcpu 1: handler saw byte sum \d+ over \d+ exits: expected/);
  } finally {
    w.terminate();
  }
});

Deno.test("runScaling with 2 vCPUs (own ports, then one port): both do work, rows are valid result rows, numbers are sane", async () => {
  const rows = await runScaling({ maxVcpus: 2, ports: "own", durationMs: 100, runs: 3, warmup: 1 });
  assert.deepEqual(rows.map((r) => r.path), ["scaling-io-out/1-vcpu", "scaling-io-out/2-vcpus"]);
  for (const r of rows) {
    for (const k of ["exits_per_s", "ns_per_exit", "min", "max", "runs"] as const) {
      assert.equal(typeof r[k], "number", k);
    }
    assert.equal(r.engine, "kvmsim");
    assert.equal(r.runs, 3);
    assert.ok(r.min <= r.exits_per_s && r.exits_per_s <= r.max);
    assert.ok(Math.abs(r.ns_per_exit * r.exits_per_s - 1e9) < 1);
    // Far below any plausible interpreter rate and far above a stalled vCPU.
    assert.ok(r.exits_per_s > 1e4 && r.exits_per_s < 1e10, `${r.path}: ${r.exits_per_s} exits/s`);
    assert.equal(r.per_vcpu_exits_per_s.length, r.vcpus);
    for (const v of r.per_vcpu_exits_per_s) assert.ok(v > 1e4, `${r.path}: a vCPU ran ${v} exits/s`);
  }
  const [one, two] = rows;
  assert.equal(one!.speedup, 1);
  assert.equal(two!.vcpus, 2);
  assert.ok(two!.speedup > 0.2 && two!.speedup < 4, `speedup ${two!.speedup}`);
  assert.ok(Math.abs(two!.efficiency - two!.speedup / 2) < 1e-12);
  assert.equal(two!.speedup_target, 1.8);
  assert.equal(two!.meets_speedup_target, two!.speedup >= 1.8);
  if (two!.cores_used !== null) assert.ok(two!.cores_used > 0 && two!.cores_used <= 2.05, `${two!.cores_used}`);

  // All vCPUs on the same port: each Worker still gets its own vCPU's bytes (its check would fail otherwise).
  const same = await runScaling({ maxVcpus: 2, ports: "same", durationMs: 50, runs: 1, warmup: 0 });
  assert.equal(same[1]!.ports, "same");
  assert.equal(same[1]!.per_vcpu_exits_per_s.length, 2);
  assert.deepEqual(portAndByte(1, "same"), { port: 0x10, byte: 0x5b });
  assert.deepEqual(portAndByte(1, "own"), { port: 0x11, byte: 0x5b });

  // A Worker that fails (here: a core without `run`) fails the measurement instead of hanging it.
  const noRun = new WebAssembly.Module(
    new Uint8Array([
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...[0x02, 0x12, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x03, 0x01],
      ...[0xff, 0xff, 0x03],
    ]),
  );
  await assert.rejects(
    runScaling({ maxVcpus: 2, ports: "own", durationMs: 10, runs: 1, warmup: 0, module: noRun }),
    (e: Error) => e instanceof ScalingError && /scaling-io-out\/1-vcpu: .*TypeError/.test(e.message),
  );
});

Deno.test("scaling options: --max-vcpus and --scaling-ports are taken out, bad values named", () => {
  const s = splitScalingOptions(["--filter", "x", "--max-vcpus", "3", "--scaling-ports=same", "--json"]);
  assert.deepEqual(s.rest, ["--filter", "x", "--json"]);
  assert.deepEqual(s.scaling, { maxVcpus: 3, ports: "same" });
  assert.throws(() => splitScalingOptions(["--max-vcpus", "0"]), /--max-vcpus "0": expected an integer 1\.\.64/);
  assert.throws(() => splitScalingOptions(["--scaling-ports", "x"]), /expected own or same/);
  assert.throws(() => splitScalingOptions(["--max-vcpus"]), /expected a value/);
  assert.equal(scalingSelected(undefined, 2), true);
  assert.equal(scalingSelected(/scaling/, 2), true);
  assert.equal(scalingSelected(/2-vcpus/, 2), true);
  assert.equal(scalingSelected(/2-vcpus/, 1), false);
  assert.equal(scalingSelected(/^io-out\/switch$/, 2), false);
  assert.equal(scalingPathId(1), "scaling-io-out/1-vcpu");
});

Deno.test("kvmsim bench --filter scaling --json: scaling rows with vcpus, speedup and efficiency", async () => {
  const { json: j, stderr } = await benchJson([
    "--filter",
    "scaling",
    "--max-vcpus",
    "2",
    "--runs",
    "1",
    "--warmup",
    "0",
    "--duration",
    "0.05",
    "--peers",
    "none",
    "--no-write",
  ]);
  assert.deepEqual(j.rows.map((r: { path: string }) => r.path), ["scaling-io-out/1-vcpu", "scaling-io-out/2-vcpus"]);
  assert.deepEqual(j.rows.map((r: { vcpus: number }) => r.vcpus), [1, 2]);
  for (const r of j.rows) {
    for (const k of ["exits_per_s", "ns_per_exit", "min", "max", "runs", "speedup", "efficiency"]) {
      assert.equal(typeof r[k], "number", k);
    }
  }
  assert.match(stderr, /scaling \(aggregate of n vCPUs vs one, same run\)\nvcpus +aggregate/);
});

Deno.test("overlapOf: chunks run while every other thread ran unpreempted are the simultaneous ones", () => {
  const steps = (from: number, step: number, n: number) => Array.from({ length: n + 1 }, (_, k) => from + k * step);
  // Thread 0: 100 chunks of 0.1 ms over 0..10 ms. Thread 1: 25 chunks of 0.2 ms over 0..5 ms, then preempted 5 ms.
  const a = { ends: steps(0, 0.1, 100) };
  const b = { ends: [...steps(0, 0.2, 25), 10] };
  const o = overlapOf([a, b], 1024);
  const rateA = 1024 / 0.1e-3;
  assert.ok(Math.abs(o.simultaneousShare - 10 / 15) < 1e-6, `share ${o.simultaneousShare}`);
  assert.ok(Math.abs(o.simultaneousRate! - rateA) / rateA < 1e-6, `rate ${o.simultaneousRate}`);
  assert.ok(Math.abs(o.cleanRate! - rateA) / rateA < 1e-6);
  // Never at the same time: thread 1 runs only while thread 0 is preempted.
  const c = { ends: [...steps(0, 0.1, 50), 10] };
  const d = { ends: [5, ...steps(5.05, 0.1, 40)] };
  const apart = overlapOf([c, d], 1024);
  assert.equal(apart.simultaneousRate, null);
  assert.equal(apart.simultaneousShare, 0);
  const one = overlapOf([a], 1024);
  assert.equal(one.simultaneousRate, null);
  assert.ok(Math.abs(one.cleanRate! - rateA) / rateA < 1e-6);
});
