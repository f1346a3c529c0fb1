// The hot loop of stepMany (decode.ts): runs the commonest register, memory and
// branch instructions of 32/64-bit code back to back, decoding each from one
// 64-bit load of the fetch window, with flag op + Jcc macro-fused.
//
// Contract (called only by stepMany, under its own contract):
// - ip is inside the fetch window with 16 bytes to spare; code is 32- or 64-bit
//   (m64 || d32); no TF/RF/breakpoints/replay (stepMany's preconditions).
// - Runs at most n instructions and returns how many retired; `runIp` is then
//   the next RIP (not yet stored in the state block: stepMany commits it).
// - Stops, with the stopping instruction not started (nothing of it
//   committed), at the first instruction it does not handle, at a TLB miss or a
//   page-crossing access, at any branch target that would fault, and at the
//   fetch window's end. It never faults or exits itself (except IN/OUT,
//   RDMSR and MMIO MOVs: below):
//   anything that could goes back to stepMany's fastStep / general decoder,
//   which re-decodes it.
// - IN/OUT (E4-E7, EC-EF, no prefix; 8-bit or, in 32/64-bit code, 32-bit data)
//   run as fastStep runs them: RIP stored, sysIn()/sysOut(); fastRun then
//   returns with status as the instruction left it (ST_EXIT: the IO exit, RIP
//   and runIp at it; ST_FAULT: #GP from the IO permission check) and stepMany
//   takes it from there. CPUID and RDMSR (0F A2 / 0F 32) run as fastStep runs
//   them and the loop goes on; an RDMSR that faults (#GP) or exits to user space
//   returns the same way. A MOV store or load (88/89, 8A/8B) that misses the
//   TLB on an address the one-entry MMIO translation covers exits there too
//   (mem.ts mmioStoreFinal / mmioLoadFinal, as fastStep's MOV does: ST_EXIT,
//   RIP and runIp at it; a load with its register completion recorded).
//   OUTSB / REP OUTSB (6E / F3 6E) in 64-bit code run one element with its exit
//   when RSI hits the TLB (io.ts outsbFast, as execOuts runs it); a REP with RCX 0
//   just retires.
//   HLT (F4, no prefix) runs as fastStep runs it: it commits (RIP past it) and
//   exits, and counts as retired (runIp past it); at CPL > 0 its #GP returns
//   with runIp at it. INT3 (CC, no prefix) under KVM_GUESTDBG_USE_SW_BP makes
//   its KVM_EXIT_DEBUG (sys_int.ts execInt3: RIP and runIp at it, not retired);
//   without it fastRun stops there and the general path delivers the #BP.
// - Memory operands only in 64-bit mode (DS/SS base 0, no limits, no
//   prefixes so no FS/GS): a TLB hit with the right permission on a
//   page-contained access goes straight to the host page, like fastRead /
//   fastWrite in decode.ts. There is no #AC in kvmsim.
// - Macro-fusion: a register-only flag-setting instruction (ALU r,r / r,imm,
//   TEST r,r, INC/DEC r) followed by Jcc rel8 inside the same 8 fetched bytes
//   runs both in one dispatch when the budget allows two; the lazy flags end
//   exactly as the two instructions leave them (Jcc reads, never writes, them).
//   Nothing is fused after a memory write, so self-modifying code is seen: every
//   other instruction is fetched afresh from guest memory (nothing decoded is
//   kept between instructions, so there is no cache to invalidate). A fast lane
//   in front of the opcode switch takes INC/DEC r32 + JZ/JNZ (the usual loop
//   counter) with fewer checks; the switch fuses every other pair.
// - Nothing it runs changes what run.ts plainStepping() reads (TF, RF, DR7 and the
//   breakpoints, guest single-step, the interrupt shadow): run() relies on that to
//   re-enter after a fast-lane exit without checking again (run.ts plainExit). An
//   instruction that does (POPF, IRET, STI, MOV SS, MOV DRn) stays out of fastRun.
// - Flags go through flags.ts like everywhere else (setLazy*, cond): keeping
//   them in locals here was measured slower (register spills in the loop).
// - Translated loops (jit.ts): at every taken backward branch whose target is
//   inside the fetch window, jitProbe() runs the target's translation if it has
//   one (whole iterations within the remaining budget; it self-checks its code
//   bytes, RIP, host address and mode, so a stale one never runs) and the loop
//   goes on at jitIp with its retired count added; otherwise it counts the
//   target toward translation and fastRun interprets on.
import { TLB_HOST, TLB_PERM, TLB_TAG } from "../abi.generated";
import { ALU_ADC, ALU_ADD, ALU_AND, ALU_CMP, ALU_OR, ALU_SBB, ALU_XOR } from "./alu";
import {
  CC_ADC, CC_ADD, CC_DEC, CC_EAGER, CC_INC, CC_LOGIC, CC_SBB, CC_SUB, ccOp, ccRes, cond, getCF, setLazy,
  setLazyCarry, setLazyIncDec,
} from "./flags";
import { tlbEntry } from "./tlb";
import { jitIp, jitProbe } from "./jit";
import { ST_EXIT, ST_OK, rip, setRip, status } from "./cpu";
import { setInsnStart, setNextIp, setRex } from "./decode_state";
import { sysCpuid, sysHlt, sysIn, sysInt3, sysOut, sysRdmsr } from "./exec_system";
import { swBpDebug } from "./debug";
import { outsbFast } from "./io";
import { mmioLoadFinal, mmioStoreFinal, pendLoadReg } from "./mem";
import { ringTick } from "../kvm/coalesced";
import { MSR_TSC } from "../kvm/msr";

