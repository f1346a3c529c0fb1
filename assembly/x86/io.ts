// Port IO (docs/core-contract.md "io.ts"): KVM_EXIT_IO with data at
// data_offset = KVM_PIO_PAGE_OFFSET * 4096 (the page after kvm_run), restart-with-
// replay completion, the TSS IO-permission bitmap when CPL > IOPL, and INS/OUTS
// with REP batched into one exit with count > 1 (up to RCX and the page boundary).
import {
  KVM_EXIT_IO, KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_PIO_PAGE_OFFSET, KVM_RUN_IO_COUNT, KVM_RUN_IO_DATA_OFFSET,
  KVM_RUN_IO_DIRECTION, KVM_RUN_IO_PORT, KVM_RUN_IO_SIZE, PAGE_SIZE, VS_PENDING_FLAGS, VS_SEG_TR_BASE,
  VS_SEG_TR_LIMIT, VS_SEG_TR_TYPE,
} from "../abi.generated";
import { RCX, RDI, RSI, RUN, S, SEG_DS, SEG_ES, ST_FAULT, ST_OK, reg64, setReg64, setRip, status } from "./cpu";
import { addrSize, nextIp, opSize, repPrefix, segOverride } from "./decode_state";
import { ACC_WRITE } from "./paging";
import { gp0 } from "./exceptions";
import { MODE_REAL, MODE_V86, RFLAGS_DF, RFLAGS_IOPL, cpl, mode } from "./mode";
import { PEND_PIO_IN, PEND_PIO_OUT, bulkHost, lenMask, peekCode, pendRetire, readMem, readSys, writeMem } from "./mem";
import { RK_PIO_IN, RK_PIO_OUT, replayAppend, replayClear, replayCount, replayData, replayNext } from "./replay";
import { getFlags } from "./core_link";
import { flagsOther } from "./flags";
import { exitTo, internalErrorEmulation } from "../kvm/exits";
import { coalesce, coalescing, inZone } from "../kvm/coalesced";

const PIO_DATA: i32 = KVM_PIO_PAGE_OFFSET * PAGE_SIZE;

/** IO permission without the TSS bitmap: real mode, or CPL <= IOPL outside virtual-8086 mode. */
@inline function ioPlain(): bool {
  // CPL 0 outside virtual-8086 mode is always <= IOPL (IOPL is not an arithmetic flag: flagsOther).
  return mode == MODE_REAL || (mode != MODE_V86 && cpl() <= <i32>((flagsOther & RFLAGS_IOPL) >> 12));
}

/** IO permission (SDM vol. 1 §19.5): CPL <= IOPL, else the TSS bitmap must allow every byte. */
@inline function ioAllowed(port: i32, size: i32): bool {
  if (ioPlain()) return true;
  return ioBitmapAllowed(port, size);
}

/** The TSS IO-permission bitmap check of ioAllowed() (CPL > IOPL, or virtual-8086 mode). */
function ioBitmapAllowed(port: i32, size: i32): bool {
  const type = load<u8>(S + VS_SEG_TR_TYPE) & 0xf;
  const limit = <u64>load<u32>(S + VS_SEG_TR_LIMIT);
  if ((type != 9 && type != 11) || limit < 0x67) { gp0(); return false; }
  const base = load<u64>(S + VS_SEG_TR_BASE);
  const mapOff = readSys(base + 0x66, 2);
  if (status != ST_OK) return false;
  const byteOff = mapOff + <u64>(port >> 3);
  if (byteOff + 1 > limit) { gp0(); return false; }
  const bits = readSys(base + byteOff, 2);
  if (status != ST_OK) return false;
  const mask: u64 = ((<u64>1 << <u64>size) - 1) << <u64>(port & 7);
  if ((bits & mask) != 0) { gp0(); return false; }
  return true;
}

