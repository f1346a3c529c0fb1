// The replay log of restart-with-replay userspace exits (docs/core-contract.md):
// each MMIO/PIO fragment of the instruction in flight, in order. After the exit,
// the instruction runs again from insnStart and consumes the fragments instead of
// exiting; the run loop clears the log when the instruction commits or faults.
import {
  REPLAY_ADDR, REPLAY_DATA, REPLAY_ENTRIES, REPLAY_KIND, REPLAY_LEN, REPLAY_SIZEOF, VS_REPLAY, VS_REPLAY_COUNT,
  VS_REPLAY_POS,
} from "../abi.generated";
import { S, ST_EXIT, setStatus } from "./cpu";

export const RK_MMIO_READ: u32 = 1;
export const RK_MMIO_WRITE: u32 = 2;
export const RK_PIO_IN: u32 = 3;
export const RK_PIO_OUT: u32 = 4;

/** Data of the fragment consumed by the last successful replayNext(). */
export let replayData: u64 = 0;

@inline function entry(i: u32): usize { return <usize>(S + VS_REPLAY + <i32>i * REPLAY_SIZEOF); }
@inline export function replayCount(): u32 { return load<u32>(S + VS_REPLAY_COUNT); }

/** Consume the next fragment if it matches (kind, addr, len); a mismatch drops the rest of the log. */
/** VS_REPLAY_COUNT and VS_REPLAY_POS are adjacent: both in one access. */
const CP_PAIR: bool = VS_REPLAY_POS == VS_REPLAY_COUNT + 4;
/** KIND and LEN of a fragment are adjacent: both in one access. */
const KL_PAIR: bool = REPLAY_LEN == REPLAY_KIND + 4;

@inline function setCountPos(n: u32, pos: u32): void {
  if (CP_PAIR) store<u64>(S + VS_REPLAY_COUNT, <u64>n | (<u64>pos << 32));
  else { store<u32>(S + VS_REPLAY_COUNT, n); store<u32>(S + VS_REPLAY_POS, pos); }
}

export function replayNext(kind: u32, addr: u64, len: u32): bool {
  let pos: u32, n: u32;
  if (CP_PAIR) {
    const cp = load<u64>(S + VS_REPLAY_COUNT);
    n = <u32>cp;
    pos = <u32>(cp >> 32);
  } else {
    pos = load<u32>(S + VS_REPLAY_POS);
    n = load<u32>(S + VS_REPLAY_COUNT);
  }
  if (pos >= n) return false;
  const e = entry(pos);
  if (load<u32>(e + REPLAY_KIND) != kind || load<u64>(e + REPLAY_ADDR) != addr || load<u32>(e + REPLAY_LEN) != len) {
    store<u32>(S + VS_REPLAY_COUNT, pos);
    return false;
  }
  replayData = load<u64>(e + REPLAY_DATA);
  store<u32>(S + VS_REPLAY_POS, pos + 1);
  return true;
}

/** Write fragment `e` of the log. */
@inline function putEntry(e: usize, kind: u32, addr: u64, len: u32, data: u64): void {
  store<u64>(e + REPLAY_ADDR, addr);
  store<u64>(e + REPLAY_DATA, data);
  if (KL_PAIR) store<u64>(e + REPLAY_KIND, <u64>kind | (<u64>len << 32));
  else { store<u32>(e + REPLAY_KIND, kind); store<u32>(e + REPLAY_LEN, len); }
}

/** Append a fragment (the access that is about to exit); false when the log is full. */
export function replayAppend(kind: u32, addr: u64, len: u32, data: u64): bool {
  const n = load<u32>(S + VS_REPLAY_COUNT);
  if (n >= <u32>REPLAY_ENTRIES) return false;
  putEntry(entry(n), kind, addr, len, data);
  setCountPos(n + 1, n + 1);
  return true;
}

