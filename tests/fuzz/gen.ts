/**
 * Random instruction sequences for the differential fuzzer (diff.ts): the
 * integer subset both backends support, register operands only, long mode.
 *
 * A sequence is a list of units (the minimiser's granularity): one
 * instruction, a `push r / pop r` pair, or a short forward `jcc` over 1–3
 * instructions. Every instruction carries its flag contract from the SDM
 * (vol. 2 "Flags Affected"): which of CF PF AF ZF SF OF it reads, and which
 * it leaves defined or undefined. `analyse` walks a sequence with that
 * contract: a sequence is valid only if no instruction reads a flag that is
 * undefined at that point (so an undefined flag never leaks into a register),
 * and the flags still undefined at the end are masked from the comparison.
 *
 * @module
 */

export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;

/** One instruction and its flag contract. */
export interface Insn {
  text: string;
  /** Flags it reads (must be defined). */
  reads: number;
  /** Flags it may leave undefined (SDM "undefined"); conservative where the count is only known at run time. */
  undef: number;
  /** Flags it sets to a defined value. */
  def: number;
}

export type Unit =
  | { kind: "one"; insn: Insn }
  | { kind: "pair"; insns: [Insn, Insn] }
  | { kind: "jcc"; cc: string; reads: number; label: string; body: Insn[] };

