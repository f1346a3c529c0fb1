// String instructions MOVS/CMPS/STOS/LODS/SCAS (A4–A7, AA–AF) with REP/REPE/REPNE.
//
// rSI/rDI/rCX are used at the address size; the source segment takes the
// override (default DS), the destination is always ES:rDI. With a REP prefix
// every iteration commits on its own (registers updated, replay log cleared),
// so a fault or exit mid-way leaves RSI/RDI/RCX describing the remaining work
// with RIP still on the instruction; RIP moves on only when the loop ends.
// A long REP runs at most STRING_CHUNK iterations per step and then returns
// without committing RIP (the next step continues it; it is not counted as retired).
import { RAX, RCX, RDI, RSI, SEG_DS, SEG_ES, ST_OK, status } from "./cpu";
import { addrSize, opSize, repPrefix, segOverride } from "./decode_state";
import { ALU_CMP, alu } from "./alu";
import { addrMask, clearReplay, getReg, setReg } from "./exec_operands";
import { dfSet, getZF } from "./flags";
import { readMem, writeMem } from "./mem";
import { done } from "./exec_onebyte";
import { notRetired } from "./decode";
import { replayIterationEnd } from "./replay";

export const STRING_CHUNK: i32 = 16384;

const K_MOVS: i32 = 0;
const K_CMPS: i32 = 1;
const K_STOS: i32 = 2;
const K_LODS: i32 = 3;
const K_SCAS: i32 = 4;

/** One iteration; returns false when it faulted/exited (nothing committed). */
@inline function once(kind: i32, size: i32, srcSeg: i32, m: u64, delta: u64): bool {
  const as = addrSize;
  switch (kind) {
    case K_MOVS: {
      const si = getReg(RSI, as), di = getReg(RDI, as);
      const v = readMem(srcSeg, si, size);
      if (status != ST_OK) return false;
      writeMem(SEG_ES, di, size, v);
      if (status != ST_OK) return false;
      setReg(RSI, as, (si + delta) & m);
      setReg(RDI, as, (di + delta) & m);
      return true;
    }
    case K_CMPS: {
      const si = getReg(RSI, as), di = getReg(RDI, as);
      const a = readMem(srcSeg, si, size);
      if (status != ST_OK) return false;
      const b = readMem(SEG_ES, di, size);
      if (status != ST_OK) return false;
      alu(ALU_CMP, a, b, size);
      setReg(RSI, as, (si + delta) & m);
      setReg(RDI, as, (di + delta) & m);
      return true;
    }
    case K_STOS: {
      const di = getReg(RDI, as);
      writeMem(SEG_ES, di, size, getReg(RAX, size));
      if (status != ST_OK) return false;
      setReg(RDI, as, (di + delta) & m);
      return true;
    }
    case K_LODS: {
      const si = getReg(RSI, as);
      const v = readMem(srcSeg, si, size);
      if (status != ST_OK) return false;
      setReg(RAX, size, v);
      setReg(RSI, as, (si + delta) & m);
      return true;
    }
    default: { // SCAS
      const di = getReg(RDI, as);
      const b = readMem(SEG_ES, di, size);
      if (status != ST_OK) return false;
      alu(ALU_CMP, getReg(RAX, size), b, size);
      setReg(RDI, as, (di + delta) & m);
      return true;
    }
  }
}

/** Execute string opcode b (A4–A7, AA–AF). */
export function execString(b: u32): void {
  const size = (b & 1) == 0 ? 1 : opSize;
  let kind: i32;
  switch (b & 0xfe) {
    case 0xa4: kind = K_MOVS; break;
    case 0xa6: kind = K_CMPS; break;
    case 0xaa: kind = K_STOS; break;
    case 0xac: kind = K_LODS; break;
    default: kind = K_SCAS; break;
  }
  const srcSeg = segOverride >= 0 ? segOverride : SEG_DS;
  const m = addrMask();
  const delta: u64 = dfSet() ? <u64>(-size) : <u64>size;
  if (repPrefix == 0) {
    if (!once(kind, size, srcSeg, m, delta)) return;
    done();
    return;
  }
  const as = addrSize;
  let cnt = getReg(RCX, as);
  if (cnt == 0) { done(); return; }
  const cond = kind == K_CMPS || kind == K_SCAS;
  const repe = repPrefix == 0xf3;
  for (let i = 0; i < STRING_CHUNK; i++) {
    if (!once(kind, size, srcSeg, m, delta)) return;
    cnt = (cnt - 1) & m;
    setReg(RCX, as, cnt);
    clearReplay();
    // The commit pass ends with the iteration whose write exited, RIP at the REP even
    // after the last one, as KVM's emulator leaves it (RCX = 0 retires it on re-entry).
    if (replayIterationEnd()) return;
    if (cnt == 0) { done(); return; }
    if (cond && getZF() != repe) { done(); return; }
  }
  notRetired();
}