/** Completion: store userspace's data into the last fragment (IN / MMIO read). */
export function replayCompleteLast(data: u64): void {
  const n = load<u32>(S + VS_REPLAY_COUNT);
  if (n == 0) return;
  store<u64>(entry(n - 1) + REPLAY_DATA, data);
}

/** Kind of the last fragment (0 when empty). */
export function replayLastKind(): u32 {
  const n = load<u32>(S + VS_REPLAY_COUNT);
  return n == 0 ? 0 : load<u32>(entry(n - 1) + REPLAY_KIND);
}
export function replayLastLen(): u32 {
  const n = load<u32>(S + VS_REPLAY_COUNT);
  return n == 0 ? 0 : load<u32>(entry(n - 1) + REPLAY_LEN);
}

/** Rewind for a re-execution (at run() entry). */
export function replayRewind(): void { store<u32>(S + VS_REPLAY_POS, 0); }

/** The instruction committed (or faulted): forget its fragments. Also for REP iterations that commit. */
export function replayClear(): void { setCountPos(0, 0); }

/**
 * The commit pass (kvm/run.ts commitMmioWrite): the instruction whose MMIO write just
 * exited runs again on its log only, to commit before the exit as KVM does. An access
 * the log does not hold stops it there (replayStop), and so does the end of a REP
 * iteration: nothing new is logged, written to kvm_run or done to a device.
 */
let replayOnly: bool = false;
export function setReplayOnly(on: bool): void {
  replayOnly = on;
  if (on) { queued = false; iterationDone = false; }
}

/** The commit pass ended at a REP iteration boundary (replayIterationEnd): that iteration committed. */
export let iterationDone: bool = false;

/** At the end of a REP MOVS/STOS iteration: in the commit pass, stop there (true), the iteration committed. */
export function replayIterationEnd(): bool {
  if (!replayStop()) return false;
  iterationDone = true;
  return true;
}

/** The commit pass met a split store's second MMIO fragment (replayQueue): its address, length, data. */
let queued: bool = false;
let queuedAddr: u64 = 0;
let queuedLen: u32 = 0;
let queuedData: u64 = 0;

/** In the commit pass with no fragment held yet: a split store's second fragment may be held. */
export function replayCanQueue(): bool { return replayOnly && !queued; }

/** Hold a split store's second fragment for the next exit (replayCanQueue() was true). */
export function replayQueue(addr: u64, len: u32, data: u64): void {
  queued = true;
  queuedAddr = addr;
  queuedLen = len;
  queuedData = data;
}

/**
 * After a commit pass that committed: true when it held a fragment, which is then kept in
 * log entry 0 (the log itself stays empty) for the next run() to exit with (keptAddr,
 * keptLen, keptData).
 */
export function replayKeepQueued(): bool {
  if (!queued) return false;
  queued = false;
  putEntry(entry(0), RK_MMIO_WRITE, queuedAddr, queuedLen, queuedData);
  return true;
}

/** The fragment replayKeepQueued kept: its address, length and data. */
export function keptAddr(): u64 { return load<u64>(entry(0) + REPLAY_ADDR); }
export function keptLen(): u32 { return load<u32>(entry(0) + REPLAY_LEN); }
export function keptData(): u64 { return load<u64>(entry(0) + REPLAY_DATA); }

/** In the commit pass: stop the instruction (status ST_EXIT, as an exit leaves it) and answer true. */
@inline export function replayStop(): bool {
  if (!replayOnly) return false;
  setStatus(ST_EXIT);
  return true;
}

/** Every logged fragment is an MMIO access (no port IO: INS/OUTS keep their own completion). */
export function replayMmioOnly(): bool {
  const n = load<u32>(S + VS_REPLAY_COUNT);
  for (let i: u32 = 0; i < n; i++) {
    const k = load<u32>(entry(i) + REPLAY_KIND);
    if (k != RK_MMIO_READ && k != RK_MMIO_WRITE) return false;
  }
  return true;
}
