/**
 * The CPL 3 variant of the snippet table (tracking issue: "run the CPL3
 * variant where the instruction allows it"). On this host's software-nested
 * /dev/kvm (PVM) ring-0 guest code goes through KVM's instruction emulator,
 * while ring-3 guest code in long mode runs natively: a long-mode CPL 3 run
 * is the real-CPU reference. (Ring-3 code in 32-bit protected mode without
 * paging is not run natively by PVM: it goes through the emulator too, about
 * 1.5 µs per instruction, so that group checks KVM's emulator at CPL 3.)
 *
 * The wrapper (cpl3_wrapper.ts) runs a snippet's body at ring 3 and reports
 * what a CPL 0 run reports; this module decides which snippets can run there
 * (cpl3Plan / cpl3Eligibility, every exclusion with its reason) and checks a
 * run against the snippet's expectations, plus — for an exception outcome —
 * the vector, error code and saved RIP the CPU must deliver (expectedFault).
 *
 * Groups:
 * - "long" / "protected": snippets marked `cpl3` that end at their final HLT;
 * - "exception": snippets whose outcome is an exception reported by the
 *   environment's stub (exits `exceptionExits(ENV.exceptionPort, v)`); the
 *   `cpl3` mark is not required (it describes a normal completion) — the
 *   scan and the exclusion table below stand for it;
 * - "io": snippets with IO / MMIO exits before the final HLT, run with the
 *   TSS IO-permission bitmap allowing every port (IOPL 0).
 * Every eligible protected-mode snippet can also run in compatibility mode
 * (`{compat: true}`), which PVM does run natively. Host deviations are in
 * cpl3_divergences.ts, page faults at CPL 3 in cpl3_faults.ts.
 *
 * @module
 */
import { assemble } from "../../mod.ts";
import type { BackendName } from "../../src/backends/types.ts";
import { bitsOf, compareSnippet, ENV, type Mismatch } from "../snippets/run.ts";
import { exceptionExits, type ExitSummary, type Snippet } from "../snippets/types.ts";
import type { Cpl3Divergence } from "./cpl3_divergences.ts";
import { type Cpl3Options, type Cpl3Result, ERROR_CODE_VECTORS, type IoPermission, runCpl3 } from "./cpl3_wrapper.ts";

export { CPL3_LAYOUT, type FaultRecord, runCpl3, USER_CS, USER_DS } from "./cpl3_wrapper.ts";

export type Cpl3Group = "long" | "protected" | "exception" | "io";
export interface Cpl3Plan {
  group: Cpl3Group;
  io: IoPermission;
}

/** Instructions that fault at CPL 3 (#GP(0): CPL > 0, or CPL > IOPL for CLI/STI) or need ring-0 setup (MSRs). */
const FAULT_AT_CPL3 = [
  "cli",
  "sti",
  "clts",
  "lgdt",
  "lidt",
  "lldt",
  "ltr",
  "lmsw",
  "invd",
  "wbinvd",
  "invlpg",
  "invpcid",
  "wrmsr",
  "rdmsr",
  "rdpmc",
  "swapgs",
  "sysret",
  "sysretq",
  "sysexit",
  "syscall",
  "sysenter",
  "monitor",
  "mwait",
  "xsetbv",
];
/** Instructions whose result at CPL 3 depends on the privilege level or on the wrapper's own descriptors. */
const CPL_DEPENDENT = [
  // POPF/IRET keep IF and IOPL at CPL 3; IRET/far transfers check the selectors' DPL against CPL 3.
  "popf",
  "popfd",
  "popfq",
  "iret",
  "iretd",
  "iretq",
  "retf",
  "lret",
  "ljmp",
  "lcall",
  // Segment loads check DPL; LAR/LSL/VERR/VERW report access by CPL 3 to the wrapper's GDT.
  "lss",
  "lfs",
  "lgs",
  "lds",
  "les",
  "lar",
  "lsl",
  "verr",
  "verw",
  "arpl",
  // Descriptor-table and MSW stores report the wrapper's GDTR/TR (UMIP is off: they do not fault).
  "sgdt",
  "sidt",
  "sldt",
  "str",
  "smsw",
];
/** Not deterministic between two machines, or the host's instead of the VM's at native CPL 3 (CPUID under PVM). */
const HOST_STATE = ["rdtsc", "rdtscp", "cpuid"];
/** IO: allowed in the "io" group (the TSS bitmap permits every port). */
const IO = ["in", "out", "ins", "insb", "insw", "insd", "outs", "outsb", "outsw", "outsd"];
/** INT n / INT3 / INTO / UD2 raise an exception: allowed (the wrapper's gates are DPL 3, as reachable as at CPL 0). */
const RAISE = ["int", "int1", "int3", "into", "ud2"];

