/**
 * The JSON form of an exit (the `kvmsim exec --json` contract) and its
 * one-line text form.
 *
 * Field names follow `struct kvm_run` (snake_case). Addresses, values and
 * register contents are lowercase `0x` hex strings; sizes, lengths, counts
 * and enumerations (`size`, `count`, `len`, `suberror`, `type`, …) are JSON
 * numbers. `data` is the little-endian value of the access; for string IO
 * with `count > 1` it is an array with one hex string per element. For IN
 * and MMIO reads `data` is the value the guest was answered with.
 *
 * @module
 */
import { leBig } from "../devices/bytes.ts";
import type { VcpuExit } from "../exits/exit.ts";
import { unreachable } from "../exits/exit.ts";

export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };
/** One recorded exit. */
export type ExitJson = { reason: string; [field: string]: Json };

/** How the VMM completed an MSR or hypercall exit (what the guest sees next). */
export interface ExitAnswer {
  /** MSR exits: the access failed (#GP in the guest). */
  error?: boolean;
  /** RDMSR: the value returned; hypercall: the value put in RAX. */
  value?: bigint;
}

export const hex = (v: number | bigint): string => `0x${v.toString(16)}`;
const hexBytes = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

/** The payload of an IO exit: one hex value, or one per element when `count > 1`. */
function ioData(data: Uint8Array, size: number, count: number): Json {
  if (count === 1) return hex(leBig(data.subarray(0, size)));
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(hex(leBig(data.subarray(i * size, (i + 1) * size))));
  return out;
}

/**
 * The JSON record of `exit`. Call it after the exit was handled and before the
 * next `run()` (the IO/MMIO payload views go stale then).
 */
export function exitToJson(exit: VcpuExit, answer: ExitAnswer = {}): ExitJson {
  switch (exit.reason) {
    case "io":
      return {
        reason: "io",
        direction: exit.direction,
        port: hex(exit.port),
        size: exit.size,
        count: exit.count,
        data: ioData(exit.data, exit.size, exit.count),
      };
    case "mmio":
      return {
        reason: "mmio",
        phys_addr: hex(exit.physAddr),
        len: exit.len,
        is_write: exit.isWrite,
        data: hex(leBig(exit.data)),
      };
    case "hlt":
    case "shutdown":
    case "intr":
      return { reason: exit.reason };
    case "debug":
      return { reason: "debug", exception: exit.exception, pc: hex(exit.pc), dr6: hex(exit.dr6), dr7: hex(exit.dr7) };
    case "internal_error": {
      const base: ExitJson = {
        reason: "internal_error",
        suberror: exit.suberror,
        suberror_name: exit.suberrorName,
        ndata: exit.ndata,
        data: exit.data.map(hex),
      };
      return exit.insnBytes ? { ...base, insn_bytes: hexBytes(exit.insnBytes) } : base;
    }
    case "system_event":
      return {
        reason: "system_event",
        type: exit.type,
        type_name: exit.typeName,
        ndata: exit.ndata,
        data: exit.data.map(hex),
      };
    case "x86_rdmsr":
    case "x86_wrmsr": {
      const base: ExitJson = {
        reason: exit.reason,
        msr_reason: exit.msrReason,
        msr_reason_name: exit.msrReasonName,
        index: hex(exit.index),
        data: hex(exit.reason === "x86_rdmsr" ? (answer.value ?? 0n) : exit.data),
        error: answer.error ?? false,
      };
      return base;
    }
    case "hypercall":
      return {
        reason: "hypercall",
        nr: hex(exit.nr),
        args: exit.args.map(hex),
        flags: hex(exit.flags),
        long_mode: exit.longMode,
        ret: hex(answer.value ?? 0n),
      };
    case "memory_fault":
      return {
        reason: "memory_fault",
        flags: hex(exit.flags),
        gpa: hex(exit.gpa),
        size: hex(exit.size),
        private: exit.private,
      };
    case "fail_entry":
      return {
        reason: "fail_entry",
        hardware_entry_failure_reason: hex(exit.hardwareEntryFailureReason),
        cpu: exit.cpu,
      };
    case "unknown": {
      const base: ExitJson = { reason: "unknown", raw: exit.raw, name: exit.name };
      return exit.malformed === undefined ? base : { ...base, malformed: exit.malformed };
    }
    default:
      return unreachable(exit, "exit reason");
  }
}

/** `key value` pairs of a record, without `reason`. */
function fields(e: ExitJson, skip: readonly string[] = []): string {
  return Object.entries(e)
    .filter(([k]) => k !== "reason" && !skip.includes(k))
    .map(([k, v]) => `${k} ${Array.isArray(v) ? `[${v.join(" ")}]` : String(v)}`)
    .join(" ");
}

/** One line for a recorded exit, e.g. `io out port 0x3f8 size 1 count 1 data 0x41`. */
export function exitLine(e: ExitJson): string {
  switch (e.reason) {
    case "io":
      return `io ${e.direction} ${fields(e, ["direction"])}`;
    case "mmio":
      return `mmio ${e.is_write ? "write" : "read"} ${fields(e, ["is_write"])}`;
    default: {
      const rest = fields(e);
      return rest ? `${e.reason} ${rest}` : e.reason;
    }
  }
}
