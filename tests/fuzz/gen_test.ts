/** The fuzzer's generator, flag contract, memory operands, minimiser and regression file (simulator only). */
import assert from "node:assert/strict";
import { assemble } from "../../mod.ts";
import { ENV } from "../snippets/run.ts";
import { runOn } from "../conformance/runner.ts";
import {
  AF,
  allInsns,
  analyse,
  ARITH_FLAGS,
  type BodyUnit,
  CF,
  doubleShiftContract,
  type Insn,
  insn,
  minimise,
  MMIO_BASE,
  OF,
  PF,
  randomOp,
  randomSequence,
  render,
  Rng,
  SCRATCH,
  SF,
  shiftContract,
  STACK_WINDOW,
  undefinedBeforeLines,
  type Unit,
  UNMAPPED_BASE,
  ZF,
} from "./gen.ts";
import { type Case, caseSnippet, digest, exceptionVector, randomCase } from "./diff.ts";
import { appendRegressions, caseOf, loadRegressions, regressionOf, shapeOf } from "./regressions.ts";
import { checkOnSim } from "./regression_check.ts";

const one = (text: string, reads: number, def: number, undef: number): BodyUnit => ({
  kind: "one",
  insn: { text, reads, def, undef },
});
const SZAP = SF | ZF | AF | PF;

Deno.test("fuzz gen: deterministic per seed, always valid, assembles in 64-bit mode", () => {
  assert.equal(render(randomSequence(new Rng(9), 20)), render(randomSequence(new Rng(9), 20)));
  assert.notEqual(render(randomSequence(new Rng(9), 20)), render(randomSequence(new Rng(10), 20)));
  const a = randomCase(new Rng(3), 12), b = randomCase(new Rng(3), 12);
  assert.deepEqual(a, b);
  const rng = new Rng(42);
  for (let i = 0; i < 300; i++) {
    const u = randomSequence(rng, 12);
    assert.notEqual(analyse(u), undefined);
    const src = render(u);
    assert.ok(src.endsWith("hlt"));
    assemble(src, { bits: 64, origin: 0x1000 });
  }
});

/** 64-bit names of the GPRs by any of their 8/16/32/64-bit names. */
const FULL: Record<string, string> = {};
{
  const legacy = ["a", "b", "c", "d"];
  for (const l of legacy) for (const n of [`${l}l`, `${l}x`, `e${l}x`, `r${l}x`]) FULL[n] = `r${l}x`;
  for (const l of ["si", "di", "bp", "sp"]) for (const n of [`${l}l`, l, `e${l}`, `r${l}`]) FULL[n] = `r${l}`;
  for (let i = 8; i < 16; i++) for (const s of ["b", "w", "d", ""]) FULL[`r${i}${s}`] = `r${i}`;
}
const IMPLICIT: Record<string, string[]> = {
  cbw: ["rax"],
  cwde: ["rax"],
  cdqe: ["rax"],
  cwd: ["rdx"],
  cdq: ["rdx"],
  cqo: ["rdx"],
};

/**
 * The effective address of the memory operand of `target`, evaluated independently of the generator from
 * the instruction texts of its unit: `mov reg, imm` lines before it give register values, any other
 * instruction makes the registers it names (or writes implicitly) unknown.
 */
