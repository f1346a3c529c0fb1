/**
 * Run the real `kvmsim` process (`deno run -A cli.ts …`) for the CLI tests.
 *
 * @module
 */
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `kvmsim ...args` and collect its exit code and output. */
export async function kvmsim(args: readonly string[], cwd = ROOT): Promise<CliResult> {
  const env = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete (env as Record<string, string | undefined>).RUST_BACKTRACE;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CLI, ...args],
    cwd,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `kvmsim exec ...args --json`, parsed; fails with the process output when it did not exit 0. */
export async function execJson(args: readonly string[]): Promise<ExecJson> {
  const r = await kvmsim(["exec", ...args, "--json"]);
  if (r.code !== 0) throw new Error(`kvmsim exec ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ExecJson;
}

/**
 * `kvmsim bench ...args --json`: the parsed results object and the terminal
 * table (stderr); fails with the process output when it did not exit 0.
 */
// deno-lint-ignore no-explicit-any
export async function benchJson(args: readonly string[]): Promise<{ json: any; stderr: string }> {
  const r = await kvmsim(["bench", ...args, "--json"]);
  if (r.code !== 0) throw new Error(`kvmsim bench ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return { json: JSON.parse(r.stdout), stderr: r.stderr };
}

export interface ExecJson {
  exits: Array<{ reason: string; [k: string]: unknown }>;
  stop: string;
  regs: Record<string, string>;
  instructions: number;
}

/**
 * The `regs` keys of `kvmsim exec --json`, in the contract's order (struct kvm_regs).
 * Written out here on purpose, not imported from src/, so the CLI's order is checked.
 */
export const REG_NAMES = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
];
