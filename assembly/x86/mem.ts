// Memory access for the interpreter (docs/core-contract.md "mem.ts"): segmented
// data access, the stack, instruction fetch with a cached code-page window, and the
// linear → physical → host path through the software TLB, memslots and MMIO exits.
import {
  KVM_EXIT_MMIO, KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, KVM_RUN_MMIO_DATA, KVM_RUN_MMIO_IS_WRITE,
  KVM_RUN_MMIO_LEN, KVM_RUN_MMIO_PHYS_ADDR, TLB_HOST, TLB_PERM, TLB_TAG, VS_CR4, VS_PENDING_FLAGS,
  VS_PENDING_INSN_RIP, VS_PENDING_REG, VS_PENDING_RIP, VS_REPLAY_COUNT, VS_SEG_CS_BASE, VS_SEG_CS_LIMIT,
} from "../abi.generated";
import { RSP, RUN, S, SEG_FS, SEG_GS, SEG_SS, ST_OK, reg64, setReg64, status } from "./cpu";
import { insnStart, nextIp, rex, setNextIp, setRex } from "./decode_state";
import { setReg } from "./exec_operands";
import { gp0 } from "./exceptions";
import { fwDelta, fwHi, fwLo, setFetchWindow } from "./fetchwin";
import { CR4_SMAP, MODE_LONG, RFLAGS_AC, cpl, mode, stackSize } from "./mode";
import { ACC_EXEC, ACC_READ, ACC_WRITE, PRIV_IMPLICIT, PRIV_SUP, PRIV_USER, walk, walkPerm } from "./paging";
import { findSlot, markDirtyFound, slotFlags, slotGpa, slotHostOf, slotSize } from "./phys";
import {
  RK_MMIO_READ, RK_MMIO_WRITE, replayAppend, replayCanQueue, replayData, replayNext, replayQueue, replayStop,
} from "./replay";
import { canonical, segBase, segLinear } from "./segments";
import { P_SW, P_UW, mmioFill, mmioGpaPage, mmioPerm, mmioTag, tlbEntry, tlbFill } from "./tlb";
import { getFlags } from "./core_link";
import { exitTo, internalErrorEmulation } from "../kvm/exits";
import { coalesce, coalescing } from "../kvm/coalesced";
import { dataBpArmed, noteDataAccess } from "./debug";

/** translate() results other than a host offset. */
const XL_FAULT: i64 = -1;
const XL_MMIO: i64 = -2;
/** GPA of the last translate(). */
let xlatGpa: u64 = 0;

/** Pending-completion bits (VS_PENDING_FLAGS). */
export const PEND_MMIO_READ: u32 = 1;
export const PEND_PIO_IN: u32 = 2;
export const PEND_RDMSR: u32 = 4;
export const PEND_WRMSR: u32 = 8;
export const PEND_HYPERCALL: u32 = 16;
/**
 * An OUT / an MMIO store that was the instruction's last action exited: the data
 * went out with the exit, so completion only retires the instruction (RIP =
 * VS_PENDING_RIP) when RIP is still VS_PENDING_INSN_RIP, like KVM's
 * complete_fast_pio_out. The replay fragment stays logged for the per-instruction
 * path (TF, debug, interrupt shadow), which completes by replaying instead.
 */
export const PEND_PIO_OUT: u32 = 32;
export const PEND_MMIO_WRITE: u32 = 64;
/**
 * The second fragment of a page-split MMIO store, kept by the commit pass (kvm/run.ts
 * commitMmioWrite) in replay entry 0 with the log otherwise empty: the next run() exits
 * with it before running anything, as KVM's complete_emulated_mmio delivers the next
 * fragment of an access (immediate_exit waits behind it).
 */
export const PEND_MMIO_WRITE_NEXT: u32 = 512;
/**
 * A MOV r, [mem] whose whole read is the one MMIO fragment exited: it commits nothing
 * but the register (VS_PENDING_REG) and RIP once the data is in, so re-entry completes
 * it like KVM's complete_emulated_mmio → register write (the data into the register,
 * RIP past the load) instead of replaying, when RIP is still at the load. Always set
 * together with PEND_MMIO_READ, whose replay completion stays the fallback.
 */
export const PEND_MMIO_READ_REG: u32 = 256;

