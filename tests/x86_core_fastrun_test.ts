/**
 * The hot loop of stepMany (assembly/x86/fastrun.ts) against the general decoder:
 * generated programs of the instructions it runs (ALU r,r / r,imm / eAX,imm /
 * memory forms, TEST, INC/DEC, MOV, LEA, PUSH/POP, CALL/RET, JMP, NOP) with every
 * Jcc condition after every kind of flag-setting op (macro-fused pairs), run
 * (a) with a large budget, (b) one instruction per run() (nothing fused), (c)
 * budgets of 3 (pairs split at every boundary) and (d) through the
 * per-instruction path (an armed hardware breakpoint that never hits forces
 * step()). All four must end with the same registers, RFLAGS, memory and
 * instruction count. Plus self-modifying code right after a fast-path store, a
 * budget ending between a flag op and its Jcc, and RET to a non-canonical address.
 */
import assert from "node:assert/strict";
import { ALU, CCS, EDGE, regOp, rng } from "./support/x86_gen.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu, type GuestMode } from "../src/x86/setup.ts";
import type { KvmRegs } from "../src/x86/regs.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { Vm } from "../src/vm.ts";
import { guest } from "./x86_sys_harness.ts";
import { ioCount, ioPort, ioSingleData, ioSize } from "../src/exits/decode.ts";

const LOAD = 0x1000;
const DATA = 0x40000;
const R64 = ["rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13"];
const R32 = ["eax", "ecx", "edx", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d"];
const P32 = ["eax", "ecx", "edx", "esi", "edi", "ebp"];

function program(seed: number, long: boolean, blocks: number): string {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[r() % a.length]!;
  const regs = long ? (r() & 1 ? R64 : R32) : P32;
  const lines: string[] = [];
  for (let k = 0; k < blocks; k++) {
    const wide = long && (r() & 1) === 1;
    const rs = long ? (wide ? R64 : R32) : P32;
    const a = pick(rs), b = pick(rs);
    const c = r() % 9;
    if (c < 8) lines.push(regOp(c === 0 ? 0 : c - 1, r, rs, a, b));
    else {
      if (long) {
        const d = r() & 1 ? ((r() % 32) * 8) : 0xffc; // 0xffc: an access that crosses a page
        const f = r() % 9;
        if (f === 0) lines.push(`mov [rbx+${d}], ${a}`);
        else if (f === 1) lines.push(`mov ${a}, [rbx+${d}]`);
        else if (f === 2) lines.push(`${pick(ALU)} [rbx+${d}], ${a}`);
        else if (f === 3) lines.push(`${pick(ALU)} ${a}, [rbx+${d}]`);
        else if (f === 4) lines.push(`lea ${a}, [rbx+${pick(R64.slice(0, 3))}*4+${d}]`);
        else if (f === 5) lines.push(`push ${pick(R64)}`, `pop ${pick(R64)}`);
        else if (f === 6) lines.push(`call f${k}`, `jmp g${k}`, `f${k}:`, `add r14, 3`, `ret`, `g${k}:`);
        else if (f === 7) lines.push(`mov ${a}, 0x${(r() >>> 0).toString(16)}`);
        else lines.push("nop", `cmp [rbx+${d}], ${a}`);
      } else lines.push(`${r() & 1 ? "inc" : "dec"} ${a}`);
    }
    // The Jcc right after (fused), or after a MOV that keeps the flags (not fused).
    if (r() % 4 === 0) lines.push(`mov ${pick(regs)}, ${pick(regs)}`);
    lines.push(`${CCS[k % 16]} t${k}`, long ? `add r15, ${k % 100 + 1}` : `add ebx, ${k % 100 + 1}`, `t${k}:`);
  }
  lines.push("hlt");
  return lines.join("\n");
}

interface Run {
  vm: Vm;
  vcpu: Vcpu;
}

function setup(src: string, mode: GuestMode, seed: number): Run {
  const { bytes } = assemble(src, { bits: mode === "long" ? 64 : 32, origin: LOAD });
  const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, load: LOAD, mode });
  const r = rng(seed ^ 0x5a5a);
  const val = () => (r() & 1 ? EDGE[r() % EDGE.length]! : (BigInt(r()) << 32n) | BigInt(r()));
  const init: Partial<KvmRegs> = {};
  for (const n of ["rax", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]) {
    (init as Record<string, bigint>)[n] = mode === "long" ? val() : val() & 0xffffffffn;
  }
  init.rbx = mode === "long" ? BigInt(DATA) : 0n;
  // Start with every possible carry/overflow so the first ADC/SBB/INC sees a real CF.
  init.rflags = 0x2n | BigInt(r() & 0x8d5);
  vcpu.setRegs(init);
  for (let i = 0; i < 0x1010; i += 8) vm.write64(DATA + i, (BigInt(r()) << 32n) | BigInt(r()));
  return { vm, vcpu };
}

