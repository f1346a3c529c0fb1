/**
 * Scaling: for n = 1 … N, one VM with n vCPUs, each vCPU running the io-out
 * loop (`out dx, al; jmp`) in its own Worker (bench/scaling_worker.ts) with
 * its TypeScript exit handler in that Worker. All n start together (a
 * generation word in shared memory, Atomics.notify) and stop together (a stop
 * word); each Worker checks its own counts and bytes, the main thread checks
 * every vCPU's retired-instruction count in the shared state block.
 *
 * Every n keeps its VM and Workers for the whole measurement and the rounds
 * are interleaved (1, 2, …, N, then N, …, 1, …), so every n sees the same
 * machine load. Reported per n: the aggregate exits/s (sum of the vCPUs'
 * rates; median over rounds, min/max), each vCPU's median rate, the speedup
 * over one vCPU and the efficiency = aggregate / (n · single), both as the
 * median of the ratios of rounds measured back to back.
 *
 * On a shared machine those wall-clock numbers measure the load too (with
 * sched_autogroup, all threads of this process share one session's CPU
 * share), so each row also says how much CPU the vCPU threads got
 * (/proc/thread-self/schedstat), their exits per CPU-second relative to one
 * vCPU, and — from each Worker's chunk timeline (bench/scaling_overlap.ts) —
 * their exits/s while all n were on a CPU at once relative to one vCPU's
 * unpreempted rate: the efficiency kvmsim itself would show on n free cores.
 *
 * @module
 */
import { MAX_VCPUS } from "../src/abi/vcpu_state.ts";
import { assemble } from "../src/asm/x86.ts";
import type { Vcpu } from "../src/vcpu.ts";
import { vcpuHandle } from "../src/vcpu_thread.ts";
import type { Vm } from "../src/vm.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import { BENCH_BYTE, BENCH_PORT, LOAD } from "./paths.ts";
import type { ResultRow } from "./report.ts";
import { medianOf, MIN_SIMULTANEOUS_CHUNKS, type Overlap, overlapOf } from "./scaling_overlap.ts";
import { CHUNK, CONTROL_WORDS, type FromWorker, GO, STOP, TIMELINE_CAP, type ToWorker } from "./scaling_protocol.ts";
import { formatRate, median, nsPerUnit, summarize } from "./stats.ts";

/** Path family of the scaling rows (`scaling-io-out/1-vcpu`, `scaling-io-out/2-vcpus`, …). */
export const SCALING_FAMILY = "scaling-io-out";
/** The tracking issue's target: two vCPUs do at least 1.8× the exits of one. */
export const SPEEDUP_TARGET_2 = 1.8;

/** The row id for `n` vCPUs. */
export function scalingPathId(n: number): string {
  return `${SCALING_FAMILY}/${n}-vcpu${n === 1 ? "" : "s"}`;
}

/** Whether each vCPU writes its own port (BENCH_PORT + index) or all write BENCH_PORT. */
export type PortMode = "own" | "same";

export interface ScalingOptions {
  /** Largest n (default: navigator.hardwareConcurrency). */
  readonly maxVcpus: number;
  readonly ports: PortMode;
}

export const SCALING_USAGE =
  `  --max-vcpus N       scaling rows for 1..N vCPUs, one Worker each (default: hardware threads, here ${defaultMaxVcpus()})
  --scaling-ports own|same  each vCPU writes its own port (default) or all the same port`;

function defaultMaxVcpus(): number {
  const n = globalThis.navigator?.hardwareConcurrency;
  return Number.isInteger(n) && n! >= 1 ? Math.min(n!, MAX_VCPUS) : 1;
}

