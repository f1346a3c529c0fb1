/**
 * `kvmsim diff <exec arguments>`: run the same guest on the simulator and on
 * the host's KVM (`kvmsim exec --backend sim|kvm`) and print the first
 * divergence — exit index, field, both values — or "identical". Exit code 0
 * when identical, 1 on a divergence, 2 on bad input.
 *
 * Compared, in order: every exit (by index, every field of its JSON form),
 * then `stop`, then the registers in kvm_regs order. `instructions` is not
 * compared (KVM does not count instructions).
 *
 * @module
 */
import { Command } from "commander";
import { KVM_REGS_NAMES } from "../x86/regs.ts";
import { UsageError } from "./errors.ts";
import { execSpec, withExecOptions } from "./exec.ts";
import { execGuest, type ExecResult } from "./exec_guest.ts";

/** Where the two runs first differ. `exit` is the 1-based exit index, absent for stop/regs. */
export interface Divergence {
  readonly exit?: number;
  readonly field: string;
  readonly sim: unknown;
  readonly kvm: unknown;
}

const show = (v: unknown) => (v === undefined ? "(absent)" : JSON.stringify(v));

/** The first difference between a sim and a kvm run, or undefined when they agree. */
export function firstDivergence(sim: ExecResult, kvm: ExecResult): Divergence | undefined {
  const n = Math.max(sim.exits.length, kvm.exits.length);
  for (let i = 0; i < n; i++) {
    const a = sim.exits[i] as Record<string, unknown> | undefined;
    const b = kvm.exits[i] as Record<string, unknown> | undefined;
    if (!a || !b) return { exit: i + 1, field: "reason", sim: a?.reason ?? "(no exit)", kvm: b?.reason ?? "(no exit)" };
    const keys = [...new Set(["reason", ...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) {
      if (show(a[k]) !== show(b[k])) return { exit: i + 1, field: k, sim: a[k], kvm: b[k] };
    }
  }
  if (sim.stop !== kvm.stop) return { field: "stop", sim: sim.stop, kvm: kvm.stop };
  for (const r of KVM_REGS_NAMES) {
    if (sim.regs[r] !== kvm.regs[r]) return { field: `regs.${r}`, sim: sim.regs[r], kvm: kvm.regs[r] };
  }
  return undefined;
}

/** The one-paragraph report. */
export function diffReport(d: Divergence | undefined, sim: ExecResult, kvm: ExecResult): string {
  if (!d) return `identical (${sim.exits.length} exits, stop ${sim.stop}, registers equal)`;
  const where = d.exit === undefined
    ? `after the exits`
    : `exit ${d.exit} (sim ${sim.exits.length}, kvm ${kvm.exits.length} exits)`;
  return [
    `first divergence: ${where}, field ${d.field}`,
    `  sim: ${show(d.sim)}`,
    `  kvm: ${show(d.kvm)}`,
  ].join("\n");
}

export function diffCommand(): Command {
  const cmd = withExecOptions("diff")
    .description("run guest code on the simulator and on /dev/kvm and print the first divergence (exit 1) or identical")
    .addHelpText(
      "after",
      `
Takes the arguments of \`kvmsim exec\` (see \`kvmsim exec --help\`) except --backend.
Exit code: 0 identical, 1 divergence, 2 bad input; a host without usable
/dev/kvm is an error (exit 1, the message names the device and errno).
--json prints {"identical": bool, "divergence"?: {exit?, field, sim, kvm}, "sim": {...}, "kvm": {...}}.`,
    );
  return cmd.action(async (opts) => {
    if (cmd.getOptionValueSource("backend") === "cli") {
      throw new UsageError(`--backend ${opts.backend}: diff runs both backends (drop --backend)`);
    }
    const base = { ...opts, set: opts.set ?? [], in: opts.in ?? [], msr: opts.msr ?? [] };
    const simSpec = await execSpec({ ...base, backend: "sim" });
    const kvmSpec = await execSpec({ ...base, backend: "kvm" });
    const kvm = execGuest(kvmSpec);
    const sim = execGuest(simSpec);
    const d = firstDivergence(sim, kvm);
    console.log(
      opts.json
        ? JSON.stringify({ identical: d === undefined, ...(d ? { divergence: d } : {}), sim, kvm })
        : diffReport(d, sim, kvm),
    );
    if (d) Deno.exit(1);
  });
}