const WHY = new Map<string, string>([
  ...FAULT_AT_CPL3.map((m) => [m, "privileged: #GP(0) at CPL 3"] as const),
  ...CPL_DEPENDENT.map((m) => [m, "its result depends on CPL or on the wrapper's descriptors"] as const),
  ...HOST_STATE.map((m) => [m, "reads host or time state, not a deterministic result"] as const),
  ...IO.map((m) => [m, "IO outside the io group"] as const),
]);
const SEGMENT_REG = /\b(cs|ds|es|fs|gs|ss)\b/;
const CONTROL_REG = /\b(cr\d|dr\d)\b/;

/**
 * Snippets the mnemonic scan cannot judge (their instruction is written as
 * bytes, or the CPL 3 outcome differs for a reason the scan does not see).
 */
export const CPL3_EXCLUDED: readonly { match: RegExp; reason: string }[] = [
  {
    match: /^mov eax, cr1 \(reserved CR\): #UD/,
    reason: "MOV from CR1 (written as bytes) at CPL 3: both #GP(0) (CPL > 0) and #UD (reserved CR) apply; the SDM " +
      "gives no order between them, and the snippet tests the #UD of CPL 0",
  },
];

/** The exception vector of an exception outcome (the environment stub's OUT of the vector, then HLT), if it is one. */
export function stubVector(exits: readonly ExitSummary[] | undefined): number | undefined {
  if (!exits || exits.length !== 2 || exits[1]!.reason !== "hlt") return undefined;
  const e = exits[0]!;
  if (e.reason !== "io" || e.direction !== "out" || e.port !== ENV.exceptionPort || e.size !== 1) return undefined;
  return e.data?.length === 1 ? e.data[0] : undefined;
}

