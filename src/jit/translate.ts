/**
 * Translates a hot guest loop into a WebAssembly function
 * (assembly/x86/jit.ts has the function's contract).
 *
 * What is translated: a block that starts at the loop head, is made only of
 * instructions of fastRun's subset (assembly/x86/fastrun.ts) plus a few more,
 * decoded exactly as the interpreter decodes them — ALU r,r / r,imm / eAX,imm
 * (ADD OR ADC SBB AND SUB XOR CMP), TEST r,r, INC/DEC r, MOV r,r / r,imm, LEA
 * (64-bit mode), NOP, IMUL r32, r/m32, imm8/imm32 and SHL/SHR/SAR r, imm8 / 1
 * (nonzero masked count; eager flags exactly as alu.ts imulTrunc()/shift()),
 * and in 64-bit mode MOV r,m / m,r, ALU r,m / m,r (read-modify-write) with any
 * base + index * scale + disp (or RIP-relative) operand, PUSH r / POP r, CALL
 * rel32 into the fetch window (followed: the block goes on at its target) and
 * the RET back from it (a return address other than the CALL's leaves before
 * the RET), Jcc rel8 out of the loop (a side exit: jitIp = its target) and Jcc
 * rel8 back to the start with more code after it (a back edge: the next
 * iteration), CPUID (the core's table lookup through the imported jitCpuid)
 * and RDMSR (jitRdmsr answers an allowed in-kernel MSR at CPL 0 from the state
 * block; anything else — the TSC, a #GP, a user-space exit — leaves before the
 * RDMSR for the interpreter), OUT imm8 / DX with AL / EAX (jitOut: a write a
 * coalesced PIO zone takes stays in the kernel; any other leaves before the OUT,
 * which then exits) — and ends with a Jcc rel8 or JMP rel8/rel32 back to its own start. Anything else (calls,
 * prefixes other than one REX, ALU m,imm, 8/16-bit operands, a JMP elsewhere)
 * is not translated: jitCompile answers 0 and the interpreter keeps running it.
 *
 * Memory accesses do fastRun's hostOf(): TLB tag, the permission bit for the
 * CPL (pr / pw parameters), page-contained; anything else leaves before the
 * instruction with the retired ones committed. The TLB only grants a write
 * where the interpreter writes directly (D bit set, writable, dirty-logged page
 * already marked), so a hit is enough. A store whose host address falls in a
 * page of the loop's code leaves right after it (the next entry's code check
 * sees any change).
 *
 * Semantics mirror fastrun.ts / flags.ts: GPRs live in locals (32-bit results
 * zero-extended), the lazy flag state of flags.ts (ccOp ccSize ccRes ccA ccB
 * ccCarry) in locals updated as setLazy / setLazyCarry / setLazyIncDec would,
 * and written back to the core's globals at exit. Conditions and CF are
 * computed from the statically known last flag-setting instruction of the
 * iteration; before the first one of an iteration CF comes from the locals
 * like getCF() (a helper function).
 *
 * @module
 */
import { layOut, offsetOf } from "../abi/layout.ts";
import { TLB_ENTRIES, TLB_ENTRY } from "../abi/vcpu_state.ts";
import { Bytes, type Func, type FuncImport, I32, I64, moduleBytes, OP, VOID } from "./wasm_emit.ts";

// flags.ts CC_* values.
const CC_EAGER = 0, CC_ADD = 1, CC_ADC = 2, CC_SUB = 3, CC_SBB = 4, CC_LOGIC = 5, CC_INC = 6, CC_DEC = 7;
// alu.ts ALU_* (the x86 /r numbering).
const ALU_ADD = 0, ALU_OR = 1, ALU_ADC = 2, ALU_SBB = 3, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7;

/** Iterations per pass of the unrolled main loop. */
const UNROLL = 4;

/** The most instructions one translated iteration holds. */
export const MAX_BLOCK_INSNS = 48;

type Src = { reg: number } | { imm: bigint };
/** A 64-bit-mode memory operand: disp + base + index << scale (RIP-relative folded into disp; -1: none). */
type Mem = { base: number; index: number; scale: number; disp: bigint };
type Insn =
  | { k: "ld"; size: 4 | 8; d: number; m: Mem }
  | { k: "st"; size: 4 | 8; s: number; m: Mem }
  | { k: "alum"; op: number; size: 4 | 8; reg: number; m: Mem; toReg: boolean }
  | { k: "push"; r: number }
  | { k: "pop"; r: number }
  | { k: "imul"; d: number; s: number | Mem; imm: bigint }
  | { k: "shift"; kind: number; size: 4 | 8; r: number; c: number }
  | { k: "exit"; cc: number; target: bigint }
  | { k: "call"; ret: bigint }
  | { k: "back"; cc: number }
  | { k: "ret"; to: bigint }
  | { k: "alu"; op: number; size: 4 | 8; d: number; s: Src }
  | { k: "test"; size: 4 | 8; a: number; b: number }
  | { k: "incdec"; dec: boolean; size: 4 | 8; r: number }
  | { k: "mov"; size: 4 | 8; d: number; s: number }
  | { k: "movi"; d: number; v: bigint }
  | { k: "lea"; size: 4 | 8; d: number; base: number; index: number; scale: number; disp: bigint }
  | { k: "nop" }
  | { k: "cpuid" }
  | { k: "rdmsr" }
  /** OUT imm8 / DX (port -1: DX), AL or EAX. */
  | { k: "out"; port: number; size: 1 | 4 };
type Branch = { k: "jcc"; cc: number; fall: bigint } | { k: "jmp" };

/** A decoded loop: body, the closing branch (back to the start), total bytes and instructions. */
export interface Loop {
  body: Insn[];
  /** Byte offset of each body instruction from the loop start, then of the closing branch. */
  offs: number[];
  branch: Branch;
  len: number;
  count: number;
}

const M64 = (1n << 64n) - 1n;
const sx8 = (v: number) => BigInt((v << 24) >> 24);
const sx32 = (v: number) => BigInt(v | 0);

/**
 * Decode the loop starting at guest `ip` whose code is `code` (the bytes up to
 * the end of the fetch window). Returns undefined if it is not a translatable
 * loop.
 */
