/** The fuzzer's generator, flag contract and minimiser (no backend needed). */
import assert from "node:assert/strict";
import { assemble } from "../../mod.ts";
import { AF, analyse, CF, type Insn, minimise, OF, PF, randomSequence, render, Rng, SF, type Unit, ZF } from "./gen.ts";

const one = (text: string, reads: number, def: number, undef: number): Unit => ({
  kind: "one",
  insn: { text, reads, def, undef },
});

Deno.test("fuzz gen: deterministic per seed, always valid, assembles in 64-bit mode", () => {
  assert.equal(render(randomSequence(new Rng(9), 20)), render(randomSequence(new Rng(9), 20)));
  assert.notEqual(render(randomSequence(new Rng(9), 20)), render(randomSequence(new Rng(10), 20)));
  const rng = new Rng(42);
  for (let i = 0; i < 300; i++) {
    const u = randomSequence(rng, 12);
    assert.notEqual(analyse(u), undefined);
    const src = render(u);
    assert.ok(src.endsWith("hlt"));
    assemble(src, { bits: 64, origin: 0x1000 });
  }
});

Deno.test("fuzz gen: flag contract — undefined flags propagate, reading one is invalid, CL shifts define nothing", () => {
  const mulInsn: Insn = { text: "mul rbx", reads: 0, def: CF | OF, undef: SF | ZF | AF | PF };
  const mul: Unit = { kind: "one", insn: mulInsn };
  const setz = one("setz al", ZF, 0, 0);
  const shlCl = one("shl rdx, cl", 0, 0, OF | AF);
  assert.equal(analyse([mul]), SF | ZF | AF | PF);
  assert.equal(analyse([mul, setz]), undefined);
  assert.equal(analyse([mul, shlCl, setz]), undefined);
  assert.equal(analyse([mul, one("add rax, rbx", 0, CF | PF | AF | ZF | SF | OF, 0), setz]), 0);
  // A jcc body that makes ZF undefined leaves it undefined after the jcc (either path).
  assert.equal(analyse([{ kind: "jcc", cc: "c", reads: CF, label: "L0", body: [mulInsn] }, setz]), undefined);
});

Deno.test("fuzz minimise: keeps exactly what the divergence needs", () => {
  const u = randomSequence(new Rng(5), 15).filter((x) => x.kind === "one");
  const target = one("neg rdi", 0, CF | PF | AF | ZF | SF | OF, 0);
  const seq = [...u.slice(0, 5), target, ...u.slice(5)];
  const min = minimise(seq, (c) => c.some((x) => x.kind === "one" && x.insn.text === "neg rdi"));
  assert.equal(render(min), "neg rdi\nhlt");
});
