import { ColError } from "./errors.ts";
import { type EvalEnv, evaluate, isConstantExpr } from "./expr.ts";
import type { Bits } from "./forms.ts";
import type { MemOperand } from "./operands.ts";

/** One way of encoding a memory operand's ModRM.rm side. */
export interface MemLayout {
  mod: number;
  rm: number;
  sib: number | null;
  /** Displacement width in bytes (0, 1, 2 or 4). */
  dispSize: number;
  disp: bigint;
  known: boolean;
  /** RIP-relative `[rel x]`: `disp` is the target, the field holds target - end of instruction. */
  ripTarget: boolean;
  rexX: number;
  rexB: number;
  asize: 16 | 32 | 64;
}

const BITS16: Record<string, number> = { "bx+si": 0, "bx+di": 1, "bp+si": 2, "bp+di": 3, si: 4, di: 5, bp: 6, bx: 7 };

export function dispValue(mem: MemOperand, env: EvalEnv): { v: bigint; known: boolean } {
  let v = 0n;
  let known = true;
  for (const e of mem.disp) {
    const x = evaluate(e, env);
    v += x.v;
    known &&= x.known;
  }
  return { v, known };
}

/** Address size of a memory operand: from its registers, else the mode's (or an `a16`/`a32` prefix's). */
export function addressSize(mem: MemOperand, bits: Bits, userA: 0 | 16 | 32): 16 | 32 | 64 {
  const regs = [mem.base, mem.index].filter((r) => r !== undefined);
  if (regs.length === 0) return userA || bits;
  const size = regs[0]!.size;
  for (const r of regs) {
    if (r.size !== size) {
      throw new ColError(
        mem.col,
        `base and index registers must have the same size (${mem.base?.name}, ${mem.index?.name})`,
      );
    }
  }
  if (size === 64 && bits !== 64) throw new ColError(mem.col, "64-bit address registers need 64-bit mode");
  if (size === 16 && bits === 64) throw new ColError(mem.col, "16-bit addressing is not available in 64-bit mode");
  return size as 16 | 32 | 64;
}

/** All structurally valid layouts of a memory operand; which displacement fits is checked later. */
export function memLayouts(mem: MemOperand, bits: Bits, userA: 0 | 16 | 32, env: EvalEnv): MemLayout[] {
  const { v, known } = dispValue(mem, env);
  const asize = addressSize(mem, bits, userA);
  const base: Omit<MemLayout, "mod" | "rm" | "sib" | "dispSize"> = {
    disp: v,
    known,
    ripTarget: false,
    rexX: 0,
    rexB: 0,
    asize,
  };
  const hasDisp = mem.disp.length > 0;
  if (mem.rel) {
    if (bits !== 64) throw new ColError(mem.col, "[rel ...] needs 64-bit mode");
    if (mem.base || mem.index) throw new ColError(mem.col, "[rel ...] takes an address only (expected no registers)");
    return [{ ...base, mod: 0, rm: 5, sib: null, dispSize: 4, ripTarget: true, asize: 64 }];
  }
  if (mem.base?.cls === "rip") {
    // Like GNU as: `[rip + 0x40]` is a literal displacement, `[rip + label]` is relative to label.
    const ripTarget = !mem.disp.every(isConstantExpr);
    return [{ ...base, mod: 0, rm: 5, sib: null, dispSize: 4, asize: 64, ripTarget }];
  }
  if (asize === 16) {
    if (mem.scale !== 1) throw new ColError(mem.col, "16-bit addressing has no scaled index");
    const names = [mem.base, mem.index].filter((r) => r !== undefined).map((r) => r.name).sort();
    if (names.length === 0) return [{ ...base, mod: 0, rm: 6, sib: null, dispSize: 2 }];
    const key = names.length === 2
      ? (names[0] === "bp" || names[0] === "bx" ? `${names[0]}+${names[1]}` : `${names[1]}+${names[0]}`)
      : names[0]!;
    const rm = BITS16[key];
    if (rm === undefined) {
      throw new ColError(mem.col, `invalid 16-bit address [${names.join("+")}] (expected bx/bp plus optional si/di)`);
    }
    const out: MemLayout[] = [];
    if (rm !== 6) out.push({ ...base, mod: 0, rm, sib: null, dispSize: 0 });
    out.push({ ...base, mod: 1, rm, sib: null, dispSize: 1 }, { ...base, mod: 2, rm, sib: null, dispSize: 2 });
    return out;
  }
  const b = mem.base;
  const x = mem.index;
  if (x && x.num === 4) throw new ColError(mem.col, `"${x.name}" cannot be an index register`);
  const rexB = b && b.num >= 8 ? 1 : 0;
  const rexX = x && x.num >= 8 ? 1 : 0;
  const ss = { 1: 0, 2: 1, 4: 2, 8: 3 }[mem.scale] ?? 0;
  if (!b) {
    if (x) return [{ ...base, mod: 0, rm: 4, sib: (ss << 6) | ((x.num & 7) << 3) | 5, dispSize: 4, rexX }];
    if (bits === 64) return [{ ...base, mod: 0, rm: 4, sib: 0x25, dispSize: 4 }];
    return [{ ...base, mod: 0, rm: 5, sib: null, dispSize: 4 }];
  }
  const needSib = x !== undefined || (b.num & 7) === 4;
  const sib = needSib ? (ss << 6) | (((x?.num ?? 4) & 7) << 3) | (b.num & 7) : null;
  const rm = needSib ? 4 : b.num & 7;
  const out: MemLayout[] = [];
  if ((b.num & 7) !== 5 && (!hasDisp || !known || v === 0n)) {
    out.push({ ...base, mod: 0, rm, sib, dispSize: 0, rexB, rexX });
  }
  out.push({ ...base, mod: 1, rm, sib, dispSize: 1, rexB, rexX }, {
    ...base,
    mod: 2,
    rm,
    sib,
    dispSize: 4,
    rexB,
    rexX,
  });
  return out;
}

/** Why a layout's displacement does not fit, or null when it does. `end` = address after the instruction. */
export function dispProblem(l: MemLayout, end: bigint): string | null {
  if (!l.known) return null;
  let v = l.disp;
  if (l.ripTarget) {
    v = l.disp - end;
    return v >= -(1n << 31n) && v < 1n << 31n
      ? null
      : `RIP-relative target is ${v} bytes away (expected within ±2 GiB)`;
  }
  const as = BigInt(l.asize);
  if (v < -(1n << (as - 1n)) || v >= 1n << as) return `displacement ${v} does not fit a ${l.asize}-bit address`;
  const s = BigInt.asIntN(l.asize, v);
  switch (l.dispSize) {
    case 0:
      return s === 0n ? null : "displacement is not zero";
    case 1:
      return s >= -128n && s < 128n ? null : "displacement does not fit 8 bits";
    case 2:
      return null;
    case 4:
      if (l.asize === 64 && (s < -(1n << 31n) || s >= 1n << 31n)) {
        return `displacement ${v} does not fit a sign-extended 32-bit field`;
      }
      return null;
    default:
      throw new Error(`bad displacement size ${l.dispSize}`);
  }
}
