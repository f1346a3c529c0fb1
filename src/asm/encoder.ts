import { ColError } from "./errors.ts";
import { type EvalEnv, evaluate } from "./expr.ts";
import { allMnemonics, type Bits, type Field, type Form, formsFor, type Pat } from "./forms.ts";
import { dispProblem, dispValue, type MemLayout, memLayouts } from "./memory.ts";
import type { MemOperand, Operand } from "./operands.ts";
import { nearRegister, SEG_PREFIX } from "./registers.ts";

/** Prefixes written before the mnemonic (`lock`, `rep`, `o16`, `fs`, ...). */
export interface UserPrefixes {
  rep: 0 | 0xf2 | 0xf3;
  lock: boolean;
  o: 0 | 16 | 32;
  a: 0 | 16 | 32;
  seg: number; // -1 = none
}

export interface InsnCtx {
  bits: Bits;
  /** Address of the instruction's first byte. */
  addr: bigint;
  env: EvalEnv;
  final: boolean;
  /** The length chosen for this instruction in the previous pass: never choose shorter (sizes settle). */
  minLen: number;
}

interface Candidate {
  form: Form;
  mem: MemLayout | null;
  len: number;
  problem: string | null;
  problemCol: number;
  emit: () => number[];
}

const defaultOsize = (bits: Bits) => (bits === 16 ? 16 : 32);

function matchPat(p: Pat, op: Operand, form: Form): boolean {
  switch (p.k) {
    case "r":
    case "g":
      return op.k === "reg" && op.reg.cls === "gp" && op.reg.size === p.size;
    case "rm":
      return (op.k === "reg" && op.reg.cls === "gp" && op.reg.size === p.size) ||
        (op.k === "mem" && !op.far && (op.size === 0 || op.size === p.size));
    case "m":
      return op.k === "mem" && !op.far && (p.size === 0 || op.size === 0 || op.size === p.size);
    case "acc":
      return op.k === "reg" && op.reg.cls === "gp" && op.reg.num === 0 && op.reg.size === p.size;
    case "fixed":
      return op.k === "reg" && op.reg.name === p.name;
    case "seg":
      return op.k === "reg" && op.reg.cls === "sreg" && op.reg.num === p.num;
    case "sreg":
    case "cr":
    case "dr":
      return op.k === "reg" && op.reg.cls === p.k;
    case "imm":
    case "s8":
    case "lit":
      return op.k === "imm" && op.dist === "" && (op.size === 0 || form.osize === 0 || op.size === form.osize);
    case "rel8":
      return op.k === "imm" && op.dist !== "near" && op.size === 0;
    case "relv":
      return op.k === "imm" && op.dist !== "short" && (op.size === 0 || op.size === form.osize);
    case "far":
      return op.k === "far";
    case "mfar":
      return op.k === "mem" && (op.far || op.size === 48);
    case "moffs":
      return op.k === "mem" && !op.base && !op.index && !op.rel && !op.far && (op.size === 0 || op.size === p.size);
    default: {
      const never: never = p;
      throw new Error(String(never));
    }
  }
}

/** Size a pattern gives an unsized memory operand (for the "size not specified" check). */
function memPatSize(p: Pat): number {
  return p.k === "rm" || p.k === "m" || p.k === "moffs" ? p.size : 0;
}

function sigOf(ops: Operand[]): string {
  return ops.map((o) => {
    switch (o.k) {
      case "reg":
        return o.reg.cls === "gp" ? `reg${o.reg.size}` : o.reg.cls;
      case "mem":
        return o.far ? "far mem" : o.size ? `mem${o.size}` : "mem";
      case "imm":
        return o.dist ? `${o.dist} imm` : "imm";
      case "far":
        return "seg:off";
      default: {
        const never: never = o;
        return String(never);
      }
    }
  }).join(", ") || "no operands";
}

/** Range check of an immediate field. `target` = width the CPU extends the field to. */
function immProblem(v: bigint, bitsN: number, target: number): string | null {
  const n = BigInt(bitsN);
  const t = BigInt(target);
  const lo = -(1n << (t - 1n));
  const hi = 1n << t;
  const show = (x: bigint) => (x < 0n ? `-0x${(-x).toString(16)}` : `0x${x.toString(16)}`);
  if (v < lo || v >= hi) return `immediate ${show(v)} out of range (expected ${show(lo)}..${show(hi - 1n)})`;
  if (bitsN < target) {
    const s = BigInt.asIntN(target, v);
    if (s < -(1n << (n - 1n)) || s >= 1n << (n - 1n)) {
      return `immediate ${show(v)} does not fit a sign-extended ${bitsN}-bit field`;
    }
  }
  return null;
}