function effectiveAddress(before: readonly Insn[], target: Insn): bigint {
  const known = new Map<string, bigint>();
  for (const i of before) {
    if (/^enter /.test(i.text)) {
      known.set("rbp", BigInt(ENV.stackTop - 8)); // ENTER pushes RBP and points RBP at that slot
      continue;
    }
    const m = /^mov (\w+), (-?0x[0-9a-f]+)$/.exec(i.text);
    if (m && FULL[m[1]!]) {
      const is32 = /^e|d$/.test(m[1]!);
      const lit = m[2]!.startsWith("-") ? -BigInt(m[2]!.slice(1)) : BigInt(m[2]!);
      const v = BigInt.asUintN(is32 ? 32 : 64, lit);
      known.set(FULL[m[1]!]!, v);
      continue;
    }
    // Registers it writes: a register first operand (both operands for xchg/xadd), or implicit ones.
    const [mn, ...ops] = i.text.split(/[ ,]+/);
    const written = mn === "xchg" || mn === "xadd"
      ? ops
      : ["push", "cmp", "test", "bt"].includes(mn!)
      ? []
      : ops.slice(0, 1);
    for (const w of written) if (FULL[w]) known.delete(FULL[w]!);
    for (const r of IMPLICIT[i.text] ?? []) known.delete(r);
  }
  const mem = /\[([^\]]+)\]/.exec(target.text)?.[1];
  assert.ok(mem !== undefined, `no memory operand in ${target.text}`);
  const rel = /^rel (0x[0-9a-f]+)$/.exec(mem);
  if (rel) return BigInt(rel[1]!);
  let sum = 0n, bits = 64;
  for (const term of mem.replace(/-/g, "+-").split("+").filter((t) => t !== "")) {
    const [reg, scale] = term.split("*");
    if (FULL[reg!]) {
      if (/^e|d$/.test(reg!)) bits = 32;
      const v = reg === "rsp" ? BigInt(ENV.stackTop) : known.get(FULL[reg!]!);
      assert.ok(v !== undefined, `${target.text}: ${reg} is not loaded by a mov in its group`);
      sum += v * BigInt(scale ?? 1);
    } else sum += term.startsWith("-") ? -BigInt(term.slice(1)) : BigInt(term);
  }
  return BigInt.asUintN(bits, sum);
}

