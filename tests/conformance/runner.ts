/**
 * Runs a guest snippet (tests/snippets/types.ts) on either backend through
 * the same public API call, `createVmWithOneVcpu({backend})`, and compares
 * the outcome with the snippet's expectations using the table runner's own
 * `compareSnippet` (registers, defined flags, memory, exit sequence). Both
 * backends are held to the same expected exits.
 *
 * @module
 */
import { assemble, createVmWithOneVcpu, type VcpuExit } from "../../mod.ts";
import type { BackendName } from "../../src/backends/types.ts";
import { releaseWatchdog } from "../../src/backends/kvm/mod.ts";
import {
  type ActualExit,
  bitsOf,
  compareSnippet,
  ENV,
  type Mismatch,
  type SnippetResult,
  summarizeAt,
} from "../snippets/run.ts";
import { type ExitSummary, GPR_NAMES, type RegName, type Snippet } from "../snippets/types.ts";

/** Watchdog for every KVM_RUN (the snippets run in microseconds; the known host hangs are cut off). */
export const KVM_RUN_TIMEOUT_MS = 2000;

/** The exits `s` expects, on either backend (default: one HLT). */
export function expectedExits(s: Snippet): ExitSummary[] {
  return [...(s.exits ?? [{ reason: "hlt" }])];
}

/** Execute `s` on `backend`: assemble, create the VM, load memory and registers, run to HLT/SHUTDOWN/error. */
export function runOn(backend: BackendName, s: Snippet): SnippetResult {
  const code = assemble(s.asm, { bits: bitsOf(s.mode), origin: ENV.load }).bytes;
  const { vm, vcpu } = createVmWithOneVcpu({
    backend,
    code,
    mode: s.mode,
    load: ENV.load,
    memSize: ENV.memSize,
    ...(s.mode === "real" ? {} : { exceptionPort: ENV.exceptionPort }),
    ...(backend === "kvm" ? { runTimeoutMs: KVM_RUN_TIMEOUT_MS } : {}),
  });
  try {
    for (const m of s.memory ?? []) vm.writeGuest(m.gpa, m.bytes);
    if (s.regs) vcpu.setRegs({ ...s.regs });
    const expected = expectedExits(s);
    const exits: ActualExit[] = [];
    let stop = "";
    for (;;) {
      if (exits.length >= ENV.maxExits) {
        stop = `more than ${ENV.maxExits} exits`;
        break;
      }
      let e: VcpuExit;
      try {
        e = vcpu.run(ENV.budget);
      } catch (err) {
        stop = `run threw ${err instanceof Error ? err.message : String(err)}`;
        break;
      }
      const sum = summarizeAt(e, expected[exits.length], () => vcpu.getRegs());
      exits.push(sum);
      if (e.reason === "io" || e.reason === "mmio") {
        const want = expected[exits.length - 1];
        const isRead = e.reason === "io" ? e.direction === "in" : !e.isWrite;
        const reply = want && "reply" in want && want.reason === e.reason && isRead ? want.reply : undefined;
        if (reply) e.data.set(reply.slice(0, e.data.length));
        else if (isRead) e.data.fill(0xff);
        continue;
      }
      if (e.reason === "hlt" || e.reason === "shutdown") break;
      stop = `stopped by ${e.reason}${"detail" in sum && sum.detail ? ` (${sum.detail})` : ""}`;
      break;
    }
    const r = vcpu.getRegs();
    const regs = Object.fromEntries(GPR_NAMES.map((n) => [n, r[n]])) as Record<RegName, bigint>;
    const memory = (s.expect.memory ?? []).map((m) => ({
      gpa: m.gpa,
      bytes: [...vm.readGuest(m.gpa, m.bytes.length)],
    }));
    return { exits, regs, memory, stop };
  } finally {
    (vm as { close?: () => void }).close?.();
    if (backend === "kvm") releaseWatchdog();
  }
}

/** Run `s` on `backend` and list every mismatch against its expectations (an assembler error is one too). */
export function checkOn(backend: BackendName, s: Snippet): Mismatch[] {
  let r: SnippetResult;
  try {
    r = runOn(backend, s);
  } catch (e) {
    return [{ field: "run", expected: "a run", actual: `threw ${e instanceof Error ? e.message : String(e)}` }];
  }
  return compareSnippet(s, r);
}
