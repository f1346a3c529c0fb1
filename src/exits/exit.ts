/**
 * The decoded exit: one discriminated union over every family, keyed by
 * `reason`. Produced only by `decodeExit()` (decode.ts).
 *
 * @module
 */
import type { DebugExit } from "./debug.ts";
import type { FailEntryExit } from "./fail_entry.ts";
import type { HltExit } from "./hlt.ts";
import type { HypercallExit } from "./hypercall.ts";
import type { InternalErrorExit } from "./internal_error.ts";
import type { IntrExit } from "./intr.ts";
import type { IoExit } from "./io.ts";
import type { MemoryFaultExit } from "./memory_fault.ts";
import type { MmioExit } from "./mmio.ts";
import type { MsrExit } from "./msr.ts";
import type { ShutdownExit } from "./shutdown.ts";
import type { SystemEventExit } from "./system_event.ts";
import type { UnknownExit } from "./unknown.ts";

export type {
  DebugExit,
  FailEntryExit,
  HltExit,
  HypercallExit,
  InternalErrorExit,
  IntrExit,
  IoExit,
  MemoryFaultExit,
  MmioExit,
  MsrExit,
  ShutdownExit,
  SystemEventExit,
  UnknownExit,
};

/** One KVM_RUN exit, in kvm.h exit-number order. */
export type VcpuExit =
  | IoExit
  | HypercallExit
  | DebugExit
  | HltExit
  | MmioExit
  | ShutdownExit
  | FailEntryExit
  | IntrExit
  | InternalErrorExit
  | SystemEventExit
  | MsrExit
  | MemoryFaultExit
  | UnknownExit;

/** Every `reason` string. */
export type ExitReason = VcpuExit["reason"];

/** The exit type for one reason. */
/** The exit variant(s) for `reason` (MsrExit covers both x86_rdmsr and x86_wrmsr). */
export type ExitOf<R extends ExitReason> = VcpuExit extends infer E
  ? E extends { reason: infer X } ? R extends X ? E : never : never
  : never;

/** Compile-time exhaustiveness check for `switch (exit.reason)`. */
export function unreachable(x: never, what = "value"): never {
  throw new TypeError(
    `unhandled ${what}: ${JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))}`,
  );
}
