/**
 * Bit operations: BT, BTS, BTR, BTC (register offset and imm8 forms on
 * registers; bit-string forms on memory), BSF, BSR.
 *
 * Expectations: register forms from tests/x86_alu_vectors.json (native CPU);
 * memory bit-string forms from the SDM's definition (vol. 2A "BT"): with a
 * register offset the operand is a bit string at the effective address and
 * the offset is signed and not masked (bit = byte[ea + (off >> 3)] bit
 * (off & 7)); with an imm8 offset it is masked to the operand size. Only the
 * selected bit changes (BTS sets, BTR clears, BTC complements) and CF gets
 * its old value.
 *
 * Flags: BT*: CF defined; OF SF AF PF undefined → masked; ZF unchanged
 * (mask 0x41). BSF/BSR: ZF defined (set when the source is 0), the others
 * undefined (mask 0x40); with a zero source the destination is undefined
 * (SDM; AMD: unchanged) → not compared.
 */
import { vectorSnippets } from "./vectors.ts";
import { CF, le, type Snippet, ZF } from "./types.ts";

const bsfBsr: Snippet[] = vectorSnippets({ match: /^(bsf|bsr)(16|32|64)$/, long: 4, second: 2, real: 1 }).map((s) => {
  const w = /\b(r|e)?bx\b/.exec(s.asm)?.[1] === "r" ? 64 : s.asm.includes("ebx") ? 32 : 16;
  const src = BigInt.asUintN(w, s.regs!.rbx!);
  if (src !== 0n) return s;
  const { rax: _undefined, ...regs } = s.expect.regs!;
  return { ...s, expect: { ...s.expect, regs } };
});

// Memory bit strings: 16 bytes at BASE with a fixed pattern.
const BASE = 0x8000;
const PATTERN = [0x5a, 0x0f, 0xf0, 0x81, 0x18, 0xff, 0x00, 0x96, 0x3c, 0xc3, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc];
const ops = ["bt", "bts", "btr", "btc"] as const;
const sizes = [[16, "word", "bx"], [32, "dword", "ebx"], [64, "qword", "rbx"]] as const;

function bitString(op: typeof ops[number], addr: number, off: number): { cf: boolean; mem: number[] } {
  const mem = [...PATTERN];
  const bit = (addr - BASE) * 8 + off;
  const i = Math.floor(bit / 8), b = ((bit % 8) + 8) % 8;
  const old = (mem[i]! >> b) & 1;
  if (op === "bts") mem[i]! |= 1 << b;
  if (op === "btr") mem[i]! &= ~(1 << b);
  if (op === "btc") mem[i]! ^= 1 << b;
  return { cf: old === 1, mem };
}

const memForms: Snippet[] = [];
for (const op of ops) {
  for (const [w, kw, reg] of sizes) {
    // Register offsets: in range, beyond the operand, negative.
    for (const [addr, off] of [[BASE, 35], [BASE + 8, -1], [BASE + 4, w]] as const) {
      const { cf, mem } = bitString(op, addr, off);
      for (const flagsIn of [0x2n, 0x2n | CF]) {
        memForms.push({
          name: `${op} ${kw} [mem], ${reg} off=${off} at +${addr - BASE} cf_in=${flagsIn & CF}`,
          mode: w === 64 ? "long" : "protected",
          asm: `${op} ${kw} [${addr}], ${reg}\nhlt`,
          regs: { rbx: BigInt.asUintN(w === 64 ? 64 : 32, BigInt(off)), rflags: flagsIn | ZF },
          memory: [{ gpa: BASE, bytes: PATTERN }],
          expect: { regs: { rflags: (cf ? CF : 0n) | ZF }, flagsMask: CF | ZF, memory: [{ gpa: BASE, bytes: mem }] },
          cpl3: true,
        });
        if (off !== 35) break; // carry-in matters once: CF is overwritten, ZF kept
      }
    }
    // Immediate offsets are masked to the operand size.
    for (const imm of [w + 5, 255]) {
      const { cf, mem } = bitString(op, BASE, imm & (w - 1));
      memForms.push({
        name: `${op} ${kw} [mem], ${imm}`,
        mode: w === 64 ? "long" : "real",
        asm: `${op} ${kw} [${BASE}], ${imm}\nhlt`,
        memory: [{ gpa: BASE, bytes: PATTERN }],
        expect: { regs: { rflags: cf ? CF : 0n }, flagsMask: CF | ZF, memory: [{ gpa: BASE, bytes: mem }] },
        cpl3: true,
      });
    }
  }
}
// BSF/BSR from memory.
for (const [src, f, r] of [[0x00010000, 16, 16], [0x80000001, 0, 31], [0x00000100, 8, 8]] as const) {
  for (const op of ["bsf", "bsr"] as const) {
    memForms.push({
      name: `${op} eax, dword [mem] = ${src.toString(16)}`,
      mode: "protected",
      asm: `${op} eax, dword [${BASE}]\nhlt`,
      memory: [{ gpa: BASE, bytes: le(src, 4) }],
      expect: { regs: { rax: BigInt(op === "bsf" ? f : r), rflags: 0n }, flagsMask: ZF },
      cpl3: true,
    });
  }
}

export const snippets: Snippet[] = [
  ...vectorSnippets({ match: /^(bt|bts|btr|btc)(16|32|64)$/, long: 2, second: 1, real: 1 }),
  ...vectorSnippets({ match: /^(bt|bts|btr|btc)i(16|32|64)$/, long: 1, second: 1, real: 0 }),
  ...bsfBsr,
  ...memForms,
];
