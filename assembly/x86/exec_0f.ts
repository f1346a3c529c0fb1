// The two-byte opcode map 0F xx (Intel SDM vol. 2 Table A-3), one dense switch.
import { VS_SEG_LDTR_SELECTOR, VS_SEG_TR_SELECTOR } from "../abi.generated";
import { RAX, RBX, RCX, RDX, RSP, S, SEG_DS, SEG_FS, SEG_GS, SEG_SS, ST_OK, reg64, setReg64, status } from "./cpu";
import {
  addrSize, ea, eaSeg, lockPrefix, modrmMod, modrmReg, modrmRm, nextIp, opSize, repPrefix, rex, setEa,
} from "./decode_state";
import { LK_BTS, LK_CMPXCHG, LK_CMPXCHG8B, lockedOld, lockedRmw } from "./atomic_rmw";
import { ALU_ADD, ALU_CMP, alu, imulTrunc, setBsfFlags, setBtFlags, shiftDouble } from "./alu";
import { EXC_GP, EXC_UD, raise, raiseErr } from "./exceptions";
import {
  addrMask, decodeModrm, fetchImm, getReg, readG, readRM, readRMrmw, setReg, writeG, writeRM,
} from "./exec_operands";
import { CF, ZF, cond, getOszapc, restoreFlags, saveFlags, setEager, sext, sizeMask } from "./flags";
import { fetch8, pop, push, readMem, readMemRmw, writeMem } from "./mem";
import { cpl, is64, mode, MODE_REAL } from "./mode";
import { branchSize, done, jumpTo, loadFarPtr, popSeg, pushSeg, segSelector, stackOpSize, ud, unsupportedModrm } from "./exec_onebyte";
import {
  sysClts, sysCpuid, sysInvd, sysInvlpg, sysLgdt, sysLidt, sysLldt, sysLmsw, sysLoadSeg, sysLtr, sysMovFromCr,
  sysMovFromDr, sysMovToCr, sysMovToDr, sysRdmsr, sysRdtsc, sysRdtscp, sysSgdt, sysSidt, sysSmsw, sysSwapgs,
  sysSyscall, sysSysenter, sysSysexit, sysSysret, sysUnsupported, sysVmmcall, sysWbinvd, sysWrmsr, sysXgetbv,
  sysXsetbv, sysSetAc,
} from "./exec_system";

@inline function ok(): bool { return status == ST_OK; }

/** CR4.UMIP makes SGDT/SIDT/SLDT/STR/SMSW #GP(0) at CPL > 0 (checked by System for SGDT/SIDT/SMSW). */

function grp6(): void {
  decodeModrm(0);
  if (!ok()) return;
  if (mode == MODE_REAL) { ud(); return; }
  switch (modrmReg & 7) {
    case 0: case 1: { // SLDT / STR
      const sel = <u64>load<u16>(S + ((modrmReg & 7) == 0 ? VS_SEG_LDTR_SELECTOR : VS_SEG_TR_SELECTOR));
      if (modrmMod == 3) setReg(modrmRm, opSize, sel);
      else { writeMem(eaSeg, ea, 2, sel); if (!ok()) return; }
      done();
      return;
    }
    case 2: case 3: {
      const v = readRM(2);
      if (!ok()) return;
      if ((modrmReg & 7) == 2) sysLldt(<u32>v); else sysLtr(<u32>v);
      return;
    }
    case 4: case 5: sysUnsupported(); return; // VERR / VERW
    default: ud(); return;
  }
}

