/**
 * Translated hot loops (assembly/x86/jit.ts, src/jit/) against interpreting:
 * generated loops of every instruction the translator takes (ALU r,r / r,imm /
 * eAX,imm, TEST, INC/DEC, MOV r,r / r,imm, LEA, NOP) closed by every Jcc or a
 * JMP, inside an outer loop so they get hot, run to the same instruction count
 * (a) with the translator off (VS jit_hot = JIT_NEVER: fastRun alone), (b) through step()
 * (a hardware breakpoint that never hits), and translated with budgets that
 * split iterations everywhere; registers, RFLAGS, RIP and instruction counts
 * must all agree, and translations must really have run. Plus code changed by
 * the host and by the guest inside a translated loop, a CR3 switch that maps
 * other code at the same RIP, and the same bytes run as 64-bit then 32-bit code.
 */
import assert from "node:assert/strict";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { layOut, offsetOf } from "../src/abi/layout.ts";
import { JIT_HOT_DEFAULT, JIT_NEVER, VCPU_STATE } from "../src/abi/vcpu_state.ts";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu, type GuestMode } from "../src/x86/setup.ts";
import type { KvmRegs } from "../src/x86/regs.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { Vm } from "../src/vm.ts";

const LOAD = 0x1000;
const CCS = ["jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja", "js", "jns", "jp", "jnp", "jl", "jge", "jle", "jg"];
const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
const R64 = ["rax", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13"];
const R32 = ["eax", "edx", "esi", "edi", "ebp", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d"];
const P32 = ["eax", "edx", "esi", "edi", "ebp", "ebx"];
const EDGE = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  -1n,
];
const JIT_HOT = offsetOf(layOut(VCPU_STATE), "jit_hot");
/** Loop entries before translation in these tests (short runs; the default is JIT_HOT_DEFAULT). */
const HOT = 16;
const HW = K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_HW_BP;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** An outer loop around a hot inner loop of translatable instructions closed by a Jcc (or JMP). */
function program(seed: number, long: boolean): string {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[r() % a.length]!;
  const body: string[] = [];
  const n = 1 + (r() % 10);
  for (let k = 0; k < n; k++) {
    const rs = long ? (r() & 1 ? R64 : R32) : P32;
    const a = pick(rs), b = pick(rs);
    switch (r() % 12) {
      case 0:
      case 1:
        body.push(`${pick(ALU)} ${a}, ${b}`);
        break;
      case 2:
        body.push(`${pick(ALU)} ${a}, ${(r() % 256) - 128}`);
        break;
      case 3:
        body.push(`${pick(ALU)} ${a}, 0x${(r() & 0x7fffffff).toString(16)}`);
        break;
      case 4:
        body.push(`${pick(ALU)} ${rs[0]}, 0x${((r() & 0x7ffffff) | 0x10000).toString(16)}`);
        break;
      case 5:
        body.push(`test ${a}, ${b}`);
        break;
      case 6:
      case 7:
        body.push(`${r() & 1 ? "inc" : "dec"} ${a}`);
        break;
      case 8:
        body.push(`mov ${a}, ${b}`);
        break;
      case 9:
        body.push(
          r() & 1 || !long
            ? `mov ${a}, 0x${(r() >>> 0).toString(16)}`
            : `mov ${pick(R64)}, 0x${r().toString(16)}${r().toString(16).padStart(8, "0")}`,
        );
        break;
      case 10:
        if (long) {
          body.push(
            r() & 1
              ? `lea ${a}, [${pick(R64)}+${pick(R64)}*${1 << (r() & 3)}+${(r() % 4096) - 2048}]`
              : `lea ${a}, [rip+${r() % 1000}]`,
          );
        } else body.push("nop");
        break;
      default:
        body.push("nop");
    }
  }
  const c = long ? "ecx" : "ecx";
  const close = r() % 8;
  const lines = ["outer:", `mov ${c}, ${1 + (r() % 40)}`, "top:", ...body];
  if (close === 0) lines.push("jmp top"); // runs until the budget ends
  else if (close < 4) lines.push(`dec ${c}`, "jnz top");
  else lines.push(`${CCS[r() % 16]} top`);
  lines.push(long ? "add r14, 1" : "add ebx, 1", "jmp outer");
  // A Jcc with no flag op in the body reads flags from before the loop: not translatable, still must run right.
  return lines.join("\n");
}

interface Run {
  vm: Vm;
  vcpu: Vcpu;
}

function setup(src: string, mode: GuestMode, seed: number): Run {
  const { bytes } = assemble(src, { bits: mode === "long" ? 64 : 32, origin: LOAD });
  const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, load: LOAD, mode });
  setHot({ vm, vcpu }, HOT);
  const r = rng(seed ^ 0x5a5a);
  const val = () => BigInt.asUintN(64, r() & 1 ? EDGE[r() % EDGE.length]! : (BigInt(r()) << 32n) | BigInt(r()));
  const init: Partial<KvmRegs> = {};
  for (
    const n of ["rax", "rcx", "rdx", "rbx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
  ) {
    (init as Record<string, bigint>)[n] = mode === "long" ? val() : val() & 0xffffffffn;
  }
  init.rflags = 0x2n | BigInt(r() & 0x8d5);
  vcpu.setRegs(init);
  return { vm, vcpu };
}

