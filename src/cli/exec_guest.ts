/**
 * The engine of `kvmsim exec`: a fresh one-vCPU VM, raw guest code, no
 * devices. Every userspace exit is answered by fixed rules and recorded:
 *
 * - IO IN: the `--in PORT=VALUE` answer (low `size` bytes, every element of a
 *   string IN), all-ones for other ports; IO OUT: dropped;
 * - MMIO read: all-ones; MMIO write: dropped;
 * - RDMSR (user-space MSR exits for unknown/invalid MSRs are enabled): the
 *   `--msr INDEX=VALUE` answer, otherwise an error (#GP in the guest); WRMSR:
 *   accepted for an `--msr` index, otherwise an error;
 * - hypercall (KVM_HC_MAP_GPA_RANGE exits are enabled): -KVM_ENOSYS;
 * - debug (only with single-step): resume.
 *
 * The run ends at HLT, SHUTDOWN, a system event, an internal error (any other
 * stopping exit), or a limit. After a limit stop, a pending IO/MMIO/MSR
 * completion is finished with `immediate_exit`, so the registers show the
 * answer the guest was given.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../abi/constants.ts";
import { KvmsimError } from "../errors.ts";
import type { BackendName, GuestVcpu, GuestVm } from "../backends/types.ts";
import { KvmRunTimeoutError, KvmUnavailableError } from "../backends/kvm/errors.ts";
import { KVM_ENOSYS } from "../exits/hypercall.ts";
import { RESUME } from "../exits/outcome.ts";
import type { ExitHandlers } from "../exits/dispatch.ts";
import type { MsrExit } from "../exits/msr.ts";
import { createVmWithOneVcpu, type GuestMode } from "../x86/setup.ts";
import { KVM_REGS_NAMES, type KvmRegs } from "../x86/regs.ts";
import { UsageError } from "./errors.ts";
import { type ExitAnswer, type ExitJson, exitToJson, hex } from "./exit_json.ts";

export interface ExecSpec {
  readonly mode: GuestMode;
  readonly code: Uint8Array;
  /** GPA of the code and the initial RIP (real mode: IP, with CS = 0). */
  readonly load: number;
  /** Bytes of RAM at GPA 0. */
  readonly mem: number;
  /** Register values applied after the mode setup. */
  readonly set: Partial<KvmRegs>;
  /** IN answers by port. */
  readonly ins: ReadonlyMap<number, bigint>;
  /** RDMSR answers by MSR index. */
  readonly msrs: ReadonlyMap<number, bigint>;
  readonly maxExits: number;
  readonly maxInsns?: number;
  /** KVM_GUESTDBG_SINGLESTEP: a debug exit after every instruction. */
  readonly singleStep?: boolean;
  /** "sim" (default) or "kvm" (the host's /dev/kvm). */
  readonly backend?: BackendName;
  /** kvm: watchdog per KVM_RUN in ms; when it fires the run stops with "timeout". */
  readonly timeoutMs?: number;
}

/** Why the run stopped: the reason of the last exit, or the limit that was hit. */
export type ExecStop = string;

export interface ExecResult {
  readonly exits: ExitJson[];
  readonly stop: ExecStop;
  readonly regs: Record<(typeof KVM_REGS_NAMES)[number], string>;
  /** Instructions retired; null on the kvm backend (KVM does not count them). */
  readonly instructions: number | null;
}

const ALL_ONES = 0xffff_ffff_ffff_ffffn;

function createGuest(spec: ExecSpec): { vm: GuestVm & { close?: () => void }; vcpu: GuestVcpu } {
  try {
    return createVmWithOneVcpu({
      mode: spec.mode,
      code: spec.code,
      load: spec.load,
      memSize: spec.mem,
      stack: false,
      backend: spec.backend ?? "sim",
      ...(spec.timeoutMs === undefined ? {} : { runTimeoutMs: spec.timeoutMs }),
    });
  } catch (e) {
    if (e instanceof KvmUnavailableError) throw e;
    // The VM API's checks (code beyond RAM, real mode beyond 64 KiB, …) are input errors here.
    if (e instanceof KvmsimError) throw new UsageError(e.message);
    throw e;
  }
}

/** Run `spec` and collect the report. */
export function execGuest(spec: ExecSpec): ExecResult {
  const { vm, vcpu } = createGuest(spec);
  try {
    return execOn(vm, vcpu, spec);
  } finally {
    vm.close?.();
  }
}

function execOn(vm: GuestVm, vcpu: GuestVcpu, spec: ExecSpec): ExecResult {
  vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_INVAL | K.KVM_MSR_EXIT_REASON_UNKNOWN);
  vm.enableHypercallExit(1 << K.KVM_HC_MAP_GPA_RANGE);
  vcpu.setRegs(spec.set);
  if (spec.singleStep) vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_SINGLESTEP });

  let answer: ExitAnswer = {};
  const handlers: ExitHandlers = {
    io: (exit) => {
      if (exit.direction === "in") exit.fill(spec.ins.get(exit.port) ?? ALL_ONES);
      return RESUME;
    },
    mmio: (exit) => {
      if (!exit.isWrite) exit.fill(ALL_ONES);
      return RESUME;
    },
    x86_rdmsr: (exit: MsrExit) => {
      const v = spec.msrs.get(exit.index);
      if (v === undefined) exit.setError();
      else exit.setData(v);
      answer = v === undefined ? { error: true } : { value: v };
      return RESUME;
    },
    x86_wrmsr: (exit: MsrExit) => {
      const known = spec.msrs.has(exit.index);
      if (!known) exit.setError();
      answer = { error: !known };
      return RESUME;
    },
    hypercall: (exit) => {
      const ret = BigInt.asUintN(64, -KVM_ENOSYS);
      exit.setReturn(ret);
      answer = { value: ret };
      return RESUME;
    },
    debug: () => RESUME,
  };

  const exits: ExitJson[] = [];
  let run;
  try {
    run = vm.runUntil(vcpu, {
      handlers,
      maxExits: spec.maxExits,
      ...(spec.maxInsns === undefined ? {} : { maxInstructions: spec.maxInsns }),
      onExit: (exit) => {
        if (exit.reason !== "intr") exits.push(exitToJson(exit, answer));
        answer = {};
      },
    });
  } catch (e) {
    if (!(e instanceof KvmRunTimeoutError)) throw e;
    return result(exits, "timeout", vcpu);
  }

  let stop: ExecStop;
  switch (run.stop.kind) {
    case "max-exits":
    case "max-insns":
      stop = run.stop.kind;
      break;
    default:
      stop = exits.at(-1)?.reason ?? run.stop.kind;
  }
  if (stop === "max-exits") {
    // Complete the answered exit (KVM: immediate_exit = 1, KVM_RUN returns EINTR after completing IO).
    vcpu.immediateExit = true;
    vcpu.run();
    vcpu.immediateExit = false;
  }
  return result(exits, stop, vcpu);
}

function result(exits: ExitJson[], stop: ExecStop, vcpu: GuestVcpu): ExecResult {
  const r = vcpu.getRegs();
  const regs = Object.fromEntries(KVM_REGS_NAMES.map((n) => [n, hex(r[n])])) as ExecResult["regs"];
  const n = vcpu.instructions;
  return { exits, stop, regs, instructions: Number.isNaN(n) ? null : n };
}
