/**
 * Peer "kvm": the same guest loops as the kvmsim exit paths (bench/paths.ts:
 * same 64-bit code, same long-mode setup, same runUntil / switch loops and
 * handlers), run on the host's /dev/kvm through the KVM backend.
 *
 * Not measured: raw/dec-jnz. On this host /dev/kvm is kvm_pvm, which runs
 * CPL0 guest code through KVM's instruction emulator (~1.4 µs per
 * instruction, /work/shared/spec/perf_anchors.md §0), so a CPL0 raw rate is
 * an emulator figure, not a hardware one; the row would mislead.
 *
 * Checks after every run: handler calls = exits, byte sum = exits × byte
 * (KVM does not count retired instructions, so that check is the kvmsim
 * runner's only).
 *
 * @module
 */
import { exitReasonName, KVM_CONSTANTS as K } from "../../src/abi/constants.ts";
import { assemble } from "../../src/asm/x86.ts";
import type { BackendVcpu, BackendVm } from "../../src/backends/front.ts";
import { kvmUnavailableReason } from "../../src/backends/kvm/system.ts";
import type { BusAccess, BusDevice } from "../../src/devices/bus.ts";
import { ioIsOut, ioPort, ioSingleData, mmioData, mmioIsWrite, mmioPhysAddr } from "../../src/exits/decode.ts";
import type { ExitHandlers } from "../../src/exits/dispatch.ts";
import { RESUME } from "../../src/exits/outcome.ts";
import { createVmWithOneVcpu } from "../../src/x86/setup.ts";
import { type BenchPath, LOAD, type Sink } from "../paths.ts";
import { peerRow, type ResultRow } from "../report.ts";
import { ratePerSecond, summarize } from "../stats.ts";
import { type Peer, PeerCheckError, type PeerOutcome, type PeerSettings } from "./peer.ts";

/** Why raw/dec-jnz has no kvm row. */
export const KVM_RAW_SKIP =
  "raw/dec-jnz not run on kvm: CPL0 guest code is emulated by kvm_pvm on this host (~0.7 M instr/s), not comparable";

/** Every KVM_RUN gets this watchdog, so a guest that runs away cannot hang the bench. */
const RUN_TIMEOUT_MS = 5_000;

function device(fn: (data: Uint8Array, sink: Sink) => void, sink: Sink): BusDevice {
  return {
    name: "bench-kvm",
    read(_o: number, data: Uint8Array, _a: BusAccess): void {
      data.fill(0xff);
    },
    write(_o: number, data: Uint8Array, _a: BusAccess): void {
      fn(data, sink);
    },
  };
}

function fail(p: BenchPath, vcpu: BackendVcpu, reason: number): never {
  throw new PeerCheckError(
    "kvm",
    p.path,
    `unexpected exit ${exitReasonName(reason)} (${reason}) at rip 0x${vcpu.getRegs().rip.toString(16)}`,
  );
}

/** `step(n)` does n exits of path `p` on the KVM vCPU, through the path's loop. */
function stepper(p: BenchPath, vm: BackendVm, vcpu: BackendVcpu, sink: Sink): (n: number) => void {
  const h = p.handler;
  const run = vcpu.kvmRun;
  switch (p.loop) {
    case "runUntil": {
      let handlers: ExitHandlers | undefined;
      switch (h.kind) {
        case "pio-out":
          vm.pio.insert(device(h.fn, sink), h.port, 1);
          break;
        case "mmio-write":
          vm.mmio.insert(device(h.fn, sink), h.addr, 8);
          break;
        case "hlt": {
          const fn = h.fn;
          handlers = { hlt: () => (fn(sink), RESUME) };
          break;
        }
        case "pio-in":
        case "pio-outs":
        case "mmio-read":
        case "in-kernel":
        case "msr-user":
        case "debug-sw-bp":
        case "none":
          throw new PeerCheckError(
            "kvm",
            p.path,
            `loop runUntil on kvm runs handlers pio-out, mmio-write and hlt, got "${h.kind}"`,
          );
        default: {
          const never: never = h;
          throw new PeerCheckError("kvm", p.path, `unknown handler ${JSON.stringify(never)}`);
        }
      }
      const reason = h.kind === "pio-out" ? "io" : h.kind === "mmio-write" ? "mmio" : "hlt";
      return (n) => {
        const r = handlers ? vm.runUntil(vcpu, { maxExits: n, handlers }) : vm.runUntil(vcpu, { maxExits: n });
        if (r.stop.kind !== "max-exits" || r.exits !== n || r.counts[reason] !== n) {
          throw new PeerCheckError(
            "kvm",
            p.path,
            `runUntil stopped with ${JSON.stringify(r.stop)} after ${r.exits} exits (${
              JSON.stringify(r.counts)
            }): expected ${n} ${reason} exits`,
          );
        }
      };
    }
    case "switch":
      switch (h.kind) {
        case "pio-out": {
          const { port, fn } = h;
          return (n) => {
            for (let i = 0; i < n; i++) {
              const reason = vcpu.runRaw();
              if (reason !== K.KVM_EXIT_IO) fail(p, vcpu, reason);
              const data = ioSingleData(run);
              if (data === undefined || !ioIsOut(run) || ioPort(run) !== port) fail(p, vcpu, reason);
              fn(data, sink);
            }
          };
        }
        case "mmio-write": {
          const { addr, fn } = h;
          return (n) => {
            for (let i = 0; i < n; i++) {
              const reason = vcpu.runRaw();
              if (reason !== K.KVM_EXIT_MMIO) fail(p, vcpu, reason);
              const data = mmioData(run);
              if (data === undefined || !mmioIsWrite(run) || mmioPhysAddr(run) !== addr) fail(p, vcpu, reason);
              fn(data, sink);
            }
          };
        }
        case "hlt": {
          const fn = h.fn;
          return (n) => {
            for (let i = 0; i < n; i++) {
              const reason = vcpu.runRaw();
              if (reason !== K.KVM_EXIT_HLT) fail(p, vcpu, reason);
              fn(sink);
            }
          };
        }
        case "pio-in":
        case "pio-outs":
        case "mmio-read":
        case "in-kernel":
        case "msr-user":
        case "debug-sw-bp":
        case "none":
          throw new PeerCheckError(
            "kvm",
            p.path,
            `loop switch on kvm runs handlers pio-out, mmio-write and hlt, got "${h.kind}"`,
          );
        default: {
          const never: never = h;
          throw new PeerCheckError("kvm", p.path, `unknown handler ${JSON.stringify(never)}`);
        }
      }
      // Every handler case above returns or throws.
      throw new PeerCheckError("kvm", p.path, `unreachable: handler ${h.kind} fell out of the switch loop`);
    case "budget":
      throw new PeerCheckError("kvm", p.path, `loop budget is not run on kvm (${KVM_RAW_SKIP})`);
    default: {
      const never: never = p.loop;
      throw new PeerCheckError("kvm", p.path, `unknown loop ${String(never)}`);
    }
  }
}

