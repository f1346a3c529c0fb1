/**
 * Cost of growth (tracking issue 4 §1): VM creation + teardown per second,
 * memory footprint per VM and per vCPU, and IO-out exits/s as guest RAM grows
 * from 1 MiB to 2 GiB (which must stay flat).
 *
 * Ids (matched by `--filter` like the path ids):
 * - `growth/create-teardown-1MiB`, `growth/create-teardown-16MiB`: VMs/s of
 *   createVm + addMemoryRegion (slot 0, GPA 0) + addVcpu(0) + one HLT run
 *   (the VM works) + teardown: vm.close() (removes the vCPU and the region)
 *   and dropping the last reference; V8's GC frees the WebAssembly.Memory later, and that
 *   cost lands inside the timed loop. `rss_after_bytes` shows whether it kept up.
 * - `growth/footprint-1MiB`, `growth/footprint-16MiB`: bench/footprint.ts in
 *   a fresh child process with `--expose-gc`: VmRSS (committed) and VmSize
 *   (reserved address space) per VM and per extra vCPU, `Deno.memoryUsage()`
 *   deltas, and the reserved WebAssembly.Memory byteLength.
 * - `growth/io-out-ram-1MiB` … `growth/io-out-ram-2GiB`: `out dx, al;
 *   add dword [top of RAM], 1; jmp` through runRaw + switch (the io-out/switch
 *   handler), the guest RAM one region of that size at GPA 0. All sizes are
 *   created first and their runs interleaved (round-robin, the order reversed
 *   every other round), so machine noise hits every size alike; flatness =
 *   max / min of the medians, "flat" when at most {@link FLAT_LIMIT}.
 *
 * Where the results go in latest.json: the RAM sweep rows are exit rates, so
 * they are ordinary `rows` (`{path, engine, exits_per_s, ns_per_exit, min,
 * max, runs}`, unit "exits", path `growth/io-out-ram-<size>`). VMs/s and
 * bytes are not exit rates: they go in a separate `growth` object
 * ({@link GrowthResults}: `create_teardown[]`, `footprint[]`, `ram_sweep`).
 *
 * Checks: every created VM runs its HLT; every sweep run checks handler
 * calls = exits, byte sum, retired instructions = 3 × exits, and the guest's
 * counter at the top of RAM (read by the host through the memslot) = exits.
 *
 * The sweep's guests are in long mode like the paths, but set up here with
 * the page tables and GDT low (at {@link TABLES}): setupLongMode puts them
 * in the top 1 MiB and so needs at least 2 MiB of RAM.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { assemble } from "../src/asm/x86.ts";
import { ioIsOut, ioPort, ioSingleData } from "../src/exits/decode.ts";
import type { Vcpu } from "../src/vcpu.ts";
import { createVm, type Vm } from "../src/vm.ts";
import { segmentDescriptor, systemDescriptor64, systemSegment } from "../src/x86/descriptors.ts";
import { flatSegment } from "../src/x86/regs.ts";
import { identityMapLow4G, SEL_CODE64, SEL_DATA, SEL_TSS } from "../src/x86/setup.ts";
import { type FootprintResult, liveVm } from "./footprint.ts";
import { BENCH_BYTE, BENCH_PORT, type BenchPath, countByte, LOAD, type Sink } from "./paths.ts";
import { type ResultRow, resultRow } from "./report.ts";
import { median, ratePerSecond, summarize } from "./stats.ts";

const MiB = 1 << 20;
/** Guest RAM sizes of the sweep. */
export const RAM_SWEEP: readonly number[] = [1 * MiB, 16 * MiB, 256 * MiB, 1024 * MiB, 2048 * MiB];
/** Guest RAM sizes of the create/teardown rate. */
export const CREATE_RAM: readonly number[] = [1 * MiB, 16 * MiB];
/** Guest RAM sizes of the footprint measurement. */
export const FOOTPRINT_RAM: readonly number[] = [1 * MiB, 16 * MiB];
/** Live VMs and extra vCPUs per VM of the footprint measurement. */
export const FOOTPRINT_VMS = 16, FOOTPRINT_EXTRA_VCPUS = 3;
/** The sweep is "flat" when max/min of its medians is at most this. */
export const FLAT_LIMIT = 1.1;
/** Long-mode tables (PML4, PDPT, 4 PDs), then GDT, IDT, TSS, below 1 MiB. */
export const TABLES = 0x80000;
const GDT = TABLES + 0x6000, IDT = TABLES + 0x7000, TSS = TABLES + 0x8000;

