/**
 * String instructions MOVS, STOS, LODS, CMPS, SCAS (b/w/d/q), without and with
 * REP/REPE/REPNE, DF = 0 and DF = 1, RCX = 0, in long, protected and real mode
 * (real mode: SI/DI/CX, DS:SI source, ES:DI destination).
 *
 * Expectations: a reference written from the SDM (vol. 2 "MOVS", "REP"): each
 * iteration moves one element, RSI/RDI advance by ±size (DF), RCX counts
 * down; REPE/REPZ stops after an iteration with ZF = 0, REPNE after ZF = 1;
 * with RCX = 0 nothing executes and no flag changes. CMPS compares [RSI] −
 * [RDI], SCAS compares the accumulator − [RDI]; flags as SUB.
 *
 * Flags: MOVS/STOS/LODS change none (compared unchanged); CMPS/SCAS define
 * OSZAPC. Nothing undefined.
 */
import { DF, le, OSZAPC, type Regs, type Snippet, type SnippetMode } from "./types.ts";
import { subFlags } from "./ref.ts";

const SRC = 0x8000, DST = 0x9000;
const srcBytes = Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
const DST_FILL = 0xee;
const SUFFIX: Record<number, string> = { 1: "b", 2: "w", 4: "d", 8: "q" };
const rd = (bytes: number[], off: number, n: number) =>
  bytes.slice(off, off + n).reduceRight((v, b) => (v << 8n) | BigInt(b), 0n);

interface Case {
  op: "movs" | "stos" | "lods" | "cmps" | "scas";
  size: number;
  rep: "" | "rep" | "repe" | "repne";
  count: number;
  df: boolean;
  mode: SnippetMode;
  /** For CMPS/SCAS: element index (from the start of the walk) that differs / matches. */
  hit?: number;
}

function make(c: Case): Snippet {
  const { op, size, rep, count, df, mode } = c;
  const n = rep ? count : 1;
  const start = df ? 32 : 0; // element 0 at this byte offset; DF walks down
  const rsi0 = SRC + start, rdi0 = DST + start;
  const step = (df ? -1 : 1) * size;
  const src = [...srcBytes];
  let dst = new Array(64).fill(DST_FILL);
  const acc = 0x1122334455667788n;
  let rax = mode === "long" ? acc : acc & 0xffffffffn;
  const accMask = (1n << BigInt(size * 8)) - 1n;
  if (op === "cmps") dst = [...srcBytes];
  if (op === "cmps" && c.hit !== undefined) dst[start + c.hit * step] ^= 0x40;
  if (op === "scas" && c.hit !== undefined) {
    dst = dst.map((_, i) => (i * 5 + 1) & 0x7f); // never equal to the accumulator's bytes (≥ 0x11 patterns differ)
    le(acc & accMask, size).forEach((b, k) => (dst[start + c.hit! * step + k] = b));
  }
  const dstInit = dst.slice();
  let it = 0;
  let flags = 0x2n | (df ? DF : 0n);
  for (; it < n; it++) {
    const so = start + it * step, d = start + it * step;
    if (op === "movs") { for (let k = 0; k < size; k++) dst[d + k] = src[so + k]!; }
    if (op === "stos") le(acc, size).forEach((b, k) => (dst[d + k] = b));
    if (op === "lods") rax = size === 4 && mode === "long" ? rd(src, so, 4) : (rax & ~accMask) | rd(src, so, size);
    if (op === "cmps" || op === "scas") {
      const a = op === "cmps" ? rd(src, so, size) : acc & accMask;
      const f = subFlags(a, rd(dst, d, size), size * 8);
      flags = (flags & ~OSZAPC) | f;
      const zf = (f & 0x40n) !== 0n;
      if ((rep === "repe" && !zf) || (rep === "repne" && zf)) {
        it++;
        break;
      }
    }
  }
  const usesSrc = op === "movs" || op === "lods" || op === "cmps";
  const usesDst = op !== "lods";
  const regs: Regs = {
    rsi: BigInt(rsi0),
    rdi: BigInt(rdi0),
    rcx: BigInt(count),
    rax: mode === "long" ? acc : acc & 0xffffffffn,
    rflags: 0x2n | (df ? DF : 0n),
  };
  const exp: Regs = {
    rsi: BigInt(usesSrc ? rsi0 + it * step : rsi0),
    rdi: BigInt(usesDst ? rdi0 + it * step : rdi0),
    rcx: BigInt(rep ? count - it : count),
    rflags: flags,
  };
  if (op === "lods") exp.rax = mode === "long" ? rax : rax & 0xffffffffn;
  const prefix = rep ? `${rep} ` : "";
  return {
    name: `${prefix}${op}${SUFFIX[size]} [${mode}] count=${count} df=${df ? 1 : 0}${
      c.hit !== undefined ? ` hit=${c.hit}` : ""
    }`,
    mode,
    asm: `${prefix}${op}${SUFFIX[size]}\nhlt`,
    regs,
    memory: [{ gpa: SRC, bytes: src }, { gpa: DST, bytes: dstInit }],
    expect: {
      regs: exp,
      flagsMask: OSZAPC | DF,
      ...(op === "movs" || op === "stos" ? { memory: [{ gpa: DST, bytes: dst }] } : {}),
    },
    cpl3: true,
  };
}

const cases: Case[] = [];
for (const mode of ["long", "protected", "real"] as const) {
  const sizes = mode === "long" ? [1, 2, 4, 8] : [1, 2, 4];
  for (const size of sizes) {
    for (const op of ["movs", "stos", "lods"] as const) {
      cases.push({ op, size, rep: "", count: 7, df: false, mode });
      if (mode !== "real" || size === 2) cases.push({ op, size, rep: "", count: 7, df: true, mode });
      if (op !== "lods") {
        cases.push({ op, size, rep: "rep", count: 5, df: false, mode });
        cases.push({ op, size, rep: "rep", count: 3, df: true, mode });
        if (size === 1) cases.push({ op, size, rep: "rep", count: 0, df: false, mode });
      }
    }
    if (mode === "real" && size === 4) continue;
    cases.push({ op: "cmps", size, rep: "", count: 9, df: false, mode });
    cases.push({ op: "cmps", size, rep: "repe", count: 6, df: false, mode, hit: 3 });
    cases.push({ op: "cmps", size, rep: "repe", count: 4, df: true, mode });
    cases.push({ op: "scas", size, rep: "repne", count: 8, df: false, mode, hit: 5 });
    cases.push({ op: "scas", size, rep: "repne", count: 4, df: true, mode });
    if (size === 1) {
      cases.push({ op: "cmps", size, rep: "repe", count: 0, df: false, mode });
      cases.push({ op: "scas", size, rep: "repe", count: 5, df: false, mode, hit: 0 });
    }
  }
}

export const snippets: Snippet[] = cases.map(make);
