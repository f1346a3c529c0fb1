/**
 * The higher-level run loop (`vm.runUntil`): KVM_RUN, dispatch, repeat, until
 * a handler stops or a limit is reached. An explicit state machine in the
 * firecracker sense:
 *
 * ```
 *  running ──exit──► dispatch ──resume──► running
 *                       ├──stop / internal_error──► finished
 *                       └──pause──► (returned; call runUntil again)
 * ```
 *
 * Fast path: when no user handler, hook, recorder or observer wants IO/MMIO,
 * single-element IO and MMIO exits go straight to the buses through
 * decode.ts's allocation-free accessors — no exit object is built — and a
 * user HLT handler is called from the same loop.
 *
 * Coalesced MMIO/PIO: with `coalesced` (the VM's ring page), the writes the
 * guest made without exiting are drained into the buses, in guest order,
 * before each exit is handled, when the budget ends and when the run ends.
 * A non-resume outcome from one of them stops the run like an exit's would;
 * the exit that was about to be handled then stays pending and the next
 * runUntil on the vCPU handles it first (unless the vCPU ran in between).
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../abi/constants.ts";
import type { RangeBus } from "../devices/bus.ts";
import { MmioBus, PioBus } from "../devices/bus.ts";
import type { RunnableVcpu } from "../backends/types.ts";
import type { CoreExports } from "../wasm.ts";
import {
  decodeExit,
  exitReasonOf,
  ioIsOut,
  ioPort,
  ioSingleData,
  type KvmRun,
  mmioData,
  mmioIsWrite,
  mmioPhysAddr,
  type RecordedExit,
  snapshotExit,
} from "./decode.ts";
import { dispatchExit, type ExitContext, type ExitHandler, type ExitHandlers, type ExitHook } from "./dispatch.ts";
import { handleHlt, type HltExit } from "./hlt.ts";
import type { ExitReason, VcpuExit } from "./exit.ts";
import type { ExitOutcome, StopWhy } from "./outcome.ts";
import { type CoalescedRing, coalescedRing, type CoalescedSink } from "./coalesced.ts";
import { runRefused } from "./sync_regs.ts";

/** Why runUntil returned. */
export type StopReason =
  | StopWhy
  | {
    readonly kind: "internal_error";
    readonly message: string;
    readonly suberror?: number;
    readonly data?: readonly bigint[];
  }
  | { readonly kind: "pause" }
  | { readonly kind: "max-exits"; readonly limit: number }
  | { readonly kind: "max-insns"; readonly limit: number };

export interface RunUntilOptions {
  /** Port-IO bus (vm.runUntil passes vm.pio). */
  pio?: RangeBus;
  /** MMIO bus (vm.runUntil passes vm.mmio). */
  mmio?: RangeBus;
  /** Per-reason handlers, tried first; returning undefined falls through to the defaults. */
  handlers?: ExitHandlers;
  /** Arch/feature hooks (SEV, TIO, arm64), tried before the defaults for arch/feature exits. */
  hooks?: readonly ExitHook[];
  /** Stop after this many exits (KVM_EXIT_INTR from the budget does not count). Default: unlimited. */
  maxExits?: number;
  /** Stop once the vCPU has retired this many instructions in this call. Default: unlimited. */
  maxInstructions?: number;
  /** Keep a copy of every exit (after handling, so IN/MMIO-read data shows the completion). */
  record?: boolean;
  /** Called with each decoded exit after it was handled (before the next run). */
  onExit?: (exit: VcpuExit, outcome: ExitOutcome) => void;
  /**
   * The VM's coalesced MMIO/PIO ring page (vm.runUntil passes it while a zone
   * is registered or writes are pending). Its writes go to `pio` / `mmio`.
   */
  coalesced?: Uint8Array;
}

/** Exit counts by reason (firecracker's per-exit metrics). */
export type ExitCounts = Record<ExitReason, number>;

export interface RunResult {
  readonly stop: StopReason;
  /** Exits seen (without budget KVM_EXIT_INTR). */
  readonly exits: number;
  /** Instructions retired during this call. */
  readonly instructions: number;
  readonly counts: ExitCounts;
  /** Coalesced writes drained into the buses during this call (not exits: not in `exits` or `counts`). */
  readonly coalesced: number;
  /** Recorded exits when `record` was set. */
  readonly recorded?: readonly RecordedExit[];
}

function zeroCounts(): ExitCounts {
  return {
    io: 0,
    hypercall: 0,
    debug: 0,
    hlt: 0,
    mmio: 0,
    shutdown: 0,
    fail_entry: 0,
    intr: 0,
    internal_error: 0,
    system_event: 0,
    x86_rdmsr: 0,
    x86_wrmsr: 0,
    memory_fault: 0,
    unknown: 0,
  };
}

type StoppingOutcome = Exclude<ExitOutcome, { kind: "resume" }>;

