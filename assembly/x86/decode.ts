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
// - Fast paths, both prefix-free (REX allowed): in 32/64-bit code fastrun.ts
//   fastRun() runs the commonest instructions back to back (one 64-bit fetch per
//   instruction, flag op + Jcc macro-fused, hot register-only loops run as
//   translated WASM through jit.ts; its header has the rules); what it
//   declines goes to fastStep() below (Jcc rel8, INC/DEC r, ALU/MOV/TEST r,r, ALU
//   r,imm8, MOV r <-> [base+disp8/32], PUSH/POP, CALL/RET, IN/OUT, HLT, CPUID, RDMSR, any code
//   size); everything else takes the general decoder (prefixes, ModRM/SIB, one-byte
//   and 0F maps).
import { TLB_HOST, TLB_PERM, TLB_TAG, VS_GPR, VS_INSTRUCTIONS } from "../abi.generated";
import { P_SR, P_SW, P_UR, P_UW, tlbEntry } from "./tlb";
import { CC_DEC, CC_EAGER, CC_INC, ccOp, ccRes, cond, restoreFlags, saveFlags, setLazyIncDec, sizeMask } from "./flags";
import { ALU_AND, ALU_CMP, alu } from "./alu";
import { getReg, setReg } from "./exec_operands";
import { fwDelta, fwHi, fwLo } from "./fetchwin";
import { S, SEG_CS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS, ST_EXIT, ST_OK, rip, setRip, setStatus, status } from "./cpu";
import {
  insnStart, lockPrefix, setAddrSize, setInsnStart, setLockPrefix, setNextIp, setOpSize, setRepPrefix, setRex, setSegOverride,
} from "./decode_state";
import { execOneByte } from "./exec_onebyte";
import { lockAllowed } from "./lock";
import { EXC_UD, raise } from "./exceptions";
import { clearReplay } from "./exec_operands";
import { ringTick } from "../kvm/coalesced";
import { MSR_TSC } from "../kvm/msr";
import { fetch8, mmioStoreFinal, pendLoadReg, pop, push, readMem, readMemRmw, writeMem, writeMemFinal } from "./mem";
import { callNear, retNear } from "./exec_onebyte";
import { sysCpuid, sysHlt, sysIn, sysOut, sysRdmsr } from "./exec_system";
import { cpl, csDefault32, is64 } from "./mode";
import { fastRun, runIp } from "./fastrun";

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
  if (lockPrefix != 0 && !lockAllowed(b)) { raise(EXC_UD); return; }
  if (status != ST_OK) return;
  execOneByte(b);
}

/** Instructions stepMany() ran before its general-path instruction, not yet added to VS_INSTRUCTIONS. */
let inFlight: i32 = 0;
/**
 * For the TSC (kvm/msr.ts tscNow) while stepMany() runs an instruction on its general
 * path: VS_INSTRUCTIONS lags by this many retired instructions until stepMany() returns
 * (0 outside stepMany). Only the general path reads the TSC: fastRun and fastStep leave
 * an RDMSR of it there.
 */
export function instructionsInFlight(): i32 { return inFlight - unretired; }

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
 * Fast path for the common prefix-free (REX allowed) instructions, decoded from
 * the fetch window with locals. Returns the next RIP, FAST_MISS to take the
 * general path (which then re-decodes from RIP), FAST_FAULT (status set, nothing
 * committed) or FAST_SYNC (the instruction ran through shared code that set RIP
 * and maybe status in the state block). Needs the whole instruction inside the
 * fetch window [wLo, wHi) and is only used by stepMany (no TF/debug/replay).
 * Semantics come from the shared helpers (alu, push/pop, readMem/writeMem,
 * callNear/retNear, the IO and HLT routines); only decoding is done here.
 */
