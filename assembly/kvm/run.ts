// KVM_RUN for one vCPU (docs/core-contract.md "Exports"): entry bookkeeping
// (flags, VS_DIRTY, memslot generation), completion of the pending userspace exit,
// immediate_exit, the fast path (Core's stepMany) and the per-instruction path
// (guest debug, TF, breakpoints, replay, interrupt shadow), exception delivery,
// and the exit fields KVM's post_kvm_run_save writes (if_flag,
// ready_for_interrupt_injection, cr8, apic_base).
import {
  KVM_EXIT_INTR, KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN, KVM_PIO_PAGE_OFFSET, KVM_RUN_APIC_BASE, KVM_RUN_CR8, KVM_RUN_EXIT_REASON,
  KVM_RUN_FLAGS, KVM_RUN_HYPERCALL_RET, KVM_RUN_IF_FLAG, KVM_RUN_IMMEDIATE_EXIT, KVM_RUN_MMIO_DATA, KVM_RUN_MMIO_IS_WRITE, KVM_RUN_MSR_DATA,
  KVM_RUN_MSR_ERROR, KVM_RUN_READY_FOR_INTERRUPT_INJECTION, PAGE_SIZE, SEG_BASE,
  VCPU_STATE_OFFSET, VMC_MEMSLOT_GEN,
  VM_CONTROL_BASE,
  VS_APIC_BASE, VS_CR8, VS_DIRTY, VS_EXC_ERROR_CODE, VS_EXC_HAS_ERROR, VS_EXC_NR, VS_EXC_PENDING, VS_EXITS,
  VS_INSTRUCTIONS, VS_INTERRUPT_SHADOW, VS_PENDING_FLAGS, VS_PENDING_INSN_RIP, VS_PENDING_RIP, VS_REPLAY_COUNT,
  VS_RFLAGS, VS_SEG_CS, VS_TLB_GEN, VS_TRIPLE_FAULT_PENDING,
} from "../abi.generated";
import { RAX, RDX, RUN, S, ST_EXIT, ST_FAULT, ST_OK, rip, selectVcpu, setReg64, setRip, setStatus, status } from "../x86/cpu";
import { insnStart } from "../x86/decode_state";
import { EXC_DB, excError, excHasError, excIsTrap, excVector, gp0 } from "../x86/exceptions";
import { invalidateFetch } from "../x86/fetchwin";
import { jitForget } from "../x86/jit";
import { MODE_LONG, MODE_V86, RFLAGS_IF, RFLAGS_RF, RFLAGS_TF, mode, recomputeMode } from "../x86/mode";
import {
  PEND_HYPERCALL, PEND_MMIO_READ, PEND_MMIO_READ_REG, PEND_MMIO_WRITE, PEND_MMIO_WRITE_NEXT, PEND_PIO_IN, PEND_PIO_OUT,
  PEND_RDMSR, PEND_WRMSR, completeLoadReg, mmioWriteExit,
} from "../x86/mem";
import { setMaxPhyAddr } from "../x86/paging";
import {
  iterationDone, keptAddr, keptData, keptLen, replayClear, replayCompleteLast, replayCount, replayKeepQueued,
  replayLastLen, replayMmioOnly, replayRewind, setReplayOnly,
} from "../x86/replay";
import { PEND_PIO_IN_RAX } from "../x86/io";
import { setInResult } from "../x86/sys_io";
import { tlbFlush } from "../x86/tlb";
import {
  DR6_BS, DR6_FIXED, clearDataHits, dataBpArmed, dataBpHits, debugExit, execBpArmed, execBpMatch, guestDr6Set,
  hwBpDebug, refreshDebug, singleStepDebug,
} from "../x86/debug";
import { deliverEvent, tripleFault } from "../x86/sys_int";
import { flagsIn, getFlags, setFlags, step, stepFast, stepMany } from "../x86/core_link";
import { flagsOther } from "../x86/flags";
import { cpuidEax, cpuidLookup, findCpuid } from "./cpuid";
import { tscRunEnd, tscRunStart } from "./msr";
import { exitReason, internalErrorEmulation } from "./exits";
import { ringHeld, ringPublish, ringTick } from "./coalesced";
import { syncOut, syncRegsEntry, syncRegsStore } from "./sync_regs";