const setHot = ({ vm, vcpu }: Run, hot: number) =>
  new DataView(vm.memory.buffer).setUint32(vcpu.stateBase + JIT_HOT, hot, true);
const jitOff = (run: Run, off: boolean) => setHot(run, off ? JIT_NEVER : HOT);

/** A long-mode VM running `code` at LOAD that translates loops after HOT entries. */
function vmOf(code: Uint8Array, hot = HOT): Run {
  const run = createVmWithOneVcpu({ code, load: LOAD });
  setHot(run, hot);
  return run;
}

/** Run exactly `total` instructions (or to HLT) in runs of at most `budget`. */
function runFor(v: Vcpu, total: number, budget: number | (() => number)): void {
  while (v.instructions < total) {
    const b = typeof budget === "number" ? budget : budget();
    const e = v.runRaw(Math.min(b, total - v.instructions));
    if (e === K.KVM_EXIT_HLT) return;
    assert.equal(e, K.KVM_EXIT_INTR, `unexpected exit ${e}`);
  }
}

const snapshot = ({ vcpu }: Run) => ({ regs: vcpu.getRegs(), instructions: vcpu.instructions });

for (const mode of ["long", "protected"] as const) {
  Deno.test(`translated loops = interpreter on generated ${mode}-mode programs, every budget split`, () => {
    let translated = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const src = program(seed, mode === "long");
      const total = 3000 + (seed % 7) * 997;
      const ref = setup(src, mode, seed);
      jitOff(ref, true);
      runFor(ref.vcpu, total, 1_000_000);
      const want = snapshot(ref);
      const step = setup(src, mode, seed);
      step.vcpu.setGuestDebug({ control: HW, debugreg: [0xdead0000n, 0n, 0n, 0n, 0n, 0n, 0n, 1n] });
      runFor(step.vcpu, total, 1_000_000);
      assert.deepEqual(snapshot(step), want, `seed ${seed} (step):\n${src}`);
      const r = rng(seed);
      for (const budget of [1_000_000, 1, 2, 3, 5, 7, 13, () => 1 + (r() % 50)]) {
        const t = setup(src, mode, seed);
        runFor(t.vcpu, total, budget);
        assert.deepEqual(snapshot(t), want, `seed ${seed}, budget ${budget}:\n${src}`);
        translated += t.vm.core.jitStats!.compiled;
        assert.equal(t.vm.core.jitStats!.errors, 0, t.vm.core.jitStats!.lastError);
      }
    }
    assert.ok(translated > 100, `only ${translated} translations: the generated loops should get translated`);
  });
}

/** A loop that is translated after the first run of `warm` instructions. */
const ADD_LOOP = `
  xor eax, eax
  xor ecx, ecx
top:
  add eax, 3
patch:
  inc ecx
  jmp top
`;

Deno.test("the host rewrites a translated loop: the new code runs", () => {
  const { bytes, labels } = assemble(ADD_LOOP, { bits: 64, origin: LOAD });
  const { vm, vcpu } = vmOf(bytes);
  runFor(vcpu, 3002, 1_000_000); // 2 + 1000 iterations of 3
  assert.equal(vm.core.jitStats!.compiled, 1);
  assert.deepEqual([vcpu.getRegs().rax, vcpu.getRegs().rcx], [3000n, 1000n]);
  // inc ecx (FF C1) -> dec ecx (FF C9)
  const at = labels.get("patch")!;
  assert.equal(vm.guestView(at, 2)[1], 0xc1);
  vm.guestView(at, 2)[1] = 0xc9;
  runFor(vcpu, 6002, 1_000_000);
  assert.deepEqual([vcpu.getRegs().rax, vcpu.getRegs().rcx], [6000n, 0n]);
  assert.equal(vcpu.instructions, 6002);
  assert.equal(vm.core.jitStats!.compiled, 2);
});

