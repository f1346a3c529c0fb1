/**
 * Turns a {@link BenchPath} into a VM and a timed loop, and checks after
 * every sample that the guest and the handler really did the work counted
 * (handler calls = exits — or, on a coalesced path, writes delivered — bytes
 * seen = bytes written, retired instructions = units × instructions per
 * unit, and the path's own `check` of the guest's result where it has one).
 *
 * @module
 */
import { exitReasonName, KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { type BusAccess, type BusDevice, fillBytes } from "../src/devices/bus.ts";
import {
  debugException,
  decodeExit,
  ioCount,
  ioIsOut,
  ioPort,
  ioSingleData,
  mmioData,
  mmioIsWrite,
  mmioPhysAddr,
  msrIndex,
  msrReason,
} from "../src/exits/decode.ts";
import type { ExitHandlers } from "../src/exits/dispatch.ts";
import { RESUME } from "../src/exits/outcome.ts";
import { assemble } from "../src/asm/x86.ts";
import type { GuestVcpu, GuestVm } from "../src/backends/types.ts";
import type { Vcpu } from "../src/vcpu.ts";
import type { KvmRegs } from "../src/x86/regs.ts";
import type { Vm } from "../src/vm.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import {
  type BenchPath,
  LOAD,
  MIN_COALESCED_PER_EXIT,
  type Sink,
  streamSum,
  stringInCheck,
  stringOutByte,
  stringOutCheck,
  stringOutSum,
} from "./paths.ts";

/** One timed run of a path. */
export interface Sample {
  /** Units done (exits or instructions). */
  readonly units: number;
  readonly ms: number;
  /** Guest instructions retired during the sample. */
  readonly instructions: number;
}

/** A path set up and ready to run. */
export interface Prepared {
  readonly path: BenchPath;
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly sink: Sink;
  /** Do about `n` units; returns the units done. Throws on any unexpected exit. */
  step(n: number): number;
}

/** A path's run did something other than what it measures. */
export class BenchPathError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = "BenchPathError";
  }
}

const MAX_BUDGET = 0x7fffffff;

function unexpected(p: BenchPath, vcpu: GuestVcpu, reason: number): never {
  const exit = decodeExit(vcpu.kvmRun);
  throw new BenchPathError(
    p.path,
    `unexpected exit ${exitReasonName(reason)} (${reason}): ${
      JSON.stringify(exit, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))
    } at rip 0x${vcpu.getRegs().rip.toString(16)}`,
  );
}

function busDevice(name: string, fn: (data: Uint8Array, sink: Sink) => void, sink: Sink): BusDevice {
  return {
    name,
    read(_offset: number, data: Uint8Array, _a: BusAccess): void {
      fillBytes(data, 0xff);
    },
    write(_offset: number, data: Uint8Array, _a: BusAccess): void {
      fn(data, sink);
    },
  };
}

/** Budget loop: `n` units of instructions, or (in-kernel exits) `n` iterations of `instructionsPerUnit` instructions. */
function budgetStep(p: BenchPath, vcpu: Vcpu): (n: number) => number {
  const per = p.unit === "instructions" ? 1 : p.instructionsPerUnit;
  return (n) => {
    const budget = Math.min(Math.max(1, Math.round(n * per)), MAX_BUDGET);
    const before = vcpu.instructions;
    const reason = vcpu.runRaw(budget);
    if (reason !== K.KVM_EXIT_INTR) unexpected(p, vcpu, reason);
    return (vcpu.instructions - before) / per;
  };
}

/** Estimated writes per runUntil exit on a coalesced path (85 or 169 coalesced + the exit's own): sizes maxExits. */
const COALESCED_WRITES_PER_EXIT = 128;

/**
 * The runUntil loop of a coalesced path: the zone registered and the bus
 * device inserted; `step(n)` runs about n / 128 ring-full exits and returns
 * the writes delivered to the device (the ring drained while running and at
 * the end, plus the exits), after checking runUntil's own counts.
 */