/**
 * After a MOV of `size` bytes into GPR `reg` (current REX) exited on its read: record the
 * register completion when the read was the instruction's only access, not split.
 */
export function pendLoadReg(reg: i32, size: i32): void {
  if (load<u32>(S + VS_PENDING_FLAGS) != PEND_MMIO_READ || load<u32>(S + VS_REPLAY_COUNT) != 1 ||
    load<u32>(RUN + KVM_RUN_MMIO_LEN) != <u32>size) return;
  pendRetire(PEND_MMIO_READ_REG);
  store<u32>(S + VS_PENDING_REG, <u32>reg | (<u32>size << 4) | (rex != 0 ? 256 : 0));
}

/** Complete a PEND_MMIO_READ_REG load with `data` (kvm_run.mmio.data). */
export function completeLoadReg(data: u64): void {
  const enc = load<u32>(S + VS_PENDING_REG);
  setRex((enc & 256) != 0 ? 0x40 : 0);
  setReg(<i32>(enc & 15), <i32>((enc >> 4) & 15), data);
}

/** Record a fast completion (PEND_PIO_OUT / PEND_MMIO_WRITE) of the instruction in flight. */
export function pendRetire(flag: u32): void {
  store<u64>(S + VS_PENDING_RIP, nextIp);
  store<u64>(S + VS_PENDING_INSN_RIP, insnStart);
  store<u32>(S + VS_PENDING_FLAGS, load<u32>(S + VS_PENDING_FLAGS) | flag);
}

@inline function privNow(): i32 { return cpl() == 3 ? PRIV_USER : PRIV_SUP; }

@inline function permNeed(acc: i32, priv: i32): u32 {
  return (<u32>1 << <u32>acc) << (priv == PRIV_USER ? 3 : 0);
}

/** Host offset for `lin` when the TLB holds it with `acc` permission for `priv`; -1 otherwise (no side effect). */
@inline function tlbHit(lin: u64, acc: i32, priv: i32): i64 {
  const e = tlbEntry(lin);
  if (load<u64>(e + TLB_TAG) == (lin >> 12) + 1 && (load<u32>(e + TLB_PERM) & permNeed(acc, priv)) != 0) {
    return <i64>(<u64>load<u32>(e + TLB_HOST) + (lin & 0xfff));
  }
  return -1;
}

/** Host offset for `lin` (access `acc`), or XL_FAULT (status set) / XL_MMIO (xlatGpa set). */
@inline export function translate(lin: u64, acc: i32, priv: i32): i64 {
  const h = tlbHit(lin, acc, priv);
  return h >= 0 ? h : translateSlow(lin, acc, priv);
}

/** The one-entry MMIO translation (tlb.ts mmioTag) covers `lin`'s page for access `acc` by `priv`. */
@inline function mmioCovers(lin: u64, acc: i32, priv: i32): bool {
  return mmioTag == (lin >> 12) + 1 && (mmioPerm & permNeed(acc, priv)) != 0;
}

function translateSlow(lin: u64, acc: i32, priv: i32): i64 {
  if (mmioCovers(lin, acc, priv)) {
    xlatGpa = mmioGpaPage | (lin & 0xfff);
    return XL_MMIO;
  }
  let ac = false;
  if ((load<u64>(S + VS_CR4) & CR4_SMAP) != 0 && priv == PRIV_SUP) ac = (getFlags() & RFLAGS_AC) != 0;
  const gpa = walk(lin, acc, priv, ac);
  if (status != ST_OK) return XL_FAULT;
  xlatGpa = gpa;
  if (!findSlot(gpa)) {
    mmioFill(lin, gpa & ~(<u64>0xfff), walkPerm);
    return XL_MMIO;
  }
  const ro = (slotFlags & KVM_MEM_READONLY) != 0;
  if (acc == ACC_WRITE && ro) return XL_MMIO;
  let perm = walkPerm;
  if (ro) perm &= ~(P_SW | P_UW);
  if (acc == ACC_WRITE) markDirtyFound(gpa);
  else if ((slotFlags & KVM_MEM_LOG_DIRTY_PAGES) != 0) perm &= ~(P_SW | P_UW);
  const pageGpa = gpa & ~(<u64>0xfff);
  if (pageGpa >= slotGpa && pageGpa - slotGpa + 4096 <= slotSize) {
    tlbFill(lin, slotHostOf(pageGpa), perm);
  }
  return <i64>slotHostOf(gpa);
}