Deno.test("the guest rewrites a translated loop between its runs: the new code runs", () => {
  // The inner loop (add eax, 1 / dec ecx / jnz) gets hot; after 50 outer rounds
  // the guest turns its `add eax, 1` into `add eax, 2`.
  const src = `
    xor eax, eax
    mov edi, 100
    lea rbx, [rip + imm]
  outer:
    mov ecx, 10
  top:
    db 0x83, 0xc0
  imm:
    db 1
    dec ecx
    jnz top
    dec edi
    jz done
    cmp edi, 50
    jne outer
    mov byte [rbx], 2
    jmp outer
  done:
    hlt
  `;
  const { bytes } = assemble(src, { bits: 64, origin: LOAD });
  for (const off of [false, true]) {
    const run = vmOf(bytes);
    jitOff(run, off);
    assert.equal(run.vcpu.runRaw(1_000_000), K.KVM_EXIT_HLT);
    assert.equal(run.vcpu.getRegs().rax, 50n * 10n + 50n * 20n, off ? "interpreted" : "translated");
    if (!off) assert.ok(run.vm.core.jitStats!.compiled >= 2, `compiled ${run.vm.core.jitStats!.compiled}`);
  }
});

Deno.test("a CR3 switch maps other code at the same RIP: that code runs, not the translation", () => {
  const a = assemble("top:\nadd eax, 1\njmp top", { bits: 64, origin: LOAD }).bytes;
  const b = assemble("top:\nadd eax, 7\njmp top", { bits: 64, origin: LOAD }).bytes;
  const { vm, vcpu } = vmOf(a);
  vcpu.setRegs({ rax: 0n });
  runFor(vcpu, 1000, 1_000_000);
  assert.equal(vcpu.getRegs().rax, 500n);
  assert.equal(vm.core.jitStats!.compiled, 1);
  // New tables: linear 0..2 MiB -> physical 2..4 MiB, where B sits at the same offset.
  const sregs = vcpu.getSregs();
  const pml4 = 0x100000, pdpt = 0x101000, pd = 0x102000;
  vm.guestView(pml4, 0x3000).fill(0);
  vm.write64(pml4, BigInt(pdpt) | 7n);
  vm.write64(pdpt, BigInt(pd) | 7n);
  vm.write64(pd, 0x200000n | 0x83n);
  vm.guestView(0x200000 + LOAD, b.length).set(b);
  vcpu.setSregs({ ...sregs, cr3: BigInt(pml4) });
  vcpu.setRegs({ rip: BigInt(LOAD) });
  runFor(vcpu, 2000, 1_000_000);
  assert.equal(vcpu.getRegs().rax, 500n + 500n * 7n);
  assert.equal(vm.core.jitStats!.compiled, 2);
});

Deno.test("the same bytes as 64-bit code, then as 32-bit (compatibility-mode) code", () => {
  // 64-bit: add rcx, 1 / jnz top. 32-bit: dec eax / add ecx, 1 / jnz top.
  const code = new Uint8Array([0x48, 0x83, 0xc1, 0x01, 0x75, 0xfa, 0xf4]);
  const { vm, vcpu } = vmOf(code);
  vcpu.setRegs({ rax: 1000n, rcx: 0n });
  runFor(vcpu, 1000, 1_000_000);
  assert.deepEqual([vcpu.getRegs().rax, vcpu.getRegs().rcx], [1000n, 500n]);
  const sregs = vcpu.getSregs();
  vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, l: 0, db: 1 } });
  vcpu.setRegs({ rip: BigInt(LOAD), rcx: 0n });
  runFor(vcpu, 1000 + 3000, 1_000_000);
  assert.deepEqual([vcpu.getRegs().rax, vcpu.getRegs().rcx], [0n, 1000n]);
  assert.equal(vm.core.jitStats!.compiled, 2);
});

Deno.test("a translated DEC/JNZ loop: exact count, RIP, RCX and flags at every budget end and at the exit", () => {
  const src = "mov ecx, 100000\ntop:\ndec ecx\njnz top\nhlt";
  const { bytes, labels } = assemble(src, { bits: 64, origin: LOAD });
  const { vm, vcpu } = vmOf(bytes);
  vcpu.setRegs({ rflags: 0x3n }); // CF set: DEC keeps it
  assert.equal(vcpu.runRaw(1001), K.KVM_EXIT_INTR); // mov + 500 × (dec, jnz)
  assert.equal(vcpu.getRegs().rcx, 100000n - 500n);
  assert.equal(vcpu.getRegs().rip, BigInt(labels.get("top")!));
  assert.equal(vcpu.runRaw(999), K.KVM_EXIT_INTR); // 499 iterations and a DEC
  assert.equal(vcpu.getRegs().rcx, 100000n - 1000n);
  assert.equal(vcpu.getRegs().rip, BigInt(labels.get("top")!) + 2n);
  assert.equal(vcpu.runRaw(1_000_000), K.KVM_EXIT_HLT);
  assert.equal(vcpu.getRegs().rcx, 0n);
  assert.equal(vcpu.instructions, 1 + 200000 + 1);
  assert.equal(vcpu.getRegs().rflags & 0x8d5n, 0x45n); // ZF PF from DEC to 0, CF kept
  assert.ok(vm.core.jitStats!.compiled >= 1);
});

