/**
 * Runs one guest snippet on kvmsim through the public API (mod.ts) and
 * compares the outcome with the snippet's expectations.
 *
 * `runSnippet` returns a backend-neutral `SnippetResult` (exits in order,
 * registers, the memory ranges the snippet checks); `compareSnippet` lists
 * every mismatch as {field, expected, actual}. A second backend only needs
 * its own `runSnippet` producing the same shape.
 *
 * @module
 */
import { assemble, createVmWithOneVcpu, type VcpuExit } from "../../mod.ts";
import { type ExitSummary, GPR_NAMES, type RegName, type Regs, type Snippet, type SnippetMode } from "./types.ts";

/** The environment every snippet runs in (see types.ts). */
export const ENV = {
  memSize: 4 << 20,
  load: 0x1000,
  exceptionPort: 0x510,
  /** RSP in protected and long mode: the start of the reserved last 1 MiB. */
  stackTop: (4 << 20) - (1 << 20),
  /** Reserved area (page tables, GDT, IDT, TSS, exception stubs) in protected and long mode. */
  reservedBase: (4 << 20) - (1 << 20),
  /** Instruction budget of one run() call. */
  budget: 1_000_000,
  /** Userspace exits after which the runner gives up. */
  maxExits: 64,
} as const;

/**
 * Snippets that fail on kvmsim because of a kvmsim bug (the expectation is
 * right; see the reason). They still run: the test reports them as known and
 * fails if one of them starts passing, so the list stays current.
 */
export const KNOWN_FAILURES: ReadonlyMap<string, string> = new Map<string, string>([]);

export const bitsOf = (m: SnippetMode): 16 | 32 | 64 => (m === "long" ? 64 : m === "protected" ? 32 : 16);

/**
 * An exit as a snippet records it (`data` = bytes written by OUT / MMIO writes; `regs` =
 * the registers the expected exit lists, read at the exit; see summarizeAt).
 */
export type ActualExit =
  | { reason: "io"; direction: "in" | "out"; port: number; size: number; count: number; data: number[]; regs?: Regs }
  | { reason: "mmio"; isWrite: boolean; physAddr: number; len: number; data: number[]; regs?: Regs }
  | { reason: "hlt" }
  | { reason: "shutdown" }
  | { reason: string; detail: string };

export interface SnippetResult {
  exits: ActualExit[];
  regs: Record<RegName, bigint>;
  memory: { gpa: number; bytes: number[] }[];
  /** The run stopped for a reason other than the last expected exit (limit, internal error). */
  stop: string;
}

function replyFor(expected: ExitSummary | undefined, actual: VcpuExit): number[] | undefined {
  if (!expected || !("reply" in expected)) return undefined;
  if (expected.reason === "io" && actual.reason === "io" && actual.direction === "in") return expected.reply;
  if (expected.reason === "mmio" && actual.reason === "mmio" && !actual.isWrite) return expected.reply;
  return undefined;
}

/** An exit as the snippet table compares it (data only where the guest produced it). */
export function summarize(e: VcpuExit): ActualExit {
  switch (e.reason) {
    case "io":
      return {
        reason: "io",
        direction: e.direction,
        port: e.port,
        size: e.size,
        count: e.count,
        data: e.direction === "out" ? [...e.data.subarray(0, e.size * e.count)] : [],
      };
    case "mmio":
      return {
        reason: "mmio",
        isWrite: e.isWrite,
        physAddr: e.physAddr,
        len: e.len,
        data: e.isWrite ? [...e.data.subarray(0, e.len)] : [],
      };
    case "hlt":
      return { reason: "hlt" };
    case "shutdown":
      return { reason: "shutdown" };
    case "internal_error":
      return {
        reason: e.reason,
        detail: `${e.suberrorName} insn ${
          [...(e.insnBytes ?? [])].map((b) => b.toString(16).padStart(2, "0")).join(" ")
        }`,
      };
    default:
      return { reason: e.reason, detail: "" };
  }
}

/**
 * `summarize(e)`, plus (for an IO or MMIO exit whose expected exit `want` lists
 * `regs`) those registers as `getRegs()` returns them at the exit.
 */
export function summarizeAt(
  e: VcpuExit,
  want: ExitSummary | undefined,
  getRegs: () => Record<RegName, bigint>,
): ActualExit {
  const sum = summarize(e);
  if ((e.reason !== "io" && e.reason !== "mmio") || !want || !("regs" in want) || !want.regs) return sum;
  const r = getRegs();
  return Object.assign(sum, { regs: Object.fromEntries(Object.keys(want.regs).map((n) => [n, r[n as RegName]])) });
}