let lastRun: i32 = -1;
/** run()'s result when KVM_RUN would fail with EINVAL (kvm_valid_regs / kvm_dirty_regs bits kvmsim does not sync). */
const RUN_EINVAL: i32 = -22;
// Per-vCPU values cached in module globals (no bounds-checked load per run). Only
// the core writes them between refreshes; TS changes to the state block set VS_DIRTY.
/** VS_EXITS of the selected vCPU. */
let exitsCache: u64 = 0;
/** VS_TLB_GEN of the selected vCPU. */
let tlbGenCache: u32 = 0;
/** VS_TRIPLE_FAULT_PENDING / VS_EXC_PENDING may be set (TS writes them with VS_DIRTY). */
let eventsPending: bool = false;
/** KVM_GUESTDBG_SINGLESTEP is on (VS_GUEST_DEBUG_CONTROL: written only by TS, with VS_DIRTY). */
let ssDebug: bool = false;

/** Recompute everything cached from the state block (VS_DIRTY, another vCPU selected). */
function refresh(): void {
  recomputeMode();
  tlbFlush();
  invalidateFetch();
  jitForget();
  refreshDebug();
  setMaxPhyAddr(findCpuid(0x80000008, 0) != 0 ? (cpuidLookupEax(0x80000008) & 0xff) : 36);
  exitsCache = load<u64>(S + VS_EXITS);
  tlbGenCache = load<u32>(S + VS_TLB_GEN);
  eventsPending = load<u8>(S + VS_TRIPLE_FAULT_PENDING) != 0 || load<u8>(S + VS_EXC_PENDING) != 0;
  ssDebug = singleStepDebug();
  tscRunStart();
}
function cpuidLookupEax(fn: u32): u32 { cpuidLookup(fn, 0); return cpuidEax; }

@inline function linRip(): u64 { return (mode == MODE_LONG ? 0 : load<u64>(S + VS_SEG_CS + SEG_BASE)) + rip(); }

function finish(reason: i32): i32 {
  if (ringHeld) ringPublish(); // the coalesced writes before this exit are in the ring when TS looks
  const f = getFlags();
  store<u64>(S + VS_RFLAGS, f); // flagsOut()
  if (syncOut) syncRegsStore(f);
  tscRunEnd();
  const ifl = (f & RFLAGS_IF) != 0;
  const ready = ifl && load<u8>(S + VS_INTERRUPT_SHADOW) == 0;
  if (KVM_RUN_READY_FOR_INTERRUPT_INJECTION == KVM_RUN_EXIT_REASON + 4 && KVM_RUN_IF_FLAG == KVM_RUN_EXIT_REASON + 5 &&
    KVM_RUN_FLAGS == KVM_RUN_EXIT_REASON + 6) {
    // exit_reason, ready_for_interrupt_injection, if_flag and flags (cleared) in one store.
    store<u64>(RUN + KVM_RUN_EXIT_REASON, <u64><u32>reason | (ready ? <u64>1 << 32 : 0) | (ifl ? <u64>1 << 40 : 0));
  } else {
    store<u32>(RUN + KVM_RUN_EXIT_REASON, <u32>reason);
    store<u8>(RUN + KVM_RUN_IF_FLAG, ifl ? 1 : 0);
    store<u8>(RUN + KVM_RUN_READY_FOR_INTERRUPT_INJECTION, ready ? 1 : 0);
    store<u16>(RUN + KVM_RUN_FLAGS, 0);
  }
  store<u64>(RUN + KVM_RUN_CR8, load<u64>(S + VS_CR8));
  store<u64>(RUN + KVM_RUN_APIC_BASE, load<u64>(S + VS_APIC_BASE));
  exitsCache++;
  store<u64>(S + VS_EXITS, exitsCache);
  return reason;
}