function toStop(o: StoppingOutcome): StopReason {
  switch (o.kind) {
    case "stop":
      return o.why;
    case "pause":
      return { kind: "pause" };
    case "internal_error": {
      const base = { kind: "internal_error" as const, message: o.message };
      if (o.suberror === undefined) return base;
      return o.data === undefined ? { ...base, suberror: o.suberror } : { ...base, suberror: o.suberror, data: o.data };
    }
    default: {
      const never: never = o;
      throw new TypeError(`toStop: unhandled outcome ${JSON.stringify(never)}`);
    }
  }
}

/** Mutable counters shared by the outer loop and the fast inner loop (one monomorphic shape). */
class LoopState {
  exits = 0;
  io = 0;
  mmio = 0;
  hlt = 0;
  outcome: ExitOutcome | undefined = undefined;
}

const EXIT_IO = K.KVM_EXIT_IO;
const EXIT_MMIO = K.KVM_EXIT_MMIO;
const EXIT_INTR = K.KVM_EXIT_INTR;
const EXIT_HLT = K.KVM_EXIT_HLT;
const FAST_SLOW = 0; // the run page holds an exit (or INTR) for the slow path
const FAST_MAX_EXITS = 1; // maxExits reached
const FAST_OUTCOME = 2; // a device returned a non-resume outcome (in st.outcome)

/**
 * Exits left unhandled because a coalesced write stopped the run before them:
 * run page → its run generation then. runUntil handles the exit first when
 * the generation is unchanged (the vCPU did not run since).
 */
const pendingExits = new WeakMap<KvmRun, number>();

/**
 * The hot loop: KVM_RUN, single-element IO/MMIO straight to the buses
 * through decode.ts's allocation-free accessors, and HLT to a user handler.
 * Kept small so V8 inlines the accessors and bus lookups. Returns a FAST_* code.
 */
function fastLoop(
  st: LoopState,
  core: CoreExports,
  run: KvmRun,
  runBase: number,
  budget: number,
  maxExits: number,
  pio: RangeBus,
  mmio: RangeBus,
  vcpuId: number,
  hlt: ExitHandler<"hlt"> | undefined,
  ctx: ExitContext,
  ring: CoalescedRing | undefined,
): number {
  for (;;) {
    if (st.exits >= maxExits) return FAST_MAX_EXITS;
    run.generation++; // what vcpu.runRaw() does, inlined
    const reason = core.run(runBase, budget);
    if (reason < 0) throw runRefused(run, reason);
    if (reason === EXIT_INTR) return FAST_SLOW;
    st.exits++;
    if (ring !== undefined && ring.pending()) return FAST_SLOW; // drained before the exit is handled
    let r: ExitOutcome | void;
    if (reason === EXIT_IO) {
      const data = ioSingleData(run);
      if (data === undefined) return FAST_SLOW;
      st.io++;
      r = ioIsOut(run) ? pio.write(ioPort(run), data, vcpuId) : pio.read(ioPort(run), data, vcpuId);
    } else if (reason === EXIT_MMIO) {
      const data = mmioData(run);
      if (data === undefined) return FAST_SLOW;
      st.mmio++;
      r = mmioIsWrite(run) ? mmio.write(mmioPhysAddr(run), data, vcpuId) : mmio.read(mmioPhysAddr(run), data, vcpuId);
    } else if (reason === EXIT_HLT && hlt !== undefined) {
      // dispatchExit's order: the user handler, then the default.
      st.hlt++;
      const exit: HltExit = { reason: "hlt", generation: run.generation };
      r = hlt(exit, ctx) ?? handleHlt(exit);
    } else {
      return FAST_SLOW;
    }
    if (r !== undefined && r.kind !== "resume") {
      st.outcome = r;
      return FAST_OUTCOME;
    }
  }
}