/** Execute `s` on kvmsim: assemble, create the VM, load memory and registers, run until HLT/SHUTDOWN/error. */
export function runSnippet(s: Snippet): SnippetResult {
  const code = assemble(s.asm, { bits: bitsOf(s.mode), origin: ENV.load }).bytes;
  const { vm, vcpu } = createVmWithOneVcpu({
    code,
    mode: s.mode,
    load: ENV.load,
    memSize: ENV.memSize,
    ...(s.mode === "real" ? {} : { exceptionPort: ENV.exceptionPort }),
  });
  for (const m of s.memory ?? []) vm.writeGuest(m.gpa, m.bytes);
  if (s.regs) vcpu.setRegs({ ...s.regs });
  const exits: ActualExit[] = [];
  const expected = s.exits ?? [{ reason: "hlt" }];
  let stop = "";
  for (;;) {
    if (exits.length >= ENV.maxExits) {
      stop = `more than ${ENV.maxExits} exits`;
      break;
    }
    const e = vcpu.run(ENV.budget);
    const sum = summarizeAt(e, expected[exits.length], () => vcpu.getRegs());
    exits.push(sum);
    if (e.reason === "io" || e.reason === "mmio") {
      const reply = replyFor(expected[exits.length - 1], e);
      if (reply) e.data.set(reply.slice(0, e.data.length));
      else if (!(e.reason === "io" ? e.direction === "out" : e.isWrite)) e.data.fill(0xff);
      continue;
    }
    if (e.reason === "hlt" || e.reason === "shutdown") break;
    stop = `stopped by ${e.reason}${"detail" in sum && sum.detail ? ` (${sum.detail})` : ""}`;
    break;
  }
  const r = vcpu.getRegs();
  const regs = Object.fromEntries(GPR_NAMES.map((n) => [n, r[n]])) as Record<RegName, bigint>;
  const memory = (s.expect.memory ?? []).map((m) => ({ gpa: m.gpa, bytes: [...vm.readGuest(m.gpa, m.bytes.length)] }));
  return { exits, regs, memory, stop };
}

export interface Mismatch {
  field: string;
  expected: string;
  actual: string;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const bytesHex = (b: readonly number[]) => `[${b.map((x) => x.toString(16).padStart(2, "0")).join(" ")}]`;

function showExit(e: ActualExit | ExitSummary | undefined): string {
  if (!e) return "none";
  return JSON.stringify(
    e,
    (k, v) => (k === "data" || k === "reply") && Array.isArray(v) ? bytesHex(v) : typeof v === "bigint" ? hex(v) : v,
  );
}

/** Every difference between what `s` expects and `r`. */
export function compareSnippet(s: Snippet, r: SnippetResult): Mismatch[] {
  const out: Mismatch[] = [];
  const expExits = s.exits ?? [{ reason: "hlt" }];
  const n = Math.max(expExits.length, r.exits.length);
  for (let i = 0; i < n; i++) {
    const e = expExits[i], a = r.exits[i];
    if (!e || !a) {
      out.push({ field: `exits[${i}]`, expected: showExit(e), actual: showExit(a) });
      continue;
    }
    const bad = Object.entries(e).filter(([k, v]) => {
      if (k === "reply") return false;
      const av = (a as Record<string, unknown>)[k];
      if (k === "regs") {
        const got = (av ?? {}) as Regs;
        return Object.entries(v as Regs).some(([n, want]) => got[n as RegName] !== want);
      }
      return Array.isArray(v) ? !Array.isArray(av) || bytesHex(v) !== bytesHex(av as number[]) : av !== v;
    });
    if (bad.length) out.push({ field: `exits[${i}]`, expected: showExit(e), actual: showExit(a) });
  }
  if (r.stop) out.push({ field: "stop", expected: "the expected exits", actual: r.stop });
  for (const [name, want] of Object.entries(s.expect.regs ?? {}) as [RegName, bigint][]) {
    const got = r.regs[name];
    if (name === "rflags") {
      const m = s.expect.flagsMask ?? ~0n;
      if ((got & m) !== (want & m)) {
        out.push({
          field: `rflags & ${hex(BigInt.asUintN(64, m))}`,
          expected: hex(want & m),
          actual: `${hex(got & m)} (rflags ${hex(got)})`,
        });
      }
    } else if (got !== want) out.push({ field: name, expected: hex(want), actual: hex(got) });
  }
  (s.expect.memory ?? []).forEach((m, i) => {
    const got = r.memory[i]?.bytes ?? [];
    if (bytesHex(got) !== bytesHex(m.bytes)) {
      out.push({ field: `memory[0x${m.gpa.toString(16)}]`, expected: bytesHex(m.bytes), actual: bytesHex(got) });
    }
  });
  return out;
}

/** Run and compare; an assembler error is a mismatch too. */
export function checkSnippet(s: Snippet): Mismatch[] {
  let r: SnippetResult;
  try {
    r = runSnippet(s);
  } catch (e) {
    return [{ field: "run", expected: "a run", actual: `threw ${e instanceof Error ? e.message : String(e)}` }];
  }
  return compareSnippet(s, r);
}