function ioExit(dir: i32, port: i32, size: i32, count: u32): void {
  if (KVM_RUN_IO_SIZE == KVM_RUN_IO_DIRECTION + 1 && KVM_RUN_IO_PORT == KVM_RUN_IO_DIRECTION + 2 &&
    KVM_RUN_IO_COUNT == KVM_RUN_IO_DIRECTION + 4) {
    // direction, size, port, count in one store.
    store<u64>(RUN + KVM_RUN_IO_DIRECTION,
      <u64>(dir & 0xff) | (<u64>(size & 0xff) << 8) | (<u64>(port & 0xffff) << 16) | (<u64>count << 32));
  } else {
    store<u8>(RUN + KVM_RUN_IO_DIRECTION, <u8>dir);
    store<u8>(RUN + KVM_RUN_IO_SIZE, <u8>size);
    store<u16>(RUN + KVM_RUN_IO_PORT, <u16>port);
    store<u32>(RUN + KVM_RUN_IO_COUNT, count);
  }
  store<u64>(RUN + KVM_RUN_IO_DATA_OFFSET, <u64>PIO_DATA);
  if (dir == KVM_EXIT_IO_IN) store<u32>(S + VS_PENDING_FLAGS, load<u32>(S + VS_PENDING_FLAGS) | PEND_PIO_IN);
  exitTo(KVM_EXIT_IO);
}

@inline function sizeMask(size: i32): u32 { return size >= 4 ? 0xffffffff : ((<u32>1 << (<u32>size << 3)) - 1); }

/**
 * Pending-completion bit (VS_PENDING_FLAGS, next to mem.ts's PEND_*) of an IN exit whose
 * instruction commits nothing but RAX and RIP once the data is in (sys_io.ts execIn, the
 * only caller of portIn): re-entry completes it like KVM's complete_fast_pio_in (the data
 * into AL/AX/EAX, RIP past the IN) instead of replaying, when RIP is still at the IN.
 * Always set together with PEND_PIO_IN, whose replay completion stays the fallback.
 */
export const PEND_PIO_IN_RAX: u32 = 128;

/** IN of `size` (1, 2, 4) bytes from `port`: the value, or an exit (status ST_EXIT) / #GP. */
export function portIn(port: i32, size: i32): u32 {
  port &= 0xffff;
  if (!ioAllowed(port, size)) return 0;
  if (replayNext(RK_PIO_IN, <u64>port, <u32>size)) return <u32>replayData & sizeMask(size);
  const only = replayCount() == 0;
  if (!replayAppend(RK_PIO_IN, <u64>port, <u32>size, 0)) { internalErrorEmulation(); return 0; }
  if (only) pendRetire(PEND_PIO_IN_RAX);
  store<u32>(RUN + PIO_DATA, 0);
  ioExit(KVM_EXIT_IO_IN, port, size, 1);
  return 0;
}

/** OUT of `size` bytes of `v` to `port`. */
export function portOut(port: i32, size: i32, v: u32): void {
  port &= 0xffff;
  if (!ioAllowed(port, size)) return;
  v &= sizeMask(size);
  const only = replayCount() == 0;
  if (!only && replayNext(RK_PIO_OUT, <u64>port, <u32>size)) return;
  if (coalescing() && coalesce(1, <u64>port, size, <u64>v)) return; // the last action: nothing to replay
  if (!replayAppend(RK_PIO_OUT, <u64>port, <u32>size, <u64>v)) { internalErrorEmulation(); return; }
  // OUT commits nothing but RIP after the port write (sys_io.ts execOut): complete it
  // on re-entry by moving RIP (KVM's complete_fast_pio_out) instead of replaying.
  if (only) pendRetire(PEND_PIO_OUT);
  store<u32>(RUN + PIO_DATA, v);
  ioExit(KVM_EXIT_IO_OUT, port, size, 1);
}

/**
 * The OUT of a translated block (x86/jit.ts jitOut): portOut's in-kernel case on its own,
 * with no side effect unless it is taken. 1: a coalesced PIO zone took the write
 * (kvm/coalesced.ts), and the OUT is complete but for RIP. 0: nothing done, the
 * interpreter runs the OUT (the ring is full: it exits). -1: nothing done, and this OUT
 * is not one a zone takes now (no zone covers it, the TSS bitmap decides, or a replay is
 * due), so it exits or faults each time it runs.
 */
export function portOutInKernel(port: i32, size: i32, v: u32): i32 {
  port &= 0xffff;
  if (!ioPlain() || replayCount() != 0 || !coalescing()) return -1;
  if (coalesce(1, <u64>port, size, <u64>(v & sizeMask(size)))) return 1;
  return inZone(1, <u64>port, size) ? 0 : -1;
}