export function decodeLoop(
  code: Uint8Array,
  ip: bigint,
  m64: boolean,
  from?: { body: Insn[]; offs: number[]; rets: bigint[]; p: number; maxEnd: number },
): Loop | undefined {
  const body: Insn[] = from?.body ?? [];
  const offs: number[] = from?.offs ?? [];
  /** Return addresses of the CALLs followed so far (a RET must match the innermost one). */
  const rets: bigint[] = from?.rets ?? [];
  let p = from?.p ?? 0, maxEnd = from?.maxEnd ?? 0;
  const byte = (o: number): number => {
    if (o >= code.length) throw new RangeError("past the window");
    return code[o]!;
  };
  const u32 = (o: number) => (byte(o) | (byte(o + 1) << 8) | (byte(o + 2) << 16) | (byte(o + 3) << 24)) >>> 0;
  try {
    while (body.length < MAX_BLOCK_INSNS) {
      const at = p;
      let b = byte(p);
      let rx = 0;
      if ((b & 0xf0) === 0x40 && m64) {
        rx = b;
        b = byte(++p);
      }
      const pre = rx !== 0 ? 1 : 0;
      const size: 4 | 8 = (rx & 8) !== 0 ? 8 : 4;
      const m = () => byte(at + pre + 1);
      const rmOf = (mm: number) => (mm & 7) | ((rx & 1) << 3);
      const regOf = (mm: number) => ((mm >> 3) & 7) | ((rx & 4) << 1);
      /** The memory operand of ModRM `mm` (mod != 3) with SIB/disp at q; `imm` bytes follow it. */
      const memOf = (mm: number, q: number, imm: number): { mem: Mem; n: number } => {
        const mod = mm >> 6, rmb = mm & 7;
        let base = -1, index = -1, scale = 0, disp = 0n, n = 0;
        let ripRel = false;
        if (rmb === 4) {
          const sib = byte(q);
          n = 1;
          const idx = ((sib >> 3) & 7) | ((rx & 2) << 2);
          const bse = (sib & 7) | ((rx & 1) << 3);
          if (idx !== 4) {
            index = idx;
            scale = sib >> 6;
          }
          if ((bse & 7) === 5 && mod === 0) {
            disp = sx32(u32(q + 1));
            n = 5;
          } else base = bse;
        } else if (rmb === 5 && mod === 0) {
          disp = sx32(u32(q));
          n = 4;
          ripRel = true;
        } else base = rmb | ((rx & 1) << 3);
        if (mod === 1) {
          disp += sx8(byte(q + n));
          n += 1;
        } else if (mod === 2) {
          disp += sx32(u32(q + n));
          n += 4;
        }
        if (ripRel) disp += ip + BigInt(q + n + imm); // RIP-relative: a constant, the block never moves
        return { mem: { base, index, scale, disp: BigInt.asUintN(64, disp) }, n };
      };
      const setsFlags = () =>
        body.some((i) =>
          i.k === "alu" || i.k === "test" || i.k === "incdec" || i.k === "alum" || i.k === "imul" || i.k === "shift"
        );
      if (b >= 0x70 && b <= 0x7f && pre === 0 && m64) { // a Jcc out of the loop: a side exit
        const nip = ip + BigInt(at + 2);
        const t = (nip + sx8(byte(at + 1))) & M64;
        if (t !== ip) {
          if (((t ^ nip) >> 47n) !== 0n || !setsFlags()) return undefined;
          body.push({ k: "exit", cc: b & 15, target: t });
          offs.push(at);
          p = at + 2;
          maxEnd = Math.max(maxEnd, p);
          continue;
        }
      }
      if (b >= 0x70 && b <= 0x7f && pre === 0 && m64 && setsFlags() && body.length + 1 < MAX_BLOCK_INSNS) {
        // A Jcc back to the start with more code after it: a back edge inside the block if what
        // follows closes the loop too (else the loop closes here, as below).
        const nip = ip + BigInt(at + 2);
        if (((nip + sx8(byte(at + 1))) & M64) === ip) {
          const rest = decodeLoop(code, ip, m64, {
            body: [...body, { k: "back", cc: b & 15 }],
            offs: [...offs, at],
            rets: [...rets],
            p: at + 2,
            maxEnd: Math.max(maxEnd, at + 2),
          });
          // Only a closing JMP after it: the Jcc closes the loop (cheaper, as without back edges).
          if (rest && rest.body.length > body.length + 1) return rest;
        }
      }
      if (b >= 0x70 && b <= 0x7f || b === 0xeb || b === 0xe9) { // the closing branch
        if (b !== 0xeb && b !== 0xe9 && pre !== 0) return undefined;
        const len = b === 0xe9 ? pre + 5 : pre + 2;
        const nip = ip + BigInt(at + len);
        let t = nip + (b === 0xe9 ? sx32(u32(at + pre + 1)) : sx8(byte(at + pre + 1)));
        if (m64) {
          t &= M64;
          if (((t ^ nip) >> 47n) !== 0n) return undefined; // fastRun leaves it to the general path
        } else t &= 0xffffffffn;
        if (t !== ip) return undefined;
        const end = at + len;
        // A Jcc must read flags set inside the block (conditions are computed from the static producer).
        if (b < 0x80 && !setsFlags()) return undefined;
        const branch: Branch = b === 0xeb || b === 0xe9
          ? { k: "jmp" }
          : { k: "jcc", cc: b & 15, fall: ip + BigInt(end) };
        offs.push(at);
        return { body, offs, branch, len: Math.max(end, maxEnd), count: body.length + 1 };
      }
      let insn: Insn;
      let len: number;
      if (b >= 0x40 && b <= 0x4f) { // INC/DEC r32 (32-bit code; a second REX in 64-bit)
        if (m64) return undefined;
        insn = { k: "incdec", dec: (b & 8) !== 0, size: 4, r: b & 7 };
        len = 1;
      } else if (b === 0xff) {
        const mm = m();
        if ((mm & 0xf0) !== 0xc0) return undefined;
        insn = { k: "incdec", dec: (mm & 8) !== 0, size, r: rmOf(mm) };
        len = pre + 2;
      } else if (b < 0x40 && (b & 7) === 1 || b < 0x40 && (b & 7) === 3) { // ALU Ev,Gv / Gv,Ev
        const mm = m();
        if (mm < 0xc0) {
          if (!m64) return undefined;
          const { mem, n } = memOf(mm, at + pre + 2, 0);
          insn = { k: "alum", op: b >> 3, size, reg: regOf(mm), m: mem, toReg: (b & 2) !== 0 };
          len = pre + 2 + n;
        } else {
          const rm = rmOf(mm), reg = regOf(mm);
          insn = { k: "alu", op: b >> 3, size, d: (b & 2) === 0 ? rm : reg, s: { reg: (b & 2) === 0 ? reg : rm } };
          len = pre + 2;
        }
      } else if (b < 0x40 && (b & 7) === 5) { // ALU eAX, Id
        const mask = size === 8 ? M64 : 0xffffffffn;
        insn = { k: "alu", op: b >> 3, size, d: 0, s: { imm: BigInt.asUintN(64, sx32(u32(at + pre + 1))) & mask } };
        len = pre + 5;
      } else if (b === 0x81 || b === 0x83) {
        const mm = m();
        if (mm < 0xc0) return undefined;
        const mask = size === 8 ? M64 : 0xffffffffn;
        const imm = b === 0x83 ? sx8(byte(at + pre + 2)) : sx32(u32(at + pre + 2));
        insn = { k: "alu", op: (mm >> 3) & 7, size, d: rmOf(mm), s: { imm: BigInt.asUintN(64, imm) & mask } };
        len = pre + (b === 0x83 ? 3 : 6);
      } else if (b === 0x85) {
        const mm = m();
        if (mm < 0xc0) return undefined;
        insn = { k: "test", size, a: rmOf(mm), b: regOf(mm) };
        len = pre + 2;
      } else if (b === 0x89 || b === 0x8b) {
        const mm = m();
        if (mm < 0xc0) {
          if (!m64) return undefined;
          const { mem, n } = memOf(mm, at + pre + 2, 0);
          insn = b === 0x8b ? { k: "ld", size, d: regOf(mm), m: mem } : { k: "st", size, s: regOf(mm), m: mem };
          len = pre + 2 + n;
        } else {
          const rm = rmOf(mm), reg = regOf(mm);
          insn = b === 0x8b ? { k: "mov", size, d: reg, s: rm } : { k: "mov", size, d: rm, s: reg };
          len = pre + 2;
        }
      } else if (b === 0x8d) {
        const mm = m();
        if (mm >= 0xc0 || !m64) return undefined;
        const { mem, n } = memOf(mm, at + pre + 2, 0);
        len = pre + 2 + n;
        insn = { k: "lea", size, d: regOf(mm), ...mem };
      } else if (b >= 0xb8 && b <= 0xbf) {
        const r = (b & 7) | ((rx & 1) << 3);
        if ((rx & 8) !== 0) {
          insn = { k: "movi", d: r, v: BigInt(u32(at + 2)) | (BigInt(u32(at + 6)) << 32n) };
          len = 10;
        } else {
          insn = { k: "movi", d: r, v: BigInt(u32(at + pre + 1)) };
          len = pre + 5;
        }
      } else if (b === 0xe8 && m64) { // CALL rel32 (64-bit): followed into its target inside the window
        const nip = ip + BigInt(at + pre + 5);
        const t = (nip + sx32(u32(at + pre + 1))) & M64;
        const to = t - ip;
        if (((t ^ nip) >> 47n) !== 0n || to < 0n || to >= BigInt(code.length)) return undefined;
        body.push({ k: "call", ret: nip });
        offs.push(at);
        rets.push(nip);
        maxEnd = Math.max(maxEnd, at + pre + 5);
        p = Number(to);
        continue;
      } else if (b === 0xc3 && m64) { // RET to the CALL followed before it (else the interpreter takes it)
        const to = rets.pop();
        if (to === undefined) return undefined;
        body.push({ k: "ret", to });
        offs.push(at);
        maxEnd = Math.max(maxEnd, at + pre + 1);
        p = Number(to - ip);
        continue;
      } else if (b >= 0x50 && b <= 0x5f) { // PUSH r / POP r (64-bit)
        if (!m64) return undefined;
        const r = (b & 7) | ((rx & 1) << 3);
        insn = b < 0x58 ? { k: "push", r } : { k: "pop", r };
        len = pre + 1;
      } else if (b === 0x69 || b === 0x6b) { // IMUL Gd, Ed, Id / Ib (32-bit operand size only)
        if (size !== 4) return undefined;
        const mm = m();
        const immLen = b === 0x6b ? 1 : 4;
        let s: number | Mem, n = 0;
        if (mm >= 0xc0) s = rmOf(mm);
        else {
          if (!m64) return undefined;
          ({ mem: s, n } = memOf(mm, at + pre + 2, immLen));
        }
        const q = at + pre + 2 + n;
        insn = { k: "imul", d: regOf(mm), s, imm: b === 0x6b ? sx8(byte(q)) : sx32(u32(q)) };
        len = pre + 2 + n + immLen;
      } else if (b === 0xc1 || b === 0xd1) { // SHL/SHR/SAR r, imm8 / 1 (a masked count of 0 is left to the interpreter)
        const mm = m();
        const kind = (mm >> 3) & 7;
        if (mm < 0xc0 || kind < 4 || kind === 6) return undefined;
        const c = b === 0xd1 ? 1 : byte(at + pre + 2) & (size === 8 ? 63 : 31);
        if (c === 0) return undefined;
        insn = { k: "shift", kind, size, r: rmOf(mm), c };
        len = pre + (b === 0xd1 ? 2 : 3);
      } else if (b === 0x90) {
        if ((rx & 1) !== 0) return undefined;
        insn = { k: "nop" };
        len = pre + 1;
      } else if (b === 0x0f && (byte(at + pre + 1) === 0xa2 || byte(at + pre + 1) === 0x32)) {
        // CPUID / RDMSR, in the kernel through the core's helpers (REX ignored, as fastRun does).
        insn = byte(at + pre + 1) === 0xa2 ? { k: "cpuid" } : { k: "rdmsr" };
        len = pre + 2;
      } else if ((b === 0xe6 || b === 0xe7 || b === 0xee || b === 0xef) && pre === 0) {
        // OUT imm8 / DX, AL / EAX (no prefix, as fastRun takes it): in the kernel when a
        // coalesced zone takes it (jitOut), else the interpreter runs it.
        insn = { k: "out", port: b < 0xe8 ? byte(at + 1) : -1, size: (b & 1) === 0 ? 1 : 4 };
        len = b < 0xe8 ? 2 : 1;
      } else return undefined;
      body.push(insn);
      offs.push(at);
      p = at + len;
      maxEnd = Math.max(maxEnd, p);
    }
  } catch (e) {
    if (e instanceof RangeError) return undefined; // the block runs past the fetch window
    throw e;
  }
  return undefined;
}