/** finish() with the exit reason recorded by exitTo(). */
function finishExit(): i32 {
  if (exitReason == KVM_EXIT_MMIO) commitMmioWrite();
  return finish(exitReason);
}

/**
 * An MMIO write exit reports its instruction committed, as KVM's x86_emulate_instruction
 * writes back an emulated instruction whose MMIO access is a write (only reads skip the
 * writeback): RIP past it, RSP moved by a PUSH, the ALU flags of an ADD [mmio], RSI/RDI/RCX
 * moved by the REP MOVS/STOS iteration whose store exited. A store that is the
 * instruction's last action (PEND_MMIO_WRITE) just retires; any other instruction logged
 * with MMIO fragments only runs again on its log (the commit pass) and commits if the log
 * carries it to the end. If it needs more (a second MMIO access, a fault) it stays
 * uncommitted with its log, as before. With a per-instruction feature on (TF, guest
 * debug, breakpoints, interrupt shadow) nothing commits here: re-entry completes the
 * instruction by replay, so its #DB and shadow rules apply.
 */
function commitMmioWrite(): void {
  if (load<u8>(RUN + KVM_RUN_MMIO_IS_WRITE) == 0 || !plainStepping()) return;
  const pf = load<u32>(S + VS_PENDING_FLAGS);
  const n = replayCount();
  if (pf == PEND_MMIO_WRITE && n == 1) {
    store<u32>(S + VS_PENDING_FLAGS, 0);
    retirePending();
    replayClear();
    return;
  }
  if (pf != 0 || n == 0 || !replayMmioOnly()) return;
  setReplayOnly(true);
  replayRewind();
  step();
  setReplayOnly(false);
  // Stopped at a REP iteration's end: that iteration committed, RIP stays at the REP.
  if (status != ST_OK && !iterationDone) { setRip(insnStart); return; } // stopped or faulted: uncommitted, log kept
  // A page-split store: its second MMIO fragment is the next exit, before the guest runs on.
  if (replayKeepQueued()) store<u32>(S + VS_PENDING_FLAGS, PEND_MMIO_WRITE_NEXT);
}

/** Nothing forces the per-instruction path (TF/RF, guest debug, breakpoints, interrupt shadow). */
@inline function plainStepping(): bool {
  return (flagsOther & (RFLAGS_TF | RFLAGS_RF)) == 0 && !execBpArmed && !dataBpArmed && !ssDebug &&
    load<u8>(S + VS_INTERRUPT_SHADOW) == 0;
}

/**
 * Complete the exit the last run() returned with (data from kvm_run / the PIO page).
 * True when that retired an RDMSR / WRMSR / hypercall here, outside step(): its end of
 * instruction (instructionEnd) is then due.
 */
function completePending(pf: u32): bool {
  if (pf == 0) return false;
  store<u32>(S + VS_PENDING_FLAGS, 0);
  if ((pf & (PEND_PIO_OUT | PEND_MMIO_WRITE)) != 0) {
    // The data went out with the exit: retire the instruction by moving RIP (KVM's
    // complete_fast_pio_out), unless userspace moved RIP or a per-instruction
    // feature needs the instruction replayed through step() (its fragment is logged).
    if (rip() == load<u64>(S + VS_PENDING_INSN_RIP) && plainStepping()) {
      retirePending();
      replayClear();
    }
    return false;
  }
  if ((pf & PEND_MMIO_READ) != 0) replayCompleteLast(load<u64>(RUN + KVM_RUN_MMIO_DATA));
  if ((pf & PEND_PIO_IN) != 0) replayCompleteLast(<u64>load<u32>(RUN + KVM_PIO_PAGE_OFFSET * PAGE_SIZE));
  if ((pf & (PEND_RDMSR | PEND_WRMSR)) != 0) {
    if (load<u8>(RUN + KVM_RUN_MSR_ERROR) != 0) { gp0(); return false; }
    if ((pf & PEND_RDMSR) != 0) rdmsrDataIn();
    retirePending();
    return true;
  }
  if ((pf & PEND_HYPERCALL) != 0) {
    const r = load<u64>(RUN + KVM_RUN_HYPERCALL_RET);
    setReg64(RAX, mode == MODE_LONG ? r : r & 0xffffffff);
    retirePending();
    return true;
  }
  return false;
}