@inline function amask(): u64 { return addrSize == 8 ? <u64>-1 : addrSize == 4 ? <u64>0xffffffff : <u64>0xffff; }
@inline function setMasked(r: i32, v: u64): void {
  const m = amask();
  setReg64(r, addrSize == 4 ? v & m : (reg64(r) & ~m) | (v & m));
}

/** Element size of INS/OUTS: the opcode is the last byte fetched (6C/6E byte, 6D/6F word/dword). */
function stringIoSize(): i32 {
  const op = peekCode(nextIp - 1);
  if (op == 0x6c || op == 0x6e) return 1;
  return opSize == 2 ? 2 : 4;
}

/**
 * Elements in one INS exit, as KVM's emulator reads them ahead (arch/x86/kvm/emulate.c
 * pio_in_emulated): n = min(in_page, 1024 / size, count), at least 1, where in_page is
 * the BYTES from RDI to its page edge in the direction of DF (PAGE_SIZE - offset going
 * up, the offset itself going down) compared with ELEMENT counts — KVM's quirk, kept:
 * a word or dword batch may cross the page edge, each element then stored on its own.
 * 1024 is the size of the emulator's read-ahead buffer (`struct read_cache` data).
 */
function insElements(di: u64, size: i32, down: bool, cnt: u64): u64 {
  const po = di & 0xfff;
  let n: u64 = down ? po : 4096 - po;
  const buf = <u64>(1024 / size);
  if (n > buf) n = buf;
  if (n > cnt) n = cnt;
  if (n == 0) n = 1;
  return n;
}

/**
 * INS/INSB/INSW/INSD (with REP): one exit for a read-ahead batch (insElements), its
 * data zeroed in the PIO page as KVM leaves it; on re-entry the batch is stored
 * element by element and RDI/RCX move past it.
 */
export function execIns(): void {
  const size = stringIoSize();
  const rep = repPrefix != 0;
  const m = amask();
  let cnt: u64 = rep ? reg64(RCX) & m : 1;
  if (cnt == 0) { setRip(nextIp); return; }
  const port = <i32>(reg64(2) & 0xffff);
  if (!ioAllowed(port, size)) return;
  const down = (getFlags() & RFLAGS_DF) != 0;
  const di = reg64(RDI) & m;
  const n = insElements(di, size, down, cnt);
  const len = size * <i32>n;
  if (!replayNext(RK_PIO_IN, <u64>port, <u32>len)) {
    // The exit comes first: KVM translates the destination only when it stores an
    // element, after the data is in (a fault then loses the batch's data).
    if (!replayAppend(RK_PIO_IN, <u64>port, <u32>len, n)) { internalErrorEmulation(); return; }
    memory.fill(<usize>(RUN + PIO_DATA), 0, <usize>len);
    ioExit(KVM_EXIT_IO_IN, port, size, <u32>n);
    return;
  }
  let d = di;
  const step: u64 = down ? <u64>-size : <u64>size;
  const h = down ? -1 : bulkHost(SEG_ES, di, len, ACC_WRITE);
  if (h >= 0) {
    memory.copy(<usize>h, <usize>(RUN + PIO_DATA), <usize>len);
    finishString(RDI, di + <u64>len, rep, cnt - n);
    return;
  }
  if (!down) {
    // KVM stores an upward batch as one block (emulate.c pio_in_emulated: OP_MEM_STR):
    // page pieces, each in chunks of up to 8 bytes (an MMIO destination sees those
    // writes); a fault leaves RDI and RCX where they were, the pieces before it stored.
    let off = 0;
    while (off < len) {
      const a = (di + <u64>off) & m;
      let c = len - off;
      if (c > 8) c = 8;
      const toPage = 4096 - <i32>(a & 0xfff);
      if (c > toPage) c = toPage;
      writeMem(SEG_ES, a, c, load<u64>(RUN + PIO_DATA + off) & lenMask(c));
      if (status != ST_OK) return;
      off += c;
    }
    finishString(RDI, di + <u64>len, rep, cnt - n);
    return;
  }
  for (let i: u64 = 0; i < n; i++) {
    const v = loadPio(<i32>i, size);
    writeMem(SEG_ES, d & m, size, v);
    if (status != ST_OK) {
      // Downward, KVM stores element by element and writes RDI and RCX back after
      // each: a fault is taken at element i, with the elements before it stored. (An
      // MMIO destination's exit is replayed instead.)
      if (status == ST_FAULT && i != 0) { setMasked(RDI, d); if (rep) setMasked(RCX, cnt - i); }
      return;
    }
    d += step;
  }
  finishString(RDI, d, rep, cnt - n);
}

