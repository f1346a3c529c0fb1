/**
 * One vCPU thread of the scaling benchmark (bench/scaling.ts): attaches to
 * its vCPU of the shared VM (src/vcpu_thread.ts), runs the guest's
 * `out dx, al; jmp` loop with the TypeScript handler in this Worker, and
 * answers each timed round with what it counted, after checking it.
 *
 * Protocol (bench/scaling_protocol.ts):
 * - `attach`: attach, run {@link PRIMING_EXITS} untimed exits (JIT), post `ready`;
 * - then rounds: wait until `control[GO]` changes to a new generation `g`
 *   (`g < 0`: quit), run until `control[STOP] === g`, post `round`.
 * Any failure is posted as `error` (with the check that failed).
 *
 * @module
 */
import { exitReasonName, KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { decodeExit, ioIsOut, ioPort, ioSingleData } from "../src/exits/decode.ts";
import { attachVcpu } from "../src/vcpu_thread.ts";
import type { Vcpu } from "../src/vcpu.ts";
import { countByte, type Sink } from "./paths.ts";
import {
  CHUNK,
  type FromWorker,
  GO,
  INSNS_PER_EXIT,
  PRIMING_EXITS,
  STOP,
  TIMELINE_CAP,
  type ToWorker,
} from "./scaling_protocol.ts";

/** The dedicated-worker global scope, typed without the deno.worker lib (this file is also checked with the window lib). */
const scope = self as unknown as {
  postMessage(m: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  close(): void;
};
const post = (m: FromWorker) => scope.postMessage(m);

/** This thread's [on-CPU ns, runqueue-wait ns] from /proc/thread-self/schedstat, or null. */
function schedstat(): [number, number] | null {
  try {
    const [run, wait] = Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ").map(Number);
    return Number.isFinite(run) && Number.isFinite(wait) ? [run!, wait!] : null;
  } catch {
    return null;
  }
}

class ScalingCheckError extends Error {
  constructor(index: number, detail: string) {
    super(`vcpu ${index}: ${detail}`);
    this.name = "ScalingCheckError";
  }
}

function unexpected(index: number, vcpu: Vcpu, reason: number, port: number): never {
  const exit = decodeExit(vcpu.kvmRun);
  throw new ScalingCheckError(
    index,
    `unexpected exit ${exitReasonName(reason)} (${reason}): ${
      JSON.stringify(exit, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))
    }: expected KVM_EXIT_IO out of one byte to port 0x${port.toString(16)}`,
  );
}

/** `n` exits of the io-out loop: runRaw + switch → the TS handler (bench/paths.ts io-out/switch). */
function runExits(index: number, vcpu: Vcpu, port: number, sink: Sink, n: number): void {
  const run = vcpu.kvmRun;
  for (let i = 0; i < n; i++) {
    const reason = vcpu.runRaw();
    switch (reason) {
      case K.KVM_EXIT_IO: {
        const data = ioSingleData(run);
        if (data === undefined || !ioIsOut(run) || ioPort(run) !== port) unexpected(index, vcpu, reason, port);
        countByte(data, sink);
        break;
      }
      default:
        unexpected(index, vcpu, reason, port);
    }
  }
}

function serve(msg: ToWorker): void {
  const { index, port, byte } = msg;
  const control = new Int32Array(msg.control);
  const ends = new Float64Array(msg.timeline);
  const origin = performance.timeOrigin;
  const { vcpu } = attachVcpu(msg.handle);
  const sink: Sink = { calls: 0, sum: 0 };
  runExits(index, vcpu, port, sink, PRIMING_EXITS);
  // Read the generation before saying ready: the main thread starts the first round only after every `ready`.
  let last = Atomics.load(control, GO);
  post({ kind: "ready", index });
  for (;;) {
    Atomics.wait(control, GO, last);
    const gen = Atomics.load(control, GO);
    if (gen < 0) return;
    last = gen;
    const calls0 = sink.calls, sum0 = sink.sum, insns0 = vcpu.instructions;
    let exits = 0, chunks = 0;
    const s0 = schedstat();
    const t0 = performance.now();
    ends[0] = origin + t0;
    do {
      runExits(index, vcpu, port, sink, CHUNK);
      exits += CHUNK;
      if (chunks < TIMELINE_CAP) ends[++chunks] = origin + performance.now();
    } while (Atomics.load(control, STOP) !== gen);
    const ms = performance.now() - t0;
    const s1 = schedstat();
    const calls = sink.calls - calls0, sum = (sink.sum - sum0) | 0;
    const insns = vcpu.instructions - insns0;
    if (calls !== exits) throw new ScalingCheckError(index, `handler called ${calls} times for ${exits} exits`);
    if (sum !== (Math.imul(calls, byte) | 0)) {
      throw new ScalingCheckError(
        index,
        `handler saw byte sum ${sum >>> 0} over ${calls} exits: expected ${calls} × 0x${byte.toString(16)}`,
      );
    }
    // The round starts and ends right after an exit: the OUT that exited retires on the next run().
    if (Math.abs(insns - INSNS_PER_EXIT * exits) > 2 * INSNS_PER_EXIT) {
      throw new ScalingCheckError(
        index,
        `${insns} instructions retired for ${exits} exits: expected ${INSNS_PER_EXIT * exits} ± ${2 * INSNS_PER_EXIT}`,
      );
    }
    const cpuMs = s0 && s1 ? (s1[0] - s0[0]) / 1e6 : null;
    const waitMs = s0 && s1 ? (s1[1] - s0[1]) / 1e6 : null;
    post({ kind: "round", index, gen, exits, ms, instructionsAfter: vcpu.instructions, cpuMs, waitMs, chunks });
  }
}

scope.onmessage = (e: MessageEvent<ToWorker>) => {
  const index = e.data?.index ?? -1;
  try {
    if (e.data?.kind !== "attach") {
      throw new Error(`unexpected message ${JSON.stringify(e.data)}: expected {kind: "attach"}`);
    }
    serve(e.data);
    scope.close();
  } catch (err) {
    post({ kind: "error", index, message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
};