/** An RDMSR answered by user space: kvm_run.msr.data into EDX:EAX. */
@inline function rdmsrDataIn(): void {
  const v = load<u64>(RUN + KVM_RUN_MSR_DATA);
  setReg64(RAX, v & 0xffffffff);
  setReg64(RDX, v >> 32);
}

/** The instruction that exited completes now: RIP moves past it and it counts as retired (like an IN or OUT). */
function retirePending(): void {
  setRip(load<u64>(S + VS_PENDING_RIP));
  store<u64>(S + VS_INSTRUCTIONS, load<u64>(S + VS_INSTRUCTIONS) + 1);
}

/** Deliver the fault/trap recorded by exceptions.ts. Returns false when that ended in an exit. */
function deliverPending(): bool {
  replayClear();
  const ret = excIsTrap ? rip() : insnStart;
  if (!excIsTrap) setRip(insnStart);
  deliverEvent(excVector, excHasError, excError, ret, false);
  return status != ST_EXIT;
}

export function run(runBase: i32, budget: i32): i32 {
  // Re-entry of the vCPU this instance ran last, with no TS write since (VS_DIRTY = 0):
  // RUN/S, the mode, TLB, fetch window, debug state and the lazy flags (finish() stored
  // them as VS_RFLAGS) are all still current, so nothing is reloaded.
  const dirty = load<u32>(runBase + VCPU_STATE_OFFSET + VS_DIRTY);
  // ... and if its last exit came from the fast lane, RIP is where that exit left it and
  // plainStepping() still holds (see plainExit).
  let clean = plainExit && runBase == lastRun && dirty == 0;
  plainExit = false;
  if (runBase != lastRun || dirty != 0) {
    if (runBase == lastRun && dirty == DIRTY_REGS_ONLY) enterRegs();
    else enter(runBase);
  }
  const gen = load<u32>(VM_CONTROL_BASE + VMC_MEMSLOT_GEN);
  if (gen != tlbGenCache) {
    tlbFlush();
    store<u32>(S + VS_TLB_GEN, gen);
    tlbGenCache = gen;
  }
  setStatus(ST_OK);
  // KVM_CAP_SYNC_REGS (kvm/sync_regs.ts): registers from kvm_run first, as KVM's sync_regs.
  const sync = syncRegsEntry();
  if (sync != 0) {
    if (sync < 0) return RUN_EINVAL;
    enterRegs(); // the registers it loaded: RFLAGS and the mode
    clean = false;
  }
  // Everything rare at entry behind one test (pending completions, events, immediate_exit).
  const pf = load<u32>(S + VS_PENDING_FLAGS);
  const replays = load<u32>(S + VS_REPLAY_COUNT);
  const immediate = <u32>load<u8>(RUN + KVM_RUN_IMMEDIATE_EXIT);
  if ((pf | replays | immediate) != 0 || mode == MODE_V86 || eventsPending) {
    if (completeFast(pf, replays, immediate, clean) || completeMsrFast(pf, replays, immediate, clean)) {
      return resumeFast(budget);
    }
    const r = entrySlow(pf);
    if (r >= 0) return r;
    return runLoop(budget, false);
  }
  return clean || plainStepping() ? resumeFast(budget) : runLoop(budget, false);
}

