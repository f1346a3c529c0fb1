import { ColError } from "./errors.ts";
import type { Token } from "./lexer.ts";
import { lookupReg, nearRegister, type Reg } from "./registers.ts";

export type Expr =
  | { k: "num"; v: bigint; col: number }
  | { k: "sym"; name: string; col: number }
  | { k: "here"; col: number }
  | { k: "start"; col: number }
  | { k: "reg"; reg: Reg; col: number }
  | { k: "un"; op: "-" | "~" | "+"; e: Expr; col: number }
  | { k: "bin"; op: BinOp; a: Expr; b: Expr; col: number };

type BinOp = "+" | "-" | "*" | "/" | "%" | "<<" | ">>" | "&" | "|" | "^";

/** Binding strength of binary operators (higher binds tighter), nasm order. */
const PREC: Record<BinOp, number> = {
  "|": 1,
  "^": 2,
  "&": 3,
  "<<": 4,
  ">>": 4,
  "+": 5,
  "-": 5,
  "*": 6,
  "/": 6,
  "%": 6,
};

/** A cursor over one line's tokens. */
export class Cursor {
  i = 0;
  constructor(readonly toks: Token[], readonly endCol: number) {}
  peek(): Token | undefined {
    return this.toks[this.i];
  }
  next(): Token | undefined {
    return this.toks[this.i++];
  }
  col(): number {
    return this.peek()?.col ?? this.endCol;
  }
  isPunct(v: string): boolean {
    const t = this.peek();
    return t !== undefined && t.t === "punct" && t.v === v;
  }
  isId(v: string): boolean {
    const t = this.peek();
    return t !== undefined && t.t === "id" && t.v.toLowerCase() === v;
  }
  expectPunct(v: string, what: string): void {
    if (!this.isPunct(v)) throw new ColError(this.col(), `expected "${v}" ${what}, got ${describe(this.peek())}`);
    this.i++;
  }
  atEnd(): boolean {
    return this.i >= this.toks.length;
  }
}

export function describe(t: Token | undefined): string {
  if (t === undefined) return "end of line";
  switch (t.t) {
    case "id":
      return `"${t.v}"`;
    case "num":
      return `number ${t.v}`;
    case "str":
      return "a string";
    case "punct":
      return `"${t.v}"`;
    default: {
      const never: never = t;
      return String(never);
    }
  }
}

/** Little-endian integer value of a quoted character constant ('A', 'AB'). */
export function charConst(bytes: Uint8Array, col: number): bigint {
  if (bytes.length === 0 || bytes.length > 8) {
    throw new ColError(col, `character constant must hold 1 to 8 characters, got ${bytes.length}`);
  }
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

/** Resolves `.local` names against the enclosing global label. */
export type NameScope = (name: string) => string;

export function parseExpr(c: Cursor, scope: NameScope, minPrec = 0): Expr {
  let a = parseUnary(c, scope);
  for (;;) {
    const t = c.peek();
    if (t === undefined || t.t !== "punct" || !(t.v in PREC)) return a;
    const op = t.v as BinOp;
    const p = PREC[op];
    if (p <= minPrec) return a;
    c.next();
    const b = parseExpr(c, scope, p);
    a = { k: "bin", op, a, b, col: t.col };
  }
}

function parseUnary(c: Cursor, scope: NameScope): Expr {
  const t = c.next();
  if (t === undefined) throw new ColError(c.endCol, "expected an expression, got end of line");
  switch (t.t) {
    case "num":
      return { k: "num", v: t.v, col: t.col };
    case "str":
      return { k: "num", v: charConst(t.v, t.col), col: t.col };
    case "id": {
      const reg = lookupReg(t.v);
      if (reg) return { k: "reg", reg, col: t.col };
      return { k: "sym", name: scope(t.v), col: t.col };
    }
    case "punct":
      if (t.v === "(") {
        const e = parseExpr(c, scope);
        c.expectPunct(")", "to close the parenthesis");
        return e;
      }
      if (t.v === "-" || t.v === "~" || t.v === "+") return { k: "un", op: t.v, e: parseUnary(c, scope), col: t.col };
      if (t.v === "$") return { k: "here", col: t.col };
      if (t.v === "$$") return { k: "start", col: t.col };
      throw new ColError(t.col, `expected an expression, got "${t.v}"`);
    default: {
      const never: never = t;
      throw new Error(String(never));
    }
  }
}

export interface EvalEnv {
  lookup(name: string): bigint | undefined;
  here: bigint;
  start: bigint;
  /** Final pass: undefined symbols are errors instead of unknown values. */
  final: boolean;
}

export interface Value {
  v: bigint;
  known: boolean;
}

export function evaluate(e: Expr, env: EvalEnv): Value {
  switch (e.k) {
    case "num":
      return { v: e.v, known: true };
    case "here":
      return { v: env.here, known: true };
    case "start":
      return { v: env.start, known: true };
    case "sym": {
      const v = env.lookup(e.name);
      if (v !== undefined) return { v, known: true };
      if (env.final) {
        throw new ColError(
          e.col,
          nearRegister(e.name)
            ? `unknown register "${e.name}" (expected a register name or a defined symbol)`
            : `undefined symbol "${e.name}"`,
        );
      }
      return { v: 0n, known: false };
    }
    case "reg":
      throw new ColError(e.col, `register "${e.reg.name}" is not allowed in this expression (expected a constant)`);
    case "un": {
      const x = evaluate(e.e, env);
      const v = e.op === "-" ? -x.v : e.op === "~" ? ~x.v : x.v;
      return { v, known: x.known };
    }
    case "bin": {
      const a = evaluate(e.a, env);
      const b = evaluate(e.b, env);
      const known = a.known && b.known;
      return { v: binop(e.op, a.v, b.v, known, e.col), known };
    }
    default: {
      const never: never = e;
      throw new Error(String(never));
    }
  }
}

function binop(op: BinOp, a: bigint, b: bigint, known: boolean, col: number): bigint {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
    case "%":
      if (b === 0n) {
        if (!known) return 0n;
        throw new ColError(col, "division by zero");
      }
      return op === "/" ? a / b : a % b;
    case "<<":
      return b < 0n || b > 64n ? 0n : BigInt.asIntN(64, a << b);
    case ">>":
      return b < 0n || b > 64n ? 0n : a >> b;
    case "&":
      return a & b;
    case "|":
      return a | b;
    case "^":
      return a ^ b;
    default: {
      const never: never = op;
      throw new Error(String(never));
    }
  }
}

/** Does the expression mention any symbol or `$` (used to tell constant from address-dependent)? */
export function isConstantExpr(e: Expr): boolean {
  switch (e.k) {
    case "num":
      return true;
    case "sym":
    case "here":
    case "start":
    case "reg":
      return false;
    case "un":
      return isConstantExpr(e.e);
    case "bin":
      return isConstantExpr(e.a) && isConstantExpr(e.b);
    default: {
      const never: never = e;
      throw new Error(String(never));
    }
  }
}