function runToHlt(v: Vcpu, budget: number): void {
  for (let calls = 0; calls < 200_000; calls++) {
    const e = v.runRaw(budget);
    if (e === K.KVM_EXIT_HLT) return;
    assert.equal(e, K.KVM_EXIT_INTR, `unexpected exit ${e}`);
  }
  throw new Error("guest did not reach HLT");
}

function snapshot({ vm, vcpu }: Run) {
  const mem: bigint[] = [];
  for (let i = 0; i < 0x1010; i += 8) mem.push(vm.read64(DATA + i));
  return { regs: vcpu.getRegs(), instructions: vcpu.instructions, mem };
}

const HW = K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_HW_BP;

for (const mode of ["long", "protected"] as const) {
  Deno.test(`fast path = general decoder on generated ${mode}-mode programs (fused pairs, split budgets)`, () => {
    for (let seed = 1; seed <= 40; seed++) {
      const src = program(seed, mode === "long", 160);
      const ref = setup(src, mode, seed);
      // An execute breakpoint that never hits: every instruction goes through step().
      ref.vcpu.setGuestDebug({ control: HW, debugreg: [0xdead0000n, 0n, 0n, 0n, 0n, 0n, 0n, 1n] });
      runToHlt(ref.vcpu, 1_000_000);
      const want = snapshot(ref);
      for (const budget of [1_000_000, 1, 3]) {
        const t = setup(src, mode, seed);
        runToHlt(t.vcpu, budget);
        assert.deepEqual(snapshot(t), want, `seed ${seed}, budget ${budget}:\n${src}`);
      }
    }
  });
}

Deno.test("self-modifying code: a fast-path store rewrites the next instruction, which then runs as written", () => {
  const src = `
    lea rbx, [rip + patch]
    mov eax, 0x90909090
    xor ecx, ecx
    mov [rbx], eax
  patch:
    inc ecx
    inc ecx
    lea rdx, [rip + jz1]
    mov esi, 1
    add [rdx], esi
    jz1: jz out
    mov edi, 7
  out:
    hlt
  `;
  const { bytes } = assemble(src, { bits: 64, origin: LOAD });
  for (const budget of [1_000_000, 1]) {
    const { vcpu } = createVmWithOneVcpu({ code: bytes, load: LOAD });
    vcpu.setRegs({ rdi: 0n });
    assert.equal(vcpu.runRaw(budget === 1 ? 100 : budget), K.KVM_EXIT_HLT);
    const r = vcpu.getRegs();
    // The two INCs became four NOPs; ADD turned JZ (74) into JNZ (75), taken (ADD's ZF = 0).
    assert.equal(r.rcx, 0n);
    assert.equal(r.rdi, 0n);
    // lea, mov, xor, mov, 4 × nop, lea, mov, add, jnz, hlt
    assert.equal(vcpu.instructions, 13);
  }
});

Deno.test("a budget that ends between a flag op and its Jcc stops there: RIP at the Jcc, counted exactly", () => {
  const src = `
    mov ecx, 3
  l:
    dec ecx
  j:
    jnz l
    hlt
  `;
  const { bytes, labels } = assemble(src, { bits: 64, origin: LOAD });
  const { vcpu } = createVmWithOneVcpu({ code: bytes, load: LOAD });
  assert.equal(vcpu.runRaw(2), K.KVM_EXIT_INTR); // mov, dec
  const r = vcpu.getRegs();
  assert.equal(r.rcx, 2n);
  assert.equal(r.rip, BigInt(labels.get("j")!));
  assert.equal(vcpu.instructions, 2);
  assert.equal(vcpu.runRaw(4), K.KVM_EXIT_INTR); // jnz, dec, jnz, dec
  assert.equal(vcpu.getRegs().rcx, 0n);
  assert.equal(vcpu.getRegs().rip, BigInt(labels.get("j")!));
  assert.equal(vcpu.runRaw(10), K.KVM_EXIT_HLT); // jnz (not taken), hlt
  assert.equal(vcpu.instructions, 8);
  // ZF from the last DEC, CF kept from before the loop (DEC leaves CF alone).
  assert.equal(vcpu.getRegs().rflags & 0x41n, 0x40n);
});