const mnemonicOf = (line: string) => {
  const words = line.split(/[\s,]+/);
  const first = words[0] ?? "";
  return /^(rep|repe|repz|repne|repnz|lock)$/.test(first) ? words[1] ?? "" : first;
};
const codeLines = (asm: string) =>
  asm.split("\n").map((raw) => raw.replace(/[;#].*$/, "").replace(/^\s*[\w.]+:/, "").trim().toLowerCase());

/** How `s` runs at CPL 3 (group and IO permission), or why it cannot. */
export function cpl3Plan(s: Snippet): Cpl3Plan | string {
  if (s.mode === "real") return "mode real: CPL is 0 by definition (virtual-8086 mode is not wrapped)";
  const rf = s.regs?.rflags ?? 2n;
  if (rf & (1n << 8n)) {
    return "starts with TF set (the #DB after each instruction would end the run at the wrapper's gate)";
  }
  const excluded = CPL3_EXCLUDED.find((x) => x.match.test(s.name));
  if (excluded) return excluded.reason;
  const exits = s.exits ?? [{ reason: "hlt" }];
  let group: Cpl3Group;
  if (exits.some((e) => e.reason === "shutdown")) {
    return "expects a triple fault (shutdown): at CPL 3 the wrapper's IDT and RSP0 stack deliver the fault instead";
  } else if (stubVector(exits) !== undefined) group = "exception";
  else if (exits[exits.length - 1]?.reason !== "hlt") {
    return `expects exits ${JSON.stringify(exits)} (not ending in HLT)`;
  } else if (exits.length > 1) {
    if (!exits.slice(0, -1).every((e) => e.reason === "io" || e.reason === "mmio")) {
      return `expects exits ${JSON.stringify(exits)} (only IO/MMIO exits before the final HLT are wrapped)`;
    }
    group = "io";
  } else group = s.mode;
  for (const line of codeLines(s.asm)) {
    if (!line) continue;
    const mn = mnemonicOf(line);
    const why = WHY.get(mn);
    if (why && !(group === "io" && IO.includes(mn)) && !RAISE.includes(mn)) {
      return `uses ${mn} (${why})`;
    }
    if (/^(jmp|call)$/.test(mn) && /\bfar\b|\w+:\w+/.test(line)) {
      return `uses far ${mn} (${WHY.get("ljmp")})`;
    }
    if (SEGMENT_REG.test(line.slice(mn.length)) && !/^(db|dw|dd|dq)$/.test(mn)) {
      return `touches a segment register (${line}): loads check DPL against CPL 3, reads show the wrapper's selectors`;
    }
    if (CONTROL_REG.test(line)) return `touches a control/debug register (${line}): #GP(0) at CPL 3`;
  }
  if ((group === "long" || group === "protected") && !s.cpl3) return "not marked cpl3";
  return { group, io: group === "io" ? "bitmap" : "none" };
}

/** Undefined when `s` can run at CPL 3 with this wrapper, else why not. */
export function cpl3Eligibility(s: Snippet): string | undefined {
  const p = cpl3Plan(s);
  return typeof p === "string" ? p : undefined;
}

/** The exception an "exception" snippet must raise at CPL 3: vector, error code (0), saved RIP. */
export interface ExpectedFault {
  vector: number;
  error?: bigint;
  rip: bigint;
}

const PREFIX_ONLY = /^times \d+ db 0x(66|67|f2|f3|2e|3e|26|36|64|65|f0)$/;

/**
 * The expected fault of an "exception" snippet, whose body ends with the
 * raising instruction before the final `hlt`: a fault (#DE, #UD, #GP, …)
 * saves the RIP of that instruction (prefix-only `times N db` lines right
 * before it belong to it); a trap (INT n, INT3, INTO) saves the RIP after it,
 * the final `hlt` (SDM vol. 3 §6.5, 6.15). Error code 0 for the vectors that
 * push one: every eligible #GP is a non-selector #GP(0) (selector faults are
 * excluded by the segment-register rule). `asFault`: the RIP of the raising
 * instruction even for a trap (a host that faults there instead).
 */
export function expectedFault(s: Snippet, asFault = false): ExpectedFault {
  const vector = stubVector(s.exits);
  if (vector === undefined) throw new Error(`${s.name}: no exception outcome in its exits`);
  const lines = s.asm.split("\n");
  const code = codeLines(s.asm);
  if (mnemonicOf(code[code.length - 1] ?? "") !== "hlt") {
    throw new Error(`${s.name}: expected the body to end with hlt, got ${JSON.stringify(lines[lines.length - 1])}`);
  }
  const at = (n: number) =>
    BigInt(ENV.load + assemble(lines.slice(0, n).join("\n"), { bits: bitsOf(s.mode), origin: ENV.load }).bytes.length);
  let last = lines.length - 2;
  const trap = !asFault && RAISE.includes(mnemonicOf(code[last] ?? "")) && mnemonicOf(code[last] ?? "") !== "ud2";
  if (trap) return { vector, rip: at(lines.length - 1) };
  while (last > 0 && PREFIX_ONLY.test(code[last - 1]!)) last--;
  return { vector, ...(ERROR_CODE_VECTORS.has(vector) ? { error: 0n } : {}), rip: at(last) };
}

const hex = (v: bigint | undefined) => (v === undefined ? "none" : `0x${v.toString(16)}`);

/** Mismatches of the captured fault against `want`. */
export function compareFault(want: ExpectedFault, r: Cpl3Result): Mismatch[] {
  const f = r.fault;
  if (!f) return [{ field: "fault", expected: `vector ${want.vector}`, actual: "no exception at CPL 3" }];
  const out: Mismatch[] = [];
  if (f.vector !== want.vector) out.push({ field: "fault.vector", expected: `${want.vector}`, actual: `${f.vector}` });
  if (f.error !== want.error) out.push({ field: "fault.error", expected: hex(want.error), actual: hex(f.error) });
  if (f.rip !== want.rip) out.push({ field: "fault.rip", expected: hex(want.rip), actual: hex(f.rip) });
  return out;
}

/** Run `s` at CPL 3 on `backend` (its plan's IO permission, plus `opts`) and list every mismatch against its expectations. */
export function checkCpl3(backend: BackendName, s: Snippet, opts: Cpl3Options = {}): Mismatch[] {
  const plan = cpl3Plan(s);
  const group = typeof plan === "string" ? undefined : plan.group;
  let r: Cpl3Result;
  try {
    r = runCpl3(backend, s, { ...(typeof plan === "string" ? {} : { io: plan.io }), ...opts });
  } catch (e) {
    return [{ field: "run", expected: "a run", actual: `threw ${e instanceof Error ? e.message : String(e)}` }];
  }
  const ms = compareSnippet(s, r);
  if (group === "exception") ms.push(...compareFault(expectedFault(s), r));
  return ms;
}

/**
 * Mismatches of `s`'s CPL 3 run on the host against the host behaviour
 * recorded in its CPL3_DIVERGENCES entry (empty = the host still deviates
 * exactly as recorded).
 */
export function checkCpl3AsRecorded(s: Snippet, d: Cpl3Divergence, compat = false): Mismatch[] {
  const plan = cpl3Plan(s);
  if (typeof plan === "string") throw new Error(`${s.name}: listed in CPL3_DIVERGENCES but not eligible (${plan})`);
  let r: Cpl3Result;
  try {
    r = runCpl3("kvm", s, { io: plan.io, compat });
  } catch (e) {
    return [{ field: "run", expected: "a run", actual: `threw ${e instanceof Error ? e.message : String(e)}` }];
  }
  if ("finalHlt" in d.kvm) {
    const ms = compareSnippet({ ...s, exits: [{ reason: "hlt" }] }, r);
    if (r.fault) ms.push({ field: "fault", expected: "none", actual: `vector ${r.fault.vector}` });
    return ms;
  }
  const ms = compareSnippet({ ...s, exits: exceptionExits(ENV.exceptionPort, d.kvm.vector) }, r);
  ms.push(...compareFault({ ...expectedFault(s, true), vector: d.kvm.vector }, r));
  return ms;
}