/** "1MiB", "256MiB", "2GiB". */
export function sizeLabel(bytes: number): string {
  if (bytes % (1 << 30) === 0) return `${bytes / (1 << 30)}GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB}MiB`;
  throw new RangeError(`size ${bytes}: expected a whole number of MiB`);
}

export type GrowthKind = "create-teardown" | "footprint" | "ram-sweep";

/** One selectable growth measurement. */
export interface GrowthItem {
  readonly id: string;
  readonly kind: GrowthKind;
  readonly ramBytes: number;
}

export const GROWTH_ITEMS: readonly GrowthItem[] = [
  ...CREATE_RAM.map((r) => ({
    id: `growth/create-teardown-${sizeLabel(r)}`,
    kind: "create-teardown" as const,
    ramBytes: r,
  })),
  ...FOOTPRINT_RAM.map((r) => ({ id: `growth/footprint-${sizeLabel(r)}`, kind: "footprint" as const, ramBytes: r })),
  ...RAM_SWEEP.map((r) => ({ id: `growth/io-out-ram-${sizeLabel(r)}`, kind: "ram-sweep" as const, ramBytes: r })),
];

/** The growth items whose id matches `filter` (all when undefined). */
export function selectGrowth(filter: RegExp | undefined, items: readonly GrowthItem[] = GROWTH_ITEMS): GrowthItem[] {
  return filter ? items.filter((i) => filter.test(i.id)) : [...items];
}

/** One create/teardown rate. */
export interface CreateTeardownResult {
  readonly id: string;
  readonly ram_bytes: number;
  readonly vcpus: 1;
  /** Median VMs created, run and torn down per second. */
  readonly vm_per_s: number;
  readonly us_per_vm: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
  readonly samples: readonly number[];
  /** VmRSS after the last run (GC has not necessarily caught up). */
  readonly rss_after_bytes: number;
  readonly teardown: string;
}

/** The RAM sweep: medians by size and how flat they are. */
export interface RamSweepResult {
  readonly paths: readonly string[];
  readonly ram_bytes: readonly number[];
  readonly exits_per_s: readonly number[];
  /** max / min of the medians (1 = perfectly flat); null with fewer than two sizes. */
  readonly flatness: number | null;
  readonly flat_limit: number;
  readonly flat: boolean | null;
  /** Run-to-run noise: the median over sizes of max/min of that size's runs (a flatness below it is within noise). */
  readonly noise: number | null;
  /**
   * max / min over sizes of each size's best run. The host's noise only ever slows a run
   * down, so the best run is each size's least disturbed figure; `flat` stays on the medians.
   */
  readonly best_flatness: number | null;
  /** Sizes whose VM could not be created, with the error. */
  readonly failed: readonly { readonly ram_bytes: number; readonly error: string }[];
}

/** The `growth` object of latest.json. */
export interface GrowthResults {
  readonly create_teardown?: readonly CreateTeardownResult[];
  readonly footprint?: readonly (FootprintResult & { readonly id: string })[];
  readonly ram_sweep?: RamSweepResult;
}

export interface GrowthSettings {
  readonly durationMs: number;
  readonly runs: number;
  readonly warmup: number;
  readonly module?: WebAssembly.Module;
  /** The --wasm file, passed to the footprint child. */
  readonly wasm?: string;
  readonly yardstick?: number;
  readonly log?: (line: string) => void;
  readonly progress?: (line: string) => void;
}

/** A growth measurement found the VM not doing what it should. */
export class GrowthCheckError extends Error {
  constructor(readonly id: string, detail: string) {
    super(`${id}: ${detail}`);
    this.name = "GrowthCheckError";
  }
}