/**
 * Start the instruction of `len` bytes at `ip` as the general decoder would before
 * system code runs it: RIP stored, insnStart and nextIp set.
 */
@inline function beginAt(ip: u64, len: u64): void {
  setRip(ip);
  setInsnStart(ip);
  setNextIp(ip + len);
}

/**
 * A store of `len` bytes' instruction at `ip` that missed the TLB: when the one-entry MMIO
 * translation covers it (mem.ts mmioStoreFinal), it exits there (status ST_EXIT, RIP at the
 * instruction) as fastStep's store would; otherwise nothing is done and the interpreter
 * runs the instruction. True: the store was done without an exit (a coalesced zone took
 * it, kvm/coalesced.ts) and the instruction is complete but for RIP.
 */
function mmioStore(ip: u64, len: u64, addr: u64, size: i32, v: u64): bool {
  beginAt(ip, len);
  return mmioStoreFinal(addr, size, v) && status == ST_OK;
}

/**
 * A MOV r, [mem] of `size` bytes into GPR `reg` (REX already set for byte registers) that
 * missed the TLB: when the one-entry MMIO translation covers it (mem.ts mmioLoadFinal), it
 * exits there with the register completion recorded (pendLoadReg), as fastStep's load
 * would; otherwise nothing is done and the interpreter runs the instruction.
 */
function mmioLoad(ip: u64, len: u64, addr: u64, size: i32, reg: i32): void {
  beginAt(ip, len);
  if (mmioLoadFinal(addr, size)) pendLoadReg(reg, size);
}

/** RIP after the last instruction fastRun() retired. */
export let runIp: u64 = 0;

@inline function sx8(v: u64): u64 { return <u64><i64><i8><u8>v; }
@inline function sx32(v: u64): u64 { return <u64><i64><i32><u32>v; }

/** Host address for a page-contained access at linear `lin` with a TLB hit allowing `perm`, else -1. */
@inline function hostOf(lin: u64, size: i32, perm: u32): i64 {
  const e = tlbEntry(lin);
  if (load<u64>(e + TLB_TAG) == (lin >> 12) + 1 && (load<u32>(e + TLB_PERM) & perm) != 0 &&
    <i32>(lin & 0xfff) + size <= 4096) return <i64>(<u64>load<u32>(e + TLB_HOST) + (lin & 0xfff));
  return -1;
}

/**
 * Effective address of a ModRM memory operand (mod != 3) in 64-bit mode, like
 * decode.ts fastEa. `q` is the host address after ModRM, `ipq` its RIP, `immLen`
 * the immediate bytes that follow (for RIP-relative). Sets eaLen.
 */
