/**
 * `kvmsim exec`: run raw guest code in a fresh VM and report its exits, why
 * it stopped, the registers and the instruction count (the contract of the
 * tracking issue §7; engine in exec_guest.ts, JSON shapes in exit_json.ts).
 *
 * @module
 */
import { Command } from "commander";
import { AsmError, assemble } from "../asm/x86.ts";
import { type GuestMode, RESERVED_SIZE } from "../x86/setup.ts";
import { KVM_REGS_NAMES, type KvmRegs } from "../x86/regs.ts";
import { MAX_MEMORY_BYTES, RAM_POOL_BASE } from "../abi/memory_map.ts";
import { UsageError } from "./errors.ts";
import { execGuest, type ExecResult, type ExecSpec } from "./exec_guest.ts";
import { exitLine } from "./exit_json.ts";
import { parseCount, parseHexBytes, parseSize, parseUint, splitAssignment } from "./parse.ts";

const MODES: Readonly<Record<string, { mode: GuestMode; bits: 16 | 32 | 64 }>> = {
  real: { mode: "real", bits: 16 },
  protected: { mode: "protected", bits: 32 },
  long: { mode: "long", bits: 64 },
};
/** The largest RAM the VM's memory can hold (the pool adds 4 MiB of slack; see createVmWithOneVcpu). */
const MAX_MEM = Math.floor((MAX_MEMORY_BYTES - RAM_POOL_BASE - (4 << 20)) / (1 << 20)) * (1 << 20);
const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

export interface ExecOptions {
  mode: string;
  code?: string;
  file?: string;
  asm?: string;
  load: string;
  mem: string;
  set: string[];
  in: string[];
  msr: string[];
  maxExits: string;
  maxInsns?: string;
  singleStep?: boolean;
  json?: boolean;
  backend?: string;
  timeout?: string;
}

function parseMode(text: string) {
  const m = MODES[text];
  if (!m) throw new UsageError(`unknown mode "${text}": expected real, protected or long`);
  return m;
}

function parseSet(items: readonly string[]): Partial<KvmRegs> {
  const regs: Partial<KvmRegs> = {};
  for (const item of items) {
    const [name, value] = splitAssignment("--set", item);
    const reg = name.toLowerCase() as keyof KvmRegs;
    if (!(KVM_REGS_NAMES as readonly string[]).includes(reg)) {
      throw new UsageError(`--set ${item}: unknown register "${name}" (expected one of ${KVM_REGS_NAMES.join(", ")})`);
    }
    if (regs[reg] !== undefined) throw new UsageError(`--set ${item}: register ${reg} is set twice`);
    regs[reg] = parseUint(`--set ${reg}`, value, 64, true);
  }
  return regs;
}

function parseMap(
  option: string,
  items: readonly string[],
  keyWhat: string,
  keyBits: number,
  valueBits: number,
): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const item of items) {
    const [k, v] = splitAssignment(option, item);
    const key = Number(parseUint(`${option} ${keyWhat}`, k, keyBits));
    if (out.has(key)) throw new UsageError(`${option} ${item}: ${keyWhat} 0x${key.toString(16)} is given twice`);
    out.set(key, parseUint(`${option} ${item}: value`, v, valueBits, true));
  }
  return out;
}