Deno.test("fuzz gen: every memory operand lies in the scratch area or the stack window, at the address it records", () => {
  const rng = new Rng(7);
  const forms = new Set<string>();
  const outside = new Set<string>();
  let n = 0;
  for (let k = 0; k < 3000; k++) {
    const u = randomOp(rng, 60);
    const insns = u.kind === "one" ? [u.insn] : u.insns;
    insns.forEach((i, j) => {
      if (!/\[/.test(i.text) || i.text.startsWith("lea ")) {
        assert.equal(i.mem, undefined, i.text);
        return;
      }
      if (i.outside) {
        // Deliberately outside RAM: check the class of the address the group computes.
        const a = effectiveAddress(insns.slice(0, j), i);
        assert.equal(a, BigInt(i.outside.addr), i.text);
        const canonical = a < 0x800000000000n || a >= 0xffff800000000000n;
        if (i.outside.kind === "mmio") assert.ok(a >= BigInt(MMIO_BASE) && a < BigInt(MMIO_BASE) + 0x10000n);
        if (i.outside.kind === "unmapped") assert.ok(canonical && a >= UNMAPPED_BASE && a < 0x8000000000n);
        if (i.outside.kind === "noncanonical") assert.ok(!canonical);
        outside.add(i.outside.kind);
        return;
      }
      assert.ok(i.mem, `memory instruction without a recorded range: ${i.text}`);
      const { addr, bytes } = i.mem;
      let ea = effectiveAddress(insns.slice(0, j), i);
      if (/\b[fg]s:\[/.test(i.text)) {
        // The segment base: EDX:EAX of the last WRMSR before it (ECX = IA32_FS_BASE / IA32_GS_BASE).
        const before = insns.slice(0, j).map((x) => x.text);
        const w = before.lastIndexOf("wrmsr");
        const val = (r: string) =>
          BigInt(before.slice(0, w).findLast((t) => t.startsWith(`mov ${r}, `))!.split(", ")[1]!);
        assert.equal(val("ecx"), /fs:/.test(i.text) ? 0xc0000100n : 0xc0000101n, i.text);
        ea = BigInt.asUintN(64, ea + ((val("edx") << 32n) | val("eax")));
      }
      const bitString = /^(lock )?bt[src]? \w+ \[.*\], (\w+)$/.exec(i.text);
      if (bitString && FULL[bitString[2]!]) {
        // A register bit offset (signed, operand-sized) selects the word at EA + (offset SAR log2 w) * w/8.
        const w = BigInt(bytes * 8);
        const mov = insns.slice(0, j).findLast((x) => x.text.startsWith(`mov ${FULL[bitString[2]!]}, `))!;
        const off = BigInt.asIntN(Number(w), BigInt(mov.text.split(", ")[1]!));
        const words = off >= 0n ? off / w : -((-off + w - 1n) / w);
        ea = BigInt.asUintN(64, ea + words * BigInt(bytes));
      }
      assert.equal(ea, BigInt(addr), `${insns.map((x) => x.text).join("; ")}`);
      const inScratch = addr >= SCRATCH.base && addr + bytes <= SCRATCH.base + SCRATCH.size;
      const inStack = addr >= STACK_WINDOW.base && addr + bytes <= ENV.stackTop;
      assert.ok(inScratch || inStack, `${i.text}: 0x${addr.toString(16)}+${bytes} outside both areas`);
      forms.add(/\[(rel|rsp|e..|r..|0x)/.exec(i.text)?.[1] ?? "?");
      n++;
    });
  }
  assert.ok(n > 1000, `only ${n} memory operands`);
  for (const f of ["rel", "rsp", "0x"]) assert.ok(forms.has(f), `addressing form ${f} never generated`);
  assert.ok([...forms].some((f) => f.startsWith("e")), "32-bit addressing never generated");
  assert.deepEqual([...outside].sort(), ["mmio", "noncanonical", "unmapped"]);
});

Deno.test("fuzz gen: flag contract per instruction (SDM undefined flags)", () => {
  const rng = new Rng(11);
  const seen = new Set<string>();
  for (let k = 0; k < 4000; k++) {
    for (const i of allInsns([randomOp(rng)])) {
      const mn = i.text.split(" ")[0]!;
      seen.add(mn);
      const c = { reads: i.reads, def: i.def, undef: i.undef };
      if (mn === "div" || mn === "idiv") assert.deepEqual(c, { reads: 0, def: 0, undef: ARITH_FLAGS }, i.text);
      if (mn === "mul" || mn === "imul") assert.deepEqual(c, { reads: 0, def: CF | OF, undef: SZAP }, i.text);
      if (mn === "bsf" || mn === "bsr") {
        assert.deepEqual(c, { reads: 0, def: ZF, undef: CF | OF | SF | AF | PF }, i.text);
      }
      if (/^bt[src]?$/.test(mn)) assert.deepEqual(c, { reads: 0, def: CF, undef: OF | SF | AF | PF }, i.text);
      if (["and", "or", "xor", "test"].includes(mn)) {
        assert.deepEqual(c, { reads: 0, def: ARITH_FLAGS & ~AF, undef: AF });
      }
      if (["add", "sub", "cmp", "xadd", "cmpxchg", "neg"].includes(mn)) {
        assert.deepEqual(c, { reads: 0, def: ARITH_FLAGS, undef: 0 });
      }
      if (mn === "adc" || mn === "sbb") assert.deepEqual(c, { reads: CF, def: ARITH_FLAGS, undef: 0 });
      if (mn === "inc" || mn === "dec") assert.deepEqual(c, { reads: 0, def: ARITH_FLAGS & ~CF, undef: 0 });
      if (["mov", "movzx", "movsx", "movsxd", "lea", "xchg", "not", "bswap", "push", "pop"].includes(mn)) {
        assert.deepEqual({ def: c.def, undef: c.undef }, { def: 0, undef: 0 }, i.text);
      }
      if (/^(sh|sa|ro|rc)\w* .*, cl$/.test(i.text)) {
        assert.equal(c.def, 0, `${i.text}: a CL count may be 0, which defines nothing`);
      }
    }
  }
  for (const mn of ["div", "idiv", "mul", "imul", "bsf", "bsr", "shld", "shrd", "xadd", "cmpxchg", "popfq", "pushfq"]) {
    assert.ok(seen.has(mn), `${mn} never generated`);
  }
  // Shifts and rotates by an immediate (SDM SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR).
  assert.deepEqual(shiftContract("shl", 32, 0), { reads: 0, def: 0, undef: 0 });
  assert.deepEqual(shiftContract("shl", 32, 32), { reads: 0, def: 0, undef: 0 }, "count masked to 0");
  assert.deepEqual(shiftContract("shl", 32, 1), { reads: 0, def: CF | PF | ZF | SF | OF, undef: AF });
  assert.deepEqual(shiftContract("sar", 64, 5), { reads: 0, def: CF | PF | ZF | SF, undef: AF | OF });
  assert.deepEqual(shiftContract("shr", 8, 9), { reads: 0, def: PF | ZF | SF, undef: AF | CF | OF }, "count ≥ size");
  assert.deepEqual(shiftContract("rol", 8, 8), { reads: 0, def: CF, undef: OF }, "ROL sets CF for count mod 8 = 0");
  assert.deepEqual(shiftContract("rcl", 8, 9), { reads: CF, def: 0, undef: OF }, "RCL by 9 (mod 9 = 0) keeps CF");
  assert.deepEqual(shiftContract("rcr", 16, 17), { reads: CF, def: 0, undef: OF });
  assert.deepEqual(shiftContract("rcr", 16, 1), { reads: CF, def: CF | OF, undef: 0 });
  assert.deepEqual(doubleShiftContract(64, 1), { reads: 0, def: CF | PF | ZF | SF | OF, undef: AF });
  assert.deepEqual(doubleShiftContract(32, 33), { reads: 0, def: CF | PF | ZF | SF | OF, undef: AF }, "33 & 31 = 1");
  assert.deepEqual(doubleShiftContract(16, 16), { reads: 0, def: CF | PF | ZF | SF, undef: AF | OF });
});

Deno.test("fuzz gen: flag contract — undefined flags propagate, reading one is invalid, CL shifts define nothing", () => {
  const mulInsn: Insn = { text: "mul rbx", reads: 0, def: CF | OF, undef: SZAP };
  const mul: BodyUnit = { kind: "one", insn: mulInsn };
  const setz = one("setz al", ZF, 0, 0);
  const shlCl = one("shl rdx, cl", 0, 0, OF | AF);
  assert.equal(analyse([mul]), SZAP);
  assert.equal(analyse([mul, setz]), undefined);
  assert.equal(analyse([mul, shlCl, setz]), undefined);
  assert.equal(analyse([mul, one("add rax, rbx", 0, ARITH_FLAGS, 0), setz]), 0);
  // A jcc body that makes ZF undefined leaves it undefined after the jcc (either path).
  assert.equal(analyse([{ kind: "jcc", cc: "c", reads: CF, label: "L0", body: [mul] }, setz]), undefined);
  // The state before every rendered line: jcc, body, label, hlt.
  const seq: Unit[] = [one("add rax, rbx", 0, ARITH_FLAGS, 0), {
    kind: "jcc",
    cc: "c",
    reads: CF,
    label: "L0",
    body: [mul],
  }];
  assert.equal(render(seq), "add rax, rbx\njc L0\nmul rbx\nL0:\nhlt");
  assert.deepEqual(undefinedBeforeLines(seq), [0, 0, 0, SZAP, SZAP]);
  assert.equal(undefinedBeforeLines([mul, setz]), undefined);
});

Deno.test("fuzz gen: loops — each iteration starts from the previous one's flags; LOOPE/LOOPNE read ZF", () => {
  const mul = one("mul rbx", 0, CF | OF, SZAP);
  const setz = one("setz al", ZF, 0, 0);
  const add = one("add rax, rbx", 0, ARITH_FLAGS, 0);
  const loop = (op: "loop" | "loope", count: number, body: BodyUnit[]): Unit => ({
    kind: "loop",
    op,
    reads: op === "loop" ? 0 : ZF,
    count,
    label: "L0",
    body,
  });
  assert.equal(render([loop("loop", 3, [add])]), "mov ecx, 3\nL0:\nadd rax, rbx\nloop L0\nhlt");
  assert.equal(analyse([loop("loop", 1, [setz, mul])]), SZAP, "one iteration: setz sees the defined ZF");
  assert.equal(analyse([loop("loop", 2, [setz, mul])]), undefined, "second iteration: ZF undefined by mul");
  assert.equal(analyse([loop("loope", 1, [mul])]), undefined, "LOOPE reads ZF after mul");
  assert.equal(analyse([loop("loope", 2, [mul, add])]), 0);
  // LOOPNE may leave after any iteration: the exit state is the union.
  assert.equal(analyse([loop("loope", 2, [add, mul, one("cmp rax, rbx", 0, ZF, 0)])]), SZAP & ~ZF);
  // mul / mov ecx / label / add / mul / loop / hlt: before the body's mul the add has defined everything.
  assert.deepEqual(undefinedBeforeLines([mul, loop("loop", 2, [add, mul])]), [0, SZAP, SZAP, SZAP, 0, SZAP, SZAP]);
  const min = minimise([loop("loop", 4, [add, one("not rdx", 0, 0, 0)])], (c) => render(c).includes("not rdx"));
  assert.equal(render(min), "not rdx\nhlt");
});

Deno.test("fuzz gen: every unit kind and addressing family is generated", () => {
  const rng = new Rng(99);
  const text = Array.from({ length: 400 }, () => render(randomSequence(rng, 12))).join("\n");
  for (
    const pat of [
      /^loop(e|ne)? L\d+$/m,
      /^j(?!mp)\w+ L\d+$/m,
      /^call qword \[/m,
      /^call r\w+$/m,
      /^jmp qword \[/m,
      /^ret 8$/m,
      /^wrmsr$/m,
      /\bfs:\[/m,
      /\bgs:\[/m,
      /^lock /m,
      /^rep(e|ne)? (movs|stos|lods|cmps|scas)[bwdq]$/m,
      /^std$/m,
      /^enter /m,
      /^pop (qword|word) \[rsp-/m,
      /^popfq$/m,
      /^popfw$/m,
      /^(div|idiv) /m,
      /^bs[fr] /m,
      /^bt[src]? \w+ \[.*\], (?!\d)\w+$/m,
      /\b(ah|bh|ch|dh)\b/m,
      /\[e\w\w\+/m,
      /\[rel /m,
    ]
  ) assert.match(text, pat);
});

Deno.test("fuzz minimise: keeps exactly what the divergence needs; groups stay whole", () => {
  const u = randomSequence(new Rng(5), 15).filter((x) => x.kind === "one");
  const target = one("neg rdi", 0, ARITH_FLAGS, 0);
  const seq = [...u.slice(0, 5), target, ...u.slice(5)];
  const min = minimise(seq, (c) => c.some((x) => x.kind === "one" && x.insn.text === "neg rdi"));
  assert.equal(render(min), "neg rdi\nhlt");
  const group: BodyUnit = {
    kind: "group",
    insns: [{ text: "mov rbx, 0x1fff80", reads: 0, def: 0, undef: 0 }, {
      text: "inc byte [rbx]",
      reads: 0,
      def: ARITH_FLAGS & ~CF,
      undef: 0,
    }],
  };
  const jcc: Unit = { kind: "jcc", cc: "z", reads: ZF, label: "L0", body: [group, one("not rax", 0, 0, 0)] };
  const m2 = minimise([one("add rax, rax", 0, ARITH_FLAGS, 0), jcc], (c) => render(c).includes("inc byte"));
  assert.equal(render(m2), "mov rbx, 0x1fff80\ninc byte [rbx]\nhlt");
});

Deno.test("fuzz cases on the simulator: end in HLT, #DE, or (outside accesses) #PF #GP #SS; a fault masks the flags undefined before it", () => {
  const rng = new Rng(21);
  let de = 0;
  for (let i = 0; i < 150; i++) {
    const c = randomCase(rng, 1 + rng.int(12));
    const r = runOn("sim", caseSnippet(c));
    const v = exceptionVector(r);
    const outside = allInsns(c.units).some((i) => i.outside);
    if (v === 0) de++;
    else if (v !== undefined) assert.ok(outside && [12, 13, 14].includes(v), `vector ${v}: ${render(c.units)}`);
    else {
      const plain = r.exits.filter((e) => e.reason !== "mmio");
      assert.deepEqual([plain, r.stop], [[{ reason: "hlt" }], ""], render(c.units));
      assert.ok(outside || plain.length === r.exits.length, `MMIO exit without an outside access: ${render(c.units)}`);
    }
  }
  assert.ok(de > 0 && de < 50, `${de} of 150 cases ended in #DE`);
  // add defines all; mul leaves SZAP undefined; div by rcx = 0 faults: the mask is the state before the div.
  const fault: Case = {
    units: [
      one("add rax, rbx", 0, ARITH_FLAGS, 0),
      one("mul rbx", 0, CF | OF, SZAP),
      one("div rcx", 0, 0, ARITH_FLAGS),
      one("add rax, rbx", 0, ARITH_FLAGS, 0),
    ],
    regs: { rax: 5n, rbx: 7n, rcx: 0n },
    memory: [],
  };
  const r = runOn("sim", caseSnippet(fault));
  assert.equal(exceptionVector(r), 0);
  const d = digest(fault.units, r);
  assert.equal(d.undef, SZAP, "flags undefined before the faulting DIV (not after the whole sequence)");
  assert.equal(d.fields.get(`rflags & ~0x${SZAP.toString(16)}`) !== undefined, true);
  const frame = d.fields.get(`stack 0x${(Number(r.regs.rsp)).toString(16)}`);
  assert.equal(frame, "06 10 00 00 00 00 00 00", "saved RIP = the DIV at 0x1006 (after add and mul, 3 bytes each)");
  // MMIO exits before the exception: the vector is still found (the stub's OUT is the exit before the HLT).
  const mmio: Case = {
    ...fault,
    units: [
      { kind: "group", insns: [insn("mov rsi, 0xd0000000", 0, 0, 0), insn("mov r9, qword [rsi]", 0, 0, 0)] },
      ...fault.units,
    ],
  };
  const rm = runOn("sim", caseSnippet(mmio));
  assert.equal(rm.exits[0]?.reason, "mmio");
  assert.equal(exceptionVector(rm), 0);
  assert.equal(digest(mmio.units, rm).undef, SZAP);
  // Without the fault the whole-sequence mask applies.
  const ok = { ...fault, regs: { ...fault.regs, rcx: 3n } };
  assert.equal(digest(ok.units, runOn("sim", caseSnippet(ok))).undef, 0);
});

Deno.test("fuzz regression file: entries round-trip, append skips duplicates", () => {
  const c = randomCase(new Rng(4), 6);
  // Every unit kind serialises (no bigint anywhere in the units).
  for (let i = 0, rng = new Rng(8); i < 300; i++) JSON.stringify(randomSequence(rng, 12));
  const e = regressionOf(4, 17, c, [{ field: "rax", sim: "0x1", kvm: "0x2" }]);
  assert.deepEqual(caseOf(JSON.parse(JSON.stringify(e))), c);
  assert.match(e.name, /^fuzz seed 4 #17: /);
  const file = Deno.makeTempFileSync({ suffix: ".json" });
  try {
    Deno.removeSync(file);
    assert.deepEqual(loadRegressions(file), []);
    assert.equal(appendRegressions(file, [e]), 1);
    assert.equal(appendRegressions(file, [e]), 0);
    assert.equal(
      appendRegressions(file, [regressionOf(5, 1, { ...c, regs: { ...c.regs, rax: 1n } }, [])]),
      0,
      "same shape",
    );
    const other = { ...c, units: [...c.units, one("not rax", 0, 0, 0)] };
    assert.equal(appendRegressions(file, [regressionOf(5, 1, other, [])]), 1);
    assert.equal(shapeOf("push r14\npop qword [rsp-0x49]\nhlt"), shapeOf("push rax\npop qword [rsp-0x8]\nhlt"));
    assert.notEqual(shapeOf("push r14\npop qword [rsp-0x49]\nhlt"), shapeOf("push r14\npop qword [rbx-0x49]\nhlt"));
    assert.equal(loadRegressions(file).length, 2);
    assert.throws(() => caseOf({ ...e, asm: "nop\nhlt" }), /asm does not match/);
  } finally {
    Deno.removeSync(file, { recursive: true });
  }
});

Deno.test("fuzz regression checks on the simulator: classification decides the expected values", () => {
  const c: Case = { units: [one("add rax, rbx", 0, ARITH_FLAGS, 0)], regs: { rax: 2n, rbx: 3n }, memory: [] };
  const e = regressionOf(1, 2, c, [{ field: "rax", sim: "0x5", kvm: "0x6" }]);
  assert.match(checkOnSim(e).join(), /unclassified/);
  // KVM wrong: the simulator must keep the observed sim value.
  assert.deepEqual(checkOnSim({ ...e, known: { wrong: "kvm", reason: "r" } }), []);
  const drift = {
    ...e,
    observed: [{ field: "rax", sim: "0x7", kvm: "0x6" }],
    known: { wrong: "kvm" as const, reason: "r" },
  };
  assert.match(checkOnSim(drift).join(), /rax: expected 0x7, sim 0x5/);
  // Simulator wrong: an expected failure while it differs from the KVM value, reported once it matches.
  const logs: string[] = [];
  assert.deepEqual(checkOnSim({ ...e, known: { wrong: "sim", reason: "r" } }, (s) => logs.push(s)), []);
  assert.equal(logs.length, 1);
  const fixedNow = {
    ...e,
    observed: [{ field: "rax", sim: "0x6", kvm: "0x5" }],
    known: { wrong: "sim" as const, reason: "r" },
  };
  assert.match(checkOnSim(fixedNow).join(), /passes on the simulator now/);
  assert.deepEqual(checkOnSim({ ...fixedNow, known: { ...fixedNow.known, fixed: true } }), []);
});