@inline function loadN(h: usize, size: i32): u64 {
  if (size == 4) return <u64>load<u32>(h);
  if (size == 1) return <u64>load<u8>(h);
  if (size == 2) return <u64>load<u16>(h);
  if (size == 8) return load<u64>(h);
  let v: u64 = 0;
  for (let i = 0; i < size; i++) v |= (<u64>load<u8>(h + <usize>i)) << (<u64>i << 3);
  return v;
}

/** Store the low `size` (1-8) bytes of `v` at host address `h`, little-endian. */
@inline export function storeN(h: usize, size: i32, v: u64): void {
  if (size == 4) store<u32>(h, <u32>v);
  else if (size == 1) store<u8>(h, <u8>v);
  else if (size == 2) store<u16>(h, <u16>v);
  else if (size == 8) store<u64>(h, v);
  else for (let i = 0; i < size; i++) store<u8>(h + <usize>i, <u8>(v >> (<u64>i << 3)));
}

/** The low `len` (1-8) bytes set. */
@inline export function lenMask(len: i32): u64 { return len >= 8 ? <u64>-1 : ((<u64>1 << (<u64>len << 3)) - 1); }

function mmioRead(gpa: u64, len: i32): u64 {
  if (replayNext(RK_MMIO_READ, gpa, <u32>len)) return replayData & lenMask(len);
  if (replayStop()) return 0;
  if (!replayAppend(RK_MMIO_READ, gpa, <u32>len, 0)) { internalErrorEmulation(); return 0; }
  // mmio.data keeps what was there (the last write's data, or userspace's answer), as
  // KVM's read_exit_mmio leaves it: only PIO data is zeroed for an IN.
  store<u64>(RUN + KVM_RUN_MMIO_PHYS_ADDR, gpa);
  store<u32>(RUN + KVM_RUN_MMIO_LEN, <u32>len);
  store<u8>(RUN + KVM_RUN_MMIO_IS_WRITE, 0);
  store<u32>(S + VS_PENDING_FLAGS, load<u32>(S + VS_PENDING_FLAGS) | PEND_MMIO_READ);
  exitTo(KVM_EXIT_MMIO);
  return 0;
}

/**
 * The fast path's store to MMIO (decode.ts fastWrite after a TLB miss, 64-bit
 * mode, DS/ES/SS, no data breakpoints): when the one-entry MMIO translation
 * (tlb.ts mmioTag, filled by translateSlow) covers the page with write
 * permission, the store exits as writeMemFinal would, without the segment,
 * TLB and walk steps in between. False: not covered, nothing done.
 */
export function mmioStoreFinal(lin: u64, size: i32, v: u64): bool {
  if (!mmioCovers(lin, ACC_WRITE, privNow()) || <i32>(lin & 0xfff) + size > 4096) return false;
  mmioWrite(mmioGpaPage | (lin & 0xfff), size, v, true);
  return true;
}

/**
 * The fast path's load from MMIO (fastrun.ts after a TLB miss, 64-bit mode, DS/SS, no
 * data breakpoints, replay log empty): when the one-entry MMIO translation covers the
 * page with read permission, the read exits as readMem would. False: not covered,
 * nothing done.
 */
export function mmioLoadFinal(lin: u64, size: i32): bool {
  if (!mmioCovers(lin, ACC_READ, privNow()) || <i32>(lin & 0xfff) + size > 4096) return false;
  mmioRead(mmioGpaPage | (lin & 0xfff), size);
  return true;
}

/** `fast`: the write is the instruction's only MMIO access and its last action (writeMemFinal). */
function mmioWrite(gpa: u64, len: i32, v: u64, fast: bool): void {
  if (replayNext(RK_MMIO_WRITE, gpa, <u32>len)) return;
  const data = v & lenMask(len);
  // The commit pass (kvm/run.ts) keeps a split store's second MMIO fragment for the next
  // exit, as KVM's emulator queues both fragments of one access (a coalesced zone takes it
  // now, before the first fragment's exit reaches userspace, as KVM's bus does); any other
  // access stops it.
  if (splitSecond && replayCanQueue()) {
    if (!(coalescing() && coalesce(0, gpa, len, data))) replayQueue(gpa, <u32>len, data);
    return;
  }
  if (replayStop()) return;
  if (coalescing() && coalesce(0, gpa, len, data)) {
    // Taken in the kernel. Unless it is the instruction's last action, log it as done so
    // a later exit's replay of the instruction does not write it again.
    if (!fast && !replayAppend(RK_MMIO_WRITE, gpa, <u32>len, data)) internalErrorEmulation();
    return;
  }
  const only = load<u32>(S + VS_REPLAY_COUNT) == 0;
  if (!replayAppend(RK_MMIO_WRITE, gpa, <u32>len, data)) { internalErrorEmulation(); return; }
  if (fast && only) pendRetire(PEND_MMIO_WRITE);
  mmioWriteExit(gpa, len, data);
}

