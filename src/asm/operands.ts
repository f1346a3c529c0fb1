import { ColError } from "./errors.ts";
import { Cursor, describe, type Expr, type NameScope, parseExpr } from "./expr.ts";
import { lookupReg, type Reg } from "./registers.ts";

export interface MemOperand {
  k: "mem";
  col: number;
  /** Width in bits named by a size keyword; 0 when unsized. 80 = tword, 48 = fword. */
  size: number;
  seg?: Reg;
  base?: Reg;
  index?: Reg;
  scale: number;
  /** Displacement terms, summed; empty = no displacement written. */
  disp: Expr[];
  /** `[rel x]`: RIP-relative to x (64-bit mode). */
  rel: boolean;
  /** `far [m]`: a far pointer in memory. */
  far: boolean;
}

export type Operand =
  | { k: "reg"; col: number; reg: Reg }
  | MemOperand
  | { k: "imm"; col: number; e: Expr; size: number; dist: "" | "short" | "near" }
  | { k: "far"; col: number; seg: Expr; off: Expr };

const SIZE_KEYWORDS: Record<string, number> = { byte: 8, word: 16, dword: 32, fword: 48, qword: 64, tword: 80 };

/** Parses a comma-separated operand list up to the end of the line. */
export function parseOperands(c: Cursor, scope: NameScope): Operand[] {
  const ops: Operand[] = [];
  if (c.atEnd()) return ops;
  for (;;) {
    ops.push(parseOperand(c, scope));
    if (c.atEnd()) return ops;
    c.expectPunct(",", "between operands");
  }
}

function parseOperand(c: Cursor, scope: NameScope): Operand {
  const col = c.col();
  let size = 0;
  let dist: "" | "short" | "near" = "";
  let far = false;
  for (;;) {
    const t = c.peek();
    if (t?.t !== "id") break;
    const w = t.v.toLowerCase();
    if (w in SIZE_KEYWORDS) {
      size = SIZE_KEYWORDS[w]!;
      c.next();
      if (c.isId("ptr")) c.next();
    } else if (w === "short" || w === "near") {
      dist = w;
      c.next();
    } else if (w === "far") {
      far = true;
      c.next();
    } else if (w === "strict") {
      c.next();
    } else break;
  }
  const t = c.peek();
  if (t === undefined) throw new ColError(c.endCol, "expected an operand, got end of line");
  if (t.t === "punct" && t.v === "[") return parseMem(c, scope, col, size, far, undefined);
  if (t.t === "id") {
    const reg = lookupReg(t.v);
    const after = c.toks[c.i + 1];
    const afterColon = after?.t === "punct" && after.v === ":";
    if (reg && reg.cls === "sreg" && afterColon) {
      c.i += 2;
      if (c.isPunct("[")) return parseMem(c, scope, col, size, far, reg);
      const e = parseExpr(c, scope);
      return { k: "mem", col, size, seg: reg, scale: 1, disp: [e], rel: false, far };
    }
    if (reg && (after === undefined || (after.t === "punct" && after.v === ","))) {
      if (size !== 0 || dist !== "" || far) {
        throw new ColError(
          col,
          `size or distance keyword before register "${reg.name}" (expected memory or immediate)`,
        );
      }
      c.next();
      return { k: "reg", col, reg };
    }
  }
  const e = parseExpr(c, scope);
  if (c.isPunct(":")) {
    c.next();
    const off = parseExpr(c, scope);
    return { k: "far", col, seg: e, off };
  }
  if (far) throw new ColError(col, `"far" needs a segment:offset pointer or a memory operand`);
  return { k: "imm", col, e, size, dist };
}

function parseMem(
  c: Cursor,
  scope: NameScope,
  col: number,
  size: number,
  far: boolean,
  seg: Reg | undefined,
): MemOperand {
  c.expectPunct("[", "to open a memory operand");
  let rel = false;
  for (;;) {
    const t = c.peek();
    const after = c.toks[c.i + 1];
    if (t?.t === "id" && after?.t === "punct" && after.v === ":" && lookupReg(t.v)?.cls === "sreg") {
      if (seg) throw new ColError(t.col, "two segment overrides on one memory operand");
      seg = lookupReg(t.v);
      c.i += 2;
    } else if (t?.t === "id" && (t.v.toLowerCase() === "rel" || t.v.toLowerCase() === "abs")) {
      rel = t.v.toLowerCase() === "rel";
      c.next();
    } else break;
  }
  const e = parseExpr(c, scope);
  if (!c.isPunct("]")) {
    throw new ColError(c.col(), `expected "]" to close the memory operand, got ${describe(c.peek())}`);
  }
  c.next();
  const mem: MemOperand = { k: "mem", col, size, seg, scale: 1, disp: [], rel, far };
  splitAddress(e, mem);
  return mem;
}

