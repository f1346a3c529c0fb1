// Cost of growth (tracking issue 4 §1, bench/growth.ts): create/teardown rate, footprint per VM and per
// vCPU, and the IO-out RAM sweep, at small sizes and short durations. Each number is checked for sanity and
// every run's work checks (handler calls, bytes, retired instructions, the guest's counter at the top of RAM).
import assert from "node:assert/strict";
import { benchJson } from "./cli_support.ts";
import { RAM_POOL_BASE, VCPU_BLOCK_SIZE } from "../src/abi/memory_map.ts";
import {
  counterGpa,
  createTeardownRun,
  formatGrowth,
  GROWTH_ITEMS,
  GrowthCheckError,
  type GrowthItem,
  measureFootprintChild,
  measureSweep,
  prepareSweep,
  runGrowth,
  selectGrowth,
  sizeLabel,
  sweepRun,
} from "../bench/growth.ts";
import { rowRate } from "../bench/report.ts";

const MiB = 1 << 20;
const sweepItem = (ramBytes: number): GrowthItem => ({
  id: `growth/io-out-ram-${sizeLabel(ramBytes)}`,
  kind: "ram-sweep",
  ramBytes,
});
const quick = { durationMs: 20, runs: 2, warmup: 0 };

Deno.test("growth ids: unique, family/variant, selected by --filter like the paths", () => {
  const ids = GROWTH_ITEMS.map((i) => i.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, /^growth\/[A-Za-z0-9-]+$/);
  assert.deepEqual(
    selectGrowth(/ram/).map((i) => i.id),
    ["1MiB", "16MiB", "256MiB", "1GiB", "2GiB"].map((s) => `growth/io-out-ram-${s}`),
  );
  assert.deepEqual(selectGrowth(/create/).map((i) => i.kind), ["create-teardown", "create-teardown"]);
  assert.equal(selectGrowth(/^io-out\/switch$/).length, 0);
  assert.equal(selectGrowth(undefined).length, GROWTH_ITEMS.length);
  assert.equal(sizeLabel(2048 * MiB), "2GiB");
  assert.throws(() => sizeLabel(1000), /expected a whole number of MiB/);
});

Deno.test("RAM sweep at 1 MiB and 64 MiB: sane exit rates, the guest's counter at the top of RAM, a flatness", () => {
  const m = measureSweep([sweepItem(1 * MiB), sweepItem(64 * MiB)], quick);
  assert.deepEqual(m.sweep.failed, []);
  assert.deepEqual(m.sweep.ram_bytes, [1 * MiB, 64 * MiB]);
  assert.deepEqual(m.rows.map((r) => r.path), ["growth/io-out-ram-1MiB", "growth/io-out-ram-64MiB"]);
  for (const r of m.rows) {
    assert.equal(r.engine, "kvmsim");
    assert.equal(r.unit, "exits");
    assert.ok("exits_per_s" in r && "ns_per_exit" in r, r.path);
    const rate = rowRate(r);
    // An exit costs more than 1 ns and less than 1 ms on any machine this runs on.
    assert.ok(rate > 1e3 && rate < 1e9, `${r.path}: ${rate} exits/s`);
    assert.ok(r.min <= rate && rate <= r.max && r.runs === 2, r.path);
  }
  assert.ok(m.sweep.flatness !== null && m.sweep.flatness >= 1 && Number.isFinite(m.sweep.flatness));
  assert.equal(m.sweep.flat, m.sweep.flatness <= m.sweep.flat_limit);
  assert.ok(m.sweep.best_flatness !== null && m.sweep.best_flatness >= 1, "best-run flatness");
  assert.ok(m.sweep.noise !== null && m.sweep.noise >= 1 && Number.isFinite(m.sweep.noise));
  assert.match(
    formatGrowth({ ram_sweep: m.sweep }),
    /flatness \(max\/min of medians\): \d\.\d{3} — (flat|NOT flat) \(limit 1\.1\); run-to-run max\/min within a size: \d+\.\d{3}/,
  );
});

Deno.test("RAM sweep: the counter lives in the last bytes of RAM and a wrong one fails the run", () => {
  const s = prepareSweep(64 * MiB);
  const rate = sweepRun(s, 5);
  assert.ok(rate > 0 && s.exits > 0);
  assert.equal(counterGpa(64 * MiB), 64 * MiB - 8);
  const view = new DataView(s.vm.readGuest(64 * MiB - 8, 4).buffer);
  assert.equal(view.getUint32(0, true), s.exits - 1, "the host reads the guest's count through the memslot");
  s.vm.writeGuest(64 * MiB - 8, [0, 0, 0, 0]);
  assert.throws(
    () => sweepRun(s, 2),
    (e) =>
      e instanceof GrowthCheckError && /counter at the top of RAM \(GPA 0x3fffff8\) is \d+: expected/.test(e.message),
  );
});

