/**
 * Random instruction sequences for the differential fuzzer (diff.ts): the
 * integer subset both backends support, long mode, register and memory
 * operands (memory.ts), each instruction with its SDM flag contract
 * (sequence.ts). Units: single instructions; atomic groups (a memory
 * operand's address setup plus the instruction using it, push/pop pairs and
 * other stack groups, a DIV/IDIV with the dividend prepared, a BSF/BSR with
 * its source made non-zero, string instructions with RSI/RDI/RCX set up,
 * calls/jumps with their labels, an FS/GS-relative access between two
 * WRMSRs, an access outside RAM); short forward `jcc`s; counted loops.
 * `randomSequence` keeps only units that leave the sequence valid.
 *
 * This module also re-exports the sequence model, the memory areas, the
 * registers and the PRNG, so callers import everything from here.
 *
 * @module
 */
import { ENV } from "../snippets/run.ts";
import { memOperand, MMIO_BASE, SCRATCH, UNMAPPED_BASE } from "./memory.ts";
import { GPRS64, REGS, SIZE_KW, type Width } from "./registers.ts";
import type { Rng } from "./rng.ts";
import {
  AF,
  analyse,
  ARITH_FLAGS,
  type BodyUnit,
  CF,
  immText,
  type Insn,
  insn,
  insnsOf,
  OF,
  PF,
  plain,
  SF,
  u64,
  type Unit,
  ZF,
} from "./sequence.ts";

export * from "./sequence.ts";
export * from "./memory.ts";
export { GPRS64, type Width } from "./registers.ts";
export { randomValue, Rng } from "./rng.ts";

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

function imm(rng: Rng, w: Width): number {
  const lim = w === 8 ? 128 : w === 16 ? 32768 : 2 ** 31;
  const v = rng.int(3) === 0 ? rng.pick([0, 1, -1, lim - 1, -lim]) : rng.int(2 * lim) - lim;
  return w === 8 ? Math.max(-128, Math.min(127, v)) : v;
}

/** Operand builder for one instruction: at most one memory operand, its setup collected. */
class Ops {
  setup: Insn[] = [];
  mem: { addr: number; bytes: number } | undefined;
  constructor(readonly rng: Rng, readonly pMem: number, readonly label: () => string) {}
  /** `lock ` one time in three when the destination is memory (the caller only asks for lockable forms). */
  lock(): string {
    return this.mem !== undefined && this.rng.int(3) === 0 ? "lock " : "";
  }
  r(w: Width): string {
    return this.rng.pick(REGS[w]);
  }
  m(w: Width): string {
    const { text, addr } = memOperand(this.rng, w, this.setup);
    this.mem = { addr, bytes: w / 8 };
    return text;
  }
  /** A register or (once per instruction, with probability pMem) a memory operand. */
  rm(w: Width): string {
    return this.mem === undefined && this.rng.int(100) < this.pMem ? this.m(w) : this.r(w);
  }
  /** Wrap the instruction: a group when it has setup. */
  unit(i: Insn, pre: Insn[] = []): BodyUnit {
    if (this.mem) i.mem = this.mem;
    const all = [...this.setup, ...pre, i];
    return all.length === 1 ? { kind: "one", insn: i } : { kind: "group", insns: all };
  }
}

const LOGIC = ["and", "or", "xor", "test"];

/** Contract of a shift/rotate by an immediate count (SDM SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR). */
export function shiftContract(op: string, w: Width, count: number): Pick<Insn, "reads" | "def" | "undef"> {
  const masked = count & (w === 64 ? 63 : 31);
  const reads = op === "rcl" || op === "rcr" ? CF : 0;
  if (masked === 0) return { reads: 0, def: 0, undef: 0 };
  const ofDef = masked === 1 ? OF : 0;
  if (op === "rol" || op === "ror") return { reads, def: CF | ofDef, undef: OF & ~ofDef };
  if (op === "rcl" || op === "rcr") {
    // tempCOUNT = masked mod (w+1) for 8/16 bits: 0 rotates nothing and leaves CF as it was; OF is undefined unless masked = 1.
    const rotates = w >= 32 || masked % (w + 1) !== 0;
    return { reads, def: (rotates ? CF : 0) | ofDef, undef: OF & ~ofDef };
  }
  const cfUndef = (op === "shl" || op === "shr") && masked >= w ? CF : 0;
  return { reads: 0, def: (CF & ~cfUndef) | PF | ZF | SF | ofDef, undef: AF | cfUndef | (OF & ~ofDef) };
}

