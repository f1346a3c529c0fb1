// Instruction decode entry points: step() / stepMany(n).
//
// Contract with the run loop (kvm/run.ts):
// - The caller runs flagsIn() before the first step and flagsOut() before
//   returning to TS (flags.ts keeps CF/PF/AF/ZF/SF/OF lazily in between).
// - step() executes one instruction. It resets `status` to ST_OK first. On
//   success the instruction has committed (RIP = next instruction or branch
//   target) and the replay log is cleared; otherwise status is ST_FAULT/ST_EXIT
//   and nothing architectural was committed (RIP = insnStart), except for
//   instructions that commit and then exit (HLT) and completed REP iterations.
// - INSTRUCTION COUNT: step() and stepMany() themselves add every retired
//   instruction to the state's VS_INSTRUCTIONS (HLT included). The run loop must
//   NOT add the return value again; it uses it only for its budget. While
//   stepMany() runs, VS_INSTRUCTIONS lags by instructionsInFlight() (for RDTSC).
// - stepMany(n) runs up to n instructions and stops early when status != ST_OK
//   or when breakLoop() was called (by system code after anything that needs
//   the run loop's attention: mode/CR/CS/SS changes, STI/POPF/MOV SS, TF set,
//   ...). It returns the number of instructions executed for the budget (a
//   REP chunk that did not finish counts there but not in VS_INSTRUCTIONS).
//   stepMany caches the mode (is64/csDefault32) and the fetch window between
//   instructions of its fast path; it re-reads them after every instruction
//   that goes through the general path, so system code that changes them must
//   either run as an instruction (it always does) or call breakLoop().
// - Fast path: prefix-free (REX allowed) Jcc rel8, INC/DEC r, ALU/MOV/TEST
//   r,r, ALU r,imm8 and MOV r <-> [base+disp8/32] (32/64-bit addressing) run
//   inside stepMany on locals; everything else takes
//   the general decoder (prefixes, ModRM/SIB, one-byte and 0F maps).
import { VS_GPR, VS_INSTRUCTIONS } from "../abi.generated";
import { CC_DEC, CC_EAGER, CC_INC, ccOp, ccRes, cond, setLazyIncDec, sizeMask } from "./flags";
import { ALU_AND, ALU_CMP, alu } from "./alu";
import { getReg, setReg } from "./exec_operands";
import { fwDelta, fwHi, fwLo } from "./fetchwin";
import { S, SEG_CS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS, ST_EXIT, ST_OK, rip, setRip, setStatus, status } from "./cpu";
import {
  insnStart, setAddrSize, setInsnStart, setLockPrefix, setNextIp, setOpSize, setRepPrefix, setRex, setSegOverride,
} from "./decode_state";
import { execOneByte } from "./exec_onebyte";
import { clearReplay } from "./exec_operands";
import { fetch8, readMem, writeMem } from "./mem";
import { csDefault32, is64 } from "./mode";

let loopBreak: bool = false;

/** Ask stepMany() to return after the current instruction. */
export function breakLoop(): void { loopBreak = true; }

@inline function isLegacyPrefix(b: u32): bool {
  return (b & 0xe7) == 0x26 || (b - 0x64) < 4 || b == 0xf0 || (b & 0xfe) == 0xf2;
}

/** Decode prefixes and execute one instruction (no retirement bookkeeping). */
function execOne(): void {
  setStatus(ST_OK);
  const start = rip();
  setInsnStart(start);
  setNextIp(start);
  const m64 = is64();
  const d32 = csDefault32();
  let b = fetch8();
  let rx: i32 = 0;
  if (isLegacyPrefix(b) || (m64 && (b & 0xf0) == 0x40)) {
    let o66 = false, a67 = false, seg = -1, rep = 0, lock = 0;
    while (true) {
      if (status != ST_OK) return;
      if (isLegacyPrefix(b)) {
        rx = 0; // REX must be the last prefix: a legacy prefix after it cancels it
        switch (b) {
          case 0x66: o66 = true; break;
          case 0x67: a67 = true; break;
          case 0x26: seg = SEG_ES; break;
          case 0x2e: seg = SEG_CS; break;
          case 0x36: seg = SEG_SS; break;
          case 0x3e: seg = SEG_DS; break;
          case 0x64: seg = SEG_FS; break;
          case 0x65: seg = SEG_GS; break;
          case 0xf0: lock = 1; break;
          default: rep = <i32>b; break; // F2 / F3: the last one wins
        }
      } else if (m64 && (b & 0xf0) == 0x40) {
        rx = <i32>b;
      } else break;
      b = fetch8();
    }
    setSegOverride(seg);
    setRepPrefix(rep);
    setLockPrefix(lock);
    setRex(rx);
    setOpSize((rx & 8) != 0 ? 8 : (((m64 || d32) != o66) ? 4 : 2));
    setAddrSize(m64 ? (a67 ? 4 : 8) : ((d32 != a67) ? 4 : 2));
  } else {
    setSegOverride(-1);
    setRepPrefix(0);
    setLockPrefix(0);
    setRex(0);
    setOpSize(m64 || d32 ? 4 : 2);
    setAddrSize(m64 ? 8 : (d32 ? 4 : 2));
  }
  if (status != ST_OK) return;
  execOneByte(b);
}