Deno.test("RET to a non-canonical address: #GP(0) at the RET, RSP unchanged (the fast path declines)", () => {
  const g = guest(`
    mov rax, 0x0000800000000000
    push rax
  r:
    ret
  h13:
    hlt
  `);
  g.gatesFromLabels();
  const sp = g.vcpu.getRegs().rsp;
  g.hltAt("h13");
  // Frame: error code, RIP, CS, RFLAGS, RSP.
  const [err, rip, , , rsp] = g.stack(5);
  assert.equal(err, 0n);
  assert.equal(rip, BigInt(g.at("r")));
  assert.equal(rsp, sp - 8n);
});

Deno.test("HLT in the fast path: each exit has RIP past the HLT and counts it, as through step(); at CPL 3 it is #GP(0) at the HLT", () => {
  const src = "mov ecx, 50\ntop:\ninc rax\nadd rbx, rcx\nhlt\ndec ecx\njnz top\nmov edx, 7\nhlt";
  const exits = (hw: boolean, budget: number) => {
    const r = setup(src, "long", 3);
    if (hw) r.vcpu.setGuestDebug({ control: HW, debugreg: [0xdead0000n, 0n, 0n, 0n, 0n, 0n, 0n, 1n] });
    const out: string[] = [];
    while (out.length < 51) {
      const e = r.vcpu.runRaw(budget);
      if (e === K.KVM_EXIT_INTR) continue;
      assert.equal(e, K.KVM_EXIT_HLT);
      out.push(`${r.vcpu.getRegs().rip.toString(16)} ${r.vcpu.instructions}`);
    }
    return [out, snapshot(r)];
  };
  const want = exits(true, 1_000_000);
  for (const budget of [1_000_000, 1, 2, 5]) assert.deepEqual(exits(false, budget), want, `budget ${budget}`);
  const g = guest(`user: insn: hlt\nhlt\nh13: hlt`);
  g.userSegments();
  g.userPages();
  g.gatesFromLabels();
  g.tss({ sp0: 0x80000 });
  g.enterRing3("user", 0x70000);
  g.hltAt("h13");
  assert.deepEqual(g.stack(2), [0n, BigInt(g.at("insn"))]);
});

Deno.test("OUTSB / REP OUTSB in the fast path: every exit (data, RIP, RSI, RCX, count) as through step()", () => {
  // The source straddles a page edge in some cases (the second page through the TLB's miss path).
  const cases = [
    { name: "rep outsb up", asm: "mov rsi, 0x40ff8\nmov ecx, 20\ncld\nrep outsb\nmov eax, 1\nhlt" },
    { name: "rep outsb down", asm: "mov rsi, 0x40008\nmov ecx, 20\nstd\nrep outsb\ncld\nhlt" },
    { name: "rep outsb, rcx 0", asm: "mov rsi, 0x40000\nxor ecx, ecx\nrep outsb\nmov eax, 2\nhlt" },
    { name: "outsb x3", asm: "mov rsi, 0x40ffe\noutsb\noutsb\noutsb\nhlt" },
    { name: "loop of rep outsb", asm: "mov r8d, 5\nl:\nmov rsi, 0x40100\nmov ecx, 3\nrep outsb\ndec r8d\njnz l\nhlt" },
  ];
  for (const c of cases) {
    const trace = (hw: boolean, budget: number) => {
      const r = setup(`mov edx, 0x3f8\n${c.asm}`, "long", 7);
      if (hw) r.vcpu.setGuestDebug({ control: HW, debugreg: [0xdead0000n, 0n, 0n, 0n, 0n, 0n, 0n, 1n] });
      const out: string[] = [];
      for (let k = 0; k < 10_000; k++) {
        const e = r.vcpu.runRaw(budget);
        if (e === K.KVM_EXIT_INTR) continue;
        if (e === K.KVM_EXIT_HLT) break;
        assert.equal(e, K.KVM_EXIT_IO, `${c.name}: exit ${e}`);
        const g = r.vcpu.getRegs(), kr = r.vcpu.kvmRun;
        out.push(
          `${ioPort(kr).toString(16)}/${ioSize(kr)}x${ioCount(kr)} ${ioSingleData(kr)![0]} rip ${g.rip.toString(16)} ` +
            `rsi ${g.rsi.toString(16)} rcx ${g.rcx.toString(16)} n ${r.vcpu.instructions}`,
        );
      }
      return [out, snapshot(r)];
    };
    const want = trace(true, 1_000_000);
    assert.ok((want[0] as string[]).length > 0 || c.name.includes("rcx 0"), c.name);
    for (const budget of [1_000_000, 1, 2, 3]) {
      assert.deepEqual(trace(false, budget), want, `${c.name}, budget ${budget}`);
    }
  }
});