/** fastStep's "not handled" result (never a valid RIP: non-canonical). */
const FAST_MISS: u64 = 0x8000000000000000;
/** fastStep's "faulted or exited" result (status says which; nothing committed). */
const FAST_FAULT: u64 = 0x8000000000000001;
/** fastStep's "done by shared code": RIP and status are in the state block. */
const FAST_SYNC: u64 = 0x8000000000000002;

// Memory operand decoded by fastEa: bytes after ModRM (SIB + displacement) and segment.
let fEaLen: i32 = 0;
let fEaSeg: i32 = SEG_DS;

@inline function sx8(v: u32): u64 { return <u64><i64><i8>v; }
@inline function sx32(v: u32): u64 { return <u64><i64><i32>v; }

/**
 * Effective address of a ModRM memory operand (mod != 3) with 32/64-bit
 * addressing, like exec_operands.ts decodeEa32. `q` points after ModRM, `ipq`
 * is its IP, `immLen` the immediate bytes after the displacement (RIP-relative).
 */
@inline function fastEa(q: usize, m: u32, rx: u32, m64: bool, g: i32, ipq: u64, immLen: i32): u64 {
  const mod = m >> 6;
  const rm = m & 7;
  let addr: u64 = 0;
  let n: i32 = 0;
  let seg = SEG_DS;
  if (rm == 4) {
    const sib = <u32>load<u8>(q);
    n = 1;
    const idx = <i32>(((sib >> 3) & 7) | ((rx & 2) << 2));
    const bse = <i32>((sib & 7) | ((rx & 1) << 3));
    if (idx != 4) addr = load<u64>(g + (idx << 3)) << <u64>(sib >> 6);
    if ((bse & 7) == 5 && mod == 0) { addr += sx32(load<u32>(q + 1)); n = 5; }
    else {
      addr += load<u64>(g + (bse << 3));
      if (bse == 4 || bse == 5) seg = SEG_SS;
    }
  } else if (rm == 5 && mod == 0) {
    const d = sx32(load<u32>(q));
    n = 4;
    addr = m64 ? ipq + 4 + <u64>immLen + d : d;
  } else {
    const r = <i32>(rm | ((rx & 1) << 3));
    addr = load<u64>(g + (r << 3));
    if (r == 5) seg = SEG_SS;
  }
  if (mod == 1) { addr += sx8(<u32>load<u8>(q + n)); n += 1; }
  else if (mod == 2) { addr += sx32(load<u32>(q + n)); n += 4; }
  fEaLen = n;
  fEaSeg = seg;
  return m64 ? addr : addr & 0xffffffff;
}

/** Commit RIP (the next instruction) at the code segment's width. */
@inline function nextRip(ip: u64, len: u64, m64: bool, d32: bool): u64 {
  return m64 ? ip + len : (ip + len) & (d32 ? 0xffffffff : 0xffff);
}

/** A near jump target, or FAST_MISS when it may be non-canonical (the general path raises #GP). */
@inline function branchTarget(t: u64, nip: u64, m64: bool, d32: bool): u64 {
  if (m64) return ((t ^ nip) >> 47) != 0 ? FAST_MISS : t;
  return t & (d32 ? 0xffffffff : 0xffff);
}

/** Prepare the decode state for shared code (faults, exits and internal errors need the bounds). */
@inline function bounds(ip: u64, len: u64): void {
  setInsnStart(ip);
  setNextIp(ip + len);
}