function grp7(): void {
  decodeModrm(0);
  if (!ok()) return;
  if (modrmMod != 3) {
    switch (modrmReg & 7) {
      case 0: sysSgdt(); return;
      case 1: sysSidt(); return;
      case 2: sysLgdt(); return;
      case 3: sysLidt(); return;
      case 4: sysSmsw(); return;
      case 6: {
        const v = readRM(2);
        if (!ok()) return;
        sysLmsw(<u32>v);
        return;
      }
      case 7: sysInvlpg(); return;
      default: ud(); return;
    }
  }
  const m = 0xc0 | ((modrmReg & 7) << 3) | (modrmRm & 7);
  switch (m) {
    case 0xc1: sysVmmcall(); return; // VMCALL (Intel encoding): KVM treats it as a hypercall too
    case 0xca: case 0xcb: // CLAC / STAC
      if (cpl() != 0) { ud(); return; }
      sysSetAc(m == 0xcb);
      return;
    case 0xd0: sysXgetbv(); return;
    case 0xd1: sysXsetbv(); return;
    case 0xd9: sysVmmcall(); return;
    case 0xf8:
      if (!is64()) { ud(); return; }
      sysSwapgs();
      return;
    case 0xf9: sysRdtscp(); return;
    case 0xc8: case 0xc9: case 0xcf: case 0xd4: case 0xd5: case 0xd6: case 0xd7:
    case 0xe8: case 0xe9: case 0xea: case 0xeb: case 0xec: case 0xed: case 0xee: case 0xef:
    case 0xfa: case 0xfb: case 0xfc: case 0xfd:
      sysUnsupported(); // MONITOR/MWAIT, ENCLS, XEND/XTEST, SERIALIZE, RDPKRU/WRPKRU, MONITORX/MWAITX, CLZERO, RDPRU, ...
      return;
    default:
      if ((m & 0xf8) == 0xe0) { sysSmsw(); return; } // SMSW r (ModRM decoded: register form)
      if ((m & 0xf8) == 0xf0) { sysLmsw(<u32>getReg(modrmRm, 2)); return; }
      ud(); // VMX/SVM instructions and reserved encodings (the guest has no VMX/SVM)
      return;
  }
}

/** MOV to/from CRn/DRn: the ModRM is always a register form (mod is ignored). */
function movCrDr(b: u32): void {
  const m = <i32>fetch8();
  if (!ok()) return;
  const reg = ((m >> 3) & 7) | ((rex & 4) << 1);
  const rm = (m & 7) | ((rex & 1) << 3);
  if (b == 0x20) sysMovFromCr(reg, rm);
  else if (b == 0x21) sysMovFromDr(reg, rm);
  else if (b == 0x22) sysMovToCr(reg, rm);
  else sysMovToDr(reg, rm);
}

/** Memory address of the operand holding bit `off` for BT* Ev,Gv with a memory operand. */
@inline function btMemAddr(size: i32, off: u64): u64 {
  const shift = size == 8 ? 6 : (size == 4 ? 5 : 4);
  const index = <i64>sext(off, size) >> shift;
  return (ea + <u64>(index * <i64>size)) & addrMask();
}

/** BT/BTS/BTR/BTC. kind 0 BT, 1 BTS, 2 BTR, 3 BTC. */
function bitOp(kind: i32, size: i32, off: u64, fromReg: bool): void {
  const bits = <u64>(size << 3);
  const bit = off & (bits - 1);
  let v: u64;
  let addr: u64 = 0;
  if (modrmMod == 3) v = getReg(modrmRm, size);
  else {
    addr = fromReg ? btMemAddr(size, off) : ea;
    if (kind != 0 && lockPrefix != 0 && lockedRmw(eaSeg, addr, size, LK_BTS + kind - 1, bit, 0)) {
      if (ok()) done();
      return;
    }
    v = kind == 0 ? readMem(eaSeg, addr, size) : readMemRmw(eaSeg, addr, size);
    if (!ok()) return;
  }
  const set = ((v >> bit) & 1) != 0;
  if (kind == 0) { setBtFlags(set); done(); return; }
  const mask = <u64>1 << bit;
  const r = kind == 1 ? v | mask : (kind == 2 ? v & ~mask : v ^ mask);
  if (modrmMod == 3) { setReg(modrmRm, size, r); setBtFlags(set); done(); return; }
  writeMem(eaSeg, addr, size, r);
  if (!ok()) return;
  setBtFlags(set);
  done();
}