function le(v: bigint, bytes: number): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(bytes * 8, v);
  for (let i = 0; i < bytes; i++) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
  }
  return out;
}

function fieldBytes(f: Field, form: Form, asize: number): number {
  switch (f) {
    case "ib":
    case "cb":
      return 1;
    case "iw":
      return 2;
    case "id":
      return 4;
    case "iq":
      return 8;
    case "iz":
    case "cv":
      return form.osize === 16 ? 2 : 4;
    case "iv":
      return form.osize === 16 ? 2 : form.osize === 64 ? 8 : 4;
    case "pv":
      return form.osize === 16 ? 4 : 6;
    case "mo":
      return asize / 8;
    default: {
      const never: never = f;
      throw new Error(String(never));
    }
  }
}

/** Encodes one instruction, choosing the shortest form whose values fit. */
export function encodeInstruction(
  mn: string,
  mnCol: number,
  ops: Operand[],
  pre: UserPrefixes,
  ctx: InsnCtx,
): number[] {
  const { bits } = ctx;
  const forms = formsFor(bits).get(mn);
  if (!forms) {
    if (allMnemonics().has(mn)) throw new ColError(mnCol, `"${mn}" is not valid in ${bits}-bit mode`);
    throw new ColError(mnCol, `unknown instruction "${mn}"`);
  }
  for (const op of ops) {
    const regs = op.k === "reg" ? [op.reg] : op.k === "mem" ? [op.base, op.index].filter((r) => r !== undefined) : [];
    for (const r of regs) {
      if (r.only64 && bits !== 64) throw new ColError(op.col, `register "${r.name}" is only available in 64-bit mode`);
    }
  }
  const pinned = ops.some((o) =>
    (o.k === "reg" && o.reg.cls === "gp") || (o.k === "mem" && o.size !== 0) || (o.k === "imm" && o.size !== 0)
  );
  let matched = forms.filter((f) =>
    f.pats.length === ops.length && f.pats.every((p, i) => matchPat(p, ops[i]!, f)) &&
    !(f.dsz && !pinned && f.osize !== 0 && f.osize !== (bits === 64 && f.d64 ? 64 : defaultOsize(bits)))
  );
  if (matched.length === 0) {
    for (const op of ops) {
      if (op.k === "imm" && op.e.k === "sym" && ctx.env.lookup(op.e.name) === undefined && nearRegister(op.e.name)) {
        throw new ColError(op.col, `unknown register "${op.e.name}"`);
      }
    }
    const shapes = [...new Set(forms.map((f) => f.row.split("|")[1]!.trim() || "no operands"))].join("; ");
    throw new ColError(
      ops[0]?.col ?? mnCol,
      `invalid operands for "${mn}": ${sigOf(ops)} (expected one of: ${shapes})`,
    );
  }
  const memIdx = ops.findIndex((o) => o.k === "mem");
  const mem = memIdx >= 0 ? (ops[memIdx] as MemOperand) : undefined;
  if (mem && mem.size === 0 && !mem.far) {
    const sizes = new Set(matched.map((f) => memPatSize(f.pats[memIdx]!)));
    if (sizes.size > 1) {
      throw new ColError(
        mem.col,
        `operand size not specified for "${mn}" (expected byte, word, dword or qword before the memory operand)`,
      );
    }
  }
  if (pre.o) {
    matched = matched.filter((f) => f.osize === 0 || f.osize === pre.o);
    if (matched.length === 0) throw new ColError(mnCol, `o${pre.o} conflicts with the operand size of "${mn}"`);
  }

  const cands: Candidate[] = [];
  let structural = "";
  for (const form of matched) {
    const usesMem = form.modrm !== null && mem !== undefined && form.pats[memIdx]!.k !== "moffs";
    const layouts: (MemLayout | null)[] = usesMem ? memLayouts(mem, bits, pre.a, ctx.env) : [null];
    for (const layout of layouts) {
      const c = build(form, ops, layout, pre, ctx);
      if (typeof c === "string") structural = c;
      else cands.push(c);
    }
  }
  if (cands.length === 0) throw new ColError(mnCol, structural);
  const fitting = cands.filter((c) => c.problem === null);
  const pickShortest = (list: Candidate[]) => list.reduce((a, b) => (b.len < a.len ? b : a));
  let chosen: Candidate;
  if (fitting.length > 0) {
    const atLeast = fitting.filter((c) => c.len >= ctx.minLen);
    chosen = pickShortest(atLeast.length > 0 ? atLeast : fitting);
  } else {
    const longest = cands.reduce((a, b) => (b.len >= a.len ? b : a));
    if (ctx.final) throw new ColError(longest.problemCol, longest.problem!);
    chosen = longest;
  }
  const bytes = chosen.emit();
  if (bytes.length !== chosen.len) throw new Error(`internal: ${mn} length ${bytes.length} != ${chosen.len}`);
  return bytes;
}

