/**
 * A/B speed comparison of core builds in one process (not a test):
 * `deno run -A tests/perf_ab.ts [--ms 300] [--rounds 7] [--filter RE] [--cpu] A.wasm [B.wasm ...]`.
 * For every path, the builds are measured in alternation (round-robin, same
 * process, so machine noise hits all of them alike) and the median rate of each
 * build is printed. Paths: raw dec/jnz, an ALU/memory/stack mix, run(budget 0),
 * io-out (runRaw + switch, and runUntil with a bus device), mmio-write, hlt.
 * Every sample checks that the guest did the work counted. `--cpu` times samples
 * with the process's CPU time instead of the wall clock (steadier when the
 * machine is shared: time spent descheduled is not counted).
 */
import process from "node:process";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { assemble } from "../src/asm/x86.ts";
import { ioIsOut, ioPort, ioSingleData, mmioData, mmioIsWrite, mmioPhysAddr } from "../src/exits/decode.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { Vm } from "../src/vm.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";

const args = [...Deno.args];
let ms = 300, rounds = 7;
let filter: RegExp | undefined;
let cpu = false;
const files: string[] = [];
while (args.length) {
  const a = args.shift()!;
  if (a === "--ms") ms = Number(args.shift());
  else if (a === "--rounds") rounds = Number(args.shift());
  else if (a === "--filter") filter = new RegExp(args.shift()!);
  else if (a === "--cpu") cpu = true;
  else files.push(a);
}
if (files.length === 0) files.push("build/kvmsim.wasm");
const modules = files.map((f) => new WebAssembly.Module(Deno.readFileSync(f) as Uint8Array<ArrayBuffer>));

const PORT = 0x10, MMIO = 0xd000_0000, BYTE = 0x5a;

interface PathDef {
  name: string;
  unit: string;
  asm: string;
  /** Do about n units; returns units done. */
  make(vm: Vm, vcpu: Vcpu): (n: number) => number;
  first: number;
}

function budgetRun(vcpu: Vcpu): (n: number) => number {
  return (n) => {
    const before = vcpu.instructions;
    const r = vcpu.runRaw(Math.max(1, Math.min(n, 0x7fffffff)));
    if (r !== K.KVM_EXIT_INTR) throw new Error(`unexpected exit ${r}`);
    return vcpu.instructions - before;
  };
}

const MIX = `
  mov ebx, 0x8000
  xor ecx, ecx
  xor r8d, r8d
top:
  mov eax, [rbx]
  add eax, ecx
  mov [rbx+4], eax
  add [rbx+8], eax
  mov edx, [rbx+r8*4+12]
  lea rsi, [rbx+rax*2+16]
  push rax
  pop rdx
  call fn
  cmp edx, eax
  jne top
  test eax, eax
  dec ecx
  jnz top
  jmp top
fn:
  add edi, 1
  ret
`;