// Function parameters and locals.
const P_IP = 0, P_HOST = 1, P_M64 = 2, P_AVAIL = 3, P_BUDGET = 4, P_G = 5, P_PR = 6, P_PW = 7, P_TLB = 8;
const L_CNT = 9, L_IPOUT = 10, L_OP = 11, L_SIZE = 12, L_RES = 13, L_A = 14, L_B = 15, L_CARRY = 16, L_FLAGS = 17;
const T0 = 18, T1 = 19, T2 = 20, G0 = 21;
/** A memory operand's linear address (i64), its TLB entry and host address (i32). */
const L_EA = G0 + 16, L_E = L_EA + 1, L_HA = L_EA + 2;
const LOCALS = [I32, I64, I32, I32, I64, I64, I64, I64, I64, I64, I64, I64, ...Array(16).fill(I64), I64, I32, I32];
// The TLB of vcpu_state.ts (tlb.ts tlbEntry()): direct mapped by linear page.
const TLB_L = layOut(TLB_ENTRY);
const TLB_SIZE = TLB_L.size, TLB_TAG = offsetOf(TLB_L, "tag"), TLB_HOST = offsetOf(TLB_L, "host");
const TLB_PERM = offsetOf(TLB_L, "perm");
// Imported globals, in this order (assembly/index.ts exports them).
export const JIT_GLOBALS = [
  { name: "ccOp", type: I32 },
  { name: "ccSize", type: I32 },
  { name: "ccRes", type: I64 },
  { name: "ccA", type: I64 },
  { name: "ccB", type: I64 },
  { name: "ccCarry", type: I64 },
  { name: "ccFlags", type: I64 },
  { name: "jitIp", type: I64 },
  { name: "cpuidEax", type: I32 },
  { name: "cpuidEbx", type: I32 },
  { name: "cpuidEcx", type: I32 },
  { name: "cpuidEdx", type: I32 },
  { name: "msrValue", type: I64 },
] as const;
const GL_OP = 0, GL_SIZE = 1, GL_RES = 2, GL_A = 3, GL_B = 4, GL_CARRY = 5, GL_FLAGS = 6, GL_IP = 7;
const GL_CPUID = 8, GL_MSR = 12;
/** Imported core functions, in this order (assembly/x86/jit.ts; assembly/index.ts exports them). */
export const JIT_FUNCS: readonly FuncImport[] = [
  { name: "jitCpuid", type: { params: [I32, I32], results: [] } },
  { name: "jitRdmsr", type: { params: [I32], results: [I32] } },
  { name: "jitOut", type: { params: [I32, I32, I32], results: [I32] } },
];
const F_CPUID = 0, F_RDMSR = 1, F_OUT = 2;
/** Function indices of the block's function and the getCF() helper (after the imports). */
const F_MAIN = JIT_FUNCS.length, F_CF = F_MAIN + 1;
/** GPR numbers. */
const R_AX = 0, R_CX = 1, R_DX = 2, R_BX = 3;