/** Contract of SHLD/SHRD by an immediate count (w ≥ 16; 16-bit counts above 16 are excluded by the generator). */
export function doubleShiftContract(w: Width, count: number): Pick<Insn, "reads" | "def" | "undef"> {
  const masked = count & (w === 64 ? 63 : 31);
  if (masked === 0) return { reads: 0, def: 0, undef: 0 };
  const ofDef = masked === 1 ? OF : 0;
  return { reads: 0, def: CF | PF | ZF | SF | ofDef, undef: AF | (OF & ~ofDef) };
}

let anonymousLabels = 0;
const anonymousLabel = () => `A${anonymousLabels++}`;

/**
 * One random unit (an instruction, or an atomic group; calls and jumps only inside a group). `pMem`: % of
 * memory operands; `label`: a fresh label name (unique in the sequence).
 */
export function randomOp(rng: Rng, pMem = 35, label: () => string = anonymousLabel): BodyUnit {
  const o = new Ops(rng, pMem, label);
  const w = rng.pick([8, 16, 32, 64] as const);
  const wNo8 = rng.pick([16, 32, 64] as const);
  const cond = rng.pick(CONDITIONS);
  const I = (text: string, reads: number, def: number, undef: number) => o.unit(insn(text, reads, def, undef));
  switch (rng.int(32)) {
    case 0:
    case 1:
    case 2: {
      const op = rng.pick(["add", "sub", "adc", "sbb", "cmp", "and", "or", "xor", "test"]);
      const reads = op === "adc" || op === "sbb" ? CF : 0;
      const logic = LOGIC.includes(op);
      const def = logic ? ARITH_FLAGS & ~AF : ARITH_FLAGS, undef = logic ? AF : 0;
      const form = rng.int(3);
      const lk = () => (op === "cmp" || op === "test" ? "" : o.lock());
      if (form === 0) {
        const d = o.rm(w);
        return I(`${lk()}${op} ${d}, ${o.r(w)}`, reads, def, undef);
      }
      if (form === 1 && op !== "test") return I(`${op} ${o.r(w)}, ${o.rm(w)}`, reads, def, undef);
      const d = o.rm(w);
      return I(`${lk()}${op} ${d}, ${immText(imm(rng, w))}`, reads, def, undef);
    }
    case 3:
    case 4: {
      const form = rng.int(5);
      if (form === 0) return I(`mov ${o.r(64)}, 0x${rng.u64().toString(16)}`, 0, 0, 0);
      if (form === 1) return I(`mov ${o.rm(w)}, ${immText(imm(rng, w))}`, 0, 0, 0);
      if (form === 2) return I(`mov ${o.r(w)}, ${o.rm(w)}`, 0, 0, 0);
      return I(`mov ${o.rm(w)}, ${o.r(w)}`, 0, 0, 0);
    }
    case 5: {
      // LEA: 16/32/64-bit destination, 64- or 32-bit address size (the address is truncated to the destination).
      const aw = rng.int(3) === 0 ? 32 : 64;
      const disp = rng.int(3) === 0 ? "" : `${rng.int(2) ? "+" : "-"}0x${rng.int(0x10000).toString(16)}`;
      const idx = rng.int(2) ? `+${o.r(aw)}*${rng.pick([1, 2, 4, 8])}` : "";
      return I(`lea ${o.r(wNo8)}, [${o.r(aw)}${idx}${disp}]`, 0, 0, 0);
    }
    case 6:
    case 7: {
      const op = rng.pick(["inc", "dec", "neg", "not"]);
      const f = op === "not" ? 0 : op === "neg" ? ARITH_FLAGS : ARITH_FLAGS & ~CF;
      const d = o.rm(w);
      return I(`${o.lock()}${op} ${d}`, 0, f, 0);
    }
    case 8:
    case 9: {
      const op = rng.pick(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"]);
      const rotate = op.startsWith("r");
      const reads = op === "rcl" || op === "rcr" ? CF : 0;
      if (rng.int(3) === 0) {
        // Count in CL: only known at run time, so the contract is the union over counts
        // (count 0 leaves every flag as it was, defined or not: nothing becomes defined).
        const undef = rotate ? OF : OF | AF | (w <= 16 ? CF : 0);
        let dst = o.rm(w);
        while (["cl", "cx", "ecx", "rcx"].includes(dst)) dst = o.r(w);
        return I(`${op} ${dst}, cl`, reads, 0, undef);
      }
      const count = rng.pick([0, 1, 1, 2, 3, w - 1, w, w + 1, 9, 17, 31, 32, 63, rng.int(256)]);
      const c = shiftContract(op, w, count);
      return I(`${op} ${o.rm(w)}, ${count}`, c.reads, c.def, c.undef);
    }
    case 10: {
      // BT*: CF is the bit; ZF unaffected; OF SF AF PF undefined. A register bit offset into memory would
      // address outside the operand (bit string), so memory destinations take an immediate offset.
      const op = rng.pick(["bt", "bts", "btr", "btc"]);
      if (rng.int(4) === 0) return bitStringUnit(rng, o, op, wNo8);
      const dst = o.rm(wNo8);
      const src = o.mem === undefined && rng.int(2) ? o.r(wNo8) : String(rng.int(256));
      return I(`${op === "bt" ? "" : o.lock()}${op} ${dst}, ${src}`, 0, CF, OF | SF | AF | PF);
    }
    case 11:
      return I(`set${cond[0]} ${o.rm(8)}`, cond[1], 0, 0);
    case 12:
      return I(`cmov${cond[0]} ${o.r(wNo8)}, ${o.rm(wNo8)}`, cond[1], 0, 0);
    case 13:
    case 14: {
      // MUL/IMUL: CF OF defined, SF ZF AF PF undefined.
      const form = rng.int(4);
      const f = [CF | OF, SF | ZF | AF | PF] as const;
      if (form === 0) return I(`mul ${o.rm(w)}`, 0, f[0], f[1]);
      if (form === 1) return I(`imul ${o.rm(w)}`, 0, f[0], f[1]);
      if (form === 2) return I(`imul ${o.r(wNo8)}, ${o.rm(wNo8)}`, 0, f[0], f[1]);
      return I(`imul ${o.r(wNo8)}, ${o.rm(wNo8)}, ${immText(imm(rng, wNo8 === 16 ? 16 : 32))}`, 0, f[0], f[1]);
    }
    case 15:
    case 16:
      return divUnit(rng, o, w);
    case 17:
      return I(`xchg ${o.rm(w)}, ${o.r(w)}`, 0, 0, 0);
    case 18: {
      const form = rng.int(3);
      if (form === 0) return I(`movzx ${o.r(wNo8)}, ${o.rm(8)}`, 0, 0, 0);
      if (form === 1) {
        const dw = rng.pick([32, 64] as const);
        return I(`${rng.pick(["movzx", "movsx"])} ${o.r(dw)}, ${o.rm(16)}`, 0, 0, 0);
      }
      return rng.int(2) ? I(`movsx ${o.r(wNo8)}, ${o.rm(8)}`, 0, 0, 0) : I(`movsxd ${o.r(64)}, ${o.rm(32)}`, 0, 0, 0);
    }
    case 19:
      // XADD: flags as ADD; CMPXCHG: flags as CMP (memory destination only: the register form's failure
      // write-back is a known PVM emulator divergence, tests/conformance/kvm_divergences.ts).
      if (rng.int(2)) {
        const d = o.rm(w);
        return I(`${o.lock()}xadd ${d}, ${o.r(w)}`, 0, ARITH_FLAGS, 0);
      }
      {
        const d = o.m(w);
        return I(`${o.lock()}cmpxchg ${d}, ${o.r(w)}`, 0, ARITH_FLAGS, 0);
      }
    case 20:
      return bitScanUnit(rng, o, wNo8);
    case 21: {
      // SHLD/SHRD: 16-bit counts above 16 leave the result undefined, so 16-bit takes immediate counts ≤ 16.
      const op = rng.pick(["shld", "shrd"]);
      if (wNo8 !== 16 && rng.int(3) === 0) {
        let dst = o.rm(wNo8);
        while (["cx", "ecx", "rcx"].includes(dst)) dst = o.r(wNo8);
        return I(`${op} ${dst}, ${o.r(wNo8)}, cl`, 0, 0, OF | AF);
      }
      const count = wNo8 === 16 ? rng.int(17) : rng.pick([0, 1, 2, wNo8 - 1, rng.int(64), rng.int(256)]);
      const c = doubleShiftContract(wNo8, count);
      return I(`${op} ${o.rm(wNo8)}, ${o.r(wNo8)}, ${count}`, c.reads, c.def, c.undef);
    }
    case 22:
      return I(`bswap ${o.r(rng.pick([32, 64] as const))}`, 0, 0, 0);
    case 23:
      return I(rng.pick(["cbw", "cwde", "cdqe", "cwd", "cdq", "cqo"]), 0, 0, 0);
    case 24: {
      const k = rng.int(5);
      if (k === 0) return I("lahf", CF | PF | AF | ZF | SF, 0, 0);
      if (k === 1) return I("sahf", 0, CF | PF | AF | ZF | SF, 0);
      if (k === 2) return I("cmc", CF, CF, 0);
      return I(k === 3 ? "clc" : "stc", 0, CF, 0);
    }
    case 25:
    case 26:
      return stackUnit(rng, o);
    case 27:
      return stringUnit(rng);
    case 28:
      return legacyByteUnit(rng, o);
    case 29: {
      const k = rng.int(4);
      return k === 0 ? outsideUnit(rng, o) : k === 1 ? segmentUnit(rng, o) : randomOp(rng, pMem, label);
    }
    default: {
      // Weighted towards plain ALU on 64-bit registers.
      const op = rng.pick(["add", "sub", "xor", "and", "or", "cmp"]);
      const logic = LOGIC.includes(op);
      return I(`${op} ${o.r(64)}, ${o.r(64)}`, 0, logic ? ARITH_FLAGS & ~AF : ARITH_FLAGS, logic ? AF : 0);
    }
  }
}

/**
 * DIV/IDIV (SDM: all six flags undefined). Three times in four the dividend's upper half is prepared
 * (zeroed for DIV, sign-extended for IDIV) so the quotient usually fits; otherwise, or when the divisor is
 * zero / the quotient overflows, the outcome is #DE.
 */
function divUnit(rng: Rng, o: Ops, w: Width): BodyUnit {
  const op = rng.pick(["div", "idiv"]);
  const src = o.rm(w);
  const pre: Insn[] = [];
  if (rng.int(4) !== 0) {
    if (op === "div") pre.push(plain(w === 8 ? "movzx eax, al" : "mov edx, 0"));
    else pre.push(plain(w === 8 ? "cbw" : w === 16 ? "cwd" : w === 32 ? "cdq" : "cqo"));
  }
  // The preparation goes first: the operand's setup may load RAX/RDX as its base or index.
  const div = insn(`${op} ${src}`, 0, 0, ARITH_FLAGS);
  if (o.mem) div.mem = o.mem;
  const all = [...pre, ...o.setup, div];
  return all.length === 1 ? { kind: "one", insn: div } : { kind: "group", insns: all };
}

/**
 * BSF/BSR: ZF defined, CF OF SF AF PF undefined. A zero source leaves the destination undefined (SDM), so
 * the source is made non-zero first (`or src, imm` with imm ≠ 0), or, for the ZF = 1 outcome, the source is
 * zeroed and the destination overwritten afterwards.
 */
function bitScanUnit(rng: Rng, o: Ops, w: Width): BodyUnit {
  const op = rng.pick(["bsf", "bsr"]);
  const src = o.rm(w);
  const dst = o.r(w);
  const scan = insn(`${op} ${dst}, ${src}`, 0, ZF, CF | OF | SF | AF | PF);
  if (o.mem) scan.mem = o.mem;
  const bit = rng.int(w === 16 ? 15 : 31);
  if (rng.int(5) === 0) {
    const zero = insn(`mov ${src}, 0`, 0, 0, 0);
    if (o.mem) zero.mem = o.mem;
    return {
      kind: "group",
      insns: [...o.setup, zero, scan, plain(`mov ${dst}, ${immText(rng.u32() & (w === 16 ? 0x7fff : 0x7fffffff))}`)],
    };
  }
  const nz = insn(`or ${src}, ${immText(1 << bit)}`, 0, ARITH_FLAGS & ~AF, AF);
  if (o.mem) nz.mem = o.mem;
  return { kind: "group", insns: [...o.setup, nz, scan] };
}

/**
 * BT/BTS/BTR/BTC with a memory bit base and a register bit offset: the offset (signed, operand-sized; the
 * register's upper bits are random and ignored) selects the operand-sized word at
 * EA + (offset SAR log2(w)) * w/8, which is placed inside SCRATCH.
 */
function bitStringUnit(rng: Rng, o: Ops, op: string, w: Width): BodyUnit {
  const offReg = rng.pick(GPRS64);
  const off = rng.int(6 * w) - 3 * w;
  const bytes = w / 8;
  const accessed = SCRATCH.base + rng.int(SCRATCH.size - bytes + 1);
  const target = accessed - Math.floor(off / w) * bytes;
  const low = BigInt.asUintN(w, BigInt(off));
  const full = w === 64 ? low : (rng.u64() >> BigInt(w) << BigInt(w)) | low;
  const setup: Insn[] = [plain(`mov ${offReg}, ${immText(full)}`)];
  const { text } = memOperand(rng, w, setup, { target, avoid: [offReg] });
  const lock = op !== "bt" && rng.int(3) === 0 ? "lock " : "";
  const i = insn(
    `${lock}${op} ${text}, ${REGS[w][GPRS64.indexOf(offReg as typeof GPRS64[number])]}`,
    0,
    CF,
    OF | SF | AF | PF,
  );
  i.mem = { addr: accessed, bytes };
  return { kind: "group", insns: [...o.setup, ...setup, i] };
}

/**
 * String instructions (MOVS STOS LODS CMPS SCAS, b/w/d/q), plain or with REP/REPE/REPNE and a count of 0–8
 * in RCX, upwards or (STD … CLD) downwards; RSI/RDI point into SCRATCH so every element touched is inside
 * it. CMPS/SCAS define all six flags when they run at least once; a REP count of 0 changes nothing.
 */
function stringUnit(rng: Rng): BodyUnit {
  const op = rng.pick(["movs", "stos", "lods", "cmps", "scas"]);
  const size = rng.pick([1, 2, 4, 8]);
  const suffix = { 1: "b", 2: "w", 4: "d", 8: "q" }[size]!;
  const compares = op === "cmps" || op === "scas";
  const prefix = rng.int(3) === 0 ? "" : compares ? rng.pick(["repe", "repne"]) : "rep";
  const n = prefix ? rng.int(9) : 1;
  const down = rng.int(4) === 0;
  const span = Math.max(n, 1) * size;
  const start = () => {
    const lo = SCRATCH.base + (down ? span - size : 0);
    const hi = SCRATCH.base + SCRATCH.size - (down ? size : span);
    return lo + rng.int(hi - lo + 1);
  };
  const insns: Insn[] = [];
  if (op !== "stos" && op !== "scas") insns.push(plain(`mov rsi, ${immText(start())}`));
  if (op !== "lods") insns.push(plain(`mov rdi, ${immText(start())}`));
  if (prefix) insns.push(plain(`mov ecx, ${n}`));
  if (down) insns.push(insn("std", 0, 0, 0));
  const f = compares && n > 0 ? ARITH_FLAGS : 0;
  insns.push(insn(`${prefix ? `${prefix} ` : ""}${op}${suffix}`, 0, f, 0));
  if (down) insns.push(insn("cld", 0, 0, 0));
  return { kind: "group", insns };
}

/**
 * One access outside RAM's data areas, through a base register loaded in the group: MMIO (the exits and
 * their data are compared; reads get 0xff bytes), a not-present page above 4 GiB (#PF, error code on the
 * frame) or a non-canonical address (#GP(0)). The flags masked for a fault are those undefined before it.
 */
function outsideUnit(rng: Rng, o: Ops): BodyUnit {
  const kind = rng.pick(["mmio", "mmio", "unmapped", "noncanonical"] as const);
  const w = rng.pick([8, 16, 32, 64] as const);
  const addr = kind === "mmio"
    ? BigInt(MMIO_BASE + rng.int(0x2000))
    : kind === "unmapped"
    ? UNMAPPED_BASE + BigInt(rng.int(2 ** 30))
    : rng.pick([0x8000000000000000n, 0x0000800000000000n, 0xffff7ff000000000n]) + BigInt(rng.int(2 ** 20));
  const base = rng.pick(GPRS64);
  const d = rng.int(3) === 0 ? rng.int(0x100) : 0;
  const m = `${SIZE_KW[w]} [${base}${d ? `+0x${d.toString(16)}` : ""}]`;
  const setup = plain(`mov ${base}, ${immText(u64(addr - BigInt(d)))}`);
  const r = o.r(w);
  const op = rng.int(6);
  const i = op === 0
    ? insn(`mov ${r}, ${m}`, 0, 0, 0)
    : op === 1
    ? insn(`mov ${m}, ${r}`, 0, 0, 0)
    : op === 2
    ? insn(`add ${m}, ${r}`, 0, ARITH_FLAGS, 0)
    : op === 3
    ? insn(`cmp ${r}, ${m}`, 0, ARITH_FLAGS, 0)
    : op === 4
    ? insn(`xchg ${m}, ${r}`, 0, 0, 0)
    : insn(`inc ${m}`, 0, ARITH_FLAGS & ~CF, 0);
  i.outside = { kind, addr: `0x${addr.toString(16)}` };
  return { kind: "group", insns: [setup, i] };
}

/**
 * An FS- or GS-relative access: WRMSR sets the segment base (IA32_FS_BASE / IA32_GS_BASE) to a random
 * canonical value, the effective address is chosen so that base + EA wraps (mod 2^64) onto SCRATCH, and a
 * second WRMSR restores base 0, all in one group.
 */
function segmentUnit(rng: Rng, o: Ops): BodyUnit {
  const seg = rng.pick(["fs", "gs"]);
  const msr = seg === "fs" ? 0xc0000100 : 0xc0000101;
  const low = BigInt(rng.u32()) << BigInt(rng.int(16));
  const base = rng.int(2) ? low : 0xffff800000000000n + low;
  const wr = (v: bigint) => [
    plain(`mov ecx, ${immText(msr)}`),
    plain(`mov eax, ${immText(v & 0xffffffffn)}`),
    plain(`mov edx, ${immText(v >> 32n)}`),
    plain("wrmsr"),
  ];
  const w = rng.pick([8, 16, 32, 64] as const);
  const target = SCRATCH.base + rng.int(SCRATCH.size - w / 8 + 1);
  const setup: Insn[] = [];
  const m = memOperand(rng, w, setup, { target, ea: u64(BigInt(target) - base) }).text.replace("[", `${seg}:[`);
  const r = o.r(w);
  const op = rng.int(4);
  const i = op === 0
    ? insn(`mov ${r}, ${m}`, 0, 0, 0)
    : op === 1
    ? insn(`mov ${m}, ${r}`, 0, 0, 0)
    : op === 2
    ? insn(`add ${m}, ${r}`, 0, ARITH_FLAGS, 0)
    : insn(`xor ${r}, ${m}`, 0, ARITH_FLAGS & ~AF, AF);
  i.mem = { addr: target, bytes: w / 8 };
  return { kind: "group", insns: [...wr(base), ...setup, i, ...wr(0n)] };
}

/** AH CH DH BH: byte registers 4–7 without a REX prefix (with REX they are SPL BPL SIL DIL). Registers only. */
function legacyByteUnit(rng: Rng, o: Ops): BodyUnit {
  const H8 = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"];
  const r = () => rng.pick(H8);
  const I = (text: string, reads: number, def: number, undef: number) => o.unit(insn(text, reads, def, undef));
  switch (rng.int(8)) {
    case 0: {
      const op = rng.pick(["add", "sub", "adc", "sbb", "cmp", "and", "or", "xor", "test"]);
      const logic = LOGIC.includes(op);
      const src = rng.int(2) ? r() : immText(imm(rng, 8));
      return I(
        `${op} ${r()}, ${src}`,
        op === "adc" || op === "sbb" ? CF : 0,
        logic ? ARITH_FLAGS & ~AF : ARITH_FLAGS,
        logic ? AF : 0,
      );
    }
    case 1:
      return I(`mov ${r()}, ${rng.int(2) ? r() : immText(imm(rng, 8))}`, 0, 0, 0);
    case 2:
      return I(`xchg ${r()}, ${r()}`, 0, 0, 0);
    case 3: {
      const op = rng.pick(["inc", "dec", "neg", "not"]);
      return I(`${op} ${r()}`, 0, op === "not" ? 0 : op === "neg" ? ARITH_FLAGS : ARITH_FLAGS & ~CF, 0);
    }
    case 4: {
      const op = rng.pick(["shl", "shr", "sar", "rol", "ror", "rcl", "rcr"]);
      const count = rng.pick([1, 2, 7, 8, 9, rng.int(32)]);
      const c = shiftContract(op, 8, count);
      return I(`${op} ${r()}, ${count}`, c.reads, c.def, c.undef);
    }
    case 5: {
      const cond = rng.pick(CONDITIONS);
      return I(`set${cond[0]} ${r()}`, cond[1], 0, 0);
    }
    case 6:
      return I(
        `${rng.pick(["movzx", "movsx"])} ${rng.pick(["eax", "ecx", "edx", "ebx", "esi", "edi", "ax", "bp"])}, ${r()}`,
        0,
        0,
        0,
      );
    default: {
      const op = rng.pick(["mul", "imul", "div", "idiv"]);
      const div = op.endsWith("div");
      return I(`${op} ${r()}`, 0, div ? 0 : CF | OF, div ? ARITH_FLAGS : SF | ZF | AF | PF);
    }
  }
}

/**
 * Calls and jumps inside one group: CALL rel32 / CALL reg / CALL [mem] to a RET (or `RET 8` after a push)
 * and a JMP over it, and JMP reg / JMP [mem] forward. Return addresses land in the stack window, code
 * addresses stored for an indirect branch in SCRATCH.
 */
function branchUnit(rng: Rng, o: Ops): BodyUnit {
  const callee = o.label(), after = o.label();
  const reg = o.r(64);
  const tail = (ret: string) => [plain(`jmp ${after}`), plain(`${callee}:`), plain(ret), plain(`${after}:`)];
  switch (rng.int(6)) {
    case 0:
      return { kind: "group", insns: [plain(`call ${callee}`), ...tail("ret")] };
    case 1:
      return { kind: "group", insns: [plain(`push ${o.r(64)}`), plain(`call ${callee}`), ...tail("ret 8")] };
    case 2:
      return { kind: "group", insns: [plain(`lea ${reg}, [rel ${callee}]`), plain(`call ${reg}`), ...tail("ret")] };
    case 3: {
      const m = o.m(64);
      const store = { ...plain(`mov ${m}, ${callee}`), mem: o.mem! };
      return { kind: "group", insns: [...o.setup, store, { ...plain(`call ${m}`), mem: o.mem! }, ...tail("ret")] };
    }
    case 4:
      return {
        kind: "group",
        insns: [plain(`lea ${reg}, [rel ${after}]`), plain(`jmp ${reg}`), plain("ud2"), plain(`${after}:`)],
      };
    default: {
      const m = o.m(64);
      const store = { ...plain(`mov ${m}, ${after}`), mem: o.mem! };
      return { kind: "group", insns: [...o.setup, store, { ...plain(`jmp ${m}`), mem: o.mem! }, plain(`${after}:`)] };
    }
  }
}

/** Stack groups, each leaving RSP where it was: push/pop of registers, immediates, memory, and RFLAGS. */
function stackUnit(rng: Rng, o: Ops): BodyUnit {
  const r = () => o.r(64);
  const pair = (a: Insn, b: Insn): BodyUnit => o.unit(b, [a]);
  switch (rng.int(12)) {
    case 6: {
      // 16-bit pushes and pops (66 prefix): 2-byte slots.
      const r16 = () => o.r(16);
      switch (rng.int(4)) {
        case 0:
          return pair(plain(`push ${r16()}`), plain(`pop ${r16()}`));
        case 1: {
          const m = o.m(16);
          const push = plain(`push ${m}`);
          push.mem = o.mem;
          return { kind: "group", insns: [...o.setup, push, plain(`pop ${r16()}`)] };
        }
        case 2:
          return pair(plain(`push ${r16()}`), plain(`pop ${o.m(16)}`));
        default:
          return pair(insn("pushfw", ARITH_FLAGS, 0, 0), plain(`pop ${r16()}`));
      }
    }
    case 7: {
      // POPFW of a register holding 0x2 plus arithmetic flags.
      const r16 = o.r(16);
      return {
        kind: "group",
        insns: [
          plain(`mov ${r16}, ${immText(0x2 | (rng.u32() & ARITH_FLAGS))}`),
          plain(`push ${r16}`),
          insn("popfw", 0, ARITH_FLAGS, 0),
        ],
      };
    }
    case 8:
      // PUSH RSP pushes the value before the decrement; POP RSP loads it back.
      return pair(plain("push rsp"), plain(rng.int(2) ? "pop rsp" : `pop ${r()}`));
    case 9: {
      // ENTER size, 0 / LEAVE: RBP is saved and restored, RSP balanced. (Nesting level 1 is a known PVM
      // emulator gap, KVM_INTERNAL_ERROR_EMULATION: tests/conformance/fuzz_regressions.json; not generated.)
      const size = rng.int(4) === 0 ? 0 : rng.int(0x60);
      const level = 0;
      const body: Insn[] = [];
      if (rng.int(2)) body.push({ ...plain(`mov qword [rbp-8], ${r()}`), mem: { addr: ENV.stackTop - 16, bytes: 8 } });
      return { kind: "group", insns: [plain(`enter 0x${size.toString(16)}, ${level}`), ...body, plain("leave")] };
    }
    case 10:
    case 11:
      return branchUnit(rng, o);
    case 0:
      return pair(plain(`push ${r()}`), plain(`pop ${r()}`));
    case 1:
      return pair(plain(`push ${immText(imm(rng, rng.int(2) ? 8 : 32))}`), plain(`pop ${r()}`));
    case 2: {
      const m = o.m(64);
      const push = plain(`push ${m}`);
      push.mem = o.mem;
      return { kind: "group", insns: [...o.setup, push, plain(`pop ${r()}`)] };
    }
    case 3:
      return pair(plain(`push ${r()}`), plain(`pop ${o.m(64)}`));
    case 4:
      // PUSHFQ reads every flag into the stack slot and then a register.
      return pair(insn("pushfq", ARITH_FLAGS, 0, 0), plain(`pop ${r()}`));
    default:
      // POPFQ of 0x2 plus arithmetic flags only (TF, IF, DF, AC stay clear) defines all six.
      return pair(plain(`push ${immText(0x2 | (rng.u32() & ARITH_FLAGS))}`), insn("popfq", 0, ARITH_FLAGS, 0));
  }
}

/** A unit that leaves RCX alone (a loop body): no RCX/ECX/CX/CL/CH operand, no string or loop instruction. */
function loopBodyOp(rng: Rng, pMem: number, label: () => string): BodyUnit {
  for (;;) {
    const u = randomOp(rng, pMem, label);
    if (!insnsOf(u).some((i) => /\b(rcx|ecx|cx|cl|ch|wrmsr)\b|^(rep|loop|movs|stos|lods|cmps|scas)/.test(i.text))) {
      return u;
    }
  }
}

/** A random valid sequence of about `n` units (`pMem`: % of operands that may be memory). */
export function randomSequence(rng: Rng, n: number, pMem = 35): Unit[] {
  const units: Unit[] = [];
  let labels = 0;
  const label = () => `L${labels++}`;
  for (let tries = 0; units.length < n && tries < n * 20; tries++) {
    let unit: Unit;
    const k = rng.int(16);
    if (k < 1) {
      const [cc, reads] = rng.pick(CONDITIONS);
      const body = Array.from({ length: 1 + rng.int(3) }, () => randomOp(rng, pMem, label));
      unit = { kind: "jcc", cc, reads, label: label(), body };
    } else if (k < 2) {
      const op = rng.pick(["loop", "loop", "loope", "loopne"] as const);
      const body = Array.from({ length: 1 + rng.int(3) }, () => loopBodyOp(rng, pMem, label));
      unit = { kind: "loop", op, reads: op === "loop" ? 0 : ZF, count: 1 + rng.int(4), label: label(), body };
    } else unit = randomOp(rng, pMem, label);
    if (analyse([...units, unit]) !== undefined) units.push(unit);
  }
  return units;
}
