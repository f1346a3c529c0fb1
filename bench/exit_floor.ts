/**
 * The floor under an exit with a TypeScript handler (not a test):
 * `deno run -A bench/exit_floor.ts [--rounds 7] [--ms 300]`.
 *
 * The same JS loop as the io-out/switch path (bench/run_path.ts switchStep:
 * runRaw, the reason, the allocation-free kvm_run accessors, the handler) runs
 * against two cores in alternating rounds: kvmsim's, on the path's guest loop
 * (`out dx, al; jmp`), and a "floor" core built here that does only the memory
 * traffic one such KVM_RUN needs at the least — entry check, the completion of
 * the pending OUT (RIP and the instruction count), one code fetch, the io exit
 * fields, the PIO data byte, the pending flag, exit_reason with if_flag, cr8,
 * apic_base and the exit count — at the real kvm_run and state-block offsets,
 * with no decoding at all. Its time per exit is what the JS loop, the JS→WASM
 * call and those stores cost on this machine: no core that keeps KVM's one exit
 * per KVM_RUN can go below it. A third core, `assembly/floor/checked.ts` (built here
 * with asc), runs the same KVM_RUN with every check and store kvmsim's run() does on
 * this path but without decoding, as a core that translated the exit-to-exit path ahead
 * of time would: its time bounds what such a translation could reach. Prints the three
 * medians per exit.
 *
 * @module
 */
import { field, layOut } from "../src/abi/layout.ts";
import { KVM_RUN } from "../src/abi/kvm_structs.ts";
import { VCPU_STATE } from "../src/abi/vcpu_state.ts";
import { VCPU_STATE_OFFSET } from "../src/abi/memory_map.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { KvmRun } from "../src/exits/decode.ts";
import { Bytes, I32, moduleBytes, OP, VOID } from "../src/jit/wasm_emit.ts";
import type { GuestVcpu } from "../src/backends/types.ts";
import { PATHS, type Sink } from "./paths.ts";
import { preparePath, switchStep } from "./run_path.ts";
import { median } from "./stats.ts";
import { ascArgs } from "../scripts/asc_args.ts";

const args = [...Deno.args];
let rounds = 7, ms = 300;
while (args.length) {
  const a = args.shift()!;
  if (a === "--rounds") rounds = Number(args.shift());
  else if (a === "--ms") ms = Number(args.shift());
  else throw new Error(`unknown argument ${a}: expected --rounds N or --ms MS`);
}

const RUN = layOut(KVM_RUN), VS = layOut(VCPU_STATE);
const run = (p: string) => field(RUN, p).offset;
const vs = (p: string) => VCPU_STATE_OFFSET + field(VS, p).offset;
const PIO_PAGE = K.KVM_PIO_PAGE_OFFSET * 4096;
const PATH = PATHS.find((p) => p.path === "io-out/switch")!;
if (PATH.handler.kind !== "pio-out") throw new Error("io-out/switch: expected a pio-out handler");
const PORT = PATH.handler.port, BYTE = PATH.handler.expectByte;

/** f(runBase, budget) -> KVM_EXIT_IO: the stores of one OUT exit and its completion, nothing else. */
function floorModule(): Uint8Array {
  const f = new Bytes();
  const RB = 0, T = 2; // params: runBase, budget; local 2: a scratch i32
  const at = (off: number) => f.get(RB).i32c(off).op(OP.i32_add);
  const ld64 = (off: number) => at(off).mem(OP.i64_load, 3, 0);
  const st32 = (off: number, v: number) => at(off).i32c(v).mem(OP.i32_store, 2, 0);
  const st64 = (off: number, v: bigint) => at(off).i64c(v).mem(OP.i64_store, 3, 0);
  const copy64 = (to: number, from: number) => (at(to), ld64(from), f.mem(OP.i64_store, 3, 0));
  const inc64 = (off: number) => (at(off), ld64(off), f.i64c(1n).op(OP.i64_add).mem(OP.i64_store, 3, 0));
  // Entry: the dirty word (a TS write since the last run).
  at(vs("dirty")).mem(OP.i32_load, 2, 0).op(OP.if).byte(VOID);
  st32(vs("dirty"), 0);
  f.op(OP.end);
  // Completion of the pending OUT: RIP past it, one more instruction retired.
  at(vs("pending_flags")).mem(OP.i32_load, 2, 0).op(OP.if).byte(VOID);
  st32(vs("pending_flags"), 0);
  copy64(vs("rip"), vs("pending_rip"));
  inc64(vs("instructions"));
  f.op(OP.end);
  // One code fetch at RIP (its low bits), standing for the decode.
  ld64(vs("rip")).op(OP.i32_wrap_i64).i32c(0xff).op(OP.i32_and).get(RB).op(OP.i32_add).mem(OP.i32_load8_u, 0, 0x8000);
  f.set(T);
  // The exit: io fields (direction, size, port, count in one store), data_offset, the data byte.
  st64(run("io.direction"), BigInt(K.KVM_EXIT_IO_OUT) | (1n << 8n) | (BigInt(PORT) << 16n) | (1n << 32n));
  st64(run("io.data_offset"), BigInt(PIO_PAGE));
  at(PIO_PAGE).get(T).i32c(0).op(OP.i32_mul).i32c(BYTE).op(OP.i32_add).mem(OP.i32_store, 2, 0);
  st32(vs("pending_flags"), 1);
  copy64(vs("pending_rip"), vs("rip"));
  // post_kvm_run_save: exit_reason with if_flag, cr8, apic_base; the exit count.
  st64(run("exit_reason"), BigInt(K.KVM_EXIT_IO) | (1n << 40n));
  copy64(run("cr8"), vs("cr8"));
  copy64(run("apic_base"), vs("apic_base"));
  inc64(vs("exits"));
  f.i32c(K.KVM_EXIT_IO);
  return moduleBytes([], [{ type: { params: [I32, I32], results: [I32] }, locals: [I32], body: f }], 0);
}