function cmpxchg(size: i32): void {
  decodeModrm(0);
  if (!ok()) return;
  if (lockPrefix != 0 && modrmMod != 3) {
    const a = getReg(RAX, size);
    if (lockedRmw(eaSeg, ea, size, LK_CMPXCHG, readG(size), a)) {
      if (!ok()) return;
      if (lockedOld != a) setReg(RAX, size, lockedOld);
      done();
      return;
    }
  }
  const d = readRMrmw(size);
  if (!ok()) return;
  const acc = getReg(RAX, size);
  saveFlags();
  alu(ALU_CMP, acc, d, size);
  if (acc == d) {
    writeRM(size, readG(size));
    if (!ok()) { restoreFlags(); return; }
  } else {
    if (modrmMod != 3) {
      writeMem(eaSeg, ea, size, d); // the locked cycle writes the old value back
      if (!ok()) { restoreFlags(); return; }
    }
    setReg(RAX, size, d);
  }
  done();
}

/**
 * CMPXCHG8B / CMPXCHG16B (0F C7 /1), ModRM already decoded. LOCK CMPXCHG8B is atomic
 * across vCPUs when aligned on RAM (atomic_rmw.ts); CMPXCHG16B is not (WebAssembly has
 * no 16-byte compare-exchange): its two halves are separate accesses.
 */
function cmpxchg8b16b(): void {
  if (modrmMod == 3) { ud(); return; }
  const wide = opSize == 8;
  if (wide) {
    if ((ea & 15) != 0) { raiseErr(EXC_GP, 0); return; }
    const a1 = (ea + 8) & addrMask();
    const lo = readMemRmw(eaSeg, ea, 8);
    if (!ok()) return;
    const hi = readMemRmw(eaSeg, a1, 8);
    if (!ok()) return;
    const f = getOszapc() & ~ZF;
    if (lo == reg64(RAX) && hi == reg64(RDX)) {
      writeMem(eaSeg, ea, 8, reg64(RBX)); if (!ok()) return;
      writeMem(eaSeg, a1, 8, reg64(RCX)); if (!ok()) return;
      setEager(f | ZF);
    } else {
      writeMem(eaSeg, ea, 8, lo); if (!ok()) return;
      writeMem(eaSeg, a1, 8, hi); if (!ok()) return;
      setReg64(RAX, lo); setReg64(RDX, hi);
      setEager(f);
    }
  } else {
    const cmp = (getReg(RDX, 4) << 32) | getReg(RAX, 4);
    if (lockPrefix != 0 && lockedRmw(eaSeg, ea, 8, LK_CMPXCHG8B, (getReg(RCX, 4) << 32) | getReg(RBX, 4), cmp)) {
      if (!ok()) return;
      const o = lockedOld;
      if (o != cmp) { setReg(RAX, 4, o & 0xffffffff); setReg(RDX, 4, o >> 32); }
      done();
      return;
    }
    const v = readMemRmw(eaSeg, ea, 8);
    if (!ok()) return;
    const f = getOszapc() & ~ZF;
    if (v == cmp) {
      writeMem(eaSeg, ea, 8, (getReg(RCX, 4) << 32) | getReg(RBX, 4)); if (!ok()) return;
      setEager(f | ZF);
    } else {
      writeMem(eaSeg, ea, 8, v); if (!ok()) return;
      setReg(RAX, 4, v & 0xffffffff); setReg(RDX, 4, v >> 32);
      setEager(f);
    }
  }
  done();
}

function bsfBsr(reverse: bool): void {
  decodeModrm(0);
  if (!ok()) return;
  if (repPrefix == 0xf3) { sysUnsupported(); return; } // TZCNT / LZCNT
  const s = opSize;
  const v = readRM(s);
  if (!ok()) return;
  if (v == 0) { setBsfFlags(true); done(); return; } // destination unchanged
  const r: u64 = reverse ? <u64>(63 - clz<u64>(v)) : ctz<u64>(v);
  writeG(s, r);
  setBsfFlags(false);
  done();
}

function xadd(size: i32): void {
  decodeModrm(0);
  if (!ok()) return;
  const g = readG(size);
  if (modrmMod == 3) {
    const d = getReg(modrmRm, size);
    const sum = alu(ALU_ADD, d, g, size);
    writeG(size, d);
    setReg(modrmRm, size, sum);
    done();
    return;
  }
  if (lockPrefix != 0 && lockedRmw(eaSeg, ea, size, ALU_ADD, g, 0)) {
    if (!ok()) return;
    writeG(size, lockedOld);
    done();
    return;
  }
  const d = readMemRmw(eaSeg, ea, size);
  if (!ok()) return;
  saveFlags();
  const sum = alu(ALU_ADD, d, g, size);
  writeMem(eaSeg, ea, size, sum);
  if (!ok()) { restoreFlags(); return; }
  writeG(size, d);
  done();
}