/** One timed run: chunks of exits (starting at 64, doubled while a chunk takes < 5 ms) until `ms` is up; returns exits/s. */
function timedRun(p: BenchPath, step: (n: number) => void, sink: Sink, ms: number): number {
  const calls0 = sink.calls, sum0 = sink.sum;
  let chunk = 64, exits = 0;
  const t0 = performance.now();
  let t = t0;
  for (;;) {
    const c0 = t;
    step(chunk);
    exits += chunk;
    t = performance.now();
    if (t - t0 >= ms) break;
    if (t - c0 < 5) chunk *= 2;
  }
  const calls = sink.calls - calls0, sum = (sink.sum - sum0) | 0;
  if (calls !== exits) throw new PeerCheckError("kvm", p.path, `handler called ${calls} times for ${exits} exits`);
  const h = p.handler;
  if ((h.kind === "pio-out" || h.kind === "mmio-write") && sum !== (Math.imul(calls, h.expectByte) | 0)) {
    throw new PeerCheckError(
      "kvm",
      p.path,
      `handler saw byte sum ${sum >>> 0} over ${calls} exits: expected ${calls} × 0x${h.expectByte.toString(16)}`,
    );
  }
  return ratePerSecond(exits, t - t0);
}

/** Measure one exit path on KVM. */
export function measureKvmPath(p: BenchPath, settings: Omit<PeerSettings, "paths">): ResultRow {
  if (p.setup !== undefined) {
    throw new PeerCheckError(
      "kvm",
      p.path,
      "the path has a setup hook, which takes a simulator Vm: not runnable on kvm",
    );
  }
  const { bytes } = assemble(p.asm, { bits: 64, origin: LOAD });
  const { vm, vcpu } = createVmWithOneVcpu({ code: bytes, load: LOAD, backend: "kvm", runTimeoutMs: RUN_TIMEOUT_MS });
  try {
    const sink: Sink = { calls: 0, sum: 0 };
    const step = stepper(p, vm, vcpu, sink);
    for (let i = 0; i < settings.warmup; i++) timedRun(p, step, sink, settings.durationMs);
    const rates: number[] = [];
    for (let i = 0; i < settings.runs; i++) rates.push(timedRun(p, step, sink, settings.durationMs));
    return peerRow({
      path: p.path,
      engine: "kvm",
      unit: "exits",
      loop: p.loop,
      description: `${p.description} — on /dev/kvm (KVM backend), 64-bit CPL0`,
      compared_to: p.path,
      note: "/dev/kvm is kvm_pvm here: CPL0 loop instructions are emulated",
    }, summarize(rates));
  } finally {
    vm.close();
  }
}

/** The handler kinds the kvm peer has loops for; other paths are skipped with a log line. */
const KVM_HANDLERS: ReadonlySet<string> = new Set(["pio-out", "mmio-write", "hlt"]);

export const kvmPeer: Peer = {
  name: "kvm",
  run(settings: PeerSettings): Promise<PeerOutcome> {
    const why = kvmUnavailableReason();
    if (why !== undefined) return Promise.resolve({ kind: "skipped", reason: `/dev/kvm unusable: ${why}` });
    const rows: ResultRow[] = [];
    for (const p of settings.paths) {
      if (p.unit !== "exits" && p.handler.kind === "none") {
        settings.log?.(`  kvm: ${KVM_RAW_SKIP}`);
        continue;
      }
      if (!KVM_HANDLERS.has(p.handler.kind)) {
        settings.log?.(`  kvm: ${p.path} not run on kvm (handler "${p.handler.kind}" has no kvm loop yet)`);
        continue;
      }
      const row = measureKvmPath(p, settings);
      settings.log?.(
        `  ${p.path} (kvm): ${Math.round((row as { exits_per_s: number }).exits_per_s)} exits/s over ${row.runs} runs`,
      );
      rows.push(row);
    }
    return Promise.resolve({ kind: "rows", rows });
  },
};