@inline function fastStep(ip: u64, h: usize, m64: bool, d32: bool, g: i32): u64 {
  const b0 = <u32>load<u8>(h);
  if ((b0 & 0xf0) == 0x70) { // Jcc rel8
    const nip = ip + 2;
    const cc = <i32>(b0 & 15);
    let take: bool;
    if ((cc >> 1) == 2 && ccOp != CC_EAGER) take = (ccRes == 0) != ((cc & 1) != 0); // JZ/JNZ
    else take = cond(cc);
    if (take) return branchTarget(nip + sx8(<u32>load<u8>(h + 1)), nip, m64, d32);
    return m64 ? nip : nip & (d32 ? 0xffffffff : 0xffff);
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
  const pre = <u64>(p - h); // REX bytes
  const m = <u32>load<u8>(p + 1);
  if (b == 0xff && (m & 0xf0) == 0xc0) { // INC/DEC r (FF /0 /1), the loop-counter case first
    incDecReg(g, <i32>((m & 7) | ((rx & 1) << 3)), size, (m & 8) != 0);
    return nextRip(ip, pre + 2, m64, d32);
  }
  const reg = <i32>(((m >> 3) & 7) | ((rx & 4) << 1));
  const rm = <i32>((m & 7) | ((rx & 1) << 3));
  // Memory operands need 32/64-bit addressing (prefix-free: the code segment's).
  const memOk = m64 || d32;
  let len: u64 = pre + 2;
  if (b < 0x40 && (b & 4) == 0) {
    // ALU 00–3B: Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev.
    const op = <i32>(b >> 3);
    const s = (b & 1) == 0 ? 1 : size;
    if (s == 1) setRex(<i32>rx);
    if (m >= 0xc0) {
      if ((b & 2) == 0) {
        const r = alu(op, getReg(rm, s), getReg(reg, s), s);
        if (op != ALU_CMP) setReg(rm, s, r);
      } else {
        const r = alu(op, getReg(reg, s), getReg(rm, s), s);
        if (op != ALU_CMP) setReg(reg, s, r);
      }
      return nextRip(ip, len, m64, d32);
    }
    if (!memOk) return FAST_MISS;
    const addr = fastEa(p + 2, m, rx, m64, g, ip + len, 0);
    len += <u64>fEaLen;
    bounds(ip, len);
    if ((b & 2) != 0) { // Gv,Ev: read the memory operand
      const v = fastRead(fEaSeg, addr, s, m64);
      if (status != ST_OK) return FAST_FAULT;
      const r = alu(op, getReg(reg, s), v, s);
      if (op != ALU_CMP) setReg(reg, s, r);
    } else if (op == ALU_CMP) {
      const v = fastRead(fEaSeg, addr, s, m64);
      if (status != ST_OK) return FAST_FAULT;
      alu(op, v, getReg(reg, s), s);
    } else if (!aluMem(op, addr, getReg(reg, s), s, m64)) return FAST_FAULT;
    return nextRip(ip, len, m64, d32);
  }
  if (b < 0x40 && (b & 6) == 4) { // ALU AL,Ib / eAX,Iz
    const op = <i32>(b >> 3);
    const s = (b & 1) == 0 ? 1 : size;
    let imm: u64;
    if (s == 1) { imm = <u64>load<u8>(p + 1); len = pre + 2; }
    else if (s == 2) { imm = <u64>load<u16>(p + 1); len = pre + 3; }
    else { imm = sx32(load<u32>(p + 1)) & sizeMask(s); len = pre + 5; }
    const r = alu(op, getReg(0, s), imm, s);
    if (op != ALU_CMP) setReg(0, s, r);
    return nextRip(ip, len, m64, d32);
  }
  // IN/OUT and HLT before the switch (a chain of compares): their exits are what an
  // exit-heavy guest runs most.
  if ((b & 0xf4) == 0xe4) { // IN / OUT (E4-E7, EC-EF)
    const s = (b & 1) == 0 ? 1 : (m64 || d32 ? 4 : 2);
    const port = b < 0xe8 ? <i32>m : <i32>(load<u64>(g + 16) & 0xffff);
    setRip(ip);
    bounds(ip, pre + (b < 0xe8 ? 2 : 1));
    if ((b & 2) == 0) sysIn(port, s); else sysOut(port, s);
    return FAST_SYNC;
  }
  // CPUID / RDMSR: the in-kernel exits (0F map, no ModRM); an RDMSR of the TSC takes the
  // general path, which knows the instructions in flight.
  if (b == 0x0f && (m == 0xa2 || (m == 0x32 && <u32>load<u64>(g + 8) != MSR_TSC))) {
    // Neither changes mode, segments or paging (WRMSR may: the general path).
    setRip(ip);
    bounds(ip, pre + 2);
    if (m == 0xa2) sysCpuid(); else sysRdmsr();
    return FAST_SYNC;
  }
  if (b == 0xf4) { // HLT (commits, then exits)
    setRip(ip);
    bounds(ip, pre + 1);
    sysHlt();
    return FAST_SYNC;
  }
  switch (b) {
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: { // PUSH r
      const s = m64 ? 8 : size;
      bounds(ip, pre + 1);
      push(s, getReg(<i32>((b & 7) | ((rx & 1) << 3)), s));
      if (status != ST_OK) return FAST_FAULT;
      return nextRip(ip, pre + 1, m64, d32);
    }
    case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: { // POP r
      const s = m64 ? 8 : size;
      bounds(ip, pre + 1);
      const v = pop(s);
      if (status != ST_OK) return FAST_FAULT;
      setReg(<i32>((b & 7) | ((rx & 1) << 3)), s, v);
      return nextRip(ip, pre + 1, m64, d32);
    }
    case 0x85: { // TEST Ev, Gv
      if (m >= 0xc0) {
        alu(ALU_AND, getReg(rm, size), getReg(reg, size), size);
        break;
      }
      if (!memOk) return FAST_MISS;
      const addr = fastEa(p + 2, m, rx, m64, g, ip + len, 0);
      len += <u64>fEaLen;
      bounds(ip, len);
      const v = fastRead(fEaSeg, addr, size, m64);
      if (status != ST_OK) return FAST_FAULT;
      alu(ALU_AND, v, getReg(reg, size), size);
      break;
    }
    case 0x88: case 0x89: case 0x8a: case 0x8b: { // MOV Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev
      const s = (b & 1) == 0 ? 1 : size;
      if (s == 1) setRex(<i32>rx);
      if (m >= 0xc0) {
        if (b < 0x8a) setReg(rm, s, getReg(reg, s));
        else setReg(reg, s, getReg(rm, s));
        break;
      }
      if (!memOk) return FAST_MISS;
      const addr = fastEa(p + 2, m, rx, m64, g, ip + len, 0);
      len += <u64>fEaLen;
      bounds(ip, len);
      if (b >= 0x8a) {
        const v = fastRead(fEaSeg, addr, s, m64);
        if (status != ST_OK) {
          if (status == ST_EXIT) pendLoadReg(reg, s); // an MMIO read: re-entry may just write the register
          return FAST_FAULT;
        }
        setReg(reg, s, v);
      } else {
        fastWrite(fEaSeg, addr, s, getReg(reg, s), m64);
        if (status != ST_OK) return FAST_FAULT;
      }
      break;
    }
    case 0x8d: { // LEA Gv, M
      if (m >= 0xc0 || !memOk) return FAST_MISS;
      const addr = fastEa(p + 2, m, rx, m64, g, ip + len, 0);
      len += <u64>fEaLen;
      setReg(reg, size, addr);
      break;
    }
    case 0x81: case 0x83: { // ALU Ev, Iz / Ib
      const immLen = b == 0x83 ? 1 : (size == 2 ? 2 : 4);
      let addr: u64 = 0;
      let q = p + 2;
      if (m < 0xc0) {
        if (!memOk) return FAST_MISS;
        addr = fastEa(q, m, rx, m64, g, ip + len, immLen);
        q += <usize>fEaLen;
      }
      let imm: u64;
      if (b == 0x83) imm = sx8(<u32>load<u8>(q)) & sizeMask(size);
      else if (size == 2) imm = <u64>load<u16>(q);
      else imm = sx32(load<u32>(q)) & sizeMask(size);
      len = <u64>(q - h) + <u64>immLen;
      const op = reg & 7;
      if (m >= 0xc0) {
        const r = alu(op, getReg(rm, size), imm, size);
        if (op != ALU_CMP) setReg(rm, size, r);
        break;
      }
      bounds(ip, len);
      if (op == ALU_CMP) {
        const v = fastRead(fEaSeg, addr, size, m64);
        if (status != ST_OK) return FAST_FAULT;
        alu(op, v, imm, size);
      } else if (!aluMem(op, addr, imm, size, m64)) return FAST_FAULT;
      break;
    }
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf: { // MOV r, imm
      const r = <i32>((b & 7) | ((rx & 1) << 3));
      if (size == 8) { setReg(r, 8, load<u64>(p + 1)); len = pre + 9; }
      else if (size == 4) { setReg(r, 4, <u64>load<u32>(p + 1)); len = pre + 5; }
      else { setReg(r, 2, <u64>load<u16>(p + 1)); len = pre + 3; }
      break;
    }
    case 0xeb: { // JMP rel8
      const nip = ip + pre + 2;
      return branchTarget(nip + sx8(m), nip, m64, d32);
    }
    case 0xe9: { // JMP rel32
      if (!memOk) return FAST_MISS;
      const nip = ip + pre + 5;
      return branchTarget(nip + sx32(load<u32>(p + 1)), nip, m64, d32);
    }
    case 0xe8: { // CALL rel32 (callNear: push, then the target checks)
      if (!memOk) return FAST_MISS;
      setRip(ip);
      bounds(ip, pre + 5);
      setOpSize(4);
      callNear(ip + pre + 5 + sx32(load<u32>(p + 1)));
      return FAST_SYNC;
    }
    case 0xc3: { // RET
      if (!memOk) return FAST_MISS;
      setRip(ip);
      bounds(ip, pre + 1);
      setOpSize(4);
      retNear(0);
      return FAST_SYNC;
    }
    default:
      return FAST_MISS;
  }
  return nextRip(ip, len, m64, d32);
}

/**
 * Data access for the fast path: in 64-bit mode (DS/SS base 0, no limits) a TLB
 * hit on a page-contained access goes straight to the host; everything else
 * (other modes, misses, page crossings, MMIO) takes mem.ts readMem/writeMem.
 * stepMany only runs without data breakpoints, so nothing else is skipped.
 */
@inline function tlbHost(lin: u64, size: i32, user: u32, sup: u32): i64 {
  const e = tlbEntry(lin);
  if (load<u64>(e + TLB_TAG) == (lin >> 12) + 1 && (load<u32>(e + TLB_PERM) & (cpl() == 3 ? user : sup)) != 0 &&
    <i32>(lin & 0xfff) + size <= 4096) return <i64>(<u64>load<u32>(e + TLB_HOST) + (lin & 0xfff));
  return -1;
}

@inline function fastRead(seg: i32, addr: u64, size: i32, m64: bool): u64 {
  if (m64) {
    const h = tlbHost(addr, size, P_UR, P_SR);
    if (h >= 0) {
      const a = <usize>h;
      if (size == 4) return <u64>load<u32>(a);
      if (size == 8) return load<u64>(a);
      if (size == 1) return <u64>load<u8>(a);
      return <u64>load<u16>(a);
    }
  }
  return readMem(seg, addr, size);
}

@inline function fastWrite(seg: i32, addr: u64, size: i32, v: u64, m64: bool): void {
  if (m64) {
    const h = tlbHost(addr, size, P_UW, P_SW);
    if (h >= 0) {
      const a = <usize>h;
      if (size == 4) store<u32>(a, <u32>v);
      else if (size == 8) store<u64>(a, v);
      else if (size == 1) store<u8>(a, <u8>v);
      else store<u16>(a, <u16>v);
      return;
    }
    if (seg != SEG_FS && seg != SEG_GS && mmioStoreFinal(addr, size, v)) return;
  }
  writeMemFinal(seg, addr, size, v);
}

/**
 * Read-modify-write ALU on memory (ALU Ev,Gv / Ev,Ib): the flags are set before
 * the write, so a faulting or exiting write puts them back (like exec_onebyte's
 * memory forms). Returns false when status != ST_OK.
 */
function aluMem(op: i32, addr: u64, b: u64, size: i32, m64: bool): bool {
  const seg = fEaSeg;
  if (m64) {
    const h = tlbHost(addr, size, P_UW, P_SW); // writable and present: nothing can fault
    if (h >= 0) {
      const p = <usize>h;
      if (size == 4) store<u32>(p, <u32>alu(op, <u64>load<u32>(p), b, 4));
      else if (size == 8) store<u64>(p, alu(op, load<u64>(p), b, 8));
      else if (size == 1) store<u8>(p, <u8>alu(op, <u64>load<u8>(p), b, 1));
      else store<u16>(p, <u16>alu(op, <u64>load<u16>(p), b, 2));
      return true;
    }
  }
  const a = readMemRmw(seg, addr, size);
  if (status != ST_OK) return false;
  saveFlags();
  const r = alu(op, a, b, size);
  writeMem(seg, addr, size, r);
  if (status != ST_OK) { restoreFlags(); return false; }
  return true;
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

/** RIP `ip` has 16 bytes of the fetch window [wLo, wHi) from it (and ip + 16 does not wrap). */
@inline function inWindow(ip: u64, wLo: u64, wHi: u64): bool { return ip >= wLo && ip + 16 <= wHi && ip + 16 > ip; }

/**
 * stepMany's hot loop alone, for run() right after it completed an exit: fastRun from RIP
 * when the fetch window holds it in 32/64-bit code; RIP and VS_INSTRUCTIONS are then
 * current. Returns how many instructions it retired (status says why it stopped), or -1
 * when it could not start (nothing done).
 */
export function stepFast(n: i32): i32 {
  const ip = rip();
  const wLo = fwLo, wHi = fwHi;
  if (!inWindow(ip, wLo, wHi) || !(is64() || csDefault32())) return -1;
  const user = cpl() == 3;
  const i = fastRun(ip, n, is64(), wLo, wHi - 16 - wLo, fwDelta, S + VS_GPR, user ? P_UR : P_SR, user ? P_UW : P_SW);
  setRip(runIp);
  if (i > 0) countRetired(i);
  return i;
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
  let pr: u32 = cpl() == 3 ? P_UR : P_SR, pw: u32 = cpl() == 3 ? P_UW : P_SW;
  while (i < n) {
    if (inWindow(ip, wLo, wHi)) {
      // The hot loop first; it stops before anything it does not handle.
      if (m64 || d32) {
        i += fastRun(ip, n - i, m64, wLo, wHi - 16 - wLo, wDelta, gpr, pr, pw);
        ip = runIp;
        if (status != ST_OK) break; // IN/OUT, RDMSR or an MMIO MOV exited (or faulted) inside fastRun
        if (i >= n) break;
      }
    }
    if (inWindow(ip, wLo, wHi)) {
      const nip = fastStep(ip, <usize>(wDelta + ip), m64, d32, gpr);
      if (nip < FAST_MISS || nip > FAST_SYNC) { ip = nip; i++; continue; }
      if (nip == FAST_FAULT) break;
      if (nip == FAST_SYNC) {
        const r = rip();
        if (status == ST_OK) { ip = r; i++; continue; }
        // An instruction that commits and then exits (HLT) retired too.
        if (status == ST_EXIT && r != insnStart) { ip = r; i++; }
        break;
      }
    }
    setRip(ip);
    inFlight = i;
    ringTick(); // the general path: a held coalesced ring is published within a few instructions
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
    pr = cpl() == 3 ? P_UR : P_SR; pw = cpl() == 3 ? P_UW : P_SW;
  }
  setRip(ip);
  inFlight = 0;
  if (i > 0) countRetired(i - unretired);
  return i;
}