/**
 * OUTS/OUTSB/OUTSW/OUTSD (with REP): one element per exit, count 1, as KVM emulates it
 * (emulate.c em_out passes count 1 to pio_out_emulated). The element's iteration is
 * committed before the exit, as KVM's writeback does (x86.c x86_emulate_instruction
 * clears pio.count for an OUT and writes back): RSI and RCX already past the element.
 * RIP moves past the instruction only without REP; with REP it stays at it even after
 * the last element (RCX 0), because KVM's writeback skips RIP while
 * string_insn_completed() is false — only the next entry, which finds RCX 0, completes
 * the REP. So re-entry needs no completion and simply runs the next element.
 */
export function execOuts(): void {
  const size = stringIoSize();
  const rep = repPrefix != 0;
  const m = amask();
  let cnt: u64 = rep ? reg64(RCX) & m : 1;
  if (cnt == 0) { setRip(nextIp); return; }
  const port = <i32>(reg64(2) & 0xffff);
  if (!ioAllowed(port, size)) return;
  const down = (getFlags() & RFLAGS_DF) != 0;
  const seg = segOverride >= 0 ? segOverride : SEG_DS;
  const step: u64 = down ? <u64>-size : <u64>size;
  let si = reg64(RSI) & m;
  for (;;) {
    const v = <u32>readMem(seg, si, size);
    if (status != ST_OK) return;
    si += step;
    setMasked(RSI, si);
    if (rep) setMasked(RCX, --cnt);
    else setRip(nextIp);
    replayClear(); // an MMIO source read's fragment belongs to this element only
    // A coalesced element is taken in the kernel and the emulator goes on to the next;
    // the ring holds at most 169, so this loop ends.
    if (coalescing() && coalesce(1, <u64>port, size, <u64>v)) {
      if (!rep) return;
      if (cnt == 0) { setRip(nextIp); return; }
      si &= m;
      continue;
    }
    store<u32>(RUN + PIO_DATA, v);
    ioExit(KVM_EXIT_IO_OUT, port, size, 1);
    return;
  }
}

/**
 * One element of OUTSB / REP OUTSB in 64-bit code with no segment override or address-size
 * prefix, its source byte at host address `h` (fastRun checked the rest: REP with RCX > 0,
 * a TLB hit on RSI), as execOuts runs it: RSI (and RCX) move, RIP past a non-REP OUTSB
 * (fastRun stored RIP and nextIp), the exit. False, nothing done: the permission needs the
 * TSS bitmap or a coalesced zone may take the byte (execOuts then runs it).
 */
export function outsbFast(h: usize, rep: bool): bool {
  if (!ioPlain() || coalescing()) return false;
  const port = <i32>(reg64(2) & 0xffff);
  const v = <u32>load<u8>(h);
  setReg64(RSI, reg64(RSI) + ((flagsOther & RFLAGS_DF) != 0 ? <u64>-1 : 1));
  if (rep) setReg64(RCX, reg64(RCX) - 1);
  else setRip(nextIp);
  replayClear();
  store<u32>(RUN + PIO_DATA, v);
  ioExit(KVM_EXIT_IO_OUT, port, 1, 1);
  return true;
}

@inline function loadPio(i: i32, size: i32): u64 {
  const p = RUN + PIO_DATA + i * size;
  return size == 1 ? <u64>load<u8>(p) : size == 2 ? <u64>load<u16>(p) : <u64>load<u32>(p);
}

/** Commit a (batch of a) string IO: index register, RCX, and RIP when the REP is done. */
function finishString(idx: i32, v: u64, rep: bool, left: u64): void {
  setMasked(idx, v);
  if (rep) setMasked(RCX, left);
  if (!rep || left == 0) setRip(nextIp);
}