const PATHS: PathDef[] = [
  {
    name: "raw/dec-jnz",
    unit: "insn",
    asm: "xor ecx, ecx\ntop:\ndec ecx\njnz top\njmp top",
    make: (_vm, vcpu) => budgetRun(vcpu),
    first: 100_000,
  },
  {
    name: "raw/mix",
    unit: "insn",
    asm: MIX,
    make: (_vm, vcpu) => budgetRun(vcpu),
    first: 100_000,
  },
  {
    name: "run0",
    unit: "calls",
    asm: "top:\njmp top",
    make: (_vm, vcpu) => (n) => {
      for (let i = 0; i < n; i++) vcpu.runRaw(0);
      return n;
    },
    first: 1000,
  },
  {
    name: "io-out/switch",
    unit: "exits",
    asm: `mov edx, ${PORT}\nmov eax, ${BYTE}\ntop:\nout dx, al\njmp top`,
    make: (_vm, vcpu) => {
      const run = vcpu.kvmRun;
      let sum = 0;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const r = vcpu.runRaw();
          if (r !== K.KVM_EXIT_IO) throw new Error(`exit ${r}`);
          const d = ioSingleData(run);
          if (d === undefined || !ioIsOut(run) || ioPort(run) !== PORT) throw new Error("bad io");
          sum += d[0]!;
        }
        if (sum !== BYTE * n) throw new Error("bad sum");
        sum = 0;
        return n;
      };
    },
    first: 1000,
  },
  {
    name: "io-out/runUntil",
    unit: "exits",
    asm: `mov edx, ${PORT}\nmov eax, ${BYTE}\ntop:\nout dx, al\njmp top`,
    make: (vm, vcpu) => {
      let sum = 0;
      vm.pio.insert({ name: "c", read: (_o, d) => void d.fill(0xff), write: (_o, d) => void (sum += d[0]!) }, PORT, 1);
      return (n) => {
        const r = vm.runUntil(vcpu, { maxExits: n });
        if (r.exits !== n || sum !== BYTE * n) throw new Error(`runUntil ${JSON.stringify(r.stop)}`);
        sum = 0;
        return n;
      };
    },
    first: 1000,
  },
  {
    name: "mmio-write/switch",
    unit: "exits",
    asm: `mov ebx, ${MMIO}\nmov eax, ${BYTE}\ntop:\nmov [rbx], al\njmp top`,
    make: (_vm, vcpu) => {
      const run = vcpu.kvmRun;
      let sum = 0;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const r = vcpu.runRaw();
          if (r !== K.KVM_EXIT_MMIO) throw new Error(`exit ${r}`);
          const d = mmioData(run);
          if (d === undefined || !mmioIsWrite(run) || mmioPhysAddr(run) !== MMIO) throw new Error("bad mmio");
          sum += d[0]!;
        }
        if (sum !== BYTE * n) throw new Error("bad sum");
        sum = 0;
        return n;
      };
    },
    first: 1000,
  },
  {
    name: "hlt/switch",
    unit: "exits",
    asm: "top:\nhlt\njmp top",
    make: (_vm, vcpu) => (n) => {
      for (let i = 0; i < n; i++) {
        const r = vcpu.runRaw();
        if (r !== K.KVM_EXIT_HLT) throw new Error(`exit ${r}`);
      }
      return n;
    },
    first: 1000,
  },
];

/** Milliseconds: wall clock, or CPU time (user + system) with --cpu. */
function now(): number {
  if (!cpu) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function sample(step: (n: number) => number, first: number, state: { chunk: number }): number {
  let units = 0;
  const t0 = now();
  let t = t0;
  let chunk = state.chunk || first;
  for (;;) {
    const c0 = t;
    units += step(chunk);
    t = now();
    if (t - t0 >= ms) break;
    if (t - c0 < 5 && chunk < 0x3fffffff) chunk *= 2;
  }
  state.chunk = chunk;
  return units / ((t - t0) / 1000);
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1]!;
};
const fmt = (r: number) => r >= 1e6 ? `${(r / 1e6).toFixed(1)}M` : `${(r / 1e3).toFixed(1)}k`;

console.log(
  `builds: ${files.map((f, i) => `${String.fromCharCode(65 + i)}=${f}`).join("  ")}; ${rounds} rounds × ${ms} ms${
    cpu ? " (CPU time)" : ""
  }`,
);
for (const p of PATHS) {
  if (filter && !filter.test(p.name)) continue;
  const { bytes } = assemble(p.asm, { bits: 64, origin: 0x1000 });
  const runs = modules.map((module) => {
    const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, load: 0x1000, module });
    return { step: p.make(vm, vcpu), state: { chunk: 0 }, rates: [] as number[] };
  });
  for (const r of runs) sample(r.step, p.first, r.state); // warm-up
  for (let k = 0; k < rounds; k++) for (const r of runs) r.rates.push(sample(r.step, p.first, r.state));
  const meds = runs.map((r) => median(r.rates));
  const cols = meds.map((m, i) => {
    const ns = (1e9 / m).toFixed(1);
    const rel = i === 0 ? "" : ` (${(m / meds[0]!).toFixed(2)}×)`;
    return `${String.fromCharCode(65 + i)} ${fmt(m)}/s ${ns} ns${rel}`;
  });
  console.log(`${p.name.padEnd(18)} ${p.unit.padEnd(5)} ${cols.join("   ")}`);
}
