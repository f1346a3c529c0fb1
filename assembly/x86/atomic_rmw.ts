// Locked read-modify-writes (LOCK-prefixed ALU/INC/DEC/NOT/NEG/BTS/BTR/BTC/XADD/
// CMPXCHG/CMPXCHG8B, and XCHG with memory, which is implicitly locked) done with
// WebAssembly atomics, so they are atomic against the other vCPUs of the VM, each
// running its own core instance in its own Worker on the same shared memory.
//
// lockedRmw() is the one mechanism: when the operand is plain RAM it computes the
// result and the flags with the usual alu/flag code from the value it loaded and
// commits it with atomic.cmpxchg; when another vCPU changed the value in between
// it puts the flags back and recomputes from the fresh value. XCHG (no flags, the
// result does not depend on the old value) is one atomic.xchg.
//
// When it declines (returns false, nothing done) the caller takes its ordinary
// readMemRmw/writeMem path, which is then not atomic against other vCPUs:
// - MMIO and read-only slots: the read exit, then the write exit, as before;
// - an operand that is not naturally aligned (WebAssembly atomics trap on a
//   misaligned address), including a split lock across two pages;
// - data breakpoints armed (the ordinary path reports the access);
// - a replay in progress (the instruction exited before: its fragments are
//   consumed by the ordinary path, docs/core-contract.md).
// CMPXCHG16B never comes here (WebAssembly has no 16-byte compare-exchange).
//
// Faults are those of readMemRmw (segment check, then the page walk for a
// write), raised before anything is written; after a translation to RAM nothing
// can fault. The write translation marks the page dirty (like readMemRmw); a
// CMPXCHG that fails leaves memory unchanged (the locked cycle's write-back of
// the old value is the compare-exchange that did not happen).
import { ST_OK, status } from "./cpu";
import { ALU_CMP, alu, aluDec, aluInc, aluNeg, setBtFlags } from "./alu";
import { dataBpArmed } from "./debug";
import { ZF, getOszapc, restoreFlags, saveFlags, setEager, sizeMask } from "./flags";
import { translate } from "./mem";
import { cpl } from "./mode";
import { ACC_WRITE, PRIV_SUP, PRIV_USER } from "./paging";
import { replayCount } from "./replay";
import { segLinear } from "./segments";

// Operation kinds: 0–6 are alu.ts's ALU_ADD … ALU_XOR (XADD is LK_ADD).
export const LK_INC: i32 = 8;
export const LK_DEC: i32 = 9;
export const LK_NOT: i32 = 10;
export const LK_NEG: i32 = 11;
/** BTS/BTR/BTC: `src` is the bit number inside the operand. */
export const LK_BTS: i32 = 12;
export const LK_BTR: i32 = 13;
export const LK_BTC: i32 = 14;
/** `src` is the register's value; no flags. */
export const LK_XCHG: i32 = 15;
/** `cmp` is the accumulator, `src` the replacement; flags of CMP acc, old. */
export const LK_CMPXCHG: i32 = 16;
/** 8 bytes; `cmp` is EDX:EAX, `src` ECX:EBX; ZF = equal, other flags kept. */
export const LK_CMPXCHG8B: i32 = 17;

/** The value the operand held when the locked operation took effect (after lockedRmw returned true with ST_OK). */
export let lockedOld: u64 = 0;

/** The new value for `old` (and the flags, as the ordinary path sets them). */
function lockedResult(kind: i32, old: u64, src: u64, cmp: u64, size: i32): u64 {
  if (kind < ALU_CMP) return alu(kind, old, src, size);
  switch (kind) {
    case LK_INC: return aluInc(old, size);
    case LK_DEC: return aluDec(old, size);
    case LK_NOT: return ~old & sizeMask(size);
    case LK_NEG: return aluNeg(old, size);
    case LK_BTS: case LK_BTR: case LK_BTC: {
      const mask = <u64>1 << src;
      setBtFlags((old & mask) != 0);
      return kind == LK_BTS ? old | mask : (kind == LK_BTR ? old & ~mask : old ^ mask);
    }
    case LK_CMPXCHG:
      alu(ALU_CMP, cmp, old, size);
      return old == cmp ? src : old;
    default: { // LK_CMPXCHG8B
      const f = getOszapc() & ~ZF;
      setEager(old == cmp ? f | ZF : f);
      return old == cmp ? src : old;
    }
  }
}

@inline function atomicLoad(h: usize, size: i32): u64 {
  if (size == 4) return <u64>atomic.load<u32>(h);
  if (size == 1) return <u64>atomic.load<u8>(h);
  if (size == 2) return <u64>atomic.load<u16>(h);
  return atomic.load<u64>(h);
}

/** Compare-exchange at `h`; returns the value found there (== old when it stored nv). */
@inline function atomicCas(h: usize, size: i32, old: u64, nv: u64): u64 {
  if (size == 4) return <u64>atomic.cmpxchg<u32>(h, <u32>old, <u32>nv);
  if (size == 1) return <u64>atomic.cmpxchg<u8>(h, <u8>old, <u8>nv);
  if (size == 2) return <u64>atomic.cmpxchg<u16>(h, <u16>old, <u16>nv);
  return atomic.cmpxchg<u64>(h, old, nv);
}

@inline function atomicXchg(h: usize, size: i32, v: u64): u64 {
  if (size == 4) return <u64>atomic.xchg<u32>(h, <u32>v);
  if (size == 1) return <u64>atomic.xchg<u8>(h, <u8>v);
  if (size == 2) return <u64>atomic.xchg<u16>(h, <u16>v);
  return atomic.xchg<u64>(h, v);
}

/**
 * The locked read-modify-write `kind` of `size` bytes (1, 2, 4, 8) at `seg:off`.
 * Returns false, having done nothing, when the caller must take its ordinary
 * path (see the top of this file). Returns true when it handled the access:
 * either status is set (a fault, nothing written) or memory holds the result,
 * the flags are set and lockedOld is the old value; the caller then commits its
 * register results and RIP.
 */
export function lockedRmw(seg: i32, off: u64, size: i32, kind: i32, src: u64, cmp: u64): bool {
  if (dataBpArmed || replayCount() != 0) return false;
  const lin = segLinear(seg, off, size, ACC_WRITE);
  if (status != ST_OK) return true;
  // Natural alignment also keeps the operand on one page.
  if ((lin & <u64>(size - 1)) != 0) return false;
  const h = translate(lin, ACC_WRITE, cpl() == 3 ? PRIV_USER : PRIV_SUP);
  if (h < 0) return status != ST_OK; // a fault, or MMIO / read-only: the ordinary path
  const p = <usize>h;
  if ((p & <usize>(size - 1)) != 0) return false;
  if (kind == LK_XCHG) {
    lockedOld = atomicXchg(p, size, src);
    return true;
  }
  saveFlags();
  let old = atomicLoad(p, size);
  while (true) {
    const seen = atomicCas(p, size, old, lockedResult(kind, old, src, cmp, size));
    if (seen == old) break;
    restoreFlags();
    old = seen;
  }
  lockedOld = old;
  return true;
}