/** Take `--max-vcpus N` and `--scaling-ports MODE` (also `--opt=value`) out of `args`. Throws RangeError on bad values. */
export function splitScalingOptions(args: readonly string[]): { rest: string[]; scaling: ScalingOptions } {
  const rest: string[] = [];
  let maxVcpus = defaultMaxVcpus();
  let ports: PortMode = "own";
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (name !== "--max-vcpus" && name !== "--scaling-ports") {
      rest.push(a);
      continue;
    }
    const v = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined) throw new RangeError(`${name}: expected a value`);
    if (name === "--max-vcpus") {
      const n = Number(v);
      if (v.trim() === "" || !Number.isInteger(n) || n < 1 || n > MAX_VCPUS) {
        throw new RangeError(`--max-vcpus ${JSON.stringify(v)}: expected an integer 1..${MAX_VCPUS}`);
      }
      maxVcpus = n;
    } else {
      if (v !== "own" && v !== "same") {
        throw new RangeError(`--scaling-ports ${JSON.stringify(v)}: expected own or same`);
      }
      ports = v;
    }
  }
  return { rest, scaling: { maxVcpus, ports } };
}

/** Whether `filter` (undefined: everything) selects the scaling rows: it matches one of their ids. */
export function scalingSelected(filter: RegExp | undefined, maxVcpus: number): boolean {
  if (filter === undefined) return true;
  for (let n = 1; n <= maxVcpus; n++) if (filter.test(scalingPathId(n))) return true;
  return false;
}

/** The guest of every vCPU: rdx = its port, al = its byte (set per vCPU). */
export const SCALING_ASM = `
top:
  out dx, al
  jmp top
`;

/** vCPU `index`'s port and byte (distinct bytes, so a Worker that saw another vCPU's exit fails its check). */
export function portAndByte(index: number, ports: PortMode): { port: number; byte: number } {
  return { port: ports === "own" ? BENCH_PORT + index : BENCH_PORT, byte: (BENCH_BYTE + index) & 0xff };
}

/** One vCPU's share of a round. */
export interface VcpuRound {
  readonly exits: number;
  readonly ms: number;
  /** exits/s over the Worker's own timed window. */
  readonly rate: number;
  /** The Worker thread's on-CPU and runqueue-wait time in the round (null where /proc is unreadable). */
  readonly cpuMs: number | null;
  readonly waitMs: number | null;
}

/** One round of a group: each vCPU's share and what they did while all ran at once. */
export interface RoundResult {
  readonly vcpus: readonly VcpuRound[];
  readonly overlap: Overlap;
}

/** A scaling failure: a Worker's check, an unexpected exit, or a mismatch seen from the main thread. */
export class ScalingError extends Error {
  constructor(readonly vcpus: number, detail: string) {
    super(`${scalingPathId(vcpus)}: ${detail}`);
    this.name = "ScalingError";
  }
}

type Waiter = { want: (m: FromWorker) => boolean; got: (FromWorker | undefined)[]; done: () => void };

/** One VM with `n` vCPUs, each attached in its own Worker. */
export class ScalingGroup {
  readonly #workers: Worker[] = [];
  readonly #timelines: SharedArrayBuffer[] = [];
  readonly #control: Int32Array;
  #waiter: Waiter | undefined;
  #failure: ScalingError | undefined;
  #fail: ((e: ScalingError) => void) | undefined;
  #gen = 0;