function rssBytes(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/^VmRSS:\s+(\d+) kB$/m);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Create, prove and tear down one VM. */
function createAndTeardown(ramBytes: number, module: WebAssembly.Module | undefined): void {
  const vm = liveVm(ramBytes, module);
  vm.close();
}

/** One timed create/teardown run of at least `ms`: VMs per second. */
export function createTeardownRun(ramBytes: number, ms: number, module?: WebAssembly.Module): number {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms || n === 0) {
    createAndTeardown(ramBytes, module);
    n++;
    t = performance.now();
  }
  return ratePerSecond(n, t - t0);
}

export function measureCreateTeardown(item: GrowthItem, s: GrowthSettings): CreateTeardownResult {
  for (let i = 0; i < s.warmup; i++) createTeardownRun(item.ramBytes, s.durationMs, s.module);
  const rates: number[] = [];
  for (let i = 0; i < s.runs; i++) {
    s.progress?.(`${item.id}: run ${i + 1}/${s.runs}`);
    rates.push(createTeardownRun(item.ramBytes, s.durationMs, s.module));
  }
  s.progress?.("");
  const sum = summarize(rates);
  return {
    id: item.id,
    ram_bytes: item.ramBytes,
    vcpus: 1,
    vm_per_s: sum.median,
    us_per_vm: 1e6 / sum.median,
    min: sum.min,
    max: sum.max,
    runs: sum.runs,
    samples: sum.samples,
    rss_after_bytes: rssBytes(),
    teardown: "removeVcpu + removeMemoryRegion + drop the Vm (no Vm.close in the simulator; V8's GC frees the memory)",
  };
}

/** Run bench/footprint.ts in a fresh process (with --expose-gc) and parse its result. */
export async function measureFootprintChild(
  item: GrowthItem,
  opts: { vms?: number; extraVcpus?: number; wasm?: string } = {},
): Promise<FootprintResult & { id: string }> {
  const script = new URL("./footprint.ts", import.meta.url).pathname;
  const args = [
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    script,
    "--vms",
    String(opts.vms ?? FOOTPRINT_VMS),
    "--ram",
    String(item.ramBytes),
    "--vcpus",
    String(opts.extraVcpus ?? FOOTPRINT_EXTRA_VCPUS),
    ...(opts.wasm === undefined ? [] : ["--wasm", opts.wasm]),
  ];
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new GrowthCheckError(
      item.id,
      `footprint child exited ${out.code}: ${new TextDecoder().decode(out.stderr).trim().slice(-500)}`,
    );
  }
  const r = JSON.parse(text) as FootprintResult;
  if (r.per_vm.rss_bytes <= 0 || r.per_vm.wasm_memory_bytes < item.ramBytes || !r.gc) {
    throw new GrowthCheckError(item.id, `implausible footprint ${text}: expected RSS > 0, memory >= RAM, gc run`);
  }
  return { id: item.id, ...r };
}

/** The sweep's guest: OUT, then a dword counter at the top of RAM, then loop. */
export function sweepAsm(ramBytes: number): string {
  return `
  mov edx, ${BENCH_PORT}
  mov eax, ${BENCH_BYTE}
  mov ebx, ${counterGpa(ramBytes)}
top:
  out dx, al
  add dword [rbx], 1
  jmp top
`;
}

/** GPA of the sweep guest's counter: the last 8 bytes of RAM. */
export function counterGpa(ramBytes: number): number {
  return ramBytes - 8;
}

/** The sweep entry for one RAM size, in the path-table shape (for the result row). */
export function sweepPath(ramBytes: number): BenchPath {
  return {
    path: `growth/io-out-ram-${sizeLabel(ramBytes)}`,
    description: `\`out dx, al; add dword [RAM top], 1; jmp\` with ${
      sizeLabel(ramBytes)
    } of guest RAM → KVM_EXIT_IO → runRaw + switch → TS handler`,
    asm: sweepAsm(ramBytes),
    unit: "exits",
    loop: "switch",
    handler: { kind: "pio-out", port: BENCH_PORT, expectByte: BENCH_BYTE, fn: countByte },
    instructionsPerUnit: 3,
  };
}