let eaLen: i32 = 0;
@inline function ea64(q: usize, m: u32, rx: u32, g: i32, ipq: u64, immLen: i32): u64 {
  const mod = m >> 6;
  const rm = m & 7;
  let addr: u64 = 0;
  let n: i32 = 0;
  if (rm == 4) {
    const sib = <u32>load<u8>(q);
    n = 1;
    const idx = <i32>(((sib >> 3) & 7) | ((rx & 2) << 2));
    const bse = <i32>((sib & 7) | ((rx & 1) << 3));
    if (idx != 4) addr = load<u64>(g + (idx << 3)) << <u64>(sib >> 6);
    if ((bse & 7) == 5 && mod == 0) { addr += sx32(<u64>load<u32>(q + 1)); n = 5; }
    else addr += load<u64>(g + (bse << 3));
  } else if (rm == 5 && mod == 0) {
    addr = ipq + 4 + <u64>immLen + sx32(<u64>load<u32>(q));
    n = 4;
  } else addr = load<u64>(g + (<i32>(rm | ((rx & 1) << 3)) << 3));
  if (mod == 1) { addr += sx8(<u64>load<u8>(q + n)); n += 1; }
  else if (mod == 2) { addr += sx32(<u64>load<u32>(q + n)); n += 4; }
  eaLen = n;
  return addr;
}

/** Sentinel of jccAt(): the target may be non-canonical (the general path decides). */
const NO_JCC: u64 = 0x8000000000000000;

/** Jcc rel8 with condition cc at jip (rel8 in `rel`): the next RIP, or NO_JCC. */
@inline function jccAt(cc: u32, jip: u64, rel: u64, m64: bool): u64 {
  let take: bool;
  if ((cc >> 1) == 2 && ccOp != CC_EAGER) take = (ccRes == 0) != ((cc & 1) != 0); // JZ/JNZ
  else take = cond(<i32>cc);
  const nip = jip + 2;
  if (!take) return nip;
  const t = nip + sx8(rel);
  if (m64) return ((t ^ nip) >> 47) != 0 ? NO_JCC : t;
  return t & 0xffffffff;
}

/**
 * A Jcc rel8 at jip fused after a flag-setting op whose truncated result is r
 * (size bytes): ZF and SF come from r itself, the other conditions from flags.ts.
 */
@inline function jccFused(cc: u32, jip: u64, rel: u64, r: u64, size: i32, m64: bool): u64 {
  const k = cc >> 1;
  if (k != 2 && k != 4) return jccAt(cc, jip, rel, m64);
  const nip = jip + 2;
  const take = (k == 2 ? r == 0 : ((r >> ((<u64>size << 3) - 1)) & 1) != 0) != ((cc & 1) != 0);
  if (!take) return nip;
  const t = nip + sx8(rel);
  if (m64) return ((t ^ nip) >> 47) != 0 ? NO_JCC : t;
  return t & 0xffffffff;
}

/**
 * At a taken backward branch to t (a loop): its translation (jit.ts) runs from
 * there if it has one; returns the instructions it retired (then RIP = jitIp).
 */
@inline function jitAt(
  t: u64, budget: i32, m64: bool, wLo: u64, span: u64, wDelta: u64, g: i32, pr: u32, pw: u32,
): i32 {
  ringTick(); // a loop: a held coalesced ring is published within a few iterations
  if (t - wLo > span) return 0;
  return jitProbe(t, <u32>(wDelta + t), m64, <i32>(span + 16 - (t - wLo)), budget, g, pr, pw);
}

/**
 * Run up to n instructions from ip (see the contract above). `span` is
 * fwHi - 16 - fwLo, `g` the GPR array, `pr`/`pw` the TLB permission bits for a
 * data read/write at the current CPL.
 */