/** getCF() of flags.ts over (op: i32, res, a, b, carry, flags: i64) -> i32. */
function cfHelper(): Func {
  const f = new Bytes();
  const [op, res, a, b, carry, flags] = [0, 1, 2, 3, 4, 5];
  const when = (cc: number, emit: () => void) => {
    f.get(op).i32c(cc).op(OP.i32_eq).op(OP.if).byte(VOID);
    emit();
    f.op(OP.return).op(OP.end);
  };
  const withCarry = (x: number, y: number) => { // carry ? x <= y : x < y
    f.get(x).get(y).op(OP.i64_le_u).get(x).get(y).op(OP.i64_lt_u).get(carry).op(OP.i64_eqz).op(OP.i32_eqz).op(
      OP.select,
    );
  };
  when(CC_EAGER, () => f.get(flags).i64c(1n).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_eqz));
  when(CC_ADD, () => f.get(res).get(a).op(OP.i64_lt_u));
  when(CC_ADC, () => withCarry(res, a));
  when(CC_SUB, () => f.get(a).get(b).op(OP.i64_lt_u));
  when(CC_SBB, () => withCarry(a, b));
  when(CC_LOGIC, () => f.i32c(0));
  f.get(carry).op(OP.i64_eqz).op(OP.i32_eqz); // INC, DEC
  return { type: { params: [I32, I64, I64, I64, I64, I64], results: [I32] }, locals: [], body: f };
}

/** The last flag-setting instruction of the iteration so far (static), or null (CF from the locals). */
type Prod = { op: number; size: 4 | 8 } | null;

/** Emits CF (i32 0/1) of the current lazy state. */
function emitCF(f: Bytes, prod: Prod): void {
  if (prod === null) {
    f.get(L_OP).get(L_RES).get(L_A).get(L_B).get(L_CARRY).get(L_FLAGS).op(OP.call).u32(F_CF);
    return;
  }
  const withCarry = (x: number, y: number) => {
    f.get(x).get(y).op(OP.i64_le_u).get(x).get(y).op(OP.i64_lt_u).get(L_CARRY).op(OP.i64_eqz).op(OP.i32_eqz)
      .op(OP.select);
  };
  switch (prod.op) {
    case CC_EAGER:
      f.get(L_FLAGS).op(OP.i32_wrap_i64).i32c(1).op(OP.i32_and);
      return;
    case CC_ADD:
      f.get(L_RES).get(L_A).op(OP.i64_lt_u);
      return;
    case CC_ADC:
      withCarry(L_RES, L_A);
      return;
    case CC_SUB:
      f.get(L_A).get(L_B).op(OP.i64_lt_u);
      return;
    case CC_SBB:
      withCarry(L_A, L_B);
      return;
    case CC_LOGIC:
      f.i32c(0);
      return;
    case CC_INC:
    case CC_DEC:
      f.get(L_CARRY).op(OP.i64_eqz).op(OP.i32_eqz);
      return;
    default:
      throw new Error(`no static CF for lazy op ${prod.op}: expected 1..7`);
  }
}

