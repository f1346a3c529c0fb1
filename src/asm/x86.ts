/**
 * kvmsim's mini assembler for guest code: Intel syntax → x86 machine code.
 *
 * Multi-pass: labels from the previous pass feed the next; each instruction's length never
 * shrinks from one pass to the next, so branch sizes settle (short when the target is in range).
 */
import { encodeInstruction } from "./encoder.ts";
import { AsmError, ColError } from "./errors.ts";
import { type EvalEnv, evaluate } from "./expr.ts";
import type { Bits } from "./forms.ts";
import { type Body, parseSource, type Stmt } from "./parse.ts";

export { AsmError } from "./errors.ts";
export type { Bits } from "./forms.ts";

export interface AsmOptions {
  /** Starting mode (a `bits` directive may switch it); default 16 like nasm. */
  bits?: Bits;
  /** Address of the first byte; default 0 (an `org` before any code sets it too). */
  origin?: number;
}

export interface ListingLine {
  line: number;
  address: number;
  bytes: Uint8Array;
  source: string;
}

export interface AsmResult {
  bytes: Uint8Array;
  /** Label addresses (local labels as `global.local`). */
  labels: Map<string, number>;
  /** `equ` constants. */
  constants: Map<string, bigint>;
  /** One entry per source line that emitted bytes or defined a label. */
  listing: ListingLine[];
}

const MAX_PASSES = 40;

export function assemble(source: string, opts: AsmOptions = {}): AsmResult {
  const bits = opts.bits ?? 16;
  if (bits !== 16 && bits !== 32 && bits !== 64) {
    throw new AsmError(0, 0, `bad bits option ${bits} (expected 16, 32 or 64)`);
  }
  const stmts = parseSource(source, bits);
  let prev = new Map<string, bigint>();
  let prevLens: number[][] = stmts.map(() => []);
  let final = false;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const run = runPass(stmts, BigInt(opts.origin ?? 0), prev, prevLens, final);
    const stable = pass > 0 && sameSymbols(prev, run.symbols) && sameLens(prevLens, run.lens);
    if (final && stable) return run.result;
    final = stable;
    prev = run.symbols;
    prevLens = run.lens;
  }
  throw new AsmError(0, 0, `instruction sizes did not settle after ${MAX_PASSES} passes`);
}