/** Read a file named by an option; failure is a UsageError naming the option and the OS error. */
async function readInput<T>(option: string, path: string, read: (p: string) => Promise<T>): Promise<T> {
  try {
    return await read(path);
  } catch (e) {
    throw new UsageError(`${option} ${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
}

async function loadCode(opts: ExecOptions, bits: 16 | 32 | 64, load: number): Promise<Uint8Array> {
  const given = (["code", "file", "asm"] as const).filter((k) => opts[k] !== undefined);
  if (given.length !== 1) {
    throw new UsageError(
      given.length === 0
        ? "no guest code: give exactly one of --code HEX, --file PATH or --asm PATH"
        : `give exactly one of --code, --file or --asm (got ${given.map((g) => `--${g}`).join(" and ")})`,
    );
  }
  let code: Uint8Array;
  if (opts.code !== undefined) code = parseHexBytes("--code", opts.code);
  else if (opts.file !== undefined) code = await readInput("--file", opts.file, Deno.readFile);
  else {
    const path = opts.asm!;
    const source = await readInput("--asm", path, Deno.readTextFile);
    try {
      code = assemble(source, { bits, origin: load }).bytes;
    } catch (e) {
      if (e instanceof AsmError) throw new UsageError(`${path}:${e.line}:${e.col}: ${e.detail}`);
      throw e;
    }
  }
  if (code.length === 0) {
    throw new UsageError(
      `${given[0] === "code" ? "--code" : `--${given[0]} ${opts[given[0]!]}`}: no guest code (0 bytes)`,
    );
  }
  return code;
}

/** Validate the options into an {@link ExecSpec} (UsageError on bad input). */
export async function execSpec(opts: ExecOptions): Promise<ExecSpec> {
  const { mode, bits } = parseMode(opts.mode);
  const mem = parseSize("--mem", opts.mem);
  const minMem = mode === "real" ? 64 << 10 : 2 << 20;
  if (mem % 4096 !== 0 || mem < minMem || mem > MAX_MEM) {
    throw new UsageError(
      `--mem ${opts.mem}: expected a multiple of 4K from ${minMem >> 10}K to ${MAX_MEM >> 20}M in ${mode} mode`,
    );
  }
  const load = Number(parseUint("--load", opts.load, 32));
  const code = await loadCode(opts, bits, load);
  const top = mode === "real" ? Math.min(mem, 0x10000) : mem - RESERVED_SIZE;
  if (load + code.length > top) {
    throw new UsageError(
      `--load ${opts.load}: ${code.length} bytes of code at 0x${load.toString(16)} end beyond 0x${top.toString(16)} ` +
        `(expected the code ${
          mode === "real"
            ? "below 64 KiB and inside RAM (real mode, CS = 0)"
            : "below the tables in the last 1 MiB of RAM"
        })`,
    );
  }
  const spec: ExecSpec = {
    mode,
    code,
    load,
    mem,
    set: parseSet(opts.set),
    ins: parseMap("--in", opts.in, "port", 16, 32),
    msrs: parseMap("--msr", opts.msr, "MSR index", 32, 64),
    maxExits: parseCount("--max-exits", opts.maxExits, 1),
    singleStep: opts.singleStep ?? false,
  };
  const withBackend = withBackendSpec(spec, opts);
  return opts.maxInsns === undefined
    ? withBackend
    : { ...withBackend, maxInsns: parseCount("--max-insns", opts.maxInsns, 1) };
}

/** --backend and --timeout (kvm: no instruction limit, a KVM_RUN watchdog). */
function withBackendSpec(spec: ExecSpec, opts: ExecOptions): ExecSpec {
  const backend = opts.backend ?? "sim";
  if (backend !== "sim" && backend !== "kvm") {
    throw new UsageError(`--backend ${backend}: expected sim or kvm`);
  }
  if (backend === "kvm" && opts.maxInsns !== undefined) {
    throw new UsageError(`--max-insns ${opts.maxInsns}: the kvm backend cannot count instructions (use --max-exits)`);
  }
  const timeoutMs = parseCount("--timeout", opts.timeout ?? "10000", 1);
  return backend === "kvm" ? { ...spec, backend, timeoutMs } : { ...spec, backend };
}

/** The readable report. */
export function execReport(r: ExecResult): string {
  const lines = [`exits (${r.exits.length}):`];
  const w = String(r.exits.length).length;
  r.exits.forEach((e, i) => lines.push(`  ${String(i + 1).padStart(w)}  ${exitLine(e)}`));
  lines.push(`stop: ${r.stop}`, "regs:");
  const names = KVM_REGS_NAMES;
  for (let i = 0; i < names.length; i += 4) {
    lines.push(`  ${names.slice(i, i + 4).map((n) => `${n.padEnd(6)} ${r.regs[n].padStart(18)}`).join("  ")}`);
  }
  lines.push(`instructions: ${r.instructions ?? "not counted (kvm)"}`);
  return lines.join("\n");
}

const HELP_AFTER = `
Guest setup:
  All GPRs (RSP too) are 0, RFLAGS 0x2, RIP = --load.
  long       the low 4 GiB identity-mapped with 2 MiB pages (MMIO below 4 GiB is
             reachable); page tables, GDT, IDT (256 not-present gates: an
             exception ends in shutdown) and TSS in the last 1 MiB of RAM, so a
             stack below them is e.g. --set rsp=0xf00000 with --mem 16M
  protected  flat 4 GiB 32-bit segments, paging off, tables as in long mode
  real       CS = 0 and IP = --load; every segment register 0
  --asm assembles with bits 16/32/64 (real/protected/long) and origin --load.

Exits (no devices are attached; every exit is answered and recorded):
  IN         the --in value for the port (low size bytes, every element of a
             string IN), all-ones otherwise; OUT is dropped
  MMIO       reads all-ones, writes dropped
  RDMSR      of an unknown MSR: the --msr value, otherwise an error (#GP);
             WRMSR to an --msr index is accepted and dropped, others fail
  hypercall  KVM_HC_MAP_GPA_RANGE exits and gets -KVM_ENOSYS
  debug      (--single-step) resumed
  The run ends at hlt, shutdown, system_event, internal_error (or another
  stopping exit) or a limit. After a max-exits stop the last answered exit is
  completed (immediate_exit) before the registers are read. Without
  --max-insns a guest that loops without exiting runs until interrupted.

--json prints {"exits": [...], "stop": "...", "regs": {...}, "instructions": N}:
  {"reason":"io","direction":"out","port":"0x3f8","size":1,"count":1,"data":"0x41"}
  {"reason":"io","direction":"in","port":"0x60","size":2,"count":2,"data":["0xbeef","0xbeef"]}
  {"reason":"mmio","phys_addr":"0xd0000000","len":4,"is_write":true,"data":"0x12345678"}
  {"reason":"hlt"}  {"reason":"shutdown"}
  {"reason":"debug","exception":1,"pc":"0x1001","dr6":"0xffff4ff0","dr7":"0x400"}
  {"reason":"x86_rdmsr","msr_reason":2,"msr_reason_name":"KVM_MSR_EXIT_REASON_UNKNOWN",
   "index":"0x1234","data":"0x0","error":true}
  {"reason":"hypercall","nr":"0xc","args":[...6],"flags":"0x1","long_mode":true,"ret":"0x..."}
  {"reason":"internal_error","suberror":1,"suberror_name":"KVM_INTERNAL_ERROR_EMULATION",
   "ndata":N,"data":[...],"insn_bytes":"0f0b"}
  {"reason":"system_event","type":1,"type_name":"KVM_SYSTEM_EVENT_SHUTDOWN","ndata":N,"data":[...]}
  Addresses, values and registers are lowercase 0x hex strings; size, count,
  len, suberror, type, exception and instructions are numbers. data is the
  little-endian value (for IN and MMIO reads: the answer given); a string IN
  batch (count > 1; string OUT is one element per exit, as on KVM) gives an
  array with one hex string per element. stop is the reason
  of the last exit, or max-exits / max-insns / timeout (kvm watchdog).
  With --backend kvm, instructions is null (KVM does not count them) and
  --max-insns is refused.

Examples:
  kvmsim exec --code b041e6e9f4 --json          # mov al,0x41; out 0xe9,al; hlt
  kvmsim exec --mode real --asm boot.s --in 0x60=0x1c
  kvmsim exec --file guest.bin --set rcx=10 --max-insns 1000`;

/** A command with exec's options (`kvmsim exec`, `kvmsim diff`). */
export function withExecOptions(name: string) {
  return new Command(name)
    .option("--mode <mode>", "real | protected | long", "long")
    .option("--code <hex>", "guest code as hex bytes, e.g. b041e6e9f4")
    .option("--file <path>", "guest code as a flat binary file")
    .option("--asm <path>", "guest code as Intel-syntax assembly (kvmsim's assembler)")
    .option("--load <gpa>", "guest physical address of the code and initial RIP", "0x1000")
    .option("--mem <size>", "guest RAM at GPA 0 (suffix K, M or G)", "16M")
    .option("--set <reg=value>", "initial register value (repeatable): rax..r15, rip, rflags", collect)
    .option("--in <port=value>", "answer IN from this port with value (repeatable)", collect)
    .option("--msr <index=value>", "answer RDMSR of this MSR index with value (repeatable)", collect)
    .option("--max-exits <n>", "stop after this many exits", "10000")
    .option("--max-insns <n>", "stop after this many instructions")
    .option("--single-step", "KVM_GUESTDBG_SINGLESTEP: a debug exit after every instruction")
    .option("--json", "print one JSON object")
    .option("--backend <name>", "sim (the simulator) | kvm (the host's /dev/kvm)", "sim")
    .option("--timeout <ms>", 'kvm: watchdog per KVM_RUN; the run stops with "timeout"', "10000");
}

export function execCommand(): Command {
  return withExecOptions("exec")
    .description("run raw guest code in a fresh VM (no devices) and report its exits and registers")
    .addHelpText("after", HELP_AFTER)
    .action(async (opts) => {
      const result = execGuest(
        await execSpec({ ...opts, set: opts.set ?? [], in: opts.in ?? [], msr: opts.msr ?? [] }),
      );
      console.log(opts.json ? JSON.stringify(result) : execReport(result));
    });
}