Deno.test("RAM sweep: a size that cannot be created is reported with its error, the others still run", () => {
  const m = measureSweep([sweepItem(1 * MiB), sweepItem(4096 * MiB)], quick);
  assert.equal(m.rows.length, 1);
  assert.equal(m.sweep.flatness, null);
  assert.equal(m.sweep.failed.length, 1);
  assert.equal(m.sweep.failed[0]!.ram_bytes, 4096 * MiB);
  assert.match(m.sweep.failed[0]!.error, /ramPoolSize/);
  assert.match(formatGrowth({ ram_sweep: m.sweep }), /4GiB: not measured: .*ramPoolSize/);
});

Deno.test("create + teardown: a sane VMs/s rate, each VM proved by running its HLT", async () => {
  const rate = createTeardownRun(1 * MiB, 30);
  assert.ok(rate > 1 && rate < 1e6, `${rate} VMs/s`);
  const g = await runGrowth(selectGrowth(/create-teardown-1MiB/), quick);
  assert.equal(g.rows.length, 0);
  const c = g.growth.create_teardown!;
  assert.equal(c.length, 1);
  assert.equal(c[0]!.ram_bytes, 1 * MiB);
  assert.ok(c[0]!.vm_per_s > 1 && c[0]!.min <= c[0]!.vm_per_s && c[0]!.vm_per_s <= c[0]!.max);
  assert.ok(Math.abs(c[0]!.us_per_vm * c[0]!.vm_per_s - 1e6) < 1e-3);
  assert.ok(c[0]!.rss_after_bytes > 0);
});

Deno.test("footprint (child process with --expose-gc): committed and reserved bytes per VM and per vCPU", async () => {
  const item = GROWTH_ITEMS.find((i) => i.id === "growth/footprint-1MiB")!;
  const f = await measureFootprintChild(item, { vms: 4, extraVcpus: 1 });
  assert.equal(f.id, "growth/footprint-1MiB");
  assert.equal(f.gc, true);
  assert.equal(f.vms, 4);
  // The whole memory is reserved at createVm: control block and vCPU blocks, then the 1 MiB pool.
  assert.equal(f.per_vm.wasm_memory_bytes, RAM_POOL_BASE + 1 * MiB);
  // Committed: the control block and vCPU block pages written at creation (fresh guest RAM is not written
  // by addMemoryRegion, so it stays uncommitted until the guest touches it), less than the reservation.
  assert.ok(
    f.per_vm.rss_bytes > 32 * 1024 && f.per_vm.rss_bytes < f.per_vm.wasm_memory_bytes,
    `${f.per_vm.rss_bytes}`,
  );
  assert.ok(f.per_vm.address_space_bytes >= f.per_vm.wasm_memory_bytes - MiB, `${f.per_vm.address_space_bytes}`);
  assert.ok(f.per_vcpu.rss_bytes > 0 && f.per_vcpu.rss_bytes < MiB, `${f.per_vcpu.rss_bytes}`);
  assert.equal(f.per_vcpu.wasm_memory_bytes, 0);
  assert.equal(f.per_vcpu.block_bytes, VCPU_BLOCK_SIZE);
  assert.match(
    formatGrowth({ footprint: [f] }),
    /per VM \d+\.\d\d MiB committed \(VmRSS\), 2\.63 MiB WebAssembly.Memory/,
  );
});

Deno.test("bench --filter selects growth items: the sweep row in rows, the rest in growth", async () => {
  const { json: j, stderr } = await benchJson([
    "--filter",
    "^growth/(io-out-ram-1MiB|create-teardown-1MiB)$",
    "--runs",
    "1",
    "--warmup",
    "0",
    "--duration",
    "0.02",
    "--peers",
    "none",
    "--no-write",
  ]);
  assert.deepEqual(j.rows.map((r: { path: string }) => r.path), ["growth/io-out-ram-1MiB"]);
  const r = j.rows[0];
  for (const k of ["exits_per_s", "ns_per_exit", "min", "max", "runs"]) assert.equal(typeof r[k], "number", k);
  assert.equal(j.growth.create_teardown[0].id, "growth/create-teardown-1MiB");
  assert.equal(j.growth.ram_sweep.flatness, null);
  assert.equal(j.growth.footprint, undefined);
  assert.match(stderr, /cost of growth/);
});