function coalescedStep(
  p: BenchPath,
  h: Extract<BenchPath["handler"], { kind: "coalesced-write" }>,
  vm: GuestVm,
  vcpu: GuestVcpu,
  sink: Sink,
): (n: number) => number {
  (h.pio ? vm.pio : vm.mmio).insert(busDevice("bench-coalesced", h.fn, sink), h.addr, h.size);
  vm.registerCoalescedMmio({ addr: h.addr, size: h.size, pio: h.pio });
  const reason = h.pio ? "io" : "mmio";
  return (n) => {
    const maxExits = Math.max(1, Math.round(n / COALESCED_WRITES_PER_EXIT));
    const calls0 = sink.calls;
    const r = vm.runUntil(vcpu, { maxExits });
    if (r.stop.kind !== "max-exits" || r.exits !== maxExits || r.counts[reason] !== maxExits) {
      throw new BenchPathError(
        p.path,
        `runUntil stopped with ${JSON.stringify(r.stop)} after ${r.exits} exits (${
          JSON.stringify(r.counts)
        }): expected ${maxExits} ${reason} exits (ring full)`,
      );
    }
    if (r.coalesced < maxExits * MIN_COALESCED_PER_EXIT) {
      throw new BenchPathError(
        p.path,
        `${r.coalesced} coalesced writes over ${maxExits} exits: expected at least ${MIN_COALESCED_PER_EXIT} per exit (the ring full)`,
      );
    }
    const writes = r.coalesced + maxExits, calls = sink.calls - calls0;
    if (calls !== writes) {
      throw new BenchPathError(
        p.path,
        `device called ${calls} times for ${r.coalesced} coalesced writes + ${maxExits} exits`,
      );
    }
    return writes;
  };
}

/** The runUntil loop of path `p` (either backend). */
export function runUntilStep(p: BenchPath, vm: GuestVm, vcpu: GuestVcpu, sink: Sink): (n: number) => number {
  const h = p.handler;
  let handlers: ExitHandlers | undefined;
  switch (h.kind) {
    case "coalesced-write":
      return coalescedStep(p, h, vm, vcpu, sink);
    case "pio-out":
      vm.pio.insert(busDevice("bench-pio", h.fn, sink), h.port, 1);
      break;
    case "mmio-write":
      vm.mmio.insert(busDevice("bench-mmio", h.fn, sink), h.addr, 8);
      break;
    case "hlt": {
      const fn = h.fn;
      handlers = { hlt: () => (fn(sink), RESUME) };
      break;
    }
    case "none":
    case "in-kernel":
    case "pio-in":
    case "pio-ins":
    case "pio-outs":
    case "mmio-read":
    case "msr-user":
    case "debug-sw-bp":
      throw new BenchPathError(p.path, `loop runUntil supports handlers pio-out, mmio-write and hlt, got "${h.kind}"`);
    default: {
      const never: never = h;
      throw new BenchPathError(p.path, `unknown handler ${JSON.stringify(never)}`);
    }
  }
  const reason = h.kind === "pio-out" ? "io" : h.kind === "mmio-write" ? "mmio" : "hlt";
  return (n) => {
    const maxExits = Math.max(1, Math.round(n));
    const r = handlers ? vm.runUntil(vcpu, { maxExits, handlers }) : vm.runUntil(vcpu, { maxExits });
    if (r.stop.kind !== "max-exits" || r.exits !== maxExits || r.counts[reason] !== maxExits) {
      throw new BenchPathError(
        p.path,
        `runUntil stopped with ${JSON.stringify(r.stop)} after ${r.exits} exits (${
          JSON.stringify(r.counts)
        }): expected ${maxExits} ${reason} exits`,
      );
    }
    return maxExits;
  };
}

