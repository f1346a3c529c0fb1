/**
 * Exit dispatch, two levels (firecracker `handle_kvm_exit` →
 * `run_arch_emulation`; crosvm `handle_vm_exit_arch`):
 *
 * 1. a user handler registered for the exit's reason, if it returns an outcome;
 * 2. feature/arch hooks (future SEV-ES/SNP/TIO, arm64), in order, for the
 *    arch and feature exits and for `unknown` — the first that returns an
 *    outcome wins;
 * 3. the family's default handling (generic exits here; x86's io, MSR,
 *    hypercall and debug defaults are the built-in arch layer).
 *
 * Pure over (exit, context): tests feed it fabricated exits.
 *
 * @module
 */
import type { RangeBus } from "../devices/bus.ts";
import type { ExitOf, ExitReason, VcpuExit } from "./exit.ts";
import { handleDebug } from "./debug.ts";
import { handleFailEntry } from "./fail_entry.ts";
import { handleHlt } from "./hlt.ts";
import { handleHypercall } from "./hypercall.ts";
import { handleInternalError } from "./internal_error.ts";
import { handleIntr } from "./intr.ts";
import { handleIo } from "./io.ts";
import { handleMemoryFault } from "./memory_fault.ts";
import { handleMmio } from "./mmio.ts";
import { handleMsr } from "./msr.ts";
import type { ExitOutcome } from "./outcome.ts";
import { handleShutdown } from "./shutdown.ts";
import { handleSystemEvent } from "./system_event.ts";
import { handleUnknown } from "./unknown.ts";

/** What handlers may use: the buses and the vCPU id. */
export interface ExitContext {
  readonly pio: RangeBus;
  readonly mmio: RangeBus;
  readonly vcpuId: number;
}

/** A handler for one reason; `undefined` passes the exit on to the next level. */
export type ExitHandler<R extends ExitReason> = (exit: ExitOf<R>, ctx: ExitContext) => ExitOutcome | undefined;

/** User handlers by reason. */
export type ExitHandlers = { readonly [R in ExitReason]?: ExitHandler<R> };

/** An arch/feature hook: sees arch and feature exits (and `unknown`) before the defaults. */
export type ExitHook = (exit: VcpuExit, ctx: ExitContext) => ExitOutcome | undefined;

export interface DispatchOptions {
  readonly handlers?: ExitHandlers;
  readonly hooks?: readonly ExitHook[];
}

function userHandler(exit: VcpuExit, ctx: ExitContext, handlers: ExitHandlers | undefined): ExitOutcome | undefined {
  const h = handlers?.[exit.reason] as ((e: VcpuExit, c: ExitContext) => ExitOutcome | undefined) | undefined;
  return h?.(exit, ctx);
}

function runHooks(exit: VcpuExit, ctx: ExitContext, hooks: readonly ExitHook[] | undefined): ExitOutcome | undefined {
  if (!hooks) return undefined;
  for (const hook of hooks) {
    const r = hook(exit, ctx);
    if (r) return r;
  }
  return undefined;
}

/** Exits every arch handles the same way (firecracker's `handle_kvm_exit`). */
export type GenericReason = "mmio" | "hlt" | "shutdown" | "fail_entry" | "intr" | "internal_error" | "system_event";
/** Arch- or feature-specific exits (firecracker's `run_arch_emulation`), plus `unknown` for future feature exits. */
export type ArchReason = Exclude<ExitReason, GenericReason>;

/** The x86 arch layer's defaults (KVM_EXIT_IO, MSR, hypercall, debug, memory fault, unknown). */
function archDefault(exit: ExitOf<ArchReason>, ctx: ExitContext): ExitOutcome {
  switch (exit.reason) {
    case "io":
      return handleIo(exit, ctx.pio, ctx.vcpuId);
    case "x86_rdmsr":
    case "x86_wrmsr":
      return handleMsr(exit);
    case "hypercall":
      return handleHypercall(exit);
    case "debug":
      return handleDebug(exit);
    case "memory_fault":
      return handleMemoryFault(exit);
    case "unknown":
      return handleUnknown(exit);
    default: {
      const never: never = exit;
      throw new TypeError(`archDefault: unhandled ${String((never as VcpuExit).reason)}`);
    }
  }
}

/** Generic exits, handled the same on every arch. */
function genericDefault(exit: ExitOf<GenericReason>, ctx: ExitContext): ExitOutcome {
  switch (exit.reason) {
    case "mmio":
      return handleMmio(exit, ctx.mmio, ctx.vcpuId);
    case "hlt":
      return handleHlt(exit);
    case "shutdown":
      return handleShutdown(exit);
    case "fail_entry":
      return handleFailEntry(exit);
    case "intr":
      return handleIntr(exit);
    case "internal_error":
      return handleInternalError(exit);
    case "system_event":
      return handleSystemEvent(exit);
    default: {
      const never: never = exit;
      throw new TypeError(`genericDefault: unhandled ${String((never as VcpuExit).reason)}`);
    }
  }
}

/** Whether an exit is generic (core-handled) rather than arch/feature-specific. */
export function isGenericExit(exit: VcpuExit): exit is ExitOf<GenericReason> {
  switch (exit.reason) {
    case "mmio":
    case "hlt":
    case "shutdown":
    case "fail_entry":
    case "intr":
    case "internal_error":
    case "system_event":
      return true;
    case "io":
    case "x86_rdmsr":
    case "x86_wrmsr":
    case "hypercall":
    case "debug":
    case "memory_fault":
    case "unknown":
      return false;
    default: {
      const never: never = exit;
      throw new TypeError(`isGenericExit: unhandled ${String((never as VcpuExit).reason)}`);
    }
  }
}

/** Handle one exit: user handler, then hooks (arch/feature exits only), then the default. */
export function dispatchExit(exit: VcpuExit, ctx: ExitContext, opts: DispatchOptions = {}): ExitOutcome {
  const user = userHandler(exit, ctx, opts.handlers);
  if (user) return user;
  if (isGenericExit(exit)) return genericDefault(exit, ctx);
  return runHooks(exit, ctx, opts.hooks) ?? archDefault(exit, ctx);
}
