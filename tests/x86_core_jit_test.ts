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
import { ALU, CCS, EDGE, regOp, rng } from "./support/x86_gen.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { layOut, offsetOf } from "../src/abi/layout.ts";
import { JIT_ENTRIES, JIT_ENTRY, JIT_HOT_DEFAULT, JIT_NEVER, VCPU_STATE } from "../src/abi/vcpu_state.ts";
import { drainCoalesced } from "../src/exits/coalesced.ts";
import { ioPort, ioSingleData, ioSize } from "../src/exits/decode.ts";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu, type GuestMode } from "../src/x86/setup.ts";
import type { KvmRegs } from "../src/x86/regs.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { Vm } from "../src/vm.ts";

const LOAD = 0x1000;
const R64 = ["rax", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13"];
const R32 = ["eax", "edx", "esi", "edi", "ebp", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d"];
const P32 = ["eax", "edx", "esi", "edi", "ebp", "ebx"];
const JIT_HOT = offsetOf(layOut(VCPU_STATE), "jit_hot");
/** Loop entries before translation in these tests (short runs; the default is JIT_HOT_DEFAULT). */
const HOT = 16;
const HW = K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_HW_BP;

/** An outer loop around a hot inner loop of translatable instructions closed by a Jcc (or JMP). */
function program(seed: number, long: boolean): string {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[r() % a.length]!;
  const body: string[] = [];
  const n = 1 + (r() % 10);
  for (let k = 0; k < n; k++) {
    const rs = long ? (r() & 1 ? R64 : R32) : P32;
    const a = pick(rs), b = pick(rs);
    const c = r() % 12;
    switch (c) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
      case 8:
        // Forms 0–6 of regOp; INC/DEC twice as often.
        body.push(regOp([0, 0, 1, 2, 3, 4, 5, 5, 6][c]!, r, rs, a, b));
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

/** `code` in two VMs: [translating, translator off]. */
const pairOf = (code: Uint8Array): Run[] =>
  [false, true].map((off) => {
    const run = vmOf(code);
    jitOff(run, off);
    return run;
  });

/** Each of `runs` from `regs` for at most `budget` instructions: exit reason, registers, instructions retired. */
const runEach = (runs: readonly Run[], regs: Partial<KvmRegs>, budget: number) =>
  runs.map(({ vcpu }) => {
    vcpu.setRegs(regs);
    const before = vcpu.instructions;
    const exit = vcpu.runRaw(budget);
    return { exit, regs: vcpu.getRegs(), n: vcpu.instructions - before };
  });

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

Deno.test("every Jcc after every flag op (ALU, TEST, INC/DEC, shifts, IMUL) on edge values, decided by the translation from its first iteration", () => {
  // Entered through a backward JMP, so once hot the translation runs every iteration.
  const shifts = ["shl eax, 1", "shl eax, 13", "shl eax, 31", "shr eax, 1", "shr eax, 9", "sar eax, 1", "sar eax, 30"];
  const ops = [...ALU.map((o) => `${o} eax, r9d`), "test eax, r9d", "inc eax", "dec eax", ...shifts];
  const imuls = ["imul eax, r9d, 0x12345", "imul eax, r9d, -3", "imul eax, eax, 0x7fffffff"]; // 32-bit only
  const r = rng(7);
  let translated = 0;
  for (const wide of [false, true]) {
    for (const op of wide ? ops : [...ops, ...imuls]) {
      const o = wide ? op.replace("eax", "rax").replace("r9d", "r9") : op;
      for (let cc = 0; cc < 16; cc++) {
        const src = `jmp start\ntop:\nmov ${wide ? "rax, r8" : "eax, r8d"}\n${o}\n${CCS[cc]} top\nhlt\nstart:\njmp top`;
        const { bytes } = assemble(src, { bits: 64, origin: LOAD });
        const runs = pairOf(bytes);
        for (let k = 0; k < 120; k++) {
          const regs = {
            rip: BigInt(LOAD),
            r8: BigInt.asUintN(64, EDGE[k % 10]! + BigInt(k >= 100 ? r() : 0)),
            r9: BigInt.asUintN(64, EDGE[Math.floor(k / 10) % 10]!),
            rflags: 2n | BigInt(r() & 0x8d5),
          };
          const got = runEach(runs, regs, 40);
          assert.deepEqual(got[0], got[1], `${o} / ${CCS[cc]}, r8=${regs.r8.toString(16)} r9=${regs.r9.toString(16)}`);
        }
        translated += runs[0]!.vm.core.jitStats!.compiled;
        assert.equal(runs[0]!.vm.core.jitStats!.errors, 0, runs[0]!.vm.core.jitStats!.lastError);
      }
    }
  }
  assert.equal(translated, (2 * ops.length + imuls.length) * 16);
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
          const runs = pairOf(bytes);
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
            const got = runEach(runs, regs, 30);
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

// ---- Memory operands, PUSH/POP, IMUL, shifts and side exits (64-bit code) ----

const DATA = 0x400000, STACK = 0x500000;
const M32 = ["eax", "edx", "esi", "edi", "ebp", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d"];

/** A hot loop of memory, stack, IMUL, shift and side-exit instructions mixed with register ones. */
function memProgram(seed: number): string {
  const r = rng(seed * 7919);
  const pick = <T>(a: readonly T[]): T => a[r() % a.length]!;
  const body: string[] = [];
  const n = 2 + (r() % 12);
  const mem = () => {
    const s = 1 << (r() & 3);
    return `[rbx+r15*${s}+${r() % 4096}]`;
  };
  let flags = false;
  for (let k = 0; k < n; k++) {
    const wide = (r() & 1) !== 0;
    const rs = wide ? R64 : M32;
    const a = pick(rs), b = pick(rs);
    const idx = () => body.push(`mov r15d, ${pick(M32)}`, `and r15d, 0x${(r() % 2 ? 0x3ff : 0x7ff).toString(16)}`);
    switch (r() % 16) {
      case 0:
        idx();
        body.push(`mov ${a}, ${mem()}`);
        break;
      case 1:
        idx();
        body.push(`mov ${mem()}, ${a}`);
        break;
      case 2:
        idx();
        body.push(`${pick(ALU)} ${a}, ${mem()}`);
        flags = true;
        break;
      case 3:
        idx();
        body.push(`${pick(ALU)} ${mem()}, ${a}`);
        flags = true;
        break;
      case 4:
        body.push(`push ${pick(R64)}`);
        break;
      case 5:
        body.push(`pop ${pick(R64)}`);
        break;
      case 6:
        body.push(`imul ${pick(M32)}, ${pick(M32)}, ${r() & 1 ? (r() % 256) - 128 : (r() | 0)}`);
        flags = true;
        break;
      case 7:
        idx();
        body.push(`imul ${pick(M32)}, dword ${mem()}, ${(r() % 256) - 128}`);
        flags = true;
        break;
      case 8:
        body.push(`${pick(["shl", "shr", "sar"])} ${a}, ${r() % 70}`);
        flags = true;
        break;
      case 9:
        if (flags) body.push(`${pick(CCS)} side`);
        break;
      case 10:
        body.push(`mov ${a}, [rip+${r() % 200}]`);
        break;
      case 11:
        body.push(`${pick(ALU)} ${a}, ${b}`);
        flags = true;
        break;
      case 12:
        body.push(`${r() & 1 ? "inc" : "dec"} ${a}`);
        flags = true;
        break;
      case 13:
        body.push(r() % 4 ? "call fn" : "call fn2"); // fn2 returns elsewhere
        break;
      case 14:
        if (flags) body.push(`${pick(CCS)} top`); // a back edge inside the block
        break;
      default:
        body.push(`mov ${a}, ${b}`);
    }
  }
  const close = r() % 6;
  const lines = [
    `mov ebx, 0x${DATA.toString(16)}`,
    `mov esp, 0x${STACK.toString(16)}`,
    "outer:",
    `mov ecx, ${1 + (r() % 40)}`,
  ];
  lines.push("top:", ...body);
  if (close === 0) lines.push("jmp top");
  else if (close < 4 || !flags) lines.push("dec ecx", "jnz top");
  else lines.push(`${CCS[r() % 16]} top`);
  lines.push("add r14, 1", "mov esp, 0x500000", "jmp outer", "side:", "add r14, 0x100", "jmp outer");
  lines.push("fn:", "add r13, 1", "ret", "fn2:", "lea r12, [rip+other]", "mov [rsp], r12", "ret");
  lines.push("other:", "add r14, 0x10000", "mov esp, 0x500000", "jmp outer");
  return lines.join("\n");
}

const memSnapshot = (run: Run) => ({
  ...snapshot(run),
  data: run.vm.guestView(DATA, 0x3000).slice(),
  stack: run.vm.guestView(STACK - 0x10000, 0x10000).slice(),
});

Deno.test("translated memory/stack/CALL/RET/IMUL/shift/side-exit/back-edge loops = interpreter, every budget split", () => {
  let translated = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const src = memProgram(seed);
    const total = 3000 + (seed % 7) * 997;
    const ref = setup(src, "long", seed);
    jitOff(ref, true);
    runFor(ref.vcpu, total, 1_000_000);
    const want = memSnapshot(ref);
    const step = setup(src, "long", seed);
    step.vcpu.setGuestDebug({ control: HW, debugreg: [0xdead0000n, 0n, 0n, 0n, 0n, 0n, 0n, 1n] });
    runFor(step.vcpu, total, 1_000_000);
    assert.deepEqual(memSnapshot(step), want, `seed ${seed} (step):\n${src}`);
    const r = rng(seed);
    for (const budget of [1_000_000, 1, 2, 3, 5, 7, 13, () => 1 + (r() % 50)]) {
      const t = setup(src, "long", seed);
      runFor(t.vcpu, total, budget);
      assert.deepEqual(memSnapshot(t), want, `seed ${seed}, budget ${budget}:\n${src}`);
      translated += t.vm.core.jitStats!.compiled;
      assert.equal(t.vm.core.jitStats!.errors, 0, t.vm.core.jitStats!.lastError);
    }
  }
  assert.ok(translated > 100, `only ${translated} translations: the generated loops should get translated`);
});

/** The benchmark's ALU/memory mix (bench/paths.ts ALU_MEM) with its data at rbx. */
const MIX = `
  mov ebx, 0x400000
  mov esp, 0x500000
  xor esi, esi
top:
  mov eax, esi
  and eax, 7
  add [rbx+rax*4], esi
  mov ecx, [rbx+rax*4]
  add edi, ecx
  imul edx, esi, 0x9e3779b1
  add r8d, edx
  xor edx, esi
  shr edx, 3
  mov r9d, edx
  push rcx
  pop rdx
  cmp edx, ecx
  jne bad
  inc esi
  jmp top
bad:
  hlt
`;

Deno.test("the ALU/memory benchmark loop is translated and runs exactly like interpreting", () => {
  const { bytes } = assemble(MIX, { bits: 64, origin: LOAD });
  const runs = pairOf(bytes).map((run) => {
    runFor(run.vcpu, 100_003, 997);
    return run;
  });
  assert.deepEqual(memSnapshot(runs[0]!), memSnapshot(runs[1]!));
  assert.equal(runs[0]!.vm.core.jitStats!.compiled, 1);
  assert.equal(runs[0]!.vm.core.jitStats!.errors, 0, runs[0]!.vm.core.jitStats!.lastError);
});

Deno.test("a translated loop reaching an MMIO address leaves before that access: same exit, registers and count", () => {
  // rbx moves by 4 KiB each iteration from RAM into the hole above 16 MiB RAM (MMIO).
  const src = `
    mov rbx, 0xf00000
    xor eax, eax
  top:
    add eax, [rbx]
    mov [rbx+8], eax
    add rbx, 0x1000
    jmp top
  `;
  const { bytes } = assemble(src, { bits: 64, origin: LOAD });
  const got = pairOf(bytes).map((run) => {
    const e = run.vcpu.runRaw(1_000_000);
    return { e, s: snapshot(run), compiled: run.vm.core.jitStats!.compiled };
  });
  assert.equal(got[1]!.e, K.KVM_EXIT_MMIO);
  assert.deepEqual(got[0]!.s, got[1]!.s);
  assert.equal(got[0]!.e, got[1]!.e);
  assert.equal(got[0]!.compiled, 1);
});

Deno.test("a page made not present under a translated loop (page table + INVLPG): the interpreter takes it over", () => {
  // The loop reads [rbx] until the guest clears the PD entry of rbx's 2 MiB page and INVLPGs it;
  // the next read faults (no IDT: triple fault, a shutdown exit) exactly where interpreting does.
  const src = `
    mov rbx, 0x400000
    mov edi, 200
  outer:
    mov ecx, 20
  top:
    add eax, [rbx]
    dec ecx
    jnz top
    dec edi
    jnz outer
    mov qword [rsi], 0
    invlpg [rbx]
  again:
    mov ecx, 20
    jmp top
  `;
  const { bytes } = assemble(src, { bits: 64, origin: LOAD });
  const got = pairOf(bytes).map((run) => {
    // rsi: the PD entry mapping 0x400000 (entry 2 of the PD of the identity map).
    const pd = Number(run.vcpu.getSregs().cr3) + 0x2000;
    assert.equal(run.vm.read64(pd + 16) & 0x400001n, 0x400001n, "identity map with 2 MiB pages expected");
    run.vcpu.setRegs({ rsi: BigInt(pd + 16) });
    const e = run.vcpu.runRaw(1_000_000);
    return { e, s: snapshot(run), compiled: run.vm.core.jitStats!.compiled };
  });
  assert.notEqual(got[0]!.e, K.KVM_EXIT_INTR);
  assert.equal(got[0]!.e, got[1]!.e);
  assert.deepEqual(got[0]!.s, got[1]!.s);
  assert.ok(got[0]!.compiled >= 1);
});

Deno.test("a translated loop storing into its own code: the run ends after the store, the new code runs", () => {
  // The loop adds the imm32 at \`imm\` to eax and then increments that immediate (its own code); it also
  // stores into the code page outside the loop (rdx).
  const src = `
    xor eax, eax
    lea rbx, [rip + imm]
    mov ecx, 300
    mov edi, 1
  top:
    db 0x81, 0xc0
  imm:
    dd 1
    add [rbx], edi
    add [rdx], edi
    dec ecx
    jnz top
    hlt
  `;
  const { bytes } = assemble(src, { bits: 64, origin: LOAD });
  const got = pairOf(bytes).map((run) => {
    run.vcpu.setRegs({ rdx: BigInt(LOAD + bytes.length + 0x40) });
    const e = run.vcpu.runRaw(1_000_000);
    return { e, s: snapshot(run), code: run.vm.guestView(LOAD, 0x400).slice(), n: run.vm.core.jitStats!.compiled };
  });
  assert.equal(got[0]!.e, K.KVM_EXIT_HLT);
  assert.equal(got[0]!.s.regs.rax, 300n * 301n / 2n);
  assert.deepEqual(got[0], { ...got[1]!, n: got[0]!.n });
  assert.ok(got[0]!.n >= 1);
  // Stores into the code page but not into the loop's bytes: the translation keeps running (run by run).
  const src2 = `
    xor eax, eax
    mov ecx, 3000
    mov edi, 1
  top:
    add eax, 3
    add [rdx], edi
    dec ecx
    jnz top
    hlt
  `;
  const b2 = assemble(src2, { bits: 64, origin: LOAD }).bytes;
  const got2 = pairOf(b2).map((run) => {
    run.vcpu.setRegs({ rdx: BigInt(LOAD + 0x800) });
    const e = run.vcpu.runRaw(1_000_000);
    return { e, s: snapshot(run), v: run.vm.read64(LOAD + 0x800), n: run.vm.core.jitStats!.compiled };
  });
  assert.equal(got2[0]!.e, K.KVM_EXIT_HLT);
  assert.equal(got2[0]!.v, 3000n);
  assert.deepEqual(got2[0], { ...got2[1]!, n: got2[0]!.n });
  assert.equal(got2[0]!.n, 1);
});

Deno.test("pages written by translated code are in the dirty log", () => {
  const src = `
    mov rbx, 0x400000
    mov ecx, 64
  top:
    mov [rbx], ecx
    push rcx
    add rbx, 0x1000
    dec ecx
    jnz top
    hlt
  `;
  const { bytes } = assemble(src, { bits: 64, origin: LOAD });
  const run = vmOf(bytes);
  run.vcpu.setRegs({ rsp: 0x700000n });
  run.vm.setMemoryRegionFlags(0, K.KVM_MEM_LOG_DIRTY_PAGES);
  run.vm.getDirtyLog(0);
  const isDirty = (log: Uint8Array, gpa: number) => ((log[gpa >> 15]! >> ((gpa >> 12) & 7)) & 1) === 1;
  for (let pass = 0; pass < 2; pass++) {
    run.vcpu.setRegs({ rip: BigInt(LOAD), rsp: 0x700000n });
    assert.equal(run.vcpu.runRaw(1_000_000), K.KVM_EXIT_HLT);
    const log = run.vm.getDirtyLog(0);
    for (let k = 0; k < 64; k++) assert.ok(isDirty(log, 0x400000 + k * 0x1000), `pass ${pass}: page ${k}`);
    assert.ok(isDirty(log, 0x700000 - 8) && !isDirty(log, 0x400000 + 64 * 0x1000), `pass ${pass}`);
  }
  assert.ok(run.vm.core.jitStats!.compiled >= 1);
});

Deno.test("a back edge and the loop end leave different flag producers: the next iteration's CF is right", () => {
  const r = rng(23);
  for (const mid of ["jb", "jae", "jne", "jl"]) {
    const src = `top:\nadc eax, r9d\ncmp eax, r8d\n${mid} top\nadd r10, r11\njmp top`;
    const { bytes } = assemble(src, { bits: 64, origin: LOAD });
    const runs = pairOf(bytes);
    for (let k = 0; k < 80; k++) {
      const e = () => BigInt.asUintN(64, r() & 1 ? EDGE[r() % 10]! : (BigInt(r()) << 32n) | BigInt(r()));
      const regs = {
        rip: BigInt(LOAD),
        rax: e(),
        r8: e(),
        r9: e(),
        r10: e(),
        r11: e(),
        rflags: 2n | BigInt(r() & 0x8d5),
      };
      const got = runEach(runs, regs, 200);
      assert.deepEqual(got[0], got[1], `${mid} ${k}`);
    }
    assert.equal(runs[0]!.vm.core.jitStats!.compiled, 1, mid);
  }
});

Deno.test("translated CPUID / RDMSR loops = interpreting: leaves, sub-leaves, in-kernel MSRs; TSC, filtered and unknown MSRs left to the interpreter", () => {
  const PAT = 0x277, EFER = 0xc0000080, FS_BASE = 0xc0000100, TSC = 0x10, UNKNOWN = 0x4b564d99;
  const cpuidLoop = (leaf: number, sub: number) => `
    mov r8d, 200
  top:
    mov eax, ${leaf}
    mov ecx, ${sub}
    cpuid
    add r9, rax
    add r10, rbx
    add r11, rcx
    add r12, rdx
    dec r8d
    jnz top
    hlt`;
  const msrLoop = (msr: number) => `
    mov r8d, 200
    mov ecx, ${msr}
  top:
    rdmsr
    add r9, rax
    add r10, rdx
    dec r8d
    jnz top
    hlt`;
  const cases: { name: string; src: string; translated: boolean; setup?: (run: Run) => void; exit?: number }[] = [
    ...[[0, 0], [1, 0], [7, 0], [0xd, 1], [0xb, 1], [0x40000000, 0], [0x80000001, 0], [0x12345678, 3]].map((
      [leaf, sub],
    ) => ({ name: `cpuid ${leaf!.toString(16)}.${sub}`, src: cpuidLoop(leaf!, sub!), translated: true })),
    {
      name: "cpuid leaf 1 with CR4.OSXSAVE and APIC_BASE.EN cleared",
      src: cpuidLoop(1, 0),
      translated: true,
      setup: ({ vcpu }) => {
        vcpu.setSregs({ cr4: vcpu.getSregs().cr4 & ~0x40000n });
        vcpu.setMsrs([{ index: 0x1b, data: 0xfee00000n }]);
      },
    },
    ...[PAT, EFER, FS_BASE].map((msr) => ({
      name: `rdmsr ${msr.toString(16)}`,
      src: msrLoop(msr),
      translated: true,
      setup: ({ vcpu }: Run) => vcpu.setMsrs([{ index: FS_BASE, data: 0x123456789an }]),
    })),
    { name: "rdmsr TSC (counts instructions: interpreted)", src: msrLoop(TSC), translated: true },
    {
      name: "rdmsr of an unknown MSR with user-space exits: the exit",
      src: msrLoop(UNKNOWN),
      translated: false,
      setup: ({ vm }) => vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN),
      exit: K.KVM_EXIT_X86_RDMSR,
    },
    {
      name: "rdmsr of PAT denied by a filter: the exit",
      src: msrLoop(PAT),
      translated: false,
      setup: ({ vm }) => {
        vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_FILTER);
        vm.setMsrFilter({ flags: K.KVM_MSR_FILTER_DEFAULT_DENY, ranges: [] });
      },
      exit: K.KVM_EXIT_X86_RDMSR,
    },
  ];
  for (const c of cases) {
    const { bytes } = assemble(c.src, { bits: 64, origin: LOAD });
    for (const budget of [1_000_000, 7, 13]) {
      const got = pairOf(bytes).map((run) => {
        c.setup?.(run);
        let e = 0;
        for (let k = 0; k < 10_000; k++) {
          e = run.vcpu.runRaw(budget);
          if (e !== K.KVM_EXIT_INTR) break;
        }
        return { e, s: snapshot(run), compiled: run.vm.core.jitStats!.compiled };
      });
      const what = `${c.name}, budget ${budget}`;
      assert.equal(got[1]!.e, c.exit ?? K.KVM_EXIT_HLT, what);
      assert.equal(got[0]!.e, got[1]!.e, what);
      assert.deepEqual(got[0]!.s, got[1]!.s, what);
      if (budget > 100) assert.equal(got[0]!.compiled > 0, c.translated, `${what}: translated`);
    }
  }
});

/** The cache entry's translation index of loop head `ip` (-1: not translatable or dropped; 0: none yet). */
function jitIndexOf({ vm, vcpu }: Run, ip: number): number {
  const VS = layOut(VCPU_STATE), dv = new DataView(vm.memory.buffer);
  const base = vcpu.stateBase + offsetOf(VS, "jit"), size = layOut(JIT_ENTRY).size;
  for (let i = 0; i < JIT_ENTRIES; i++) {
    const e = base + i * size;
    if (dv.getBigUint64(e + offsetOf(layOut(JIT_ENTRY), "ip"), true) === BigInt(ip)) {
      return dv.getInt32(e + offsetOf(layOut(JIT_ENTRY), "index"), true);
    }
  }
  return 0;
}

Deno.test("translated OUT loops = interpreting: coalesced writes stay in the kernel, a full ring exits, an OUT no zone takes exits and drops the block", () => {
  // 300 iterations, each an OUT imm8 of AL and an OUT DX of EAX; the loop head is `top`.
  const src = (dxPort: number) => `
    mov r8d, 300
    mov edx, ${dxPort}
    mov eax, 0x11223344
  top:
    out 0x80, al
    add eax, 0x01010101
    out dx, eax
    add r9, rax
    dec r8d
    jnz top
    hlt`;
  const { bytes, labels } = assemble(src(0x84), { bits: 64, origin: LOAD });
  const top = Number(labels.get("top")!);
  const cases = [
    {
      name: "both ports coalesced",
      dx: 0x84,
      zones: [[0x80, 1], [0x84, 4]],
      drainAtIntr: true,
      dropped: false,
      minExits: 0,
    },
    // 169 pending entries fill the ring: 600 writes with no drain in the loop give full-ring exits.
    {
      name: "both coalesced, ring drained only at exits",
      dx: 0x84,
      zones: [[0x80, 8]],
      drainAtIntr: false,
      dropped: false,
      minExits: 3,
    },
    {
      name: "OUT DX to a port no zone covers",
      dx: 0x90,
      zones: [[0x80, 1]],
      drainAtIntr: true,
      dropped: true,
      minExits: 300,
    },
  ] as const;
  for (const c of cases) {
    const code = c.dx === 0x84 ? bytes : assemble(src(c.dx), { bits: 64, origin: LOAD }).bytes;
    for (const budget of [1_000_000, 7, 13]) {
      const got = pairOf(code).map((run) => {
        for (const [addr, size] of c.zones) run.vm.registerCoalescedMmio({ addr, size, pio: true });
        const ring = run.vm.coalescedRing();
        const writes: string[] = [];
        const sink = (pio: boolean, addr: number, len: number, d: Uint8Array) =>
          void writes.push(`${pio ? "pio" : "mmio"} ${addr.toString(16)}/${len} ${[...d].join(",")}`);
        let e = 0, exits = 0;
        for (let k = 0; k < 100_000; k++) {
          e = run.vcpu.runRaw(budget);
          if (e !== K.KVM_EXIT_INTR || c.drainAtIntr) drainCoalesced(ring, sink);
          if (e === K.KVM_EXIT_IO) {
            exits++;
            const kr = run.vcpu.kvmRun, d = ioSingleData(kr)!;
            writes.push(`exit ${ioPort(kr).toString(16)}/${ioSize(kr)} ${[...d].join(",")}`);
            continue;
          }
          if (e !== K.KVM_EXIT_INTR) break;
        }
        return {
          e,
          s: snapshot(run),
          writes,
          exits,
          index: jitIndexOf(run, top),
          compiled: run.vm.core.jitStats!.compiled,
        };
      });
      const what = `${c.name}, budget ${budget}`;
      assert.equal(got[1]!.e, K.KVM_EXIT_HLT, what);
      assert.equal(got[0]!.e, got[1]!.e, what);
      assert.deepEqual(got[0]!.s, got[1]!.s, what);
      assert.deepEqual(got[0]!.writes, got[1]!.writes, what);
      assert.equal(got[0]!.writes.length, 600, what);
      assert.ok(got[0]!.exits >= c.minExits, `${what}: ${got[0]!.exits} exits`);
      if (budget > 100) {
        assert.ok(got[0]!.compiled > 0, `${what}: translated`);
        assert.equal(got[0]!.index < 0, c.dropped, `${what}: translation ${got[0]!.index}`);
      }
    }
  }
});