/** Run `vcpu` until a handler stops it or a limit is hit. */
export function runUntil(vcpu: RunnableVcpu, opts: RunUntilOptions = {}): RunResult {
  const pio = opts.pio ?? new PioBus();
  const mmio = opts.mmio ?? new MmioBus();
  const ctx: ExitContext = { pio, mmio, vcpuId: vcpu.id };
  const maxExits = opts.maxExits ?? Infinity;
  const maxInsns = opts.maxInstructions ?? Infinity;
  const limitInsns = Number.isFinite(maxInsns);
  const recorded: RecordedExit[] | undefined = opts.record ? [] : undefined;
  const handlers = opts.handlers;
  const observeIntr = !!handlers?.intr || !!recorded || !!opts.onExit;
  const fast = !recorded && !opts.onExit && !(opts.hooks?.length) && !handlers?.io && !handlers?.mmio;
  const run = vcpu.kvmRun;
  const counts = zeroCounts();
  const startInsns = vcpu.instructions;
  const core = vcpu.host.core;
  const runBase = vcpu.runBase;
  vcpu.getMpState(); // throws if the vCPU was removed
  const st = new LoopState();
  const dispatchOpts = { handlers, hooks: opts.hooks };
  const ring = opts.coalesced !== undefined ? coalescedRing(opts.coalesced) : undefined;
  const vcpuId = vcpu.id;
  const toBus: CoalescedSink = (isPio, addr, _len, data) =>
    isPio ? pio.write(addr, data, vcpuId) : mmio.write(addr, data, vcpuId);
  let coalesced = 0;
  /** Drain the ring into the buses; the non-resume outcome that stopped it, else undefined. */
  const drain = (r: CoalescedRing): ExitOutcome | undefined => {
    coalesced += r.drain(toBus);
    return r.outcome;
  };
  // An exit a coalesced write's stop left unhandled in an earlier call (see pendingExits).
  let resumePending = pendingExits.get(run) === run.generation;

  const finish = (s: StopReason, drainRing = true): RunResult => {
    if (drainRing && ring !== undefined && ring.pending()) {
      const o = drain(ring);
      if (o !== undefined && (s.kind === "max-exits" || s.kind === "max-insns")) s = toStop(o as StoppingOutcome);
    }
    for (const b of [pio, mmio]) flushSinks(b);
    counts.io += st.io;
    counts.mmio += st.mmio;
    counts.hlt += st.hlt;
    const base = { stop: s, exits: st.exits, instructions: vcpu.instructions - startInsns, counts, coalesced };
    return recorded ? { ...base, recorded } : base;
  };

  for (;;) {
    let reason: number;
    if (resumePending) {
      if (st.exits >= maxExits) return finish({ kind: "max-exits", limit: maxExits });
      resumePending = false;
      pendingExits.delete(run);
      reason = exitReasonOf(run);
    } else if (fast && !limitInsns) {
      const code = fastLoop(
        st,
        core,
        run,
        runBase,
        vcpu.budget,
        maxExits,
        pio,
        mmio,
        vcpu.id,
        handlers?.hlt,
        ctx,
        ring,
      );
      if (code === FAST_MAX_EXITS) return finish({ kind: "max-exits", limit: maxExits });
      if (code === FAST_OUTCOME) return finish(toStop(st.outcome as Exclude<ExitOutcome, { kind: "resume" }>));
      reason = exitReasonOf(run);
      if (reason !== K.KVM_EXIT_INTR) st.exits--; // counted below, like the general path
    } else {
      if (st.exits >= maxExits) return finish({ kind: "max-exits", limit: maxExits });
      let budget = vcpu.budget;
      if (limitInsns) {
        const left = maxInsns - (vcpu.instructions - startInsns);
        if (left <= 0) return finish({ kind: "max-insns", limit: maxInsns });
        if (left < budget) budget = left;
      }
      run.generation++;
      reason = core.run(runBase, budget);
      if (reason < 0) throw runRefused(run, reason);
    }
    if (ring !== undefined && ring.pending()) {
      const o = drain(ring);
      if (o !== undefined) {
        if (reason !== K.KVM_EXIT_INTR) pendingExits.set(run, run.generation); // handled by the next call
        return finish(toStop(o as StoppingOutcome), false);
      }
    }
    if (reason === K.KVM_EXIT_INTR && !observeIntr) {
      counts.intr++;
      continue; // budget exhausted (or immediate_exit): the limits above decide
    }
    st.exits++;
    if (fast && reason === K.KVM_EXIT_IO) {
      const data = ioSingleData(run);
      if (data !== undefined) {
        st.io++;
        const r = ioIsOut(run) ? pio.write(ioPort(run), data, vcpu.id) : pio.read(ioPort(run), data, vcpu.id);
        if (r === undefined || r.kind === "resume") continue;
        return finish(toStop(r));
      }
    } else if (fast && reason === K.KVM_EXIT_MMIO) {
      const data = mmioData(run);
      if (data !== undefined) {
        st.mmio++;
        const r = mmioIsWrite(run)
          ? mmio.write(mmioPhysAddr(run), data, vcpu.id)
          : mmio.read(mmioPhysAddr(run), data, vcpu.id);
        if (r === undefined || r.kind === "resume") continue;
        return finish(toStop(r));
      }
    }
    const exit = decodeExit(run);
    counts[exit.reason]++;
    const outcome = dispatchExit(exit, ctx, dispatchOpts);
    opts.onExit?.(exit, outcome);
    if (recorded && exit.reason !== "intr") recorded.push(snapshotExit(exit));
    if (exit.reason === "intr") st.exits--; // not a guest exit
    if (outcome.kind === "resume") continue;
    return finish(toStop(outcome));
  }
}

/** Flush output sinks of devices that have one (serial ports). */
function flushSinks(bus: RangeBus): void {
  for (const r of bus.ranges()) {
    const sink = (r.device as { sink?: { flush?: () => void } }).sink;
    sink?.flush?.();
  }
}