/** Instructions retired by the running stepMany() and not yet added to VS_INSTRUCTIONS. */
let inFlight: i32 = 0;
/**
 * For RDTSC & co. while stepMany() runs: VS_INSTRUCTIONS lags by this many
 * instructions until stepMany() returns (0 outside stepMany).
 */
export function instructionsInFlight(): i32 { return inFlight; }

/** Instructions that returned OK without completing (a chunk of a long REP). */
let unretired: i32 = 0;
/** The current instruction returns OK but has not completed (it runs again from insnStart). */
export function notRetired(): void { unretired++; }

@inline function countRetired(n: i32): void {
  store<u64>(S + VS_INSTRUCTIONS, load<u64>(S + VS_INSTRUCTIONS) + <u64>n);
}

/** Execute one instruction (see the contract at the top of this file). */
export function step(): void {
  unretired = 0;
  execOne();
  if (status == ST_OK || (status == ST_EXIT && rip() != insnStart)) { clearReplay(); countRetired(1 - unretired); }
}

/**
 * Fast path for the hottest prefix-free instructions (Jcc rel8, INC/DEC of a
 * register), done with locals only. Returns false to take the general path
 * (which then re-decodes from RIP). Needs the whole instruction inside the
 * fetch window [wLo, wHi) and is only used by stepMany (no TF/debug/replay).
 */
/** fastStep's "not handled" result (never a valid RIP: non-canonical). */
const FAST_MISS: u64 = 0x8000000000000000;
/** fastStep's "faulted or exited" result (status says which; nothing committed). */
const FAST_FAULT: u64 = 0x8000000000000001;