export const GPRS64 = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;
const R32 = [
  "eax",
  "ebx",
  "ecx",
  "edx",
  "esi",
  "edi",
  "ebp",
  "r8d",
  "r9d",
  "r10d",
  "r11d",
  "r12d",
  "r13d",
  "r14d",
  "r15d",
];
const R16 = ["ax", "bx", "cx", "dx", "si", "di", "bp", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"];
const R8 = ["al", "bl", "cl", "dl", "sil", "dil", "bpl", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"];
type Width = 8 | 16 | 32 | 64;
const REGS: Record<Width, readonly string[]> = { 8: R8, 16: R16, 32: R32, 64: GPRS64 };

/** Condition codes and the flags each reads. */
export const CONDITIONS: ReadonlyArray<[string, number]> = [
  ["o", OF],
  ["no", OF],
  ["b", CF],
  ["ae", CF],
  ["e", ZF],
  ["ne", ZF],
  ["be", CF | ZF],
  ["a", CF | ZF],
  ["s", SF],
  ["ns", SF],
  ["p", PF],
  ["np", PF],
  ["l", SF | OF],
  ["ge", SF | OF],
  ["le", ZF | SF | OF],
  ["g", ZF | SF | OF],
];

/** mulberry32: a small deterministic PRNG. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

/** An "interesting" 64-bit value: edges of every width, small numbers, or random bits. */
export function randomValue(rng: Rng): bigint {
  switch (rng.int(6)) {
    case 0:
      return rng.pick([
        0n,
        1n,
        2n,
        0x7fn,
        0x80n,
        0xffn,
        0x7fffn,
        0x8000n,
        0xffffn,
        0x7fffffffn,
        0x80000000n,
        0xffffffffn,
      ]);
    case 1:
      return rng.pick([0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0xfffffffffffffffen]);
    case 2:
      return BigInt(rng.int(64));
    case 3:
      return BigInt(rng.u32());
    default:
      return rng.u64();
  }
}

function imm(rng: Rng, w: Width): number {
  const lim = w === 8 ? 128 : w === 16 ? 32768 : 2 ** 31;
  const v = rng.int(3) === 0 ? rng.pick([0, 1, -1, lim - 1, -lim]) : rng.int(2 * lim) - lim;
  return w === 8 ? Math.max(-128, Math.min(127, v)) : v;
}

const immText = (v: number) => (v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);
const insn = (text: string, reads: number, def: number, undef: number): Insn => ({ text, reads, def, undef });

/** One random instruction (no control flow). */
export function randomInsn(rng: Rng): Insn {
  const w = rng.pick([8, 16, 32, 64] as const);
  const wNo8 = rng.pick([16, 32, 64] as const);
  const r = (width: Width) => rng.pick(REGS[width]);
  const cond = rng.pick(CONDITIONS);
  switch (rng.int(16)) {
    case 0:
    case 1: {
      const op = rng.pick(["add", "sub", "adc", "sbb", "cmp", "and", "or", "xor", "test"]);
      const src = rng.int(2) === 0 ? r(w) : immText(imm(rng, w));
      const reads = op === "adc" || op === "sbb" ? CF : 0;
      const logic = ["and", "or", "xor", "test"].includes(op);
      return insn(`${op} ${r(w)}, ${src}`, reads, logic ? ARITH_FLAGS & ~AF : ARITH_FLAGS, logic ? AF : 0);
    }
    case 2:
      return rng.int(4) === 0
        ? insn(`mov ${r(64)}, 0x${rng.u64().toString(16)}`, 0, 0, 0)
        : insn(`mov ${r(w)}, ${rng.int(2) ? r(w) : immText(imm(rng, w))}`, 0, 0, 0);
    case 3: {
      const dw = rng.pick([32, 64] as const);
      const disp = rng.int(3) === 0 ? "" : `${rng.int(2) ? "+" : "-"}0x${rng.int(0x10000).toString(16)}`;
      const idx = rng.int(2) ? `+${r(64)}*${rng.pick([1, 2, 4, 8])}` : "";
      return insn(`lea ${r(dw)}, [${r(64)}${idx}${disp}]`, 0, 0, 0);
    }
    case 4: {
      const op = rng.pick(["inc", "dec", "neg", "not"]);
      const f = op === "not" ? 0 : op === "neg" ? ARITH_FLAGS : ARITH_FLAGS & ~CF;
      return insn(`${op} ${r(w)}`, 0, f, 0);
    }
    case 5:
    case 6: {
      const op = rng.pick(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"]);
      const rotate = op.startsWith("r");
      const reads = op === "rcl" || op === "rcr" ? CF : 0;
      if (rng.int(2) === 0) {
        // Count in CL: only known at run time, so the contract is the union over counts
        // (count 0 leaves every flag as it was, defined or not: nothing becomes defined).
        const undef = rotate ? OF : OF | AF | (w <= 16 ? CF : 0);
        const def = 0;
        const dst = rng.pick(REGS[w].filter((x) => !["cl", "cx", "ecx", "rcx"].includes(x)));
        return insn(`${op} ${dst}, cl`, reads, def, undef);
      }
      const count = rng.pick([0, 1, 1, 2, 3, w - 1, w, w + 1, 31, 32, 63, rng.int(256)]);
      const masked = count & (w === 64 ? 63 : 31);
      if (masked === 0) return insn(`${op} ${r(w)}, ${count}`, 0, 0, 0);
      const ofDef = masked === 1 ? OF : 0;
      if (rotate) return insn(`${op} ${r(w)}, ${count}`, reads, CF | ofDef, OF & ~ofDef);
      const cfUndef = masked >= w ? CF : 0;
      return insn(`${op} ${r(w)}, ${count}`, 0, (CF & ~cfUndef) | PF | ZF | SF | ofDef, AF | cfUndef | (OF & ~ofDef));
    }
    case 7: {
      const op = rng.pick(["bt", "bts", "btr", "btc"]);
      const src = rng.int(2) ? r(wNo8) : String(rng.int(wNo8));
      return insn(`${op} ${r(wNo8)}, ${src}`, 0, CF, OF | SF | ZF | AF | PF);
    }
    case 8:
      return insn(`set${cond[0]} ${r(8)}`, cond[1], 0, 0);
    case 9:
      return insn(`cmov${cond[0]} ${r(wNo8)}, ${r(wNo8)}`, cond[1], 0, 0);
    case 10:
    case 11: {
      const form = rng.int(4);
      const f = [CF | OF, SF | ZF | AF | PF] as const;
      if (form === 0) return insn(`mul ${r(w)}`, 0, f[0], f[1]);
      if (form === 1) return insn(`imul ${r(w)}`, 0, f[0], f[1]);
      if (form === 2) return insn(`imul ${r(wNo8)}, ${r(wNo8)}`, 0, f[0], f[1]);
      return insn(`imul ${r(wNo8)}, ${r(wNo8)}, ${immText(imm(rng, wNo8 === 16 ? 16 : 32))}`, 0, f[0], f[1]);
    }
    case 12:
      return insn(`xchg ${r(w)}, ${r(w)}`, 0, 0, 0);
    default:
      // Weighted towards plain ALU on 64/32-bit registers.
      return insn(`${rng.pick(["add", "sub", "xor", "and", "or", "cmp"])} ${r(64)}, ${r(64)}`, 0, ARITH_FLAGS, 0);
  }
}

/** Undefined-flag state after `i` (from `u`, the undefined flags before). */
const step = (u: number, i: Insn) => (u & ~i.def) | i.undef;

/** The flags undefined at the end, or undefined if some instruction reads a flag that is undefined where it runs. */
export function analyse(units: readonly Unit[]): number | undefined {
  let u = 0;
  const run = (i: Insn) => {
    if (i.reads & u) return false;
    u = step(u, i);
    return true;
  };
  for (const unit of units) {
    switch (unit.kind) {
      case "one":
        if (!run(unit.insn)) return undefined;
        break;
      case "pair":
        if (!unit.insns.every(run)) return undefined;
        break;
      case "jcc": {
        if (unit.reads & u) return undefined;
        const before = u;
        if (!unit.body.every(run)) return undefined;
        u |= before; // taken or not: undefined on either path
        break;
      }
      default: {
        const never: never = unit;
        throw new Error(`unknown unit ${JSON.stringify(never)}`);
      }
    }
  }
  return u;
}

/** A random valid sequence of about `n` units. */
export function randomSequence(rng: Rng, n: number): Unit[] {
  const units: Unit[] = [];
  let labels = 0;
  for (let tries = 0; units.length < n && tries < n * 20; tries++) {
    const k = rng.int(12);
    let unit: Unit;
    if (k === 0) {
      unit = {
        kind: "pair",
        insns: [insn(`push ${rng.pick(GPRS64)}`, 0, 0, 0), insn(`pop ${rng.pick(GPRS64)}`, 0, 0, 0)],
      };
    } else if (k === 1) {
      const [cc, reads] = rng.pick(CONDITIONS);
      const body = Array.from({ length: 1 + rng.int(3) }, () => randomInsn(rng));
      unit = { kind: "jcc", cc, reads, label: `L${labels++}`, body };
    } else unit = { kind: "one", insn: randomInsn(rng) };
    if (analyse([...units, unit]) !== undefined) units.push(unit);
  }
  return units;
}

/** Assembler source of `units`, ending in `hlt`. */
export function render(units: readonly Unit[]): string {
  const lines: string[] = [];
  for (const u of units) {
    if (u.kind === "one") lines.push(u.insn.text);
    else if (u.kind === "pair") lines.push(u.insns[0].text, u.insns[1].text);
    else lines.push(`j${u.cc} ${u.label}`, ...u.body.map((i) => i.text), `${u.label}:`);
  }
  lines.push("hlt");
  return lines.join("\n");
}

/**
 * Minimise: drop units (and instructions inside jcc bodies, keeping the
 * sequence valid) while `diverges` still holds; returns a 1-minimal sequence.
 */
export function minimise(units: readonly Unit[], diverges: (u: Unit[]) => boolean): Unit[] {
  let cur = [...units];
  let changed = true;
  while (changed) {
    changed = false;
    for (let i = 0; i < cur.length; i++) {
      const cands: Unit[][] = [cur.filter((_, j) => j !== i)];
      const u = cur[i]!;
      if (u.kind === "jcc") {
        cands.push([...cur.slice(0, i), ...u.body.map((insn): Unit => ({ kind: "one", insn })), ...cur.slice(i + 1)]);
        if (u.body.length > 1) {
          u.body.forEach((_, b) =>
            cands.push([...cur.slice(0, i), { ...u, body: u.body.filter((_, k) => k !== b) }, ...cur.slice(i + 1)])
          );
        }
      }
      const hit = cands.find((c) => analyse(c) !== undefined && diverges(c));
      if (hit) {
        cur = hit;
        changed = true;
        break;
      }
    }
  }
  return cur;
}