/**
 * kvm_run for an MMIO write exit: only `len` bytes of mmio.data are written, the rest keep
 * what they held, as KVM's write_exit_mmio / complete_emulated_mmio copy min(8, len) bytes.
 */
export function mmioWriteExit(gpa: u64, len: i32, data: u64): void {
  store<u64>(RUN + KVM_RUN_MMIO_PHYS_ADDR, gpa);
  storeN(RUN + KVM_RUN_MMIO_DATA, len, data);
  store<u32>(RUN + KVM_RUN_MMIO_LEN, <u32>len);
  store<u8>(RUN + KVM_RUN_MMIO_IS_WRITE, 1);
  exitTo(KVM_EXIT_MMIO);
}

@inline function nextPage(lin: u64, n: i32): u64 {
  const l = lin + <u64>n;
  return mode == MODE_LONG ? l : l & 0xffffffff;
}

/** Read `size` bytes (1–8) at linear `lin`. */
export function readLin(lin: u64, size: i32, acc: i32, priv: i32): u64 {
  if (<i32>(lin & 0xfff) + size <= 4096) {
    const h = translate(lin, acc, priv);
    if (h >= 0) return loadN(<usize>h, size);
    if (h == XL_MMIO) return mmioRead(xlatGpa, size);
    return 0;
  }
  // Crosses a page: translate both pages first (precise faults), then one fragment each.
  const n1 = 4096 - <i32>(lin & 0xfff);
  const h1 = translate(lin, acc, priv);
  if (h1 == XL_FAULT) return 0;
  const g1 = xlatGpa;
  const h2 = translate(nextPage(lin, n1), acc, priv);
  if (h2 == XL_FAULT) return 0;
  const g2 = xlatGpa;
  const lo = h1 >= 0 ? loadN(<usize>h1, n1) : mmioRead(g1, n1);
  if (status != ST_OK) return 0;
  const hi = h2 >= 0 ? loadN(<usize>h2, size - n1) : mmioRead(g2, size - n1);
  return lo | (hi << (<u64>n1 << 3));
}

/** Set by writeMemFinal for the one writeLin it calls. */
let finalWrite: bool = false;

/** Write `size` bytes (1–8) at linear `lin`. */
export function writeLin(lin: u64, size: i32, v: u64, priv: i32): void {
  const fast = finalWrite;
  finalWrite = false;
  if (<i32>(lin & 0xfff) + size <= 4096) {
    const h = translate(lin, ACC_WRITE, priv);
    if (h >= 0) storeN(<usize>h, size, v);
    else if (h == XL_MMIO) mmioWrite(xlatGpa, size, v, fast);
    return;
  }
  const n1 = 4096 - <i32>(lin & 0xfff);
  const h1 = translate(lin, ACC_WRITE, priv);
  if (h1 == XL_FAULT) return;
  const g1 = xlatGpa;
  const h2 = translate(nextPage(lin, n1), ACC_WRITE, priv);
  if (h2 == XL_FAULT) return;
  const g2 = xlatGpa;
  if (h1 >= 0) storeN(<usize>h1, n1, v); else mmioWrite(g1, n1, v, false);
  if (status != ST_OK) return;
  const hv = v >> (<u64>n1 << 3);
  if (h2 >= 0) storeN(<usize>h2, size - n1, hv);
  else {
    splitSecond = true;
    mmioWrite(g2, size - n1, hv, false);
    splitSecond = false;
  }
}

/** The store in flight is the second page's fragment of a page-split write (writeLin). */
let splitSecond: bool = false;