/**
 * The last exit came straight out of the fast lane (resumeFast's stepFast): fastRun ran
 * under plainStepping() and none of the instructions it runs changes what that reads (TF,
 * RF, breakpoints, guest single-step, the interrupt shadow), nor RIP after the exit. Until
 * TS writes the vCPU's state (VS_DIRTY) or kvm_run's sync regs, or another vCPU runs here,
 * the next entry needs neither check again. Cleared at every entry.
 */
let plainExit: bool = false;

/**
 * VS_DIRTY after nothing but KVM_SET_REGS: bit 1 alone (bit 0, the full refresh, is what
 * every other state write sets; src/vcpu.ts).
 */
const DIRTY_REGS_ONLY: u32 = 2;

/**
 * Entry after KVM_SET_REGS only (GPRs, RIP, RFLAGS): the TLB, fetch window (it is keyed by
 * IP), debug state and CPUID-derived values stay; RFLAGS is reloaded and the mode
 * recomputed (RFLAGS.VM).
 */
function enterRegs(): void {
  store<u32>(S + VS_DIRTY, 0);
  recomputeMode();
  flagsIn();
}

/** Entry after a TS write (VS_DIRTY) or for another vCPU: select it, recompute the caches, load RFLAGS. */
function enter(runBase: i32): void {
  selectVcpu(runBase);
  lastRun = runBase;
  store<u32>(S + VS_DIRTY, 0);
  refresh();
  flagsIn();
}

/**
 * The common completions on their own: an OUT / MMIO store that exited as the
 * instruction's last action (PEND_PIO_OUT / PEND_MMIO_WRITE) or an IN / a MOV r, [MMIO]
 * waiting for its data (PEND_PIO_IN_RAX / PEND_MMIO_READ_REG), with its one fragment logged, RIP still at it and nothing else
 * due (no immediate_exit, queued event, virtual-8086 mode or per-instruction feature):
 * commit it (IN: the data into RAX) and retire it as completePending() does.
 * False: take entrySlow().
 */
@inline function completeFast(pf: u32, replays: u32, immediate: u32, clean: bool): bool {
  const inRax = pf == (PEND_PIO_IN | PEND_PIO_IN_RAX);
  const inReg = pf == (PEND_MMIO_READ | PEND_MMIO_READ_REG);
  if ((pf != PEND_PIO_OUT && pf != PEND_MMIO_WRITE && !inRax && !inReg) || replays != 1 || immediate != 0 ||
    mode == MODE_V86 || eventsPending) return false;
  // `clean` (run()): RIP and plainStepping() are as the fast lane's exit left them.
  if (!clean && (rip() != load<u64>(S + VS_PENDING_INSN_RIP) || !plainStepping())) return false;
  store<u32>(S + VS_PENDING_FLAGS, 0);
  // IN (KVM's complete_fast_pio_in): the data userspace left in the PIO page, the IN's size
  // from its replay fragment.
  if (inRax) setInResult(<i32>replayLastLen(), load<u32>(RUN + KVM_PIO_PAGE_OFFSET * PAGE_SIZE));
  // MOV r, [MMIO]: the data userspace left in kvm_run.mmio.data into the register.
  if (inReg) completeLoadReg(load<u64>(RUN + KVM_RUN_MMIO_DATA));
  retirePending();
  replayClear();
  return true;
}

/**
 * A user-space RDMSR / WRMSR exit answered without an error (kvm_run.msr.error 0) with
 * nothing else due (as completeFast): RDMSR's data into EDX:EAX and the instruction
 * retired, as completePending does (KVM's complete_fast_msr_access). False: take entrySlow().
 */
@inline function completeMsrFast(pf: u32, replays: u32, immediate: u32, clean: bool): bool {
  if ((pf != PEND_RDMSR && pf != PEND_WRMSR) || replays != 0 || immediate != 0 || mode == MODE_V86 || eventsPending ||
    load<u8>(RUN + KVM_RUN_MSR_ERROR) != 0 || !(clean || plainStepping())) return false;
  store<u32>(S + VS_PENDING_FLAGS, 0);
  if (pf == PEND_RDMSR) rdmsrDataIn();
  retirePending();
  return true;
}