/** Emits condition cc (0–15) as i32 0/1 after the static producer `p` (flags.ts cond()). */
function emitCond(f: Bytes, cc: number, p: NonNullable<Prod>): void {
  const sb = 1n << BigInt(p.size * 8 - 1);
  const eager = p.op === CC_EAGER;
  /** Bit n of the eager flags (i32 0/1). */
  const bit = (n: number) => f.get(L_FLAGS).op(OP.i32_wrap_i64).i32c(n).op(OP.i32_shr_u).i32c(1).op(OP.i32_and);
  const zf = () => eager ? bit(6) : f.get(L_RES).op(OP.i64_eqz);
  const sf = () => eager ? bit(7) : f.get(L_RES).i64c(sb).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_eqz);
  const of = () => {
    switch (p.op) {
      case CC_EAGER:
        bit(11);
        return;
      case CC_ADD:
      case CC_ADC: // (a ^ r) & (b ^ r) & sb
        f.get(L_A).get(L_RES).op(OP.i64_xor).get(L_B).get(L_RES).op(OP.i64_xor).op(OP.i64_and);
        f.i64c(sb).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_eqz);
        return;
      case CC_SUB:
      case CC_SBB: // (a ^ b) & (a ^ r) & sb
        f.get(L_A).get(L_B).op(OP.i64_xor).get(L_A).get(L_RES).op(OP.i64_xor).op(OP.i64_and);
        f.i64c(sb).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_eqz);
        return;
      case CC_INC:
        f.get(L_RES).i64c(sb).op(OP.i64_eq);
        return;
      case CC_DEC:
        f.get(L_RES).i64c(sb - 1n).op(OP.i64_eq);
        return;
      case CC_LOGIC:
        f.i32c(0);
        return;
      default:
        throw new Error(`no OF for lazy op ${p.op}`);
    }
  };
  switch (cc >> 1) {
    case 0:
      of();
      break;
    case 1:
      emitCF(f, p);
      break;
    case 2:
      zf();
      break;
    case 3:
      emitCF(f, p);
      zf();
      f.op(OP.i32_or);
      break;
    case 4:
      sf();
      break;
    case 5:
      if (eager) {
        bit(2);
        break;
      }
      f.get(L_RES).i64c(0xffn).op(OP.i64_and).op(OP.i64_popcnt).i64c(1n).op(OP.i64_and).op(OP.i64_eqz);
      break;
    case 6:
      sf();
      of();
      f.op(OP.i32_ne);
      break;
    default:
      zf();
      sf();
      of();
      f.op(OP.i32_ne);
      f.op(OP.i32_or);
      break;
  }
  if ((cc & 1) !== 0) f.op(OP.i32_eqz);
}

/** Emit a 64-bit code check: OR of (load != expected) for the block bytes at constant host `h`. */
function emitCodeCheck(f: Bytes, h: number, code: Uint8Array): void {
  let first = true;
  const piece = (off: number, n: 8 | 4 | 2 | 1) => {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(code[off + i]!);
    f.i32c(h + off);
    if (n === 8) f.mem(OP.i64_load, 0, 0).i64c(v).op(OP.i64_ne);
    else {
      f.mem(n === 4 ? OP.i32_load : n === 2 ? OP.i32_load16_u : OP.i32_load8_u, 0, 0).i32c(
        Number(BigInt.asIntN(32, v)),
      );
      f.op(OP.i32_ne);
    }
    if (!first) f.op(OP.i32_or);
    first = false;
  };
  let off = 0;
  for (; off + 8 <= code.length; off += 8) piece(off, 8);
  for (const n of [4, 2, 1] as const) {
    if (off + n <= code.length) {
      piece(off, n);
      off += n;
    }
  }
}

/**
 * The WASM module (bytes) for `loop` made from `code` (exactly its bytes) at
 * guest `ip`, host offset `host`, in 64-bit mode or not.
 */