interface RegTerm {
  reg: Reg;
  mul: bigint;
  col: number;
}

/** Splits `[base + index*scale + disp]` into its parts. */
function splitAddress(e: Expr, mem: MemOperand): void {
  const regs: RegTerm[] = [];
  walk(e, false, regs, mem.disp);
  const ripTerm = regs.find((r) => r.reg.cls === "rip");
  for (const r of regs) {
    if (r.reg.cls !== "gp" && r.reg.cls !== "rip") {
      throw new ColError(r.col, `register "${r.reg.name}" cannot address memory (expected a general register)`);
    }
    if (r.reg.cls === "gp" && r.reg.size === 8) {
      throw new ColError(r.col, `8-bit register "${r.reg.name}" cannot address memory`);
    }
  }
  if (ripTerm) {
    if (regs.length !== 1 || ripTerm.mul !== 1n) {
      throw new ColError(ripTerm.col, "rip can only be used alone as a base");
    }
    mem.base = ripTerm.reg;
    return;
  }
  let base: RegTerm | undefined;
  let index: RegTerm | undefined;
  const scaled = regs.filter((r) => r.mul !== 1n);
  const plain = regs.filter((r) => r.mul === 1n);
  if (scaled.length > 1 || regs.length > 2) {
    throw new ColError(regs[0]!.col, "too many registers in memory operand (expected base + index*scale)");
  }
  if (scaled.length === 1) {
    index = scaled[0];
    base = plain[0];
  } else {
    base = plain[0];
    index = plain[1];
    // esp/rsp can only be a base; swap `[eax+esp]` like nasm does.
    if (index && index.reg.num === 4 && base && base.reg.num !== 4) [base, index] = [index, base];
  }
  if (index) {
    const m = index.mul;
    if (m !== 1n && m !== 2n && m !== 4n && m !== 8n) {
      throw new ColError(index.col, `bad scale ${m} (expected 1, 2, 4 or 8)`);
    }
    mem.scale = Number(m);
    mem.index = index.reg;
  }
  mem.base = base?.reg;
}

function walk(e: Expr, neg: boolean, regs: RegTerm[], disp: Expr[]): void {
  if (e.k === "bin" && (e.op === "+" || e.op === "-")) {
    walk(e.a, neg, regs, disp);
    walk(e.b, e.op === "-" ? !neg : neg, regs, disp);
    return;
  }
  if (e.k === "un" && e.op === "+") return walk(e.e, neg, regs, disp);
  if (e.k === "reg") {
    if (neg) throw new ColError(e.col, `register "${e.reg.name}" cannot be subtracted`);
    regs.push({ reg: e.reg, mul: 1n, col: e.col });
    return;
  }
  if (e.k === "bin" && e.op === "*" && (e.a.k === "reg" || e.b.k === "reg")) {
    const r = e.a.k === "reg" ? e.a : e.b;
    const other = e.a.k === "reg" ? e.b : e.a;
    if (r.k !== "reg") throw new Error("unreachable");
    if (neg) throw new ColError(r.col, `register "${r.reg.name}" cannot be subtracted`);
    const m = constValue(other);
    regs.push({ reg: r.reg, mul: m, col: r.col });
    return;
  }
  if (containsReg(e)) {
    throw new ColError(e.col, "registers in a memory operand may only be added or scaled by a constant");
  }
  disp.push(neg ? { k: "un", op: "-", e, col: e.col } : e);
}

function constValue(e: Expr): bigint {
  switch (e.k) {
    case "num":
      return e.v;
    case "un":
      if (e.op === "+") return constValue(e.e);
      break;
    default:
      break;
  }
  throw new ColError(e.col, "scale must be a plain number (expected 1, 2, 4 or 8)");
}

function containsReg(e: Expr): boolean {
  switch (e.k) {
    case "reg":
      return true;
    case "un":
      return containsReg(e.e);
    case "bin":
      return containsReg(e.a) || containsReg(e.b);
    default:
      return false;
  }
}