/** Probe that `size` bytes at `lin` are writable (faults only; no access). */
export function probeWrite(lin: u64, size: i32, priv: i32): void {
  translate(lin, ACC_WRITE, priv);
  if (status != ST_OK) return;
  if (<i32>(lin & 0xfff) + size > 4096) translate(nextPage(lin, 4096 - <i32>(lin & 0xfff)), ACC_WRITE, priv);
}

// ---- Segmented data access (the Core API) ----

export function readMem(seg: i32, off: u64, size: i32): u64 {
  const lin = segLinear(seg, off, size, ACC_READ);
  if (status != ST_OK) return 0;
  if (dataBpArmed) noteDataAccess(lin, size, false);
  return readLin(lin, size, ACC_READ, privNow());
}

/** Read for a read-modify-write: faults as a write (permission and #PF W bit), reads the current value. */
export function readMemRmw(seg: i32, off: u64, size: i32): u64 {
  const lin = segLinear(seg, off, size, ACC_WRITE);
  if (status != ST_OK) return 0;
  const priv = privNow();
  if (<i32>(lin & 0xfff) + size <= 4096) {
    const h = translate(lin, ACC_WRITE, priv);
    if (h >= 0) return loadN(<usize>h, size);
    if (h == XL_FAULT) return 0;
  } else {
    probeWrite(lin, size, priv);
    if (status != ST_OK) return 0;
  }
  return readLin(lin, size, ACC_READ, priv);
}

export function writeMem(seg: i32, off: u64, size: i32, v: u64): void {
  const lin = segLinear(seg, off, size, ACC_WRITE);
  if (status != ST_OK) return;
  if (dataBpArmed) noteDataAccess(lin, size, true);
  writeLin(lin, size, v, privNow());
}

/**
 * writeMem for a store that is the instruction's last action, with nothing left
 * to commit but RIP = nextIp (MOV to memory). An MMIO exit from it completes on
 * re-entry by moving RIP (PEND_MMIO_WRITE) instead of replaying the instruction.
 */
export function writeMemFinal(seg: i32, off: u64, size: i32, v: u64): void {
  const lin = segLinear(seg, off, size, ACC_WRITE);
  if (status != ST_OK) return;
  if (dataBpArmed) noteDataAccess(lin, size, true);
  finalWrite = true;
  writeLin(lin, size, v, privNow());
}

/**
 * A host address for `len` bytes (one string-IO batch) at `seg:off` when the
 * element-by-element readMem/writeMem would certainly touch plain RAM on one
 * page with no side effect: 64-bit mode, no data breakpoints, a canonical,
 * page-contained range and a TLB hit with the access's permission. Otherwise
 * -1 and nothing happened (the caller takes the element loop, which faults,
 * exits or fills the TLB as it must).
 */
export function bulkHost(seg: i32, off: u64, len: i32, acc: i32): i64 {
  if (mode != MODE_LONG || dataBpArmed) return -1;
  let lin = off;
  if (seg == SEG_FS || seg == SEG_GS) lin += segBase(seg);
  if (!canonical(lin) || <i32>(lin & 0xfff) + len > 4096) return -1;
  return tlbHit(lin, acc, privNow());
}

// ---- System-structure access (GDT/LDT/IDT/TSS): implicit supervisor accesses ----

export function readSys(lin: u64, size: i32): u64 { return readLin(lin, size, ACC_READ, PRIV_IMPLICIT); }
export function writeSys(lin: u64, size: i32, v: u64): void { writeLin(lin, size, v, PRIV_IMPLICIT); }

// ---- Stack ----

@inline function spMask(ss: i32): u64 { return ss == 8 ? <u64>-1 : ss == 4 ? <u64>0xffffffff : <u64>0xffff; }

/** Push `size` bytes: writes, then commits RSP (per the stack size). */
export function push(size: i32, v: u64): void {
  const ss = stackSize();
  const rsp = reg64(RSP);
  const m = spMask(ss);
  const off = (rsp - <u64>size) & m;
  writeMem(SEG_SS, off, size, v);
  if (status != ST_OK) return;
  setReg64(RSP, ss == 2 ? (rsp & ~m) | off : off);
}