export function loopModule(loop: Loop, code: Uint8Array, ip: bigint, host: number, m64: boolean): Uint8Array {
  const f = new Bytes();
  const B = loop.count;
  const reg = (r: number) => G0 + r;
  const used = new Set<number>(), written = new Set<number>();
  const rd = (r: number) => used.add(r);
  const wr = (r: number) => (used.add(r), written.add(r));
  const rdMem = (m: Mem) => {
    if (m.base >= 0) rd(m.base);
    if (m.index >= 0) rd(m.index);
  };
  /** Guest RIP of body instruction k (k = body length: the closing branch). */
  const ipOf = (k: number) => m64 ? BigInt.asUintN(64, ip + BigInt(loop.offs[k]!)) : ip + BigInt(loop.offs[k]!);
  // Host pages holding the loop's code: a store into them ends the run after it.
  const codeLo = host & ~0xfff, codeSpan = (((host + loop.len - 1) | 0xfff) + 1) - codeLo;
  for (const i of loop.body) {
    switch (i.k) {
      case "alu":
        rd(i.d);
        if ("reg" in i.s) rd(i.s.reg);
        if (i.op !== ALU_CMP) wr(i.d);
        break;
      case "test":
        rd(i.a);
        rd(i.b);
        break;
      case "incdec":
        wr(i.r);
        break;
      case "mov":
        rd(i.s);
        wr(i.d);
        break;
      case "movi":
        wr(i.d);
        break;
      case "lea":
        if (i.base >= 0) rd(i.base);
        if (i.index >= 0) rd(i.index);
        wr(i.d);
        break;
      case "ld":
        rdMem(i.m);
        wr(i.d);
        break;
      case "st":
        rdMem(i.m);
        rd(i.s);
        break;
      case "alum":
        rdMem(i.m);
        rd(i.reg);
        if (i.toReg && i.op !== ALU_CMP) wr(i.reg);
        break;
      case "push":
        rd(i.r);
        wr(4);
        break;
      case "pop":
        wr(4);
        wr(i.r);
        break;
      case "imul":
        if (typeof i.s === "number") rd(i.s);
        else rdMem(i.s);
        wr(i.d);
        break;
      case "shift":
        wr(i.r);
        break;
      case "call":
      case "ret":
        wr(4);
        break;
      case "cpuid":
        rd(R_AX);
        rd(R_CX);
        for (const r of [R_AX, R_CX, R_DX, R_BX]) wr(r);
        break;
      case "rdmsr":
        rd(R_CX);
        wr(R_AX);
        wr(R_DX);
        break;
      case "out":
        rd(R_AX);
        if (i.port < 0) rd(R_DX);
        break;
      case "nop":
      case "exit":
      case "back":
        break;
      default: {
        const never: never = i;
        throw new Error(`unknown insn ${JSON.stringify(never)}`);
      }
    }
  }
  // Is this translation for this code, here, now? Else -1, nothing changed.
  f.get(P_IP).i64c(ip).op(OP.i64_ne);
  f.get(P_HOST).i32c(host).op(OP.i32_ne).op(OP.i32_or);
  f.get(P_M64).i32c(m64 ? 1 : 0).op(OP.i32_ne).op(OP.i32_or);
  f.get(P_AVAIL).i32c(loop.len).op(OP.i32_lt_s).op(OP.i32_or);
  f.op(OP.if).byte(VOID).i32c(-1).op(OP.return).op(OP.end);
  emitCodeCheck(f, host, code.subarray(0, loop.len));
  f.op(OP.if).byte(VOID).i32c(-1).op(OP.return).op(OP.end);
  f.get(P_BUDGET).i32c(B).op(OP.i32_lt_s).op(OP.if).byte(VOID).i32c(0).op(OP.return).op(OP.end);
  // Enter: GPRs and the lazy flags into locals.
  for (const r of used) f.get(P_G).mem(OP.i64_load, 3, r * 8).set(reg(r));
  f.gget(GL_OP).set(L_OP).gget(GL_SIZE).set(L_SIZE).gget(GL_RES).set(L_RES).gget(GL_A).set(L_A);
  f.gget(GL_B).set(L_B).gget(GL_CARRY).set(L_CARRY).gget(GL_FLAGS).set(L_FLAGS);
  let prod = null as Prod;
  const val = (r: number, size: 4 | 8) => {
    f.get(reg(r));
    if (size === 4) f.i64c(0xffffffffn).op(OP.i64_and);
  };
  const trunc = (size: 4 | 8) => {
    if (size === 4) f.i64c(0xffffffffn).op(OP.i64_and);
  };
  const lazy = (op: number, size: 4 | 8) => {
    f.i32c(op).set(L_OP).i32c(size).set(L_SIZE);
    prod = { op, size };
  };
  const eager = () => {
    f.i32c(CC_EAGER).set(L_OP);
    prod = { op: CC_EAGER, size: 4 };
  };
  /** Pushes szp() of alu.ts for the truncated result in local `r` (i64). */
  const szp = (r: number, size: 4 | 8) => {
    f.get(r).i64c(0xffn).op(OP.i64_and).op(OP.i64_popcnt).i64c(1n).op(OP.i64_and).i64c(1n).op(OP.i64_xor);
    f.i64c(2n).op(OP.i64_shl);
    f.get(r).op(OP.i64_eqz).op(OP.i64_extend_i32_u).i64c(6n).op(OP.i64_shl).op(OP.i64_or);
    f.get(r).i64c(BigInt(size * 8 - 1)).op(OP.i64_shr_u).i64c(1n).op(OP.i64_and).i64c(7n).op(OP.i64_shl);
    f.op(OP.i64_or);
  };
  /** ALU `op` of T0 (dest) and T1 (source), both truncated: L_RES and the lazy flags like alu.ts. */
  const aluCore = (op: number, size: 4 | 8) => {
    const carryIn = () => {
      emitCF(f, prod);
      f.op(OP.i64_extend_i32_u).set(T2);
    };
    switch (op) {
      case ALU_ADD:
        f.get(T0).get(T1).op(OP.i64_add);
        trunc(size);
        f.set(L_RES);
        lazy(CC_ADD, size);
        break;
      case ALU_OR:
        f.get(T0).get(T1).op(OP.i64_or).set(L_RES);
        lazy(CC_LOGIC, size);
        break;
      case ALU_AND:
        f.get(T0).get(T1).op(OP.i64_and).set(L_RES);
        lazy(CC_LOGIC, size);
        break;
      case ALU_XOR:
        f.get(T0).get(T1).op(OP.i64_xor).set(L_RES);
        lazy(CC_LOGIC, size);
        break;
      case ALU_SUB:
      case ALU_CMP:
        f.get(T0).get(T1).op(OP.i64_sub);
        trunc(size);
        f.set(L_RES);
        lazy(CC_SUB, size);
        break;
      case ALU_ADC:
        carryIn();
        f.get(T0).get(T1).op(OP.i64_add).get(T2).op(OP.i64_add);
        trunc(size);
        f.set(L_RES);
        f.get(T2).set(L_CARRY);
        lazy(CC_ADC, size);
        break;
      case ALU_SBB:
        carryIn();
        f.get(T0).get(T1).op(OP.i64_sub).get(T2).op(OP.i64_sub);
        trunc(size);
        f.set(L_RES);
        f.get(T2).set(L_CARRY);
        lazy(CC_SBB, size);
        break;
      default:
        throw new Error(`ALU op ${op}: expected 0..7`);
    }
    f.get(T0).set(L_A).get(T1).set(L_B);
  };
  /**
   * One iteration: the body, the count, and for a Jcc the exit when it is not
   * taken (`out`: the branch depth of the exit block from here). `prod` is the
   * static producer at its start (null: from the locals).
   */
  const emitCopy = (outer: number) => {
    // $iter: a back edge inside the block goes to its end (the next iteration).
    f.op(OP.block).byte(VOID);
    const out = outer + 1;
    /** Static producers at the back edges of this copy. */
    const backs: Prod[] = [];
    /** Inside one `if`: leave with k instructions of this iteration retired and RIP `to`. */
    const leave = (k: number, to: bigint) => {
      if (k !== 0) f.get(L_CNT).i32c(k).op(OP.i32_add).set(L_CNT);
      f.i64c(to).set(L_IPOUT).op(OP.br).u32(out + 1);
    };
    const addr = (m: Mem) => {
      f.i64c(m.disp);
      if (m.base >= 0) f.get(reg(m.base)).op(OP.i64_add);
      if (m.index >= 0) f.get(reg(m.index)).i64c(BigInt(m.scale)).op(OP.i64_shl).op(OP.i64_add);
      f.set(L_EA);
    };
    /** hostOf() of fastrun.ts for L_EA into L_HA; a miss leaves before instruction k. */
    const hostOf = (k: number, size: number, perm: number) => {
      f.get(P_TLB).get(L_EA).i64c(12n).op(OP.i64_shr_u).op(OP.i32_wrap_i64).i32c(TLB_ENTRIES - 1).op(OP.i32_and);
      f.i32c(TLB_SIZE).op(OP.i32_mul).op(OP.i32_add).set(L_E);
      f.get(L_E).mem(OP.i64_load, 0, TLB_TAG).get(L_EA).i64c(12n).op(OP.i64_shr_u).i64c(1n).op(OP.i64_add);
      f.op(OP.i64_ne);
      f.get(L_E).mem(OP.i32_load, 0, TLB_PERM).get(perm).op(OP.i32_and).op(OP.i32_eqz).op(OP.i32_or);
      f.get(L_EA).op(OP.i32_wrap_i64).i32c(0xfff).op(OP.i32_and).i32c(4096 - size).op(OP.i32_gt_u).op(OP.i32_or);
      f.op(OP.if).byte(VOID);
      leave(k, ipOf(k));
      f.op(OP.end);
      f.get(L_E).mem(OP.i32_load, 0, TLB_HOST).get(L_EA).op(OP.i32_wrap_i64).i32c(0xfff).op(OP.i32_and);
      f.op(OP.i32_add).set(L_HA);
    };
    /** After a store at L_HA by instruction k: into the code's pages, leave after it. */
    const codeStore = (k: number) => {
      f.get(L_HA).i32c(codeLo).op(OP.i32_sub).i32c(codeSpan).op(OP.i32_lt_u).op(OP.if).byte(VOID);
      leave(k + 1, ipOf(k + 1));
      f.op(OP.end);
    };
    const load = (size: 4 | 8) => {
      f.get(L_HA);
      if (size === 8) f.mem(OP.i64_load, 0, 0);
      else f.mem(OP.i32_load, 0, 0).op(OP.i64_extend_i32_u);
    };
    const store = (size: 4 | 8, value: () => void) => {
      f.get(L_HA);
      value();
      if (size === 8) f.mem(OP.i64_store, 0, 0);
      else f.op(OP.i32_wrap_i64).mem(OP.i32_store, 0, 0);
    };
    for (let k = 0; k < loop.body.length; k++) {
      const i = loop.body[k]!;
      switch (i.k) {
        case "alu": {
          val(i.d, i.size);
          f.set(T0);
          if ("reg" in i.s) val(i.s.reg, i.size);
          else f.i64c(i.s.imm);
          f.set(T1);
          aluCore(i.op, i.size);
          if (i.op !== ALU_CMP) f.get(L_RES).set(reg(i.d));
          break;
        }
        case "ld":
          addr(i.m);
          hostOf(k, i.size, P_PR);
          load(i.size);
          f.set(reg(i.d));
          break;
        case "st":
          addr(i.m);
          hostOf(k, i.size, P_PW);
          store(i.size, () => f.get(reg(i.s)));
          codeStore(k);
          break;
        case "alum": {
          addr(i.m);
          const rmw = !i.toReg && i.op !== ALU_CMP;
          hostOf(k, i.size, rmw ? P_PW : P_PR);
          if (i.toReg) {
            val(i.reg, i.size);
            f.set(T0);
            load(i.size);
            f.set(T1);
          } else {
            load(i.size);
            f.set(T0);
            val(i.reg, i.size);
            f.set(T1);
          }
          aluCore(i.op, i.size);
          if (i.toReg && i.op !== ALU_CMP) f.get(L_RES).set(reg(i.reg));
          if (rmw) {
            store(i.size, () => f.get(L_RES));
            codeStore(k);
          }
          break;
        }
        case "push":
          f.get(reg(4)).i64c(8n).op(OP.i64_sub).set(L_EA);
          hostOf(k, 8, P_PW);
          store(8, () => f.get(reg(i.r)));
          f.get(L_EA).set(reg(4));
          codeStore(k);
          break;
        case "pop":
          f.get(reg(4)).set(L_EA);
          hostOf(k, 8, P_PR);
          load(8);
          f.set(T0);
          f.get(L_EA).i64c(8n).op(OP.i64_add).set(reg(4));
          f.get(T0).set(reg(i.r)); // POP RSP: the popped value wins
          break;
        case "imul": {
          // imulTrunc(): the truncated signed product, CF = OF = it does not fit, SF ZF PF of it (eager).
          if (typeof i.s === "number") f.get(reg(i.s));
          else {
            addr(i.s);
            hostOf(k, 4, P_PR);
            load(4);
          }
          f.op(OP.i64_extend32_s).i64c(i.imm).op(OP.i64_mul).set(T0);
          f.get(T0).i64c(0xffffffffn).op(OP.i64_and).set(T1);
          szp(T1, 4);
          f.get(T1).op(OP.i64_extend32_s).get(T0).op(OP.i64_ne).op(OP.i64_extend_i32_u).i64c(0x801n).op(OP.i64_mul);
          f.op(OP.i64_or).set(L_FLAGS);
          eager();
          f.get(T1).set(reg(i.d));
          break;
        }
        case "shift": {
          // shift() of alu.ts for a nonzero count: T1 result, T2 CF, then the eager flags.
          const bits = BigInt(i.size * 8), c = BigInt(i.c), sb = 1n << (bits - 1n);
          val(i.r, i.size);
          f.set(T0);
          if (i.kind === 4) { // SHL
            if (i.size === 8) {
              f.get(T0).i64c(c).op(OP.i64_shl).set(T1);
              f.get(T0).i64c(64n - c).op(OP.i64_shr_u).i64c(1n).op(OP.i64_and).set(T2);
            } else {
              f.get(T0).i64c(c).op(OP.i64_shl).tee(T1).i64c(32n).op(OP.i64_shr_u).i64c(1n).op(OP.i64_and).set(T2);
              f.get(T1).i64c(0xffffffffn).op(OP.i64_and).set(T1);
            }
            szp(T1, i.size);
            f.get(T2).op(OP.i64_or);
            f.get(T1).i64c(bits - 1n).op(OP.i64_shr_u).get(T2).op(OP.i64_xor).i64c(1n).op(OP.i64_and);
            f.i64c(11n).op(OP.i64_shl).op(OP.i64_or);
          } else if (i.kind === 5) { // SHR
            f.get(T0).i64c(c).op(OP.i64_shr_u).set(T1);
            f.get(T0).i64c(c - 1n).op(OP.i64_shr_u).i64c(1n).op(OP.i64_and).set(T2);
            szp(T1, i.size);
            f.get(T2).op(OP.i64_or);
            f.get(T0).i64c(sb).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_eqz).op(OP.i64_extend_i32_u);
            f.i64c(11n).op(OP.i64_shl).op(OP.i64_or);
          } else { // SAR
            f.get(T0);
            if (i.size === 4) f.op(OP.i64_extend32_s);
            f.set(T2);
            f.get(T2).i64c(c).op(OP.i64_shr_s);
            trunc(i.size);
            f.set(T1);
            f.get(T2).i64c(c - 1n).op(OP.i64_shr_s).i64c(1n).op(OP.i64_and).set(T2);
            szp(T1, i.size);
            f.get(T2).op(OP.i64_or);
          }
          f.set(L_FLAGS);
          eager();
          f.get(T1).set(reg(i.r));
          break;
        }
        case "call":
          f.get(reg(4)).i64c(8n).op(OP.i64_sub).set(L_EA);
          hostOf(k, 8, P_PW);
          store(8, () => f.i64c(i.ret));
          f.get(L_EA).set(reg(4));
          codeStore(k);
          break;
        case "ret": // a return elsewhere leaves before the RET (the interpreter runs it)
          f.get(reg(4)).set(L_EA);
          hostOf(k, 8, P_PR);
          load(8);
          f.i64c(i.to).op(OP.i64_ne).op(OP.if).byte(VOID);
          leave(k, ipOf(k));
          f.op(OP.end);
          f.get(L_EA).i64c(8n).op(OP.i64_add).set(reg(4));
          break;
        case "back": {
          const p: Prod = prod;
          if (p === null) throw new Error("back edge without a flag-setting instruction before it");
          emitCond(f, i.cc, p);
          f.op(OP.if).byte(VOID);
          f.get(L_CNT).i32c(k + 1).op(OP.i32_add).set(L_CNT).op(OP.br).u32(1);
          f.op(OP.end);
          backs.push(p);
          break;
        }
        case "exit": {
          const p: Prod = prod;
          if (p === null) {
            throw new Error("side exit without a flag-setting instruction before it (decodeLoop declines it)");
          }
          emitCond(f, i.cc, p);
          f.op(OP.if).byte(VOID);
          leave(k + 1, i.target);
          f.op(OP.end);
          break;
        }
        case "test":
          val(i.a, i.size);
          f.set(L_A);
          val(i.b, i.size);
          f.set(L_B);
          f.get(L_A).get(L_B).op(OP.i64_and).set(L_RES);
          lazy(CC_LOGIC, i.size);
          break;
        case "incdec": {
          // setLazyIncDec: CF is kept in ccCarry when the previous op was not INC/DEC.
          const p: Prod = prod;
          if (p === null) {
            f.get(L_OP).i32c(CC_INC).op(OP.i32_lt_s).op(OP.if).byte(VOID);
            emitCF(f, null);
            f.op(OP.i64_extend_i32_u).set(L_CARRY);
            f.op(OP.end);
          } else if (p.op < CC_INC) {
            emitCF(f, p);
            f.op(OP.i64_extend_i32_u).set(L_CARRY);
          }
          f.get(reg(i.r)).i64c(1n).op(i.dec ? OP.i64_sub : OP.i64_add);
          trunc(i.size);
          f.tee(L_RES).set(reg(i.r));
          lazy(i.dec ? CC_DEC : CC_INC, i.size);
          break;
        }
        case "mov":
          val(i.s, i.size);
          f.set(reg(i.d));
          break;
        case "movi":
          f.i64c(i.v).set(reg(i.d));
          break;
        case "lea": {
          f.i64c(i.disp);
          if (i.base >= 0) f.get(reg(i.base)).op(OP.i64_add);
          if (i.index >= 0) f.get(reg(i.index)).i64c(BigInt(i.scale)).op(OP.i64_shl).op(OP.i64_add);
          trunc(i.size);
          f.set(reg(i.d));
          break;
        }
        case "cpuid": // the table lookup in the core; EAX..EDX zero-extended
          f.get(reg(R_AX)).op(OP.i32_wrap_i64).get(reg(R_CX)).op(OP.i32_wrap_i64).op(OP.call).u32(F_CPUID);
          [R_AX, R_BX, R_CX, R_DX].forEach((r, n) => f.gget(GL_CPUID + n).op(OP.i64_extend_i32_u).set(reg(r)));
          break;
        case "rdmsr": // in the kernel when the core can answer it plainly, else the interpreter runs it
          f.get(reg(R_CX)).op(OP.i32_wrap_i64).op(OP.call).u32(F_RDMSR).op(OP.i32_eqz).op(OP.if).byte(VOID);
          leave(k, ipOf(k));
          f.op(OP.end);
          f.gget(GL_MSR).set(T0);
          f.get(T0).i64c(0xffffffffn).op(OP.i64_and).set(reg(R_AX));
          f.get(T0).i64c(32n).op(OP.i64_shr_u).set(reg(R_DX));
          break;
        case "out": // taken by a coalesced zone in the kernel, else the interpreter runs it (an exit)
          if (i.port >= 0) f.i32c(i.port);
          else f.get(reg(R_DX)).op(OP.i32_wrap_i64).i32c(0xffff).op(OP.i32_and);
          f.i32c(i.size).get(reg(R_AX)).op(OP.i32_wrap_i64).op(OP.call).u32(F_OUT).op(OP.i32_eqz).op(OP.if).byte(VOID);
          leave(k, ipOf(k));
          f.op(OP.end);
          break;
        case "nop":
          break;
        default: {
          const never: never = i;
          throw new Error(`unknown insn ${JSON.stringify(never)}`);
        }
      }
    }
    f.get(L_CNT).i32c(B).op(OP.i32_add).set(L_CNT);
    const br = loop.branch;
    if (br.k === "jcc") {
      const p: Prod = prod;
      if (p === null) throw new Error("Jcc without a flag-setting instruction in the block (decodeLoop declines it)");
      emitCond(f, br.cc, p);
      f.op(OP.i32_eqz).op(OP.if).byte(VOID).i64c(br.fall).set(L_IPOUT).op(OP.br).u32(out + 1).op(OP.end);
    }
    f.op(OP.end); // $iter
    // The next iteration starts from the end of this one or from a back edge: a static producer only if all agree.
    const end: Prod = prod;
    if (backs.some((b) => b === null || end === null || b.op !== end.op || b.size !== end.size)) prod = null;
  };
  // The first iteration with the flag state of the entry; the later ones start
  // from the state the body leaves (static). Four at a time while the budget
  // has room, then one at a time.
  f.op(OP.block).byte(VOID); // $out
  emitCopy(0);
  f.i64c(ip).set(L_IPOUT); // a budget exit leaves at the loop start
  f.op(OP.block).byte(VOID).op(OP.loop).byte(VOID); // $tail, $main
  f.get(P_BUDGET).get(L_CNT).op(OP.i32_sub).i32c(UNROLL * B).op(OP.i32_lt_s).op(OP.br_if).u32(1);
  for (let k = 0; k < UNROLL; k++) emitCopy(2);
  f.op(OP.br).u32(0).op(OP.end).op(OP.end);
  f.op(OP.loop).byte(VOID); // $one
  f.get(P_BUDGET).get(L_CNT).op(OP.i32_sub).i32c(B).op(OP.i32_lt_s).op(OP.br_if).u32(1);
  emitCopy(1);
  f.op(OP.br).u32(0).op(OP.end);
  f.op(OP.end); // $out
  // Leave: GPRs, lazy flags, next RIP.
  for (const r of written) f.get(P_G).get(reg(r)).mem(OP.i64_store, 3, r * 8);
  f.get(L_OP).gset(GL_OP).get(L_SIZE).gset(GL_SIZE).get(L_RES).gset(GL_RES).get(L_A).gset(GL_A);
  f.get(L_B).gset(GL_B).get(L_CARRY).gset(GL_CARRY).get(L_FLAGS).gset(GL_FLAGS);
  f.get(L_IPOUT).gset(GL_IP);
  f.get(L_CNT);
  const main: Func = {
    type: { params: [I64, I32, I32, I32, I32, I32, I32, I32, I32], results: [I32] },
    locals: LOCALS.slice(),
    body: f,
  };
  return moduleBytes(JIT_GLOBALS, [main, cfHelper()], F_MAIN, JIT_FUNCS);
}