function sameSymbols(a: Map<string, bigint>, b: Map<string, bigint>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function sameLens(a: number[][], b: number[][]): boolean {
  return a.every((x, i) => x.length === b[i]!.length && x.every((v, j) => v === b[i]![j]));
}

interface PassRun {
  symbols: Map<string, bigint>;
  lens: number[][];
  result: AsmResult;
}

function runPass(
  stmts: Stmt[],
  origin: bigint,
  prev: Map<string, bigint>,
  prevLens: number[][],
  final: boolean,
): PassRun {
  const symbols = new Map<string, bigint>();
  const labels = new Map<string, number>();
  const constants = new Map<string, bigint>();
  const out: number[] = [];
  const listing: ListingLine[] = [];
  const lens: number[][] = [];
  let start = origin;
  let addr = origin;
  let orgSeen = false;
  const env: EvalEnv = {
    lookup: (n) => symbols.get(n) ?? prev.get(n),
    here: addr,
    start,
    final,
  };
  stmts.forEach((stmt, si) => {
    const myLens: number[] = [];
    lens.push(myLens);
    const before = out.length;
    const startAddr = addr;
    try {
      for (const l of stmt.labels) {
        symbols.set(l.name, addr);
        labels.set(l.name, Number(addr));
      }
      let reps = 1n;
      if (stmt.times) {
        env.here = addr;
        const n = evaluate(stmt.times, env);
        if (n.known && n.v < 0n) {
          if (final) throw new ColError(stmt.timesCol, `times count ${n.v} is negative (expected ≥ 0)`);
          reps = 0n;
        } else reps = n.known ? n.v : 0n;
        if (reps > 1n << 24n) throw new ColError(stmt.timesCol, `times count ${reps} is too large (expected ≤ 16M)`);
      }
      const body = stmt.body;
      for (let r = 0n; r < reps && body; r++) {
        env.here = addr;
        env.start = start;
        const res = emitBody(
          body,
          stmt,
          env,
          addr,
          final,
          prevLens[si]?.[myLens.length] ?? 0,
          orgSeen || out.length > 0,
        );
        if (res.org !== undefined) {
          start = res.org;
          addr = res.org;
          orgSeen = true;
        }
        if (res.symbol) {
          symbols.set(res.symbol[0], res.symbol[1]);
          constants.set(res.symbol[0], res.symbol[1]);
        }
        out.push(...res.bytes);
        addr += BigInt(res.bytes.length);
        myLens.push(res.bytes.length);
      }
    } catch (e) {
      if (e instanceof ColError) throw new AsmError(stmt.line, e.col, e.message);
      throw e;
    }
    if (out.length > before || stmt.labels.length > 0) {
      listing.push({
        line: stmt.line,
        address: Number(startAddr),
        bytes: new Uint8Array(out.slice(before)),
        source: stmt.source,
      });
    }
  });
  return { symbols, lens, result: { bytes: new Uint8Array(out), labels, constants, listing } };
}

interface Emitted {
  bytes: number[];
  org?: bigint;
  symbol?: [string, bigint];
}

function emitBody(
  body: Body,
  stmt: Stmt,
  env: EvalEnv,
  addr: bigint,
  final: boolean,
  minLen: number,
  started: boolean,
): Emitted {
  switch (body.k) {
    case "insn":
      return {
        bytes: encodeInstruction(body.mn, body.mnCol, body.ops, body.pre, {
          bits: stmt.bits,
          addr,
          env,
          final,
          minLen,
        }),
      };
    case "data": {
      const bytes: number[] = [];
      const w = body.width;
      for (const item of body.items) {
        if (item.k === "str") {
          bytes.push(...item.bytes);
          for (let i = item.bytes.length; i % w !== 0; i++) bytes.push(0);
          continue;
        }
        const v = evaluate(item.e, env);
        const bitsW = BigInt(w * 8);
        if (v.known && (v.v < -(1n << (bitsW - 1n)) || v.v >= 1n << bitsW)) {
          throw new ColError(item.e.col, `value ${v.v} does not fit ${w * 8} bits`);
        }
        let x = BigInt.asUintN(w * 8, v.v);
        for (let i = 0; i < w; i++) {
          bytes.push(Number(x & 0xffn));
          x >>= 8n;
        }
      }
      return { bytes };
    }
    case "bits":
      return { bytes: [] };
    case "org": {
      const v = evaluate(body.e, env);
      if (!v.known) {
        if (final) throw new ColError(body.col, "org address must be known");
        return { bytes: [] };
      }
      if (!started) return { bytes: [], org: v.v };
      if (v.v < addr) {
        if (final) {
          throw new ColError(
            body.col,
            `org 0x${v.v.toString(16)} is behind the current address 0x${addr.toString(16)}`,
          );
        }
        return { bytes: [] };
      }
      return { bytes: new Array(Number(v.v - addr)).fill(0) };
    }
    case "align": {
      const n = evaluate(body.e, env);
      if (!n.known || n.v <= 0n || (n.v & (n.v - 1n)) !== 0n) {
        throw new ColError(body.col, `align needs a known power of two, got ${n.known ? n.v : "an unknown value"}`);
      }
      let fill = 0x90;
      if (body.fill) {
        const f = evaluate(body.fill, env);
        if (f.known && (f.v < -128n || f.v > 255n)) {
          throw new ColError(body.fill.col, `fill byte ${f.v} does not fit 8 bits`);
        }
        fill = Number(BigInt.asUintN(8, f.v));
      }
      const pad = Number((n.v - (addr % n.v)) % n.v);
      return { bytes: new Array(pad).fill(fill) };
    }
    case "equ": {
      const v = evaluate(body.e, env);
      return v.known ? { bytes: [], symbol: [body.name, v.v] } : { bytes: [] };
    }
    default: {
      const never: never = body;
      throw new Error(String(never));
    }
  }
}
