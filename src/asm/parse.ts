import { AsmError, ColError } from "./errors.ts";
import { Cursor, describe, type Expr, parseExpr } from "./expr.ts";
import type { Bits } from "./forms.ts";
import { tokenize } from "./lexer.ts";
import { type Operand, parseOperands } from "./operands.ts";
import type { UserPrefixes } from "./encoder.ts";
import { lookupReg } from "./registers.ts";

export type DataItem = { k: "str"; bytes: Uint8Array } | { k: "expr"; e: Expr };

export type Body =
  | { k: "insn"; mn: string; mnCol: number; ops: Operand[]; pre: UserPrefixes }
  | { k: "data"; width: 1 | 2 | 4 | 8; items: DataItem[] }
  | { k: "bits"; bits: Bits }
  | { k: "org"; e: Expr; col: number }
  | { k: "align"; e: Expr; fill: Expr | null; col: number }
  | { k: "equ"; name: string; e: Expr };

export interface Stmt {
  line: number;
  source: string;
  labels: { name: string; col: number }[];
  times: Expr | null;
  timesCol: number;
  body: Body | null;
  bits: Bits;
}

const DATA_WIDTH: Record<string, 1 | 2 | 4 | 8> = { db: 1, dw: 2, dd: 4, dq: 8 };
const PREFIX_WORDS = new Set(["lock", "rep", "repe", "repz", "repne", "repnz", "o16", "o32", "a16", "a32"]);
const SEGS = ["es", "cs", "ss", "ds", "fs", "gs"];

/** Parses the whole source into statements (labels, directives, instructions). */
export function parseSource(source: string, startBits: Bits): Stmt[] {
  const stmts: Stmt[] = [];
  let bits = startBits;
  let global = "";
  const defined = new Map<string, number>();
  const scope = (name: string) => (name.startsWith(".") && !name.startsWith("..") ? global + name : name);
  const lines = source.split("\n");
  lines.forEach((text, idx) => {
    const line = idx + 1;
    try {
      const toks = tokenize(text);
      const c = new Cursor(toks, text.replace(/\s+$/, "").length + 1);
      const stmt: Stmt = { line, source: text, labels: [], times: null, timesCol: 0, body: null, bits };
      const define = (raw: string, col: number) => {
        if (lookupReg(raw)) throw new ColError(col, `"${raw}" is a register and cannot be a label`);
        const name = scope(raw);
        const first = defined.get(name);
        if (first !== undefined) throw new ColError(col, `symbol "${name}" already defined on line ${first}`);
        defined.set(name, line);
        return name;
      };
      // name equ expr
      const t0 = toks[0];
      const t1 = toks[1];
      if (t0?.t === "id" && t1?.t === "id" && t1.v.toLowerCase() === "equ") {
        const name = define(t0.v, t0.col);
        c.i = 2;
        const e = parseExpr(c, scope);
        endOfLine(c);
        stmt.body = { k: "equ", name, e };
        stmts.push(stmt);
        return;
      }
      // labels
      for (;;) {
        const a = c.peek();
        const b = c.toks[c.i + 1];
        if (a?.t === "id" && b?.t === "punct" && b.v === ":" && !SEGS.includes(a.v.toLowerCase())) {
          const name = define(a.v, a.col);
          if (!a.v.startsWith(".")) global = a.v;
          stmt.labels.push({ name, col: a.col });
          c.i += 2;
        } else break;
      }
      if (c.isPunct("[")) {
        // [bits 32] nasm-style
        c.next();
        const body = parseDirective(c, scope);
        c.expectPunct("]", "to close the directive");
        endOfLine(c);
        if (!body || body.k !== "bits") throw new ColError(toks[0]!.col, "expected [bits N]");
        stmt.body = body;
        bits = body.bits;
        stmts.push(stmt);
        return;
      }
      if (c.isId("times")) {
        stmt.timesCol = c.next()!.col;
        stmt.times = parseExpr(c, scope);
      }
      if (!c.atEnd()) {
        const body = parseDirective(c, scope) ?? parseInstruction(c, scope);
        endOfLine(c);
        stmt.body = body;
        if (body.k === "bits") bits = body.bits;
        stmt.bits = bits;
      } else if (stmt.times) throw new ColError(stmt.timesCol, "times needs something to repeat");
      stmts.push(stmt);
    } catch (e) {
      if (e instanceof ColError) throw new AsmError(line, e.col, e.message);
      throw e;
    }
  });
  return stmts;
}