Deno.test("every Jcc after every flag op on edge values, decided by the translation from its first iteration", () => {
  // Entered through a backward JMP, so once hot the translation runs every iteration.
  const ops = [...ALU.map((o) => `${o} eax, r9d`), "test eax, r9d", "inc eax", "dec eax"];
  const r = rng(7);
  let translated = 0;
  for (const wide of [false, true]) {
    for (const op of ops) {
      const o = wide ? op.replace("eax", "rax").replace("r9d", "r9") : op;
      for (let cc = 0; cc < 16; cc++) {
        const src = `jmp start\ntop:\nmov ${wide ? "rax, r8" : "eax, r8d"}\n${o}\n${CCS[cc]} top\nhlt\nstart:\njmp top`;
        const { bytes } = assemble(src, { bits: 64, origin: LOAD });
        const runs = [false, true].map((off) => {
          const run = vmOf(bytes);
          jitOff(run, off);
          return run;
        });
        for (let k = 0; k < 120; k++) {
          const regs = {
            rip: BigInt(LOAD),
            r8: BigInt.asUintN(64, EDGE[k % 10]! + BigInt(k >= 100 ? r() : 0)),
            r9: BigInt.asUintN(64, EDGE[Math.floor(k / 10) % 10]!),
            rflags: 2n | BigInt(r() & 0x8d5),
          };
          const got = runs.map(({ vcpu }) => {
            vcpu.setRegs(regs);
            const before = vcpu.instructions;
            const e = vcpu.runRaw(40);
            return { e, regs: vcpu.getRegs(), n: vcpu.instructions - before };
          });
          assert.deepEqual(got[0], got[1], `${o} / ${CCS[cc]}, r8=${regs.r8.toString(16)} r9=${regs.r9.toString(16)}`);
        }
        translated += runs[0]!.vm.core.jitStats!.compiled;
        assert.equal(runs[0]!.vm.core.jitStats!.errors, 0, runs[0]!.vm.core.jitStats!.lastError);
      }
    }
  }
  assert.equal(translated, 2 * ops.length * 16);
});

Deno.test("ADC/SBB/INC/DEC first in a translated loop take CF from every kind of lazy state it is entered with", () => {
  const r = rng(11);
  for (const wide of [false, true]) {
    for (
      const pre of [
        "add r10, r11",
        "adc r10, r11",
        "sub r10, r11",
        "sbb r10, r11",
        "xor r10, r11",
        "inc r10",
        "dec r10",
      ]
    ) {
      for (const op of ["adc eax, r9d", "sbb eax, r9d", "inc eax", "dec eax"]) {
        const o = wide ? op.replace("eax", "rax").replace("r9d", "r9") : op;
        for (const cc of ["jb", "jae", "jo"]) {
          const src = `jmp start\ntop:\n${o}\nmov r12, r8\n${cc} top\nhlt\nstart:\n${pre}\njmp top`;
          const { bytes } = assemble(src, { bits: 64, origin: LOAD });
          const runs = [false, true].map((off) => {
            const run = vmOf(bytes);
            jitOff(run, off);
            return run;
          });
          for (let k = 0; k < 60; k++) {
            const e = () => BigInt.asUintN(64, EDGE[r() % 10]!);
            const regs = {
              rip: BigInt(LOAD),
              rax: e(),
              r8: e(),
              r9: e(),
              r10: e(),
              r11: e(),
              rflags: 2n | BigInt(r() & 0x8d5),
            };
            const got = runs.map(({ vcpu }) => {
              vcpu.setRegs(regs);
              const before = vcpu.instructions;
              const x = vcpu.runRaw(30);
              return { x, regs: vcpu.getRegs(), n: vcpu.instructions - before };
            });
            assert.deepEqual(
              got[0],
              got[1],
              `${pre} / ${o} / ${cc}: ${JSON.stringify(regs, (_k, v) => typeof v === "bigint" ? v.toString(16) : v)}`,
            );
          }
          assert.equal(runs[0]!.vm.core.jitStats!.compiled, 1, `${pre} / ${o} / ${cc}`);
        }
      }
    }
  }
});

Deno.test("by default a loop is translated only after JIT_HOT_DEFAULT entries", () => {
  const { bytes } = assemble("top:\nadd eax, 1\njmp top", { bits: 64, origin: LOAD });
  const { vm, vcpu } = vmOf(bytes, 0);
  vcpu.setRegs({ rax: 0n });
  runFor(vcpu, 2 * (JIT_HOT_DEFAULT - 1), 1_000_000);
  assert.equal(vm.core.jitStats!.compiled, 0);
  runFor(vcpu, 2 * JIT_HOT_DEFAULT + 1000, 1_000_000);
  assert.equal(vm.core.jitStats!.compiled, 1);
  assert.equal(vcpu.getRegs().rax, BigInt(JIT_HOT_DEFAULT + 500));
});