/**
 * Entry with nothing to replay and nothing per-instruction on (after a fast completion,
 * or with nothing pending): fastRun straight from RIP, the way the next exit usually
 * comes, then runLoop for the rest of the budget.
 */
@inline function resumeFast(budget: i32): i32 {
  if (budget <= 0 || resumeMisses > 0) {
    if (resumeMisses > 0) resumeMisses--;
    return runLoop(budget, true);
  }
  const k = stepFast(budget);
  if (k < 0) return runLoop(budget, true);
  if (status == ST_EXIT) {
    const r = finishExit();
    plainExit = true;
    return r;
  }
  // A fault (#GP from an IO permission or RDMSR check, say): delivered as runLoop would, which
  // then looks again at what is per-instruction (the delivery may have changed it).
  if (status != ST_OK) return deliverPending() ? runLoop(budget - k, false) : finishExit();
  // fastRun stopped at an instruction it does not run (INT3, string IO, ...): the next
  // entries skip this lane for a while (there it only adds a call).
  resumeMisses = RESUME_SKIP;
  return runLoop(budget - k, true);
}

/** Entries left that go to runLoop directly, after the fast lane last stopped short of an exit. */
let resumeMisses: i32 = 0;
const RESUME_SKIP: i32 = 16;

/** The rare part of run() entry; returns an exit reason (finished) or -1 to run the loop. */
function entrySlow(pf: u32): i32 {
  if (pf == PEND_MMIO_WRITE_NEXT) {
    // The second fragment of a split store that committed at its first fragment's exit.
    store<u32>(S + VS_PENDING_FLAGS, 0);
    mmioWriteExit(keptAddr(), <i32>keptLen(), keptData());
    return finish(KVM_EXIT_MMIO);
  }
  if (mode == MODE_V86) { internalErrorEmulation(); return finishExit(); }
  if (completePending(pf)) {
    // KVM completes these with kvm_skip_emulated_instruction: the shadow ends, and a
    // single-step exits (or #DB) right after the instruction, before the guest runs on.
    // (Completion changes neither RFLAGS nor the shadow.)
    const r = instructionEnd(getFlags(), load<u8>(S + VS_INTERRUPT_SHADOW) != 0, 0);
    if (r >= 0) return r;
  }
  replayRewind();
  if (status == ST_FAULT) {
    // e.g. msr.error != 0: #GP at the RDMSR/WRMSR.
    setRip(rip());
    deliverEvent(excVector, excHasError, excError, rip(), false);
    if (status == ST_EXIT) return finishExit();
  }
  if (load<u8>(RUN + KVM_RUN_IMMEDIATE_EXIT) != 0) {
    // Completing an IO/MMIO exit means re-executing its instruction with the data.
    if (replayCount() != 0) {
      step();
      if (status == ST_OK) replayClear();
      else if (status == ST_EXIT) return finishExit();
      else if (!deliverPending()) return finishExit();
    }
    return finish(KVM_EXIT_INTR);
  }
  if (load<u8>(S + VS_TRIPLE_FAULT_PENDING) != 0) {
    store<u8>(S + VS_TRIPLE_FAULT_PENDING, 0);
    eventsPending = load<u8>(S + VS_EXC_PENDING) != 0;
    return finish(KVM_EXIT_SHUTDOWN);
  }
  if (load<u8>(S + VS_EXC_PENDING) != 0) {
    // An exception queued by KVM_SET_VCPU_EVENTS.
    store<u8>(S + VS_EXC_PENDING, 0);
    eventsPending = false;
    setStatus(ST_OK);
    deliverEvent(<i32>load<u8>(S + VS_EXC_NR), load<u8>(S + VS_EXC_HAS_ERROR) != 0, load<u32>(S + VS_EXC_ERROR_CODE), rip(), false);
    if (status == ST_EXIT) return finishExit();
  }
  return -1;
}