@inline function fastStep(ip: u64, h: usize, m64: bool, d32: bool, g: i32): u64 {
  const b0 = <u32>load<u8>(h);
  if ((b0 & 0xf0) == 0x70) { // Jcc rel8
    const nip = ip + 2;
    let t = nip;
    const cc = <i32>(b0 & 15);
    let take: bool;
    if ((cc >> 1) == 2 && ccOp != CC_EAGER) take = (ccRes == 0) != ((cc & 1) != 0); // JZ/JNZ
    else take = cond(cc);
    if (take) {
      t = nip + <u64><i64><i8>load<u8>(h + 1);
      if (m64) { if (((t ^ nip) >> 47) != 0) return FAST_MISS; } // maybe non-canonical: general path raises
      else t &= d32 ? 0xffffffff : 0xffff;
    } else if (!m64) t &= d32 ? 0xffffffff : 0xffff;
    return t;
  }
  let rx: u32 = 0;
  let p = h;
  let b = b0;
  if ((b0 & 0xf0) == 0x40) {
    if (!m64) { // INC/DEC r16/r32 (40–4F outside 64-bit mode)
      incDecReg(g, <i32>(b0 & 7), d32 ? 4 : 2, (b0 & 8) != 0);
      return d32 ? (ip + 1) & 0xffffffff : (ip + 1) & 0xffff;
    }
    rx = b0; p++; b = <u32>load<u8>(p);
  }
  const size = (rx & 8) != 0 ? 8 : (m64 || d32 ? 4 : 2);
  const m = <u32>load<u8>(p + 1);
  if (b == 0xff && (m & 0xf0) == 0xc0) { // INC/DEC r (FF /0 /1), the loop-counter case first
    incDecReg(g, <i32>((m & 7) | ((rx & 1) << 3)), size, (m & 8) != 0);
    const nl = <u64>(p - h) + 2;
    return m64 ? ip + nl : (ip + nl) & (d32 ? 0xffffffff : 0xffff);
  }
  const reg = <i32>(((m >> 3) & 7) | ((rx & 4) << 1));
  const rm = <i32>((m & 7) | ((rx & 1) << 3));
  let len: u64 = <u64>(p - h) + 2;
  if (b < 0x40 && (b & 5) == 1) {
    // ALU Ev,Gv (01 09 11 19 21 29 31 39) / Gv,Ev (03 0B ... 3B), register forms only.
    if (m < 0xc0) return FAST_MISS;
    const op = <i32>(b >> 3);
    if ((b & 2) == 0) {
      const r = alu(op, getReg(rm, size), getReg(reg, size), size);
      if (op != ALU_CMP) setReg(rm, size, r);
    } else {
      const r = alu(op, getReg(reg, size), getReg(rm, size), size);
      if (op != ALU_CMP) setReg(reg, size, r);
    }
  } else {
    switch (b) {
      case 0x85: // TEST r, r
        if (m < 0xc0) return FAST_MISS;
        alu(ALU_AND, getReg(rm, size), getReg(reg, size), size);
        break;
      case 0x8b: case 0x89: { // MOV r, [base(+disp)] / MOV [base(+disp)], r
        if (m >= 0xc0) {
          if (b == 0x89) setReg(rm, size, getReg(reg, size));
          else setReg(reg, size, getReg(rm, size));
          break;
        }
        if (!m64 && !d32) return FAST_MISS; // 16-bit addressing: general path
        const mod = m >> 6;
        if ((rm & 7) == 4 || (mod == 0 && (rm & 7) == 5)) return FAST_MISS; // SIB, disp32/RIP-relative
        let addr = load<u64>(S + VS_GPR + (rm << 3));
        if (mod == 1) { addr += <u64><i64><i8>load<u8>(p + 2); len += 1; }
        else if (mod == 2) { addr += <u64><i64><i32>load<u32>(p + 2); len += 4; }
        if (!m64) addr &= 0xffffffff;
        const seg = rm == 5 ? SEG_SS : SEG_DS;
        // Faults and exits need the instruction's bounds (delivery RIP, replay, internal errors).
        setInsnStart(ip);
        setNextIp(ip + len);
        if (b == 0x8b) {
          const v = readMem(seg, addr, size);
          if (status != ST_OK) return FAST_FAULT;
          setReg(reg, size, v);
        } else {
          writeMem(seg, addr, size, getReg(reg, size));
          if (status != ST_OK) return FAST_FAULT;
        }
        break;
      }
      case 0x83: { // ALU r, imm8
        if (m < 0xc0) return FAST_MISS;
        const imm = <u64><i64><i8>load<u8>(p + 2) & sizeMask(size);
        const op = reg & 7;
        const r = alu(op, getReg(rm, size), imm, size);
        if (op != ALU_CMP) setReg(rm, size, r);
        len++;
        break;
      }
      default:
        return FAST_MISS;
    }
  }
  if (m64) return ip + len;
  return (ip + len) & (d32 ? 0xffffffff : 0xffff);
}

@inline function incDecReg(g: i32, r: i32, size: i32, dec: bool): void {
  const a = g + (r << 3);
  const v = load<u64>(a);
  if (size == 8) {
    const res = dec ? v - 1 : v + 1;
    setLazyIncDec(dec ? CC_DEC : CC_INC, 8, res);
    store<u64>(a, res);
  } else if (size == 4) {
    const res = (dec ? v - 1 : v + 1) & 0xffffffff;
    setLazyIncDec(dec ? CC_DEC : CC_INC, 4, res);
    store<u64>(a, res);
  } else {
    const res = (dec ? v - 1 : v + 1) & 0xffff;
    setLazyIncDec(dec ? CC_DEC : CC_INC, 2, res);
    store<u16>(a, <u16>res);
  }
}

/** Execute up to n instructions; returns how many retired. */
export function stepMany(n: i32): i32 {
  loopBreak = false;
  unretired = 0;
  let i = 0;
  let m64 = is64();
  let d32 = csDefault32();
  let wLo = fwLo, wHi = fwHi, wDelta = fwDelta;
  let ip = rip();
  const gpr = S + VS_GPR;
  while (i < n) {
    if (ip >= wLo && ip + 16 <= wHi && ip + 16 > ip) {
      const nip = fastStep(ip, <usize>(wDelta + ip), m64, d32, gpr);
      if (nip < FAST_MISS || nip > FAST_FAULT) { ip = nip; i++; continue; }
      if (nip == FAST_FAULT) break;
    }
    setRip(ip);
    inFlight = i;
    execOne();
    ip = rip();
    if (status != ST_OK) {
      // An instruction that commits and then exits (HLT) retired too.
      if (status == ST_EXIT && ip != insnStart) { clearReplay(); i++; }
      break;
    }
    clearReplay();
    i++;
    if (loopBreak) break;
    m64 = is64();
    d32 = csDefault32();
    wLo = fwLo; wHi = fwHi; wDelta = fwDelta;
  }
  setRip(ip);
  inFlight = 0;
  if (i > 0) countRetired(i - unretired);
  return i;
}