/** Long mode with tables at {@link TABLES} (the state setupLongMode gives, for RAM of any size ≥ 1 MiB). */
function longModeLow(vm: Vm, vcpu: Vcpu): void {
  identityMapLow4G(vm, TABLES);
  vm.guestView(IDT, 0x2000).fill(0); // IDT (256 not-present gates) and TSS
  const tss = systemDescriptor64(BigInt(TSS), 0x67, 0xb);
  const gdt = [
    0n,
    segmentDescriptor(flatSegment(SEL_CODE64, 0xb, { l: 1, db: 0 })),
    segmentDescriptor(flatSegment(SEL_DATA, 0x3)),
    0n,
    tss[0],
    tss[1],
  ];
  gdt.forEach((e, i) => vm.write64(GDT + 8 * i, e));
  const data = flatSegment(SEL_DATA, 0x3);
  vcpu.setSregs({
    cs: flatSegment(SEL_CODE64, 0xb, { l: 1, db: 0 }),
    ds: data,
    es: { ...data },
    fs: { ...data },
    gs: { ...data },
    ss: { ...data },
    tr: systemSegment(BigInt(TSS), 0x67, 0xb, SEL_TSS),
    ldt: systemSegment(0n, 0xffff, 2, 0, 1),
    gdt: { base: BigInt(GDT), limit: 6 * 8 - 1 },
    idt: { base: BigInt(IDT), limit: 256 * 16 - 1 },
    cr0: 0x80010031n, // PG WP NE ET PE
    cr3: BigInt(TABLES),
    cr4: 0x20n, // PAE
    efer: 0xd00n, // NXE LMA LME
  });
}

/** A sweep VM ready to run, with its step and checks. */
export interface SweepVm {
  readonly path: BenchPath;
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly sink: Sink;
  /** Exits so far (the guest's counter trails it by one: the sample ends right after an OUT). */
  exits: number;
}

/** Create the VM of one sweep size: RAM at GPA 0, long mode, the loop at LOAD. */
export function prepareSweep(ramBytes: number, module?: WebAssembly.Module): SweepVm {
  const path = sweepPath(ramBytes);
  const vm = createVm(module ? { ramPoolSize: ramBytes, module } : { ramPoolSize: ramBytes });
  vm.addMemoryRegion({ slot: 0, gpa: 0, size: ramBytes });
  const vcpu = vm.addVcpu(0);
  longModeLow(vm, vcpu);
  vm.writeGuest(LOAD, assemble(path.asm, { bits: 64, origin: LOAD }).bytes);
  vcpu.setRegs({ rip: BigInt(LOAD), rflags: 2n });
  return { path, vm, vcpu, sink: { calls: 0, sum: 0 }, exits: 0 };
}

function stepSweep(s: SweepVm, n: number): void {
  const { vcpu, sink } = s;
  const run = vcpu.kvmRun;
  for (let i = 0; i < n; i++) {
    const reason = vcpu.runRaw();
    const data = reason === K.KVM_EXIT_IO ? ioSingleData(run) : undefined;
    if (data === undefined || !ioIsOut(run) || ioPort(run) !== BENCH_PORT) {
      throw new GrowthCheckError(
        s.path.path,
        `exit ${reason} at rip 0x${vcpu.getRegs().rip.toString(16)}: expected a one-byte OUT to port 0x${
          BENCH_PORT.toString(16)
        } (KVM_EXIT_IO ${K.KVM_EXIT_IO})`,
      );
    }
    countByte(data, sink);
  }
  s.exits += n;
}