export function fastRun(ip0: u64, n: i32, m64: bool, wLo: u64, span: u64, wDelta: u64, g: i32, pr: u32, pw: u32): i32 {
  let ip = ip0;
  let i = 0;
  while (i < n) {
    if (ip - wLo > span) break;
    const h = <usize>(wDelta + ip);
    const w = load<u64>(h);
    // Fast lane for the commonest loop tail: INC/DEC r32 (FF /0 /1, no REX) and a
    // JZ/JNZ rel8 right after it (other Jcc: the switch below), budget allowing both.
    if ((w & 0xfef0ff) == 0x74c0ff && i + 1 < n) {
      const m = <u32>(w >> 8);
      const a = g + (<i32>(m & 7) << 3);
      const v = load<u64>(a);
      const dec = (m & 8) != 0;
      const r = (dec ? v - 1 : v + 1) & 0xffffffff;
      setLazyIncDec(dec ? CC_DEC : CC_INC, 4, r);
      store<u64>(a, r);
      const nip = ip + 4;
      i += 2;
      if ((r == 0) == ((w & 0x10000) == 0)) { // JZ and zero, or JNZ and not zero
        let t = nip + sx8(w >> 24);
        if (m64) {
          if (((t ^ nip) >> 47) != 0) { runIp = ip + 2; return i - 1; } // maybe non-canonical
        } else t &= 0xffffffff;
        if (t <= ip) {
          const k = jitAt(t, n - i, m64, wLo, span, wDelta, g, pr, pw);
          if (k != 0) { i += k; ip = jitIp; continue; }
        }
        ip = t;
      } else ip = nip;
      continue;
    }
    let b = <u32>w & 0xff;
    let x = w; // the bytes from the opcode on (after REX)
    let rx: u32 = 0;
    let pre: u64 = 0;
    if ((b & 0xf0) == 0x40 && m64) { rx = b; x = w >> 8; b = <u32>x & 0xff; pre = 1; }
    // Register-only flag-setting instructions set len and leave the switch for the
    // macro-fusion check; everything else continues the loop or returns.
    let len: u64 = 0;
    let fr: u64 = 0; // and its truncated result, for a fused Jcc
    let fsz: i32 = 4;
    switch (b) {
      case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
      case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f: { // Jcc rel8
        if (pre != 0) { runIp = ip; return i; }
        const t = jccAt(b & 15, ip, (w >> 8) & 0xff, m64);
        if (t == NO_JCC) { runIp = ip; return i; }
        i++;
        if (t <= ip) {
          const k = jitAt(t, n - i, m64, wLo, span, wDelta, g, pr, pw);
          if (k != 0) { i += k; ip = jitIp; continue; }
        }
        ip = t;
        continue;
      }
      case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
      case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f: { // INC/DEC r32
        if (m64) { runIp = ip; return i; } // a second REX: the general path
        const a = g + (<i32>(b & 7) << 3);
        const v = load<u64>(a);
        const r = ((b & 8) != 0 ? v - 1 : v + 1) & 0xffffffff;
        setLazyIncDec((b & 8) != 0 ? CC_DEC : CC_INC, 4, r);
        store<u64>(a, r);
        fr = r; fsz = 4; len = 1;
        break;
      }
      case 0xff: { // INC/DEC r (FF /0 /1)
        const m = <u32>(x >> 8) & 0xff;
        if ((m & 0xf0) != 0xc0) { runIp = ip; return i; }
        const a = g + (<i32>((m & 7) | ((rx & 1) << 3)) << 3);
        const v = load<u64>(a);
        if ((rx & 8) != 0) {
          const r = (m & 8) != 0 ? v - 1 : v + 1;
          setLazyIncDec((m & 8) != 0 ? CC_DEC : CC_INC, 8, r);
          store<u64>(a, r);
          fr = r; fsz = 8;
        } else {
          const r = ((m & 8) != 0 ? v - 1 : v + 1) & 0xffffffff;
          setLazyIncDec((m & 8) != 0 ? CC_DEC : CC_INC, 4, r);
          store<u64>(a, r);
          fr = r; fsz = 4;
        }
        len = pre + 2;
        break;
      }
      case 0x01: case 0x03: case 0x09: case 0x0b: case 0x11: case 0x13: case 0x19: case 0x1b:
      case 0x21: case 0x23: case 0x29: case 0x2b: case 0x31: case 0x33: case 0x39: case 0x3b: { // ALU Ev,Gv / Gv,Ev
        const size = (rx & 8) != 0 ? 8 : 4;
        const mask: u64 = size == 8 ? <u64>-1 : 0xffffffff;
        const m = <u32>(x >> 8) & 0xff;
        const reg = <i32>(((m >> 3) & 7) | ((rx & 4) << 1));
        const op = <i32>(b >> 3);
        if (m >= 0xc0) {
          const rm = <i32>((m & 7) | ((rx & 1) << 3));
          const d = (b & 2) == 0 ? rm : reg;
          const s = (b & 2) == 0 ? reg : rm;
          const r = aluOp(op, load<u64>(g + (d << 3)) & mask, load<u64>(g + (s << 3)) & mask, size, mask);
          if (op != ALU_CMP) store<u64>(g + (d << 3), r);
          fr = r; fsz = size; len = pre + 2;
          break;
        }
        if (!m64) { runIp = ip; return i; }
        const addr = ea64(h + <usize>pre + 2, m, rx, g, ip + pre + 2, 0);
        if ((b & 2) != 0 || op == ALU_CMP) { // memory is only read
          const hp = hostOf(addr, size, pr);
          if (hp < 0) { runIp = ip; return i; }
          const mv = size == 8 ? load<u64>(<usize>hp) : <u64>load<u32>(<usize>hp);
          const rv = load<u64>(g + (reg << 3)) & mask;
          if ((b & 2) != 0) {
            const r = aluOp(op, rv, mv, size, mask);
            if (op != ALU_CMP) store<u64>(g + (reg << 3), r);
          } else aluOp(op, mv, rv, size, mask);
        } else {
          const hp = hostOf(addr, size, pw); // writable implies present and readable
          if (hp < 0) { runIp = ip; return i; }
          const p = <usize>hp;
          const rv = load<u64>(g + (reg << 3)) & mask;
          if (size == 8) store<u64>(p, aluOp(op, load<u64>(p), rv, 8, mask));
          else store<u32>(p, <u32>aluOp(op, <u64>load<u32>(p), rv, 4, mask));
        }
        ip += pre + 2 + <u64>eaLen;
        i++;
        continue; // no fusion after a memory operand (it may have written the next instruction)
      }
      case 0x05: case 0x0d: case 0x15: case 0x1d: case 0x25: case 0x2d: case 0x35: case 0x3d: { // ALU eAX, Id
        const size = (rx & 8) != 0 ? 8 : 4;
        const mask: u64 = size == 8 ? <u64>-1 : 0xffffffff;
        const op = <i32>(b >> 3);
        const r = aluOp(op, load<u64>(g) & mask, sx32(x >> 8) & mask, size, mask);
        if (op != ALU_CMP) store<u64>(g, r);
        fr = r; fsz = size; len = pre + 5;
        break;
      }
      case 0x81: case 0x83: { // ALU r, Id / Ib
        const m = <u32>(x >> 8) & 0xff;
        if (m < 0xc0) { runIp = ip; return i; }
        const size = (rx & 8) != 0 ? 8 : 4;
        const mask: u64 = size == 8 ? <u64>-1 : 0xffffffff;
        const op = <i32>((m >> 3) & 7);
        const a = g + (<i32>((m & 7) | ((rx & 1) << 3)) << 3);
        const imm = b == 0x83 ? sx8(x >> 16) & mask : sx32(x >> 16) & mask;
        const r = aluOp(op, load<u64>(a) & mask, imm, size, mask);
        if (op != ALU_CMP) store<u64>(a, r);
        fr = r; fsz = size; len = pre + (b == 0x83 ? 3 : 6);
        break;
      }
      case 0x85: { // TEST r, r
        const m = <u32>(x >> 8) & 0xff;
        if (m < 0xc0) { runIp = ip; return i; }
        const size = (rx & 8) != 0 ? 8 : 4;
        const mask: u64 = size == 8 ? <u64>-1 : 0xffffffff;
        const av = load<u64>(g + (<i32>((m & 7) | ((rx & 1) << 3)) << 3)) & mask;
        const bv = load<u64>(g + (<i32>(((m >> 3) & 7) | ((rx & 4) << 1)) << 3)) & mask;
        fr = av & bv; fsz = size; len = pre + 2;
        setLazy(CC_LOGIC, size, fr, av, bv);
        break;
      }
      case 0x89: case 0x8b: { // MOV Ev,Gv / Gv,Ev
        const size = (rx & 8) != 0 ? 8 : 4;
        const mask: u64 = size == 8 ? <u64>-1 : 0xffffffff;
        const m = <u32>(x >> 8) & 0xff;
        const reg = <i32>(((m >> 3) & 7) | ((rx & 4) << 1));
        if (m >= 0xc0) {
          const rm = <i32>((m & 7) | ((rx & 1) << 3));
          if (b == 0x8b) store<u64>(g + (reg << 3), load<u64>(g + (rm << 3)) & mask);
          else store<u64>(g + (rm << 3), load<u64>(g + (reg << 3)) & mask);
          ip += pre + 2;
          i++;
          continue;
        }
        if (!m64) { runIp = ip; return i; }
        const addr = ea64(h + <usize>pre + 2, m, rx, g, ip + pre + 2, 0);
        if (b == 0x8b) {
          const hp = hostOf(addr, size, pr);
          if (hp < 0) { mmioLoad(ip, pre + 2 + <u64>eaLen, addr, size, reg); runIp = ip; return i; }
          store<u64>(g + (reg << 3), size == 8 ? load<u64>(<usize>hp) : <u64>load<u32>(<usize>hp));
        } else {
          const hp = hostOf(addr, size, pw);
          const v = load<u64>(g + (reg << 3));
          if (hp < 0) {
            if (!mmioStore(ip, pre + 2 + <u64>eaLen, addr, size, v)) { runIp = ip; return i; }
          } else if (size == 8) store<u64>(<usize>hp, v); else store<u32>(<usize>hp, <u32>v);
        }
        ip += pre + 2 + <u64>eaLen;
        i++;
        continue;
      }
      case 0x88: case 0x8a: { // MOV Eb,Gb / Gb,Eb with memory (64-bit mode)
        const m = <u32>(x >> 8) & 0xff;
        if (m >= 0xc0 || !m64) { runIp = ip; return i; }
        const addr = ea64(h + <usize>pre + 2, m, rx, g, ip + pre + 2, 0);
        const reg = <i32>(((m >> 3) & 7) | ((rx & 4) << 1));
        // Without REX, 4-7 are AH CH DH BH (bits 8-15 of RAX..RBX).
        const ra = rx == 0 && reg >= 4 ? g + ((reg - 4) << 3) + 1 : g + (reg << 3);
        const ilen = pre + 2 + <u64>eaLen;
        if (b == 0x8a) {
          const hp = hostOf(addr, 1, pr);
          if (hp < 0) { setRex(<i32>rx); mmioLoad(ip, ilen, addr, 1, reg); runIp = ip; return i; }
          store<u8>(ra, load<u8>(<usize>hp));
        } else {
          const hp = hostOf(addr, 1, pw);
          if (hp < 0) {
            if (!mmioStore(ip, ilen, addr, 1, <u64>load<u8>(ra))) { runIp = ip; return i; }
          } else store<u8>(<usize>hp, load<u8>(ra));
        }
        ip += ilen;
        i++;
        continue;
      }
      case 0x8d: { // LEA Gv, M
        const m = <u32>(x >> 8) & 0xff;
        if (m >= 0xc0 || !m64) { runIp = ip; return i; }
        const addr = ea64(h + <usize>pre + 2, m, rx, g, ip + pre + 2, 0);
        const reg = <i32>(((m >> 3) & 7) | ((rx & 4) << 1));
        store<u64>(g + (reg << 3), (rx & 8) != 0 ? addr : addr & 0xffffffff);
        ip += pre + 2 + <u64>eaLen;
        i++;
        continue;
      }
      case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf: { // MOV r, imm
        const r = <i32>((b & 7) | ((rx & 1) << 3));
        if ((rx & 8) != 0) { store<u64>(g + (r << 3), load<u64>(h + 2)); ip += 10; }
        else { store<u64>(g + (r << 3), (x >> 8) & 0xffffffff); ip += pre + 5; }
        i++;
        continue;
      }
      case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: { // PUSH r (64-bit)
        if (!m64) { runIp = ip; return i; }
        const sp = load<u64>(g + (4 << 3));
        const hp = hostOf(sp - 8, 8, pw);
        if (hp < 0) { runIp = ip; return i; }
        store<u64>(<usize>hp, load<u64>(g + (<i32>((b & 7) | ((rx & 1) << 3)) << 3)));
        store<u64>(g + (4 << 3), sp - 8);
        ip += pre + 1;
        i++;
        continue;
      }
      case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: { // POP r (64-bit)
        if (!m64) { runIp = ip; return i; }
        const sp = load<u64>(g + (4 << 3));
        const hp = hostOf(sp, 8, pr);
        if (hp < 0) { runIp = ip; return i; }
        const v = load<u64>(<usize>hp);
        store<u64>(g + (4 << 3), sp + 8);
        store<u64>(g + (<i32>((b & 7) | ((rx & 1) << 3)) << 3), v); // POP RSP: the popped value wins
        ip += pre + 1;
        i++;
        continue;
      }
      case 0xe8: { // CALL rel32 (64-bit)
        if (!m64) { runIp = ip; return i; }
        const nip = ip + pre + 5;
        const t = nip + sx32(x >> 8);
        if (((t ^ nip) >> 47) != 0) { runIp = ip; return i; } // maybe non-canonical: the general path decides
        const sp = load<u64>(g + (4 << 3));
        const hp = hostOf(sp - 8, 8, pw);
        if (hp < 0) { runIp = ip; return i; }
        store<u64>(<usize>hp, nip);
        store<u64>(g + (4 << 3), sp - 8);
        ip = t;
        i++;
        continue;
      }
      case 0xc3: { // RET (64-bit)
        if (!m64) { runIp = ip; return i; }
        const sp = load<u64>(g + (4 << 3));
        const hp = hostOf(sp, 8, pr);
        if (hp < 0) { runIp = ip; return i; }
        const t = load<u64>(<usize>hp);
        if (<u64>((<i64>(t << 16)) >> 16) != t) { runIp = ip; return i; } // non-canonical: #GP on the general path
        store<u64>(g + (4 << 3), sp + 8);
        ip = t;
        i++;
        continue;
      }
      case 0xeb: case 0xe9: { // JMP rel8 / rel32
        const nip = ip + pre + (b == 0xeb ? 2 : 5);
        let t = nip + (b == 0xeb ? sx8(x >> 8) : sx32(x >> 8));
        if (m64) {
          if (((t ^ nip) >> 47) != 0) { runIp = ip; return i; }
        } else t &= 0xffffffff;
        i++;
        if (t <= ip) {
          const k = jitAt(t, n - i, m64, wLo, span, wDelta, g, pr, pw);
          if (k != 0) { i += k; ip = jitIp; continue; }
        }
        ip = t;
        continue;
      }
      case 0x90: { // NOP (not XCHG r8, rAX)
        if ((rx & 1) != 0) { runIp = ip; return i; }
        ip += pre + 1;
        i++;
        continue;
      }
      case 0xe4: case 0xe5: case 0xec: case 0xed: // IN AL/eAX, imm8 / IN AL/eAX, DX
      case 0xe6: case 0xe7: case 0xee: case 0xef: { // OUT imm8, AL/eAX / OUT DX, AL/eAX
        // End the run here: port IO is what an exit-heavy guest runs most, and it
        // needs nothing but the decoded port and size. Exactly fastStep's IN/OUT
        // (decode.ts).
        if (pre != 0) { runIp = ip; return i; }
        const port = b < 0xe8 ? <i32>((w >> 8) & 0xff) : <i32>(load<u64>(g + 16) & 0xffff);
        beginAt(ip, b < 0xe8 ? 2 : 1);
        if ((b & 2) == 0) sysIn(port, (b & 1) == 0 ? 1 : 4);
        else sysOut(port, (b & 1) == 0 ? 1 : 4);
        if (status != ST_OK) { runIp = ip; return i; } // the exit (or #GP)
        ip = rip(); // an OUT taken by a coalesced zone (kvm/coalesced.ts): no exit
        i++;
        continue;
      }
      case 0x6e: case 0xf3: { // OUTSB / REP OUTSB in 64-bit code: one element and its exit (io.ts outsbFast)
        const rep = b == 0xf3;
        if (!m64 || pre != 0 || (rep && (<u32>(x >> 8) & 0xff) != 0x6e)) { runIp = ip; return i; }
        const n1: u64 = rep ? 2 : 1;
        if (rep && load<u64>(g + 8) == 0) { ip += n1; i++; continue; } // RCX 0: the REP is done, it retires
        const h = hostOf(load<u64>(g + 48), 1, pr); // the byte at RSI (DS base 0 in 64-bit mode)
        if (h < 0) { runIp = ip; return i; }
        beginAt(ip, n1);
        if (!outsbFast(<usize>h, rep)) { runIp = ip; return i; }
        if (rep) { runIp = ip; return i; } // RIP stays at the REP for every element, as KVM's emulator leaves it
        runIp = ip + 1;
        return i + 1; // OUTSB retired before its exit
      }
      case 0xcc: { // INT3 under KVM_GUESTDBG_USE_SW_BP: the debug exit, RIP at the INT3 (sys_int.ts execInt3)
        // Without it the guest's #BP is delivered: the general path does that.
        if (pre != 0 || !swBpDebug()) { runIp = ip; return i; }
        beginAt(ip, 1);
        sysInt3();
        runIp = ip; // not retired: the debugger steps over it or resumes at it
        return i;
      }
      case 0xf4: { // HLT: commits, then exits (KVM_EXIT_HLT), as fastStep's HLT
        if (pre != 0) { runIp = ip; return i; }
        beginAt(ip, 1);
        sysHlt();
        if (status == ST_EXIT) { runIp = rip(); return i + 1; }
        runIp = ip; // #GP(0) at CPL > 0
        return i;
      }
      case 0x0f: { // CPUID / RDMSR (0F A2 / 0F 32): run in the kernel, as fastStep runs them
        const op = <u32>(x >> 8) & 0xff;
        // RDMSR of the TSC: the general path, which knows the instructions in flight.
        if (op != 0xa2 && (op != 0x32 || <u32>load<u64>(g + 8) == MSR_TSC)) { runIp = ip; return i; }
        beginAt(ip, pre + 2);
        if (op == 0xa2) sysCpuid(); else sysRdmsr();
        if (status != ST_OK) { runIp = ip; return i; } // RDMSR: #GP, or a user-space MSR exit
        ip = rip();
        i++;
        continue;
      }
      default: { runIp = ip; return i; }
    }
    // A register-only flag-setting instruction of `len` bytes retired; a Jcc rel8
    // right after it (inside w) runs in the same dispatch (macro-fusion).
    i++;
    const nip = ip + len;
    const sh = len << 3;
    const nb = <u32>(w >> sh) & 0xff;
    if ((nb & 0xf0) == 0x70 && len <= 6 && i < n) {
      const t = jccFused(nb & 15, nip, (w >> (sh + 8)) & 0xff, fr, fsz, m64);
      if (t == NO_JCC) { runIp = nip; return i; }
      i++;
      if (t <= ip) {
        const k = jitAt(t, n - i, m64, wLo, span, wDelta, g, pr, pw);
        if (k != 0) { i += k; ip = jitIp; continue; }
      }
      ip = t;
    } else ip = nip;
  }
  runIp = ip;
  return i;
}

/** ALU op (0–7) on truncated operands; sets the lazy flags, returns the result (CMP: unused). */
@inline function aluOp(op: i32, a: u64, b: u64, size: i32, mask: u64): u64 {
  switch (op) {
    case ALU_ADD: { const r = (a + b) & mask; setLazy(CC_ADD, size, r, a, b); return r; }
    case ALU_OR: { const r = a | b; setLazy(CC_LOGIC, size, r, a, b); return r; }
    case ALU_ADC: {
      const c: u64 = getCF() ? 1 : 0;
      const r = (a + b + c) & mask; setLazyCarry(CC_ADC, size, r, a, b, c); return r;
    }
    case ALU_SBB: {
      const c: u64 = getCF() ? 1 : 0;
      const r = (a - b - c) & mask; setLazyCarry(CC_SBB, size, r, a, b, c); return r;
    }
    case ALU_AND: { const r = a & b; setLazy(CC_LOGIC, size, r, a, b); return r; }
    case ALU_XOR: { const r = a ^ b; setLazy(CC_LOGIC, size, r, a, b); return r; }
    default: { const r = (a - b) & mask; setLazy(CC_SUB, size, r, a, b); return r; } // SUB, CMP
  }
}
