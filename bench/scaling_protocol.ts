/**
 * The messages and shared control words between bench/scaling.ts (main
 * thread) and bench/scaling_worker.ts (one per vCPU).
 *
 * @module
 */
import type { VcpuHandle } from "../src/vcpu_thread.ts";

/** Indices into the group's control words (an Int32Array on a SharedArrayBuffer). */
export const GO = 0;
export const STOP = 1;
/** Control words per group. */
export const CONTROL_WORDS = 2;
/** Exits run between two looks at the stop word. */
export const CHUNK = 1024;
/** Untimed exits after attaching, before `ready`. */
export const PRIMING_EXITS = 50_000;
/** Chunk end times a Worker records per round (later chunks still run, unrecorded). */
export const TIMELINE_CAP = 1 << 16;
/** Guest instructions per exit in the steady state: `out dx, al` and `jmp top`. */
export const INSNS_PER_EXIT = 2;

export type ToWorker = {
  readonly kind: "attach";
  readonly index: number;
  readonly handle: VcpuHandle;
  readonly port: number;
  readonly byte: number;
  readonly control: SharedArrayBuffer;
  /** TIMELINE_CAP + 1 f64: the round's start, then each chunk's end (ms, `performance.timeOrigin + now()`). */
  readonly timeline: SharedArrayBuffer;
};

export type FromWorker =
  | { readonly kind: "ready"; readonly index: number }
  | {
    readonly kind: "round";
    readonly index: number;
    readonly gen: number;
    readonly exits: number;
    readonly ms: number;
    /** `vcpu.instructions` after the round (the main thread compares it with the shared state block). */
    readonly instructionsAfter: number;
    /** The Worker thread's time on a CPU during the round (/proc/thread-self/schedstat), null where unreadable. */
    readonly cpuMs: number | null;
    /** Its time runnable but waiting for a CPU (other threads, other processes). */
    readonly waitMs: number | null;
    /** Chunks recorded in the timeline this round (at most TIMELINE_CAP). */
    readonly chunks: number;
  }
  | { readonly kind: "error"; readonly index: number; readonly message: string };