/** A vCPU of the floor core: what switchStep uses of one (runRaw and kvm_run), as the simulator's Vcpu does it. */
class FloorVcpu {
  readonly kvmRun: KvmRun;
  #removed = false;
  constructor(
    readonly core: { f(runBase: number, budget: number): number },
    readonly runBase: number,
    buf: SharedArrayBuffer,
  ) {
    this.kvmRun = new KvmRun(buf, runBase);
  }
  runRaw(budget = 1 << 24): number {
    if (this.#removed) throw new Error("removed");
    this.kvmRun.generation++;
    return this.core.f(this.runBase, budget);
  }
}

/**
 * The checked core's vCPU: FloorVcpu with a runRaw of its own, so that each call site
 * into WASM sees one core only (shared, the call into two cores is polymorphic and both
 * rows get slower).
 */
class CheckedVcpu extends FloorVcpu {
  override runRaw(budget = 1 << 24): number {
    this.kvmRun.generation++;
    return this.core.f(this.runBase, budget);
  }
}

const memory = new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true });
const floorCore = new WebAssembly.Instance(new WebAssembly.Module(floorModule() as Uint8Array<ArrayBuffer>), {
  env: { memory },
}).exports as { f(runBase: number, budget: number): number };
const floorVcpu = new FloorVcpu(floorCore, 0x10000, memory.buffer as SharedArrayBuffer);
const floorSink: Sink = { calls: 0, sum: 0 };
const floorStep = switchStep(PATH, floorVcpu as unknown as GuestVcpu, floorSink);
const real = preparePath(PATH);

/** The checked core: built from assembly/floor/checked.ts, run on a VM of its own that one real exit brought to the loop. */
async function checkedStep(sink: Sink): Promise<{ step: (n: number) => number; verify(): void }> {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/checked.wasm`;
  const root = new URL("../", import.meta.url);
  const asc = await new Deno.Command("node", {
    args: ascArgs("assembly/floor/checked.ts", out),
    cwd: root,
  }).output();
  if (asc.code !== 0) throw new Error(`asc assembly/floor/checked.ts: ${new TextDecoder().decode(asc.stderr)}`);
  const prep = preparePath(PATH);
  prep.step(1); // the first OUT exit: RIP at the OUT, its completion pending
  const { vm, vcpu } = prep;
  const outIp = vcpu.getRegs().rip, jmpIp = outIp + 1n;
  const code = vm.guestView(Number(jmpIp), 2);
  if (code[0] !== 0xeb || code[1] !== 0xfd) {
    throw new Error(`expected jmp -3 (eb fd) at 0x${jmpIp.toString(16)}, got ${[...code]}`);
  }
  const bytes = Deno.readFileSync(out);
  Deno.removeSync(dir, { recursive: true });
  const core = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), {
    env: { memory: vm.memory },
  }).exports as {
    run(runBase: number, budget: number): number;
    setTrace(r: number, ip: bigint, h: number, t: bigint): void;
  };
  core.setTrace(vcpu.runBase, jmpIp, vm.gpa2hva(Number(jmpIp)), outIp);
  const fake = new CheckedVcpu({ f: core.run }, vcpu.runBase, vm.memory.buffer as SharedArrayBuffer);
  const step = switchStep(PATH, fake as unknown as GuestVcpu, sink);
  const insns0 = vcpu.instructions;
  return {
    step,
    // The state it left is the one kvmsim's own core leaves: two instructions per exit, and
    // kvmsim's core goes on from it.
    verify() {
      if (vcpu.instructions - insns0 !== 2 * sink.calls) {
        throw new Error(`checked core: ${vcpu.instructions - insns0} instructions for ${sink.calls} exits`);
      }
      prep.step(1000);
    },
  };
}
const checkedSink: Sink = { calls: 0, sum: 0 };
const checked = await checkedStep(checkedSink);

const time = (step: (n: number) => number) => {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) n += step(10_000);
  return (performance.now() - t0) * 1e6 / n;
};
time(floorStep), time(checked.step), time(real.step); // warm-up
const floorNs: number[] = [], checkedNs: number[] = [], realNs: number[] = [];
for (let r = 0; r < rounds; r++) {
  floorNs.push(time(floorStep));
  checkedNs.push(time(checked.step));
  realNs.push(time(real.step));
}
checked.verify();
if (checkedSink.calls === 0 || checkedSink.sum !== ((checkedSink.calls * BYTE) | 0)) {
  throw new Error(`checked core: ${checkedSink.calls} handler calls, byte sum ${checkedSink.sum}`);
}
if (floorSink.calls === 0 || floorSink.sum !== ((floorSink.calls * BYTE) | 0)) {
  throw new Error(`floor core: ${floorSink.calls} handler calls, byte sum ${floorSink.sum}`);
}
const fmt = (a: number[]) => `${median(a).toFixed(1)} ns (${Math.min(...a).toFixed(1)}–${Math.max(...a).toFixed(1)})`;
console.log(`${PATH.path} JS loop, ${rounds} alternating rounds of ${ms} ms, ns per exit (median, min–max):`);
console.log(`  floor core (the exit's stores only): ${fmt(floorNs)}`);
console.log(`  checked core (all checks, no decode): ${fmt(checkedNs)}`);
console.log(`  kvmsim core:                         ${fmt(realNs)}`);