function shld(b: u32): void {
  const imm = (b & 1) == 0;
  decodeModrm(imm ? 1 : 0);
  if (!ok()) return;
  let count: u32;
  if (imm) { count = fetch8(); if (!ok()) return; }
  else count = <u32>getReg(RCX, 1);
  const s = opSize;
  const left = b < 0xa8;
  const src = readG(s);
  if (modrmMod == 3) {
    setReg(modrmRm, s, shiftDouble(left, getReg(modrmRm, s), src, count, s));
    done();
    return;
  }
  const d = readMemRmw(eaSeg, ea, s);
  if (!ok()) return;
  if ((count & (s == 8 ? 63 : 31)) == 0) { done(); return; }
  saveFlags();
  const r = shiftDouble(left, d, src, count, s);
  writeMem(eaSeg, ea, s, r);
  if (!ok()) { restoreFlags(); return; }
  done();
}

/** Execute 0F b (the 0F escape already consumed). */
export function exec0F(b: u32): void {
  switch (b) {
    case 0x00: grp6(); return;
    case 0x01: grp7(); return;
    case 0x02: case 0x03: // LAR / LSL
      if (mode == MODE_REAL) { ud(); return; }
      sysUnsupported();
      return;
    case 0x05: sysSyscall(); return;
    case 0x06: sysClts(); return;
    case 0x07: sysSysret(); return;
    case 0x08: sysInvd(); return;
    case 0x09: sysWbinvd(); return;
    case 0x0b: ud(); return; // UD2
    case 0x0d: case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f:
      // PREFETCH*, hint NOPs, NOP r/m (0F 1F), ENDBR32/64 (F3 0F 1E FB/FA): no memory access.
      decodeModrm(0);
      if (!ok()) return;
      done();
      return;
    case 0x20: case 0x21: case 0x22: case 0x23: movCrDr(b); return;
    case 0x30: sysWrmsr(); return;
    case 0x31: sysRdtsc(); return;
    case 0x32: sysRdmsr(); return;
    case 0x34: sysSysenter(); return;
    case 0x35: sysSysexit(); return;
    case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
    case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f: {
      decodeModrm(0);
      if (!ok()) return;
      const s = opSize;
      const v = readRM(s); // the source is read (and may fault) whatever the condition
      if (!ok()) return;
      if (cond(<i32>(b & 15))) writeG(s, v);
      else if (s == 4) writeG(4, readG(4)); // 32-bit CMOV zero-extends even when false
      done();
      return;
    }
    case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85: case 0x86: case 0x87:
    case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8d: case 0x8e: case 0x8f: {
      const bs = branchSize();
      const d = bs == 2 ? sext(fetchImm(2), 2) : sext(fetchImm(4), 4);
      if (!ok()) return;
      if (cond(<i32>(b & 15))) jumpTo(nextIp + d);
      else done();
      return;
    }
    case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
    case 0x98: case 0x99: case 0x9a: case 0x9b: case 0x9c: case 0x9d: case 0x9e: case 0x9f: {
      decodeModrm(0);
      if (!ok()) return;
      writeRM(1, cond(<i32>(b & 15)) ? 1 : 0);
      if (!ok()) return;
      done();
      return;
    }
    case 0xa0: pushSeg(SEG_FS); return;
    case 0xa1: popSeg(SEG_FS); return;
    case 0xa8: pushSeg(SEG_GS); return;
    case 0xa9: popSeg(SEG_GS); return;
    case 0xa2: sysCpuid(); return;
    case 0xa3: case 0xab: case 0xb3: case 0xbb: {
      decodeModrm(0);
      if (!ok()) return;
      const kind = b == 0xa3 ? 0 : (b == 0xab ? 1 : (b == 0xb3 ? 2 : 3));
      bitOp(kind, opSize, readG(opSize), true);
      return;
    }
    case 0xba: {
      decodeModrm(1);
      if (!ok()) return;
      const sub = modrmReg & 7;
      if (sub < 4) { ud(); return; }
      const imm = <u64>fetch8();
      if (!ok()) return;
      bitOp(sub - 4, opSize, imm, false);
      return;
    }
    case 0xa4: case 0xa5: case 0xac: case 0xad: shld(b); return;
    case 0xae: {
      decodeModrm(0);
      if (!ok()) return;
      const sub = modrmReg & 7;
      if (modrmMod == 3) {
        if (repPrefix == 0 && sub >= 5) { done(); return; } // LFENCE / MFENCE / SFENCE
        sysUnsupported(); // RDFSBASE/WRFSBASE/... (F3), INCSSP
        return;
      }
      if (sub == 7 && repPrefix == 0) { done(); return; } // CLFLUSH (CLFLUSHOPT with 66)
      sysUnsupported(); // FXSAVE/FXRSTOR/LDMXCSR/STMXCSR/XSAVE*/XRSTOR*
      return;
    }
    case 0xaf: {
      decodeModrm(0);
      if (!ok()) return;
      const s = opSize;
      const v = readRM(s);
      if (!ok()) return;
      writeG(s, imulTrunc(readG(s), v, s));
      done();
      return;
    }
    case 0xb0: cmpxchg(1); return;
    case 0xb1: cmpxchg(opSize); return;
    case 0xb2: case 0xb4: case 0xb5: {
      decodeModrm(0);
      if (!ok()) return;
      if (modrmMod == 3) { ud(); return; }
      loadFarPtr(b == 0xb2 ? SEG_SS : (b == 0xb4 ? SEG_FS : SEG_GS));
      return;
    }
    case 0xb6: case 0xb7: case 0xbe: case 0xbf: {
      decodeModrm(0);
      if (!ok()) return;
      const from = (b & 1) == 0 ? 1 : 2;
      const v = readRM(from);
      if (!ok()) return;
      writeG(opSize, b >= 0xbe ? sext(v, from) & sizeMask(opSize) : v);
      done();
      return;
    }
    case 0xb8:
      if (repPrefix == 0xf3) { unsupportedModrm(); return; } // POPCNT
      ud(); // JMPE
      return;
    case 0xb9: // UD1 (has a ModRM)
      decodeModrm(0);
      if (!ok()) return;
      ud();
      return;
    case 0xbc: bsfBsr(false); return;
    case 0xbd: bsfBsr(true); return;
    case 0xc0: xadd(1); return;
    case 0xc1: xadd(opSize); return;
    case 0xc7: {
      decodeModrm(0);
      if (!ok()) return;
      const sub = modrmReg & 7;
      if (sub == 1) { cmpxchg8b16b(); return; }
      if (sub >= 6) { sysUnsupported(); return; } // RDRAND / RDSEED / RDPID
      ud();
      return;
    }
    case 0xc8: case 0xc9: case 0xca: case 0xcb: case 0xcc: case 0xcd: case 0xce: case 0xcf: {
      const r = <i32>(b & 7) | ((rex & 1) << 3);
      if (opSize == 8) setReg64(r, bswap<u64>(reg64(r)));
      else if (opSize == 4) setReg(r, 4, <u64>bswap<u32>(<u32>reg64(r)));
      else setReg(r, 2, 0); // BSWAP r16 is undefined; Intel and AMD give 0
      done();
      return;
    }
    case 0xff: ud(); return; // UD0
    case 0x04: case 0x0a: case 0x0c: case 0x0e: case 0x0f: case 0x24: case 0x25: case 0x26: case 0x27:
    case 0x36: case 0x39: case 0x3b: case 0x3c: case 0x3d: case 0x3e: case 0x3f: case 0xa6: case 0xa7:
      ud();
      return;
    case 0x33: case 0x37: case 0x77: case 0xaa: // RDPMC, GETSEC, EMMS, RSM (no ModRM)
      sysUnsupported();
      return;
    case 0x38: case 0x3a: { // three-byte maps (SSSE3/SSE4/SHA/AES/...): opcode then ModRM
      fetch8();
      if (!ok()) return;
      unsupportedModrm();
      return;
    }
    default:
      // SSE/AVX/MMX (10–17, 28–2F, 50–7F, C2–C6, D0–FE) and the rest: all take a ModRM.
      unsupportedModrm();
      return;
  }
}