function build(
  form: Form,
  ops: Operand[],
  layout: MemLayout | null,
  pre: UserPrefixes,
  ctx: InsnCtx,
): Candidate | string {
  const { bits, env } = ctx;
  let regField = typeof form.modrm === "number" ? form.modrm : 0;
  let rmReg: number | null = null;
  let plus = 0;
  let rexR = 0, rexB = 0, rexX = 0;
  let forceRex = false;
  let high8 = false;
  const immOps: { op: Operand; pat: Pat }[] = [];
  let moffs: MemOperand | null = null;
  ops.forEach((op, i) => {
    const p = form.pats[i]!;
    if (op.k === "reg") {
      if (op.reg.needsRex) forceRex = true;
      if (op.reg.high8) high8 = true;
    }
    switch (p.k) {
      case "r":
      case "sreg":
      case "cr":
      case "dr":
        if (op.k !== "reg") throw new Error("unreachable");
        if (form.plusReg) {
          plus = op.reg.num;
          rexB = op.reg.num >> 3;
        } else {
          regField = op.reg.num;
          rexR = op.reg.num >> 3;
          if (form.dup) {
            rmReg = op.reg.num;
            rexB = op.reg.num >> 3;
          }
        }
        break;
      case "g":
      case "rm":
        if (op.k === "reg") {
          rmReg = op.reg.num;
          rexB = op.reg.num >> 3;
        }
        break;
      case "imm":
      case "s8":
      case "rel8":
      case "relv":
      case "far":
      case "lit":
        immOps.push({ op, pat: p });
        break;
      case "moffs":
        if (op.k === "mem") moffs = op;
        break;
      case "m":
      case "mfar":
      case "acc":
      case "fixed":
      case "seg":
        break;
      default: {
        const never: never = p;
        throw new Error(String(never));
      }
    }
  });
  if (form.x90 && bits === 64 && form.osize === 32 && plus === 0) return "xchg eax, eax uses 87 C0 in 64-bit mode";
  if (layout) {
    rexB = layout.rexB;
    rexX = layout.rexX;
  }
  const rexW = form.osize === 64 && !form.d64 ? 1 : 0;
  const needRex = rexW || rexR || rexB || rexX || forceRex;
  if (needRex && high8) return "ah/bh/ch/dh cannot be encoded in an instruction that needs a REX prefix";
  if (needRex && bits !== 64) return "this operand combination needs a REX prefix (64-bit mode only)";

  // Address size: the memory operand's, the form's fixed one (jcxz/jecxz), or an a16/a32 prefix.
  const memOp = ops.find((o) => o.k === "mem") as MemOperand | undefined;
  let moffsAsize: number = bits;
  if (moffs) {
    const m: MemOperand = moffs;
    moffsAsize = pre.a || bits;
    if (m.disp.length === 0) return "moffs needs an address";
  }
  const effA = layout ? layout.asize : form.asize ? form.asize : moffs ? moffsAsize : pre.a || bits;
  if (form.asize && bits === 64 && form.asize === 16) return "16-bit address size is not available in 64-bit mode";
  const prefixes: number[] = [];
  const seg = memOp?.seg ? memOp.seg.num : pre.seg;
  if (seg >= 0) prefixes.push(SEG_PREFIX[seg]!);
  if (effA !== bits) prefixes.push(0x67);
  const osize = form.osize;
  if ((osize === 16 || osize === 32) && osize !== defaultOsize(bits)) prefixes.push(0x66);
  else if (osize === 0 && pre.o && pre.o !== defaultOsize(bits)) prefixes.push(0x66);
  if (pre.rep) prefixes.push(pre.rep);
  if (pre.lock) prefixes.push(0xf0);
  if (needRex) prefixes.push(0x40 | (rexW << 3) | (rexR << 2) | (rexX << 1) | rexB);

  const opcode = [...form.opcode];
  if (form.plusReg) opcode[opcode.length - 1]! += plus & 7;
  const modrmBytes: number[] = [];
  if (form.modrm !== null) {
    if (layout) {
      modrmBytes.push((layout.mod << 6) | ((regField & 7) << 3) | layout.rm);
      if (layout.sib !== null) modrmBytes.push(layout.sib);
    } else {
      if (rmReg === null) throw new Error(`internal: no rm operand for ${form.row}`);
      modrmBytes.push(0xc0 | ((regField & 7) << 3) | (rmReg & 7));
    }
  }
  const dispLen = layout?.dispSize ?? 0;
  const fieldLens = form.fields.map((f) => fieldBytes(f, form, f === "mo" ? moffsAsize : effA));
  const len = prefixes.length + opcode.length + modrmBytes.length + dispLen + fieldLens.reduce((a, b) => a + b, 0);
  const end = ctx.addr + BigInt(len);

  // Values and range problems.
  let problem: string | null = layout ? dispProblem(layout, end) : null;
  let problemCol = memOp?.col ?? 0;
  const fieldVals: bigint[] = [];
  const fieldOps = immOps.filter((io) => io.pat.k !== "lit");
  let k = 0;
  for (const f of form.fields) {
    const flen = fieldLens[fieldVals.length]!;
    if (f === "mo") {
      const d = dispValue(moffs!, env);
      const as = BigInt(moffsAsize);
      if (d.known && (d.v < -(1n << (as - 1n)) || d.v >= 1n << as)) {
        problem ??= `address ${d.v} does not fit ${moffsAsize} bits`;
        problemCol = moffs!.col;
      }
      fieldVals.push(d.v);
      continue;
    }
    const io = fieldOps[k++];
    if (!io) throw new Error(`internal: no operand for field ${f} in ${form.row}`);
    const { op, pat } = io;
    if (op.k === "far") {
      const s = evaluate(op.seg, env);
      const o = evaluate(op.off, env);
      const p1 = s.known ? immProblem(s.v, 16, 16) : null;
      const p2 = o.known ? immProblem(o.v, (flen - 2) * 8, (flen - 2) * 8) : null;
      if (p1 || p2) {
        problem ??= p1 ?? p2;
        problemCol = op.col;
      }
      fieldVals.push(BigInt.asUintN((flen - 2) * 8, o.v) | (BigInt.asUintN(16, s.v) << BigInt((flen - 2) * 8)));
      continue;
    }
    if (op.k !== "imm") throw new Error("unreachable");
    const val = evaluate(op.e, env);
    let p: string | null = null;
    if (f === "cb" || f === "cv") {
      const rel = val.v - end;
      fieldVals.push(rel);
      const nbits = flen * 8;
      if (val.known && (f === "cb" || bits === 64)) {
        const lim = 1n << BigInt(nbits - 1);
        if (rel < -lim || rel >= lim) {
          p = `branch target is ${rel} bytes away (expected ${-lim}..${lim - 1n} for a ${
            nbits === 8 ? "short" : "near"
          } branch)`;
        }
      }
    } else {
      fieldVals.push(val.v);
      if (val.known) {
        const target = pat.k === "s8" ? osize || 8 : (f === "iz" && osize === 64) ? 64 : flen * 8;
        p = immProblem(val.v, flen * 8, target);
      }
    }
    if (p) {
      problem ??= p;
      problemCol = op.col;
    }
  }
  // Literal operands (int 3, shift by 1) must have exactly their value.
  for (const { op, pat } of immOps) {
    if (pat.k === "lit" && op.k === "imm") {
      const val = evaluate(op.e, env);
      if (val.known && val.v !== pat.v) {
        problem ??= `not ${pat.v}`;
        problemCol = op.col;
      }
    }
  }
  const emit = () => {
    const out = [...prefixes, ...opcode, ...modrmBytes];
    if (layout && dispLen) out.push(...le(layout.ripTarget ? layout.disp - end : layout.disp, dispLen));
    fieldVals.forEach((v, i) => out.push(...le(v, fieldLens[i]!)));
    return out;
  };
  return { form, mem: layout, len, problem, problemCol, emit };
}