/** Pop `size` bytes: reads, then commits RSP. */
export function pop(size: i32): u64 {
  const ss = stackSize();
  const rsp = reg64(RSP);
  const m = spMask(ss);
  const v = readMem(SEG_SS, rsp & m, size);
  if (status != ST_OK) return 0;
  const nsp = (rsp + <u64>size) & m;
  setReg64(RSP, ss == 2 ? (rsp & ~m) | nsp : nsp);
  return v;
}

/** Read the stack slot `index` (0 = top) of `size` bytes without moving RSP. */
export function peekStack(size: i32, index: i32): u64 {
  const m = spMask(stackSize());
  return readMem(SEG_SS, (reg64(RSP) + <u64>(size * index)) & m, size);
}

/** Write at SS:(RSP - k) style offsets without moving RSP (far calls, interrupt frames). */
export function stackWriteAt(off: u64, size: i32, v: u64): void { writeMem(SEG_SS, off & spMask(stackSize()), size, v); }

// ---- Instruction fetch ----

/** Refill the fetch window for `ip`; returns the byte there (status set on a fault). */
function fetchByteSlow(ip: u64): u32 {
  if (ip - insnStart >= 15) { gp0(); return 0; }
  let lin: u64;
  let hiIp: u64;
  if (mode == MODE_LONG) {
    if (!canonical(ip)) { gp0(); return 0; }
    lin = ip;
    hiIp = <u64>-1;
  } else {
    const limit = <u64>load<u32>(S + VS_SEG_CS_LIMIT);
    if (ip > limit) { gp0(); return 0; }
    lin = (load<u64>(S + VS_SEG_CS_BASE) + ip) & 0xffffffff;
    hiIp = limit + 1;
  }
  const h = translate(lin, ACC_EXEC, privNow());
  if (h == XL_FAULT) return 0;
  if (h == XL_MMIO) { internalErrorEmulation(); return 0; }
  // Only a page that sits in the TLB (a whole page of one memslot) may become the window.
  const po = lin & 0xfff;
  let lo = ip - po;
  let hi = lo + 4096;
  if (load<u64>(tlbEntry(lin) + TLB_TAG) != (lin >> 12) + 1) { lo = ip; hi = ip + 1; }
  if (hi > hiIp || hi < lo) hi = hiIp;
  setFetchWindow(lo, hi, <u64>h - ip);
  return <u32>load<u8>(<usize>h);
}

/** Host byte at `ip` or -1, without faulting (instruction bytes for internal errors). */
export function peekCode(ip: u64): i32 {
  if (ip >= fwLo && ip < fwHi) return <i32>load<u8>(<usize>(fwDelta + ip));
  return -1;
}

function fetchSlow(n: i32): u64 {
  let v: u64 = 0;
  let ip = nextIp;
  for (let i = 0; i < n; i++) {
    let b: u32;
    if (ip >= fwLo && ip < fwHi && ip - insnStart < 15) b = <u32>load<u8>(<usize>(fwDelta + ip));
    else {
      b = fetchByteSlow(ip);
      if (status != ST_OK) return 0;
    }
    v |= (<u64>b) << (<u64>i << 3);
    ip++;
  }
  setNextIp(ip);
  return v;
}

@inline export function fetch8(): u32 {
  const ip = nextIp;
  if (ip >= fwLo && ip < fwHi && ip - insnStart < 15) {
    setNextIp(ip + 1);
    return <u32>load<u8>(<usize>(fwDelta + ip));
  }
  return <u32>fetchSlow(1);
}
@inline export function fetch16(): u32 {
  const ip = nextIp;
  if (ip >= fwLo && ip + 2 <= fwHi && ip + 2 - insnStart <= 15) {
    setNextIp(ip + 2);
    return <u32>load<u16>(<usize>(fwDelta + ip));
  }
  return <u32>fetchSlow(2);
}
@inline export function fetch32(): u32 {
  const ip = nextIp;
  if (ip >= fwLo && ip + 4 <= fwHi && ip + 4 - insnStart <= 15) {
    setNextIp(ip + 4);
    return load<u32>(<usize>(fwDelta + ip));
  }
  return <u32>fetchSlow(4);
}
@inline export function fetch64(): u64 {
  const ip = nextIp;
  if (ip >= fwLo && ip + 8 <= fwHi && ip + 8 - insnStart <= 15) {
    setNextIp(ip + 8);
    return load<u64>(<usize>(fwDelta + ip));
  }
  return fetchSlow(8);
}