/** The runRaw + switch loop of path `p` (either backend). */
export function switchStep(p: BenchPath, vcpu: GuestVcpu, sink: Sink): (n: number) => number {
  const run = vcpu.kvmRun;
  const h = p.handler;
  switch (h.kind) {
    case "pio-out": {
      const { port, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_IO: {
              const data = ioSingleData(run);
              if (data === undefined || !ioIsOut(run) || ioPort(run) !== port) unexpected(p, vcpu, reason);
              fn(data, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "mmio-write": {
      const { addr, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_MMIO: {
              const data = mmioData(run);
              if (data === undefined || !mmioIsWrite(run) || mmioPhysAddr(run) !== addr) unexpected(p, vcpu, reason);
              fn(data, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "hlt": {
      const fn = h.fn;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_HLT:
              fn(sink);
              break;
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "pio-in": {
      const { port, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_IO: {
              const data = ioSingleData(run);
              if (data === undefined || ioIsOut(run) || ioPort(run) !== port) unexpected(p, vcpu, reason);
              fn(data, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "pio-ins": {
      const { port, bytesPerExit, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_IO: {
              if (ioIsOut(run) || ioPort(run) !== port || ioCount(run) !== bytesPerExit) unexpected(p, vcpu, reason);
              const exit = decodeExit(run);
              if (exit.reason !== "io" || exit.size !== 1) unexpected(p, vcpu, reason);
              fn(exit.data, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "pio-outs": {
      const { port, bytesPerRep, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_IO: {
              const data = ioSingleData(run);
              if (data === undefined || !ioIsOut(run) || ioPort(run) !== port || data.length !== 1) {
                unexpected(p, vcpu, reason);
              }
              const k = sink.calls;
              if (!fn(data, sink)) {
                throw new BenchPathError(
                  p.path,
                  `exit ${k}: OUT byte 0x${data[0]!.toString(16)}: expected source byte ${k % bytesPerRep} (0x${
                    stringOutByte(k % bytesPerRep).toString(16)
                  }) of the buffer at 0x${h.buf.toString(16)}`,
                );
              }
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "mmio-read": {
      const { addr, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_MMIO: {
              const data = mmioData(run);
              if (data === undefined || mmioIsWrite(run) || mmioPhysAddr(run) !== addr) unexpected(p, vcpu, reason);
              fn(data, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "msr-user": {
      const { index, fn } = h;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_X86_RDMSR: {
              if (msrIndex(run) !== index || msrReason(run) !== K.KVM_MSR_EXIT_REASON_UNKNOWN) {
                unexpected(p, vcpu, reason);
              }
              fn(run, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "debug-sw-bp": {
      const fn = h.fn;
      return (n) => {
        for (let i = 0; i < n; i++) {
          const reason = vcpu.runRaw();
          switch (reason) {
            case K.KVM_EXIT_DEBUG: {
              if (debugException(run) !== 3) unexpected(p, vcpu, reason);
              fn(vcpu, sink);
              break;
            }
            default:
              unexpected(p, vcpu, reason);
          }
        }
        return n;
      };
    }
    case "none":
    case "in-kernel":
      throw new BenchPathError(p.path, `loop switch needs an exit handler, got "${h.kind}"`);
    case "coalesced-write":
      throw new BenchPathError(p.path, `handler "coalesced-write" runs in loop runUntil (which drains the ring)`);
    default: {
      const never: never = h;
      throw new BenchPathError(p.path, `unknown handler ${JSON.stringify(never)}`);
    }
  }
}

/** Assemble the guest, create the VM (long mode, code at LOAD), run `setup`, install the handler. */
export function preparePath(p: BenchPath, module?: WebAssembly.Module): Prepared {
  const { bytes } = assemble(p.asm, { bits: 64, origin: LOAD });
  const { vm, vcpu } = createVmWithOneVcpu(module ? { code: bytes, load: LOAD, module } : { code: bytes, load: LOAD });
  p.setup?.(vm, vcpu);
  const sink: Sink = { calls: 0, sum: 0 };
  let step: (n: number) => number;
  switch (p.loop) {
    case "budget":
      step = budgetStep(p, vcpu);
      break;
    case "runUntil":
      step = runUntilStep(p, vm, vcpu, sink);
      break;
    case "switch":
      step = switchStep(p, vcpu, sink);
      break;
    default: {
      const never: never = p.loop;
      throw new BenchPathError(p.path, `unknown loop ${String(never)}`);
    }
  }
  return { path: p, vm, vcpu, sink, step };
}

/** The ecx register (the dec/jnz counter). */
function ecx(vcpu: Vcpu): number {
  return Number(vcpu.getRegs().rcx & 0xffffffffn);
}

/**
 * One timed run of about `durationMs`: steps of growing size (each ≥ ~5 ms
 * once warm) until the time is up. Then the checks of the module comment.
 */
export function measure(prep: Prepared, durationMs: number, firstStep: number): Sample {
  const { path: p, vcpu, sink } = prep;
  const calls0 = sink.calls, sum0 = sink.sum;
  const insns0 = vcpu.instructions;
  const ecx0 = p.handler.kind === "none" ? ecx(vcpu) : 0;
  const regs0 = vcpu.getRegs();
  let chunk = firstStep;
  let units = 0;
  const t0 = performance.now();
  let t = t0;
  for (;;) {
    const c0 = t;
    units += prep.step(chunk);
    t = performance.now();
    if (t - t0 >= durationMs) break;
    if (t - c0 < 5 && chunk < MAX_BUDGET / 2) chunk *= 2;
  }
  const ms = t - t0;
  const instructions = vcpu.instructions - insns0;
  verify(prep, units, instructions, sink.calls - calls0, (sink.sum - sum0) | 0, ecx0, regs0);
  return { units, ms, instructions };
}

/** How far a guest counter register moved between two register snapshots (32-bit wrap). */
function moved(before: KvmRegs, after: KvmRegs, reg: "rbx" | "rsi"): number {
  return Number((after[reg] - before[reg]) & 0xffffffffn);
}

/** Check a one-value-per-exit handler: calls = exits, values = calls × byte, and the guest's ebx sum got them all. */
function verifyAnswered(
  p: BenchPath,
  units: number,
  calls: number,
  sum: number,
  expectByte: number,
  guestSum: number,
): void {
  if (calls !== units) throw new BenchPathError(p.path, `handler called ${calls} times for ${units} exits`);
  const want = Math.imul(calls, expectByte) | 0;
  if (sum !== want) {
    throw new BenchPathError(
      p.path,
      `handler supplied byte sum ${sum >>> 0} over ${calls} exits: expected ${calls} × 0x${expectByte.toString(16)}`,
    );
  }
  // The sample ends right after an exit, before the guest's `add ebx, eax` for the last answer: allow that one.
  const d = (want - guestSum) >>> 0;
  if (d !== 0 && d !== expectByte) {
    throw new BenchPathError(
      p.path,
      `guest's ebx grew by ${guestSum >>> 0} over ${calls} answers of 0x${expectByte.toString(16)}: expected ${
        want >>> 0
      } (or one answer less)`,
    );
  }
}

function verify(
  prep: Prepared,
  units: number,
  instructions: number,
  calls: number,
  sum: number,
  ecx0: number,
  regs0: KvmRegs,
): void {
  const { path: p, vcpu } = prep;
  const h = p.handler;
  // Units start and end mid-iteration: allow one iteration of slack either side.
  const slack = 2 * p.instructionsPerUnit * (p.unitsPerIteration ?? 1);
  if (Math.abs(instructions - units * p.instructionsPerUnit) > slack) {
    throw new BenchPathError(
      p.path,
      `${instructions} instructions retired for ${units} ${p.unit}: expected ${
        units * p.instructionsPerUnit
      } ± ${slack}`,
    );
  }
  switch (h.kind) {
    case "none": {
      if (p.check !== undefined) break; // the path checks its own result below
      const decs = (ecx0 - ecx(vcpu)) >>> 0;
      // 2 instructions per dec/jnz iteration, plus one `jmp` per 2^32 iterations.
      if (Math.abs(instructions - 2 * decs) > 4) {
        throw new BenchPathError(
          p.path,
          `ecx went down by ${decs} while ${instructions} instructions retired: expected about ${instructions / 2}`,
        );
      }
      break;
    }
    case "pio-out":
    case "mmio-write":
    case "coalesced-write":
      if (calls !== units) throw new BenchPathError(p.path, `handler called ${calls} times for ${units} ${p.unit}`);
      if (sum !== (Math.imul(calls, h.expectByte) | 0)) {
        throw new BenchPathError(
          p.path,
          `handler saw byte sum ${sum >>> 0} over ${calls} ${p.unit}: expected ${calls} × 0x${
            h.expectByte.toString(16)
          }`,
        );
      }
      break;
    case "hlt":
      if (calls !== units) throw new BenchPathError(p.path, `handler called ${calls} times for ${units} exits`);
      break;
    case "pio-ins": {
      if (calls !== units) throw new BenchPathError(p.path, `handler called ${calls} times for ${units} exits`);
      const problem = stringInVerify(h, prep.sink.calls, calls, sum, (gpa, len) => prep.vm.readGuest(gpa, len));
      if (problem !== undefined) throw new BenchPathError(p.path, problem);
      break;
    }
    case "pio-outs": {
      if (calls !== units) throw new BenchPathError(p.path, `handler called ${calls} times for ${units} exits`);
      const problem = stringOutVerify(h, prep.sink.calls, calls, sum, vcpu.getRegs());
      if (problem !== undefined) throw new BenchPathError(p.path, problem);
      break;
    }
    case "pio-in":
    case "mmio-read":
    case "msr-user":
      verifyAnswered(p, units, calls, sum, h.expectByte, moved(regs0, vcpu.getRegs(), "rbx"));
      break;
    case "in-kernel": {
      const iters = moved(regs0, vcpu.getRegs(), "rsi");
      if (Math.abs(iters - units) > 1) {
        throw new BenchPathError(p.path, `guest counted ${iters} iterations in rsi for ${units} in-kernel exits`);
      }
      break;
    }
    case "debug-sw-bp": {
      if (calls !== units) throw new BenchPathError(p.path, `handler called ${calls} times for ${units} exits`);
      const iters = moved(regs0, vcpu.getRegs(), "rsi");
      // The sample ends at an INT3, after the handler moved RIP but before the guest's `inc rsi`.
      if (iters !== calls && iters !== calls - 1) {
        throw new BenchPathError(p.path, `guest counted ${iters} resumes in rsi for ${calls} INT3 exits`);
      }
      break;
    }
    default: {
      const never: never = h;
      throw new BenchPathError(p.path, `unknown handler ${JSON.stringify(never)}`);
    }
  }
  const problem = p.check?.(prep.vm, vcpu);
  if (problem !== undefined) throw new BenchPathError(p.path, `guest result: ${problem}`);
}

/**
 * The string-in checks shared with the kvm peer: the handler supplied the
 * stream's bytes `[(total - calls) × n, total × n)` (their sum), and the
 * guest's buffer holds the last completed transfer ({@link stringInCheck}).
 * `total`: exits since the VM was created; `calls`, `sum`: this sample's.
 */
export function stringInVerify(
  h: Extract<BenchPath["handler"], { kind: "pio-ins" }>,
  total: number,
  calls: number,
  sum: number,
  read: (gpa: number, len: number) => Uint8Array,
): string | undefined {
  const n = h.bytesPerExit;
  const want = (streamSum(total * n) - streamSum((total - calls) * n)) | 0;
  if (sum !== want) {
    return `handler supplied byte sum ${sum >>> 0} over ${calls} exits: expected ${want >>> 0} (stream bytes ${
      (total - calls) * n
    } … ${total * n - 1})`;
  }
  return stringInCheck(read, h.buf, n, total);
}

/**
 * The string-out checks shared with the kvm peer: the handler saw the
 * source bytes of exits `[total - calls, total)` (their sum; each byte was
 * also checked at its exit), and RSI/RCX at the last exit have moved past
 * its element ({@link stringOutCheck}). `total`: exits since the VM was
 * created; `calls`, `sum`: this sample's.
 */
export function stringOutVerify(
  h: Extract<BenchPath["handler"], { kind: "pio-outs" }>,
  total: number,
  calls: number,
  sum: number,
  regs: { readonly rsi: bigint; readonly rcx: bigint },
): string | undefined {
  const want = (stringOutSum(total) - stringOutSum(total - calls)) | 0;
  if (sum !== want) {
    return `handler saw byte sum ${sum >>> 0} over ${calls} exits: expected ${want >>> 0} (source bytes of exits ${
      total - calls
    } … ${total - 1})`;
  }
  return stringOutCheck(regs, h.buf, h.bytesPerRep, total);
}

/** The first step size of a path's loop (instructions per budget call, or exits). */
export function firstStepOf(p: BenchPath): number {
  return p.unit === "instructions" ? 100_000 : p.loop === "budget" ? 10_000 : 1_000;
}