/** One timed sweep run of at least `ms` (chunks doubled while < 5 ms); returns exits/s after checking the work. */
export function sweepRun(s: SweepVm, ms: number): number {
  const calls0 = s.sink.calls, sum0 = s.sink.sum, insns0 = s.vcpu.instructions, exits0 = s.exits;
  let chunk = 1000;
  const t0 = performance.now();
  let t = t0;
  for (;;) {
    const c0 = t;
    stepSweep(s, chunk);
    t = performance.now();
    if (t - t0 >= ms) break;
    if (t - c0 < 5) chunk *= 2;
  }
  const exits = s.exits - exits0, calls = s.sink.calls - calls0, sum = (s.sink.sum - sum0) | 0;
  const insns = s.vcpu.instructions - insns0;
  const id = s.path.path;
  if (calls !== exits) throw new GrowthCheckError(id, `handler called ${calls} times for ${exits} exits`);
  if (sum !== (Math.imul(exits, BENCH_BYTE) | 0)) {
    throw new GrowthCheckError(id, `handler saw byte sum ${sum >>> 0} over ${exits} exits: expected ${exits} × 0x5a`);
  }
  if (insns !== 3 * exits) {
    throw new GrowthCheckError(id, `${insns} instructions retired for ${exits} exits: expected ${3 * exits}`);
  }
  const counter = s.vm.dv.getUint32(s.vm.gpa2hva(counterGpa(s.vm.memoryRegion(0).size)), true);
  if (counter !== ((s.exits - 1) >>> 0)) {
    throw new GrowthCheckError(
      id,
      `the guest's counter at the top of RAM (GPA 0x${
        counterGpa(s.vm.memoryRegion(0).size).toString(16)
      }) is ${counter}: expected ${s.exits - 1} (one less than the ${s.exits} exits)`,
    );
  }
  return ratePerSecond(exits, t - t0);
}

/** Create every size (recording the ones that fail), warm up, then interleaved runs. */
export function measureSweep(
  items: readonly GrowthItem[],
  s: GrowthSettings,
): { rows: ResultRow[]; sweep: RamSweepResult } {
  const vms: SweepVm[] = [];
  const failed: { ram_bytes: number; error: string }[] = [];
  for (const item of items) {
    s.progress?.(`${item.id}: creating the VM`);
    const t0 = performance.now();
    try {
      vms.push(prepareSweep(item.ramBytes, s.module));
      s.log?.(
        `  ${item.id}: VM created in ${(performance.now() - t0).toFixed(0)} ms, VmRSS now ${
          (rssBytes() / MiB).toFixed(0)
        } MiB`,
      );
    } catch (e) {
      const error = `${(e as Error).name}: ${(e as Error).message}`;
      failed.push({ ram_bytes: item.ramBytes, error });
      s.log?.(`  ${item.id}: cannot create the VM: ${error}`);
    }
  }
  for (const v of vms) for (let i = 0; i < s.warmup; i++) sweepRun(v, s.durationMs);
  const rates = vms.map(() => [] as number[]);
  // Round-robin, the order reversed every other round so that no size always runs first or last.
  for (let r = 0; r < s.runs; r++) {
    const order = vms.map((_, i) => (r % 2 === 0 ? i : vms.length - 1 - i));
    for (const i of order) {
      s.progress?.(`${vms[i]!.path.path}: run ${r + 1}/${s.runs}`);
      rates[i]!.push(sweepRun(vms[i]!, s.durationMs));
    }
  }
  s.progress?.("");
  const rows = vms.map((v, i) => resultRow(v.path, summarize(rates[i]!), s.yardstick));
  const medians = rates.map((r) => median(r));
  const flatness = medians.length >= 2 ? Math.max(...medians) / Math.min(...medians) : null;
  const noise = rates.length ? median(rates.map((r) => Math.max(...r) / Math.min(...r))) : null;
  const bests = rates.map((r) => Math.max(...r));
  const bestFlatness = bests.length >= 2 ? Math.max(...bests) / Math.min(...bests) : null;
  return {
    rows,
    sweep: {
      paths: vms.map((v) => v.path.path),
      ram_bytes: vms.map((v) => v.vm.memoryRegion(0).size),
      exits_per_s: medians,
      flatness,
      flat_limit: FLAT_LIMIT,
      flat: flatness === null ? null : flatness <= FLAT_LIMIT,
      noise,
      best_flatness: bestFlatness,
      failed,
    },
  };
}