  private constructor(readonly n: number, readonly vm: Vm, readonly vcpus: readonly Vcpu[]) {
    this.#control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  }

  /** Create the VM and its vCPUs, start the Workers and wait until every one is attached and primed. */
  static async start(n: number, ports: PortMode, module?: WebAssembly.Module): Promise<ScalingGroup> {
    const { bytes } = assemble(SCALING_ASM, { bits: 64, origin: LOAD });
    const { vm, vcpu, layout } = createVmWithOneVcpu(module ? { code: bytes, module } : { code: bytes });
    const sregs = vcpu.getSregs();
    const regs0 = vcpu.getRegs();
    const vcpus = [vcpu];
    for (let i = 1; i < n; i++) {
      const v = vm.addVcpu(i);
      v.setSregs(sregs);
      v.setRegs(regs0);
      vcpus.push(v);
    }
    vcpus.forEach((v, i) => {
      const { port, byte } = portAndByte(i, ports);
      // Each vCPU its own 64 KiB of stack below the tables (the loop uses none; a fault would).
      v.setRegs({ rdx: BigInt(port), rax: BigInt(byte), rsp: BigInt(layout.stackTop! - i * 0x10000) });
    });
    const g = new ScalingGroup(n, vm, vcpus);
    try {
      await g.#spawn(ports);
    } catch (e) {
      g.close();
      throw e;
    }
    return g;
  }

  async #spawn(ports: PortMode): Promise<void> {
    const ready = this.#collect((m) => m.kind === "ready");
    for (let i = 0; i < this.n; i++) {
      const w = new Worker(new URL("./scaling_worker.ts", import.meta.url), { type: "module" });
      w.onmessage = (e: MessageEvent<FromWorker>) => this.#receive(e.data);
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#abort(`worker ${i}: ${e.message}`);
      };
      this.#workers.push(w);
      const { port, byte } = portAndByte(i, ports);
      const timeline = new SharedArrayBuffer((TIMELINE_CAP + 1) * 8);
      this.#timelines.push(timeline);
      const msg: ToWorker = {
        kind: "attach",
        index: i,
        handle: vcpuHandle(this.vm, this.vcpus[i]!),
        port,
        byte,
        control: this.#control.buffer as SharedArrayBuffer,
        timeline,
      };
      w.postMessage(msg);
    }
    await ready;
  }

  #receive(m: FromWorker): void {
    if (m.kind === "error") return this.#abort(m.message);
    const w = this.#waiter;
    if (!w || !w.want(m)) return this.#abort(`unexpected message ${JSON.stringify(m)}`);
    if (m.index < 0 || m.index >= this.n || w.got[m.index] !== undefined) {
      return this.#abort(`message from vcpu ${m.index} out of turn: ${JSON.stringify(m)}`);
    }
    w.got[m.index] = m;
    if (w.got.every((x) => x !== undefined)) {
      this.#waiter = undefined;
      w.done();
    }
  }

  #abort(detail: string): void {
    const e = new ScalingError(this.n, detail);
    this.#failure ??= e;
    this.#waiter = undefined;
    this.#fail?.(e);
  }

  /** A promise of one matching message from every Worker. */
  #collect(want: (m: FromWorker) => boolean): Promise<FromWorker[]> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const got: (FromWorker | undefined)[] = new Array(this.n).fill(undefined);
      this.#fail = reject;
      this.#waiter = { want, got, done: () => resolve(got as FromWorker[]) };
    });
  }

  /** One timed round of about `durationMs`: release every Worker at once, stop them together, check. */
  async round(durationMs: number): Promise<RoundResult> {
    const gen = ++this.#gen;
    const results = this.#collect((m) => m.kind === "round" && m.gen === gen);
    Atomics.store(this.#control, GO, gen);
    Atomics.notify(this.#control, GO);
    await new Promise((r) => setTimeout(r, durationMs));
    Atomics.store(this.#control, STOP, gen);
    const msgs = await results;
    const vcpus = msgs.map((m, i) => {
      if (m.kind !== "round") throw new ScalingError(this.n, `vcpu ${i}: expected a round result, got ${m.kind}`);
      const seen = this.vcpus[i]!.instructions;
      if (seen !== m.instructionsAfter) {
        throw new ScalingError(
          this.n,
          `vcpu ${i}: the shared state block shows ${seen} instructions retired, its Worker reported ${m.instructionsAfter}`,
        );
      }
      if (!(m.exits > 0 && m.ms > 0)) {
        throw new ScalingError(this.n, `vcpu ${i}: ${m.exits} exits in ${m.ms} ms: expected work in a positive time`);
      }
      return { exits: m.exits, ms: m.ms, rate: (m.exits * 1000) / m.ms, cpuMs: m.cpuMs, waitMs: m.waitMs };
    });
    const timelines = msgs.map((m, i) => ({
      ends: new Float64Array(this.#timelines[i]!, 0, (m.kind === "round" ? m.chunks : 0) + 1).slice(),
    }));
    return { vcpus, overlap: overlapOf(timelines, CHUNK) };
  }

  /** Tell the Workers to quit and terminate them. */
  close(): void {
    Atomics.store(this.#control, GO, -1);
    Atomics.notify(this.#control, GO);
    for (const w of this.#workers) w.terminate();
    this.#workers.length = 0;
  }
}

/** Extra fields of a scaling row (the row is a valid {@link ResultRow} besides). */
export interface ScalingFields {
  readonly vcpus: number;
  readonly ports: PortMode;
  /** Median rate of each vCPU (index = vCPU id). */
  readonly per_vcpu_exits_per_s: readonly number[];
  /** Median over rounds of aggregate(n) / aggregate(1) of the neighbouring single-vCPU round. */
  readonly speedup: number;
  /** speedup / n. */
  readonly efficiency: number;
  readonly speedup_target?: number;
  readonly meets_speedup_target?: boolean;
  /**
   * From the Workers' chunk timelines (bench/scaling_overlap.ts), medians over rounds: a vCPU's exits/s in
   * chunks it ran unpreempted, the share of that time all n threads ran at once, and the median exits/s of
   * those simultaneous chunks (pooled over rounds) relative to one vCPU's unpreempted chunks (pooled over its
   * rounds): the efficiency on n free cores (null with fewer than MIN_SIMULTANEOUS_CHUNKS such chunks).
   */
  readonly clean_exits_per_s: number | null;
  readonly simultaneous_share: number | null;
  readonly simultaneous_efficiency: number | null;
  /**
   * CPU accounting of the vCPU threads (/proc/thread-self/schedstat; null where unreadable), medians over rounds:
   * cores the n threads got on average (Σ on-CPU / wall), cores' worth they spent runnable but waiting,
   * exits per CPU-second, and that rate relative to one vCPU's (scaling with contention factored out).
   */
  readonly cores_used: number | null;
  readonly cores_waiting: number | null;
  readonly exits_per_cpu_s: number | null;
  readonly efficiency_per_cpu_s: number | null;
  /** /proc/loadavg's 1-minute load before and after the scaling measurement (null where unreadable). */
  readonly loadavg_1m: readonly [number | null, number | null];
}

export type ScalingRow = ResultRow & { readonly exits_per_s: number; readonly ns_per_exit: number } & ScalingFields;

export interface ScalingSettings {
  readonly maxVcpus: number;
  readonly ports: PortMode;
  readonly durationMs: number;
  readonly runs: number;
  readonly warmup: number;
  readonly module?: WebAssembly.Module;
  readonly log?: (line: string) => void;
  readonly progress?: (line: string) => void;
}

function loadavg1(): number | null {
  try {
    const v = Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Measure n = 1 … maxVcpus, interleaved; returns one row per n. */
export async function runScaling(s: ScalingSettings): Promise<ScalingRow[]> {
  const ns = Array.from({ length: s.maxVcpus }, (_, i) => i + 1);
  const load0 = loadavg1();
  const groups: ScalingGroup[] = [];
  try {
    for (const n of ns) groups.push(await ScalingGroup.start(n, s.ports, s.module));
    const aggregate: number[][] = ns.map(() => []);
    const cpu: (CpuRound | null)[][] = ns.map(() => []);
    const overlaps: Overlap[][] = ns.map(() => []);
    const perVcpu: number[][][] = ns.map((n) => Array.from({ length: n }, () => []));
    for (let r = 0; r < s.warmup + s.runs; r++) {
      const order = r % 2 === 0 ? groups : [...groups].reverse();
      for (const g of order) {
        s.progress?.(`${scalingPathId(g.n)}: ${r < s.warmup ? "warm-up" : `run ${r - s.warmup + 1}/${s.runs}`}`);
        const { vcpus: round, overlap } = await g.round(s.durationMs);
        if (r < s.warmup) continue;
        overlaps[g.n - 1]!.push(overlap);
        aggregate[g.n - 1]!.push(round.reduce((t, v) => t + v.rate, 0));
        round.forEach((v, i) => perVcpu[g.n - 1]![i]!.push(v.rate));
        cpu[g.n - 1]!.push(cpuRound(round));
      }
    }
    s.progress?.("");
    const load1 = loadavg1();
    const single = aggregate[0]!;
    return ns.map((n) => {
      const agg = summarize(aggregate[n - 1]!);
      const speedup = median(aggregate[n - 1]!.map((a, r) => a / single[r]!));
      const c = cpuSummary(cpu[n - 1]!, cpu[0]!);
      const o = overlapSummary(overlaps[n - 1]!, overlaps[0]!);
      const target = n === 2
        ? { speedup_target: SPEEDUP_TARGET_2, meets_speedup_target: speedup >= SPEEDUP_TARGET_2 }
        : {};
      const row: ScalingRow = {
        path: scalingPathId(n),
        engine: "kvmsim",
        unit: "exits",
        loop: "switch",
        description: `${n} vCPU${n === 1 ? "" : "s"} of one VM, each \`out dx, al; jmp\` (${
          s.ports === "own" ? "own port" : "same port"
        }) → KVM_EXIT_IO → runRaw + switch → TS handler, in its own Worker; aggregate exits/s`,
        exits_per_s: agg.median,
        ns_per_exit: nsPerUnit(agg.median),
        min: agg.min,
        max: agg.max,
        runs: agg.runs,
        samples: agg.samples,
        vcpus: n,
        ports: s.ports,
        per_vcpu_exits_per_s: perVcpu[n - 1]!.map((xs) => median(xs)),
        speedup,
        efficiency: speedup / n,
        ...target,
        ...c,
        ...o,
        loadavg_1m: [load0, load1],
      };
      s.log?.(
        `  ${row.path}: ${formatRate(row.min)} … ${formatRate(row.max)} exits/s aggregate over ${row.runs} runs`,
      );
      return row;
    });
  } finally {
    for (const g of groups) g.close();
  }
}

function overlapSummary(
  rounds: readonly Overlap[],
  single: readonly Overlap[],
): Pick<ScalingFields, "clean_exits_per_s" | "simultaneous_share" | "simultaneous_efficiency"> {
  const clean = rounds.map((r) => r.cleanRate).filter((x): x is number => x !== null);
  // Pooled over the (interleaved) rounds: a round has few simultaneous chunks when the machine is busy.
  const together = medianOf(rounds.flatMap((r) => r.simultaneousRates));
  const one = medianOf(single.flatMap((r) => r.cleanRates));
  const count = rounds.reduce((t, r) => t + r.simultaneousRates.length, 0);
  return {
    clean_exits_per_s: clean.length ? median(clean) : null,
    simultaneous_share: rounds.length ? median(rounds.map((r) => r.simultaneousShare)) : null,
    simultaneous_efficiency: together !== null && one !== null && count >= MIN_SIMULTANEOUS_CHUNKS
      ? together / one
      : null,
  };
}

/** One round's CPU accounting over all of a VM's vCPU threads. */
interface CpuRound {
  readonly coresUsed: number;
  readonly coresWaiting: number;
  readonly exitsPerCpuS: number;
}

function cpuRound(round: readonly VcpuRound[]): CpuRound | null {
  let cpuMs = 0, waitMs = 0, exits = 0, wall = 0;
  for (const v of round) {
    if (v.cpuMs === null || v.waitMs === null || !(v.cpuMs > 0)) return null;
    cpuMs += v.cpuMs;
    waitMs += v.waitMs;
    exits += v.exits;
    wall = Math.max(wall, v.ms);
  }
  return { coresUsed: cpuMs / wall, coresWaiting: waitMs / wall, exitsPerCpuS: (exits * 1000) / cpuMs };
}

function cpuSummary(
  rounds: readonly (CpuRound | null)[],
  single: readonly (CpuRound | null)[],
): Pick<ScalingFields, "cores_used" | "cores_waiting" | "exits_per_cpu_s" | "efficiency_per_cpu_s"> {
  if (rounds.some((r) => r === null) || single.some((r) => r === null) || rounds.length === 0) {
    return { cores_used: null, cores_waiting: null, exits_per_cpu_s: null, efficiency_per_cpu_s: null };
  }
  const rs = rounds as CpuRound[], ss = single as CpuRound[];
  return {
    cores_used: median(rs.map((r) => r.coresUsed)),
    cores_waiting: median(rs.map((r) => r.coresWaiting)),
    exits_per_cpu_s: median(rs.map((r) => r.exitsPerCpuS)),
    efficiency_per_cpu_s: median(rs.map((r, i) => r.exitsPerCpuS / ss[i]!.exitsPerCpuS)),
  };
}

/** The scaling table: n, aggregate, each vCPU, speedup, efficiency, target. */
export function formatScalingTable(rows: readonly ScalingRow[]): string {
  const head = [
    "vcpus",
    "aggregate /s",
    "ns/exit",
    "per vCPU /s",
    "speedup",
    "efficiency",
    "target",
    "cores used",
    "cores waiting",
    "per CPU-s eff.",
    "simult. share",
    "simult. eff.",
  ];
  const opt = (x: number | null, f: (x: number) => string) => (x === null ? "-" : f(x));
  const body = rows.map((r) => [
    String(r.vcpus),
    `${formatRate(r.exits_per_s)} exits`,
    r.ns_per_exit.toFixed(1),
    r.per_vcpu_exits_per_s.map(formatRate).join(", "),
    `${r.speedup.toFixed(2)}x`,
    `${(r.efficiency * 100).toFixed(1)}%`,
    r.speedup_target === undefined
      ? "-"
      : `>= ${r.speedup_target.toFixed(1)}x ${r.meets_speedup_target ? "ok" : "MISSED"}`,
    opt(r.cores_used, (x) => x.toFixed(2)),
    opt(r.cores_waiting, (x) => x.toFixed(2)),
    opt(r.efficiency_per_cpu_s, (x) => `${(x * 100).toFixed(1)}%`),
    r.vcpus === 1 ? "-" : opt(r.simultaneous_share, (x) => `${(x * 100).toFixed(1)}%`),
    r.vcpus === 1 ? "-" : opt(r.simultaneous_efficiency, (x) => `${(x * 100).toFixed(1)}%`),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 3 || i === 6 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ").trimEnd();
  const load = rows[0]?.loadavg_1m;
  const note = load
    ? `load average (1 min) ${load[0] ?? "unknown"} before, ${load[1] ?? "unknown"} after; cores used/waiting: ` +
      `the vCPU threads' on-CPU and runnable-but-waiting time per wall second; per CPU-s eff.: exits per CPU-second vs one vCPU; ` +
      `simult.: share of unpreempted time all n threads ran at once, and their exits/s then vs one vCPU's unpreempted rate`
    : "";
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line), note, ...starved(rows)].join("\n")
    .trimEnd();
}

/** Whether the kernel shares CPU per session (autogroup): all of a process's threads then share one session's share. */
function autogroup(): boolean {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/sched_autogroup_enabled").trim() === "1";
  } catch {
    return false;
  }
}

/** A warning for each n whose threads got much less than n cores: then the speedup measures the machine's load. */
function starved(rows: readonly ScalingRow[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.vcpus < 2 || r.cores_used === null || r.cores_used >= 0.9 * r.vcpus) continue;
    out.push(
      `warning: the ${r.vcpus} vCPU threads got ${r.cores_used.toFixed(2)} cores (waited ${
        r.cores_waiting?.toFixed(2)
      }): other load bounds the speedup; per CPU-second they did ${
        ((r.efficiency_per_cpu_s ?? 0) * 100).toFixed(1)
      }% of one vCPU's exits and ${
        r.simultaneous_efficiency === null ? "-" : `${(r.simultaneous_efficiency * 100).toFixed(1)}%`
      } while all ran at once${
        autogroup() ? " (sched_autogroup is on: all threads of this process share one session's CPU share)" : ""
      }`,
    );
  }
  return out;
}

/** Whether `row` is a scaling row. */
export function isScalingRow(row: ResultRow): row is ScalingRow {
  return typeof (row as Partial<ScalingFields>).vcpus === "number";
}