function endOfLine(c: Cursor): void {
  if (!c.atEnd()) throw new ColError(c.col(), `expected end of line, got ${describe(c.peek())}`);
}

function parseDirective(c: Cursor, scope: (n: string) => string): Body | null {
  const t = c.peek();
  if (t?.t !== "id") return null;
  const w = t.v.toLowerCase();
  const m = w.match(/^use(16|32|64)$/);
  if (w === "bits" || m) {
    c.next();
    let n: bigint;
    if (m) n = BigInt(m[1]!);
    else {
      const v = c.next();
      if (v?.t !== "num") {
        throw new ColError(v?.col ?? c.endCol, `expected 16, 32 or 64 after "bits", got ${describe(v)}`);
      }
      n = v.v;
    }
    if (n !== 16n && n !== 32n && n !== 64n) throw new ColError(t.col, `bad bits ${n} (expected 16, 32 or 64)`);
    return { k: "bits", bits: Number(n) as Bits };
  }
  if (w === "org") {
    c.next();
    return { k: "org", e: parseExpr(c, scope), col: t.col };
  }
  if (w === "align") {
    c.next();
    const e = parseExpr(c, scope);
    let fill: Expr | null = null;
    if (c.isPunct(",")) {
      c.next();
      fill = parseExpr(c, scope);
    }
    return { k: "align", e, fill, col: t.col };
  }
  const width = DATA_WIDTH[w];
  if (width) {
    c.next();
    const items: DataItem[] = [];
    for (;;) {
      const s = c.peek();
      const after = c.toks[c.i + 1];
      if (s?.t === "str" && (after === undefined || (after.t === "punct" && after.v === ","))) {
        c.next();
        items.push({ k: "str", bytes: s.v });
      } else items.push({ k: "expr", e: parseExpr(c, scope) });
      if (c.atEnd()) break;
      c.expectPunct(",", "between data items");
    }
    return { k: "data", width, items };
  }
  return null;
}

function parseInstruction(c: Cursor, scope: (n: string) => string): Body {
  const pre: UserPrefixes = { rep: 0, lock: false, o: 0, a: 0, seg: -1 };
  for (;;) {
    const t = c.next();
    if (t?.t !== "id") throw new ColError(t?.col ?? c.endCol, `expected an instruction, got ${describe(t)}`);
    const w = t.v.toLowerCase();
    const nextIsId = c.peek()?.t === "id";
    if (PREFIX_WORDS.has(w) && (nextIsId || w === "lock" || w.startsWith("rep"))) {
      if (!nextIsId) {
        throw new ColError(c.col(), `expected an instruction after prefix "${w}", got ${describe(c.peek())}`);
      }
      if (w === "lock") pre.lock = true;
      else if (w === "rep" || w === "repe" || w === "repz") pre.rep = 0xf3;
      else if (w === "repne" || w === "repnz") pre.rep = 0xf2;
      else if (w[0] === "o") pre.o = Number(w.slice(1)) as 16;
      else pre.a = Number(w.slice(1)) as 16;
      continue;
    }
    if (SEGS.includes(w) && nextIsId) {
      pre.seg = SEGS.indexOf(w);
      continue;
    }
    return { k: "insn", mn: w, mnCol: t.col, ops: parseOperands(c, scope), pre };
  }
}