/**
 * The end of an instruction on the per-instruction path (runLoop after step(), and
 * entrySlow after a completion retired an RDMSR / WRMSR / hypercall, as KVM's
 * kvm_skip_emulated_instruction ends one): the interrupt shadow ends, RF clears, then
 * the debug traps in order: data breakpoints hit (`hits`), guest debug single-step
 * (KVM_EXIT_DEBUG with DR6.BS), TF (#DB into the guest). `f`: RFLAGS before the
 * instruction; `shadow`: it ran in an interrupt shadow. Returns the exit reason when one
 * of them exits, -1 to go on.
 */
function instructionEnd(f: u64, shadow: bool, hits: u32): i32 {
  if (shadow) store<u8>(S + VS_INTERRUPT_SHADOW, 0);
  if ((f & RFLAGS_RF) != 0) setFlags(getFlags() & ~RFLAGS_RF);
  if (hits != 0) {
    if (hwBpDebug()) {
      debugExit(EXC_DB, linRip(), DR6_FIXED | <u64>hits);
      return finishExit();
    }
    guestDr6Set(<u64>hits);
    deliverEvent(EXC_DB, false, 0, rip(), false);
    if (status == ST_EXIT) return finishExit();
  }
  if (singleStepDebug()) {
    debugExit(EXC_DB, linRip(), DR6_FIXED | DR6_BS);
    return finishExit();
  }
  if ((f & RFLAGS_TF) != 0 && !shadow) {
    guestDr6Set(DR6_BS);
    deliverEvent(EXC_DB, false, 0, rip(), false);
    if (status == ST_EXIT) return finishExit();
  }
  return -1;
}

/**
 * The instruction loop of run(): the fast path (stepMany) or one instruction at a time.
 * `plain`: the caller has just checked that the fast path applies (empty replay log,
 * plainStepping()).
 */
function runLoop(budget: i32, plain: bool): i32 {
  let done = 0;
  while (true) {
    ringTick(); // the per-instruction path: a held coalesced ring is published within a few instructions
    if (done >= budget) return finish(KVM_EXIT_INTR);
    if (plain || (replayCount() == 0 && plainStepping())) {
      plain = false;
      done += stepMany(budget - done);
    } else if (plainStepping()) {
      // Re-execution with logged fragments (an MMIO read completing by replay): one
      // step(), which clears the log and counts the instruction; nothing per-instruction to check.
      step();
      if (status == ST_OK) { done++; continue; }
    } else {
      const f = getFlags();
      if (execBpArmed && (f & RFLAGS_RF) == 0) {
        const hits = execBpMatch(linRip());
        if (hits != 0) {
          if (hwBpDebug()) {
            debugExit(EXC_DB, linRip(), DR6_FIXED | <u64>hits);
            return finishExit();
          }
          guestDr6Set(<u64>hits);
          setStatus(ST_OK);
          // A fault-class #DB that pushes the current RF (0): the handler sets RF in the
          // frame to get past the breakpoint (SDM vol. 3 §17.3.1.1).
          deliverEvent(EXC_DB, false, 0, rip(), false);
          if (status == ST_EXIT) return finishExit();
          continue;
        }
      }
      const shadow = load<u8>(S + VS_INTERRUPT_SHADOW) != 0;
      clearDataHits();
      step();
      if (status == ST_OK) {
        done++;
        replayClear();
        const r = instructionEnd(f, shadow, dataBpHits);
        if (r >= 0) return r;
        continue;
      }
    }
    if (status == ST_OK) continue;
    // Guest debug single-step also reports an instruction that exited after committing (HLT).
    if (status == ST_EXIT) return finishExit();
    if (!deliverPending()) return finishExit();
  }
}