/** Run the selected growth items: rows (the sweep) and the `growth` object. */
export async function runGrowth(
  items: readonly GrowthItem[],
  s: GrowthSettings,
): Promise<{ rows: ResultRow[]; growth: GrowthResults }> {
  const of = (k: GrowthKind) => items.filter((i) => i.kind === k);
  const growth: {
    create_teardown?: CreateTeardownResult[];
    footprint?: (FootprintResult & { id: string })[];
    ram_sweep?: RamSweepResult;
  } = {};
  let rows: ResultRow[] = [];
  if (of("footprint").length) {
    growth.footprint = [];
    for (const item of of("footprint")) {
      s.progress?.(`${item.id}: child process`);
      const f = await measureFootprintChild(item, s.wasm === undefined ? {} : { wasm: s.wasm });
      growth.footprint.push(f);
      s.log?.(
        `  ${item.id}: ${mib(f.per_vm.rss_bytes)} RSS, ${mib(f.per_vm.wasm_memory_bytes)} memory reserved per VM; ${
          kib(f.per_vcpu.rss_bytes)
        } RSS per extra vCPU`,
      );
    }
  }
  if (of("create-teardown").length) {
    growth.create_teardown = [];
    for (const item of of("create-teardown")) {
      const c = measureCreateTeardown(item, s);
      growth.create_teardown.push(c);
      s.log?.(`  ${item.id}: ${c.vm_per_s.toFixed(0)} VMs/s (${c.us_per_vm.toFixed(0)} µs per VM) over ${c.runs} runs`);
    }
  }
  if (of("ram-sweep").length) {
    const m = measureSweep(of("ram-sweep"), s);
    rows = m.rows;
    growth.ram_sweep = m.sweep;
  }
  return { rows, growth };
}

const mib = (b: number) => `${(b / MiB).toFixed(2)} MiB`;
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

/** The growth section of the terminal report. */
export function formatGrowth(g: GrowthResults): string {
  const out: string[] = ["cost of growth"];
  for (const c of g.create_teardown ?? []) {
    out.push(
      `  ${c.id}: ${c.vm_per_s.toFixed(0)} VMs/s median (${c.min.toFixed(0)} … ${c.max.toFixed(0)}, ${c.runs} runs), ${
        c.us_per_vm.toFixed(0)
      } µs per VM; VmRSS after ${mib(c.rss_after_bytes)}`,
    );
  }
  for (const f of g.footprint ?? []) {
    out.push(
      `  ${f.id} (${f.vms} VMs of ${sizeLabel(f.ram_bytes)} RAM, +${f.extra_vcpus_per_vm} vCPUs each): per VM ${
        mib(f.per_vm.rss_bytes)
      } committed (VmRSS), ${mib(f.per_vm.wasm_memory_bytes)} WebAssembly.Memory reserved, ${
        mib(f.per_vm.address_space_bytes)
      } address space, ${kib(f.per_vm.heap_used_bytes)} JS heap; per vCPU ${kib(f.per_vcpu.rss_bytes)} committed, ${
        kib(f.per_vcpu.heap_used_bytes)
      } JS heap, 0 B new memory (a ${kib(f.per_vcpu.block_bytes)} block of the reserved area)`,
    );
  }
  const w = g.ram_sweep;
  if (w) {
    const cells = w.ram_bytes.map((r, i) => `${sizeLabel(r)} ${(w.exits_per_s[i]! / 1e6).toFixed(2)} M`);
    out.push(`  io-out exits/s by guest RAM: ${cells.join(", ")}`);
    out.push(
      w.flatness === null
        ? "  flatness: needs two sizes"
        : `  flatness (max/min of medians): ${w.flatness.toFixed(3)} — ${
          w.flat ? "flat" : "NOT flat"
        } (limit ${w.flat_limit}); run-to-run max/min within a size: ${
          w.noise === null ? "-" : w.noise.toFixed(3)
        }; max/min of each size's best run: ${w.best_flatness === null ? "-" : w.best_flatness.toFixed(3)}`,
    );
    for (const f of w.failed) out.push(`  ${sizeLabel(f.ram_bytes)}: not measured: ${f.error}`);
  }
  return out.join("\n");
}
