// Coalesced MMIO/PIO without a guest: the ring reader on synthetic pages
// (order, wrap-around at 170, a full ring, corrupt first/last/entries, a stop
// consuming its entry, concurrent drains in Workers), zone checks and KVM's
// unregister matching, and runUntil draining a ring a scripted vCPU fills.
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { KVM_RUN } from "../src/abi/kvm_structs.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import {
  checkCoalescedZone,
  CoalescedRing,
  coalescedRing,
  CoalescedRingError,
  type CoalescedZone,
  drainCoalesced,
  zoneContains,
  zonesAfterUnregister,
  zoneTakesWrite,
} from "../src/exits/coalesced.ts";
import { KvmRun } from "../src/exits/decode.ts";
import { runUntil } from "../src/exits/run_loop.ts";
import { type ExitOutcome, PAUSE, stop } from "../src/exits/outcome.ts";
import { MmioBus, PioBus } from "../src/devices/bus.ts";
import type { BusAccess, BusDevice } from "../src/devices/bus.ts";
import { InvalidArgumentError } from "../src/errors.ts";
import type { RunnableVcpu } from "../src/backends/types.ts";
import type { CoreExports } from "../src/wasm.ts";
import { head, MAX, pendingEntries, produce, putEntry, type RingWrite, setHead } from "./support/coalesced_ring.ts";

const plainPage = () => new Uint8Array(4096);
const sharedPage = () => new Uint8Array(new SharedArrayBuffer(4096));
const w = (i: number, pio = i % 2 === 0): RingWrite => ({
  pio,
  addr: pio ? 0x80 + (i % 4) : 0xd0000000 + 8 * (i % 16),
  data: [i & 0xff, (i >> 8) & 0xff, 0xa5, 0x5a].slice(0, 1 + (i % 4)),
});
type Got = { pio: boolean; addr: number; data: number[] };
const collect = (out: Got[]) => (pio: boolean, addr: number, len: number, data: Uint8Array) => {
  assert.equal(data.length, len);
  out.push({ pio, addr, data: [...data] });
};

for (const [kind, mk] of [["plain", plainPage], ["shared", sharedPage]] as const) {
  Deno.test(`ring (${kind}): entries in order from first to last, first advanced to last`, () => {
    const page = mk();
    const writes = [0, 1, 2, 3, 4].map((i) => w(i));
    for (const x of writes) assert.ok(produce(page, x));
    const got: Got[] = [];
    const ring = new CoalescedRing(page);
    assert.equal(ring.shared, kind === "shared");
    assert.ok(ring.pending());
    assert.equal(ring.drain(collect(got)), 5);
    assert.deepEqual(got, writes);
    assert.deepEqual(head(page), { first: 5, last: 5 });
    assert.ok(!ring.pending());
    assert.equal(ring.drain(collect(got)), 0, "a second drain finds nothing");
    assert.equal(got.length, 5);
  });

  Deno.test(`ring (${kind}): wrap-around at KVM_COALESCED_MMIO_MAX (170)`, () => {
    assert.equal(MAX, 170);
    const page = mk();
    setHead(page, 167, 167);
    const writes = [0, 1, 2, 3, 4, 5].map((i) => w(i));
    for (const x of writes) assert.ok(produce(page, x));
    assert.deepEqual(head(page), { first: 167, last: 3 });
    const got: Got[] = [];
    assert.equal(drainCoalesced(page, collect(got)), 6);
    assert.deepEqual(got, writes);
    assert.deepEqual(head(page), { first: 3, last: 3 });
  });

  Deno.test(`ring (${kind}): a full ring holds 169 writes (one slot stays free) and drains completely`, () => {
    const page = mk();
    setHead(page, 40, 40);
    let n = 0;
    while (produce(page, w(n))) n++;
    assert.equal(n, 169);
    assert.deepEqual(head(page), { first: 40, last: 39 });
    const got: Got[] = [];
    assert.equal(drainCoalesced(page, collect(got)), 169);
    assert.deepEqual(got, Array.from({ length: 169 }, (_, i) => w(i)));
    assert.ok(produce(page, w(0)), "room again after the drain");
  });

  Deno.test(`ring (${kind}): a non-resume outcome stops the drain after its entry, which is consumed`, () => {
    const page = mk();
    for (let i = 0; i < 4; i++) produce(page, w(i));
    const ring = coalescedRing(page);
    const seen: number[] = [];
    const halt = stop({ kind: "handler", detail: "second" });
    const n = ring.drain((_p, _a, _l, d) => {
      seen.push(d[0]!);
      return d[0] === 1 ? halt : undefined;
    });
    assert.equal(n, 2);
    assert.deepEqual(seen, [0, 1]);
    assert.equal(ring.outcome, halt);
    assert.deepEqual(head(page), { first: 2, last: 4 });
    assert.deepEqual(pendingEntries(page), [w(2), w(3)]);
    assert.equal(ring.drain(() => PAUSE), 1, "pause stops too");
    assert.equal(ring.outcome, PAUSE);
    assert.equal(ring.drain(() => ({ kind: "resume" })), 1);
    assert.equal(ring.outcome, undefined);
  });

  Deno.test(`ring (${kind}): a stop inside a claimed batch gives the rest back, even after the ring wrapped`, () => {
    const page = mk();
    setHead(page, 168, 168);
    for (let i = 0; i < 5; i++) produce(page, w(i)); // slots 168, 169, 0, 1, 2
    const ring = new CoalescedRing(page);
    const halt = stop({ kind: "handler", detail: "first" });
    assert.equal(ring.drain(() => halt), 1);
    assert.deepEqual(head(page), { first: 169, last: 3 });
    const got: Got[] = [];
    assert.equal(ring.drain(collect(got)), 4);
    assert.deepEqual(got, [w(1), w(2), w(3), w(4)]);
  });

  Deno.test(`ring (${kind}): a stop's rest that cannot go back (first moved on, or the producer wrapped into it) stays with the reader, in order`, () => {
    for (const meddle of ["another drainer", "producer wrapped"] as const) {
      const page = mk();
      for (let i = 0; i < 4; i++) produce(page, w(i)); // slots 0..3; the drain claims them all (first = 4)
      const ring = new CoalescedRing(page);
      const got: Got[] = [];
      const halt = stop({ kind: "handler", detail: meddle });
      const n = ring.drain((pio, addr, len, data) => {
        collect(got)(pio, addr, len, data);
        if (meddle === "another drainer") {
          produce(page, w(10));
          setHead(page, 5, 5); // someone else consumed w(10) meanwhile
        } else {
          // 167 more: last = 1, and the three claimed entries no longer fit before them.
          for (let i = 0; i < 167; i++) assert.ok(produce(page, w(100 + i)));
        }
        return halt;
      });
      assert.equal(n, 1, meddle);
      assert.deepEqual(got, [w(0)]);
      assert.ok(ring.pending(), `${meddle}: the held entries are pending`);
      const rest: Got[] = [];
      const later = meddle === "another drainer" ? [] : Array.from({ length: 167 }, (_, i) => w(100 + i));
      assert.equal(ring.drain(collect(rest)), 3 + later.length, meddle);
      assert.deepEqual(rest, [w(1), w(2), w(3), ...later], `${meddle}: held entries first, then the ring's`);
      assert.ok(!ring.pending());
    }
  });

  Deno.test(`ring (${kind}): a corrupt entry after good ones: the good ones are delivered, then the error, first at the bad one`, () => {
    const page = mk();
    for (let i = 0; i < 3; i++) produce(page, w(i));
    putEntry(page, 2, w(2), { len: 0 });
    const got: Got[] = [];
    assert.throws(() => drainCoalesced(page, collect(got)), /entry 2: .* len 0/);
    assert.deepEqual(got, [w(0), w(1)]);
    assert.deepEqual(head(page), { first: 2, last: 3 });
  });

  Deno.test(`ring (${kind}): corrupt first/last or entries give a CoalescedRingError naming the values`, () => {
    const page = mk();
    setHead(page, 170, 0);
    assert.throws(() => drainCoalesced(page, () => {}), (e) => {
      assert.ok(e instanceof CoalescedRingError);
      assert.match(e.message, /first 170, last 0: expected both below KVM_COALESCED_MMIO_MAX \(170\)/);
      return true;
    });
    setHead(page, 3, 0xffffffff);
    assert.throws(() => drainCoalesced(page, () => {}), /first 3, last 4294967295: expected both below/);
    setHead(page, 0, 1);
    putEntry(page, 0, { pio: true, addr: 0x80, data: [1] }, { len: 0 });
    assert.throws(() => drainCoalesced(page, () => {}), /entry 0: phys_addr 0x80 len 0 pio 1: expected len 1\.\.8/);
    putEntry(page, 0, { pio: true, addr: 0x80, data: [1] }, { len: 9 });
    assert.throws(() => drainCoalesced(page, () => {}), /len 9/);
    putEntry(page, 0, { pio: true, addr: 0x80, data: [1] }, { pio: 2 });
    assert.throws(() => drainCoalesced(page, () => {}), /pio 2: expected len 1\.\.8, pio 0 or 1/);
    assert.deepEqual(head(page), { first: 0, last: 1 }, "nothing consumed by a failed drain");
  });
}

Deno.test("ring: a page that is not a 4096-byte, 8-aligned view is refused", () => {
  assert.throws(() => new CoalescedRing(new Uint8Array(4095)), /4095-byte view at byte 0: expected a 4096-byte page/);
  assert.throws(() => new CoalescedRing(new Uint8Array(8192).subarray(4, 4100)), /at byte 4:.*8-aligned/);
  const page = plainPage();
  assert.equal(coalescedRing(page), coalescedRing(page), "one reader per page");
});

Deno.test("ring: phys_addr is exact up to 2^53 and data is a reused buffer per length", () => {
  const page = plainPage();
  produce(page, { pio: false, addr: 2 ** 52 + 0x123, data: [1, 2, 3, 4, 5, 6, 7, 8] });
  produce(page, { pio: false, addr: 0xfee00000, data: [9, 10, 11, 12, 13, 14, 15, 16] });
  const views: Uint8Array[] = [];
  const addrs: number[] = [];
  drainCoalesced(page, (_p, a, _l, d) => {
    views.push(d);
    addrs.push(a);
  });
  assert.deepEqual(addrs, [2 ** 52 + 0x123, 0xfee00000]);
  assert.equal(views[0], views[1], "the same 8-byte buffer");
  assert.deepEqual([...views[1]!], [9, 10, 11, 12, 13, 14, 15, 16]);
});

Deno.test("ring: two Workers draining one shared ring while it is filled claim every write exactly once", async () => {
  const N = 50_000;
  const buffer = new SharedArrayBuffer(4096 + 8);
  const page = new Uint8Array(buffer, 0, 4096);
  const flagIndex = 4096 / 4;
  const workers = [0, 1].map(() =>
    new Worker(new URL("./support/coalesced_drain_worker.ts", import.meta.url).href, { type: "module" })
  );
  const results = workers.map((wk) =>
    new Promise<number[]>((resolve, reject) => {
      wk.onmessage = (ev) => resolve(ev.data as number[]);
      wk.onerror = (ev) => {
        ev.preventDefault();
        reject(new Error(`worker failed: ${ev.message}`));
      };
    })
  );
  for (const wk of workers) wk.postMessage({ buffer, flagIndex });
  let spins = 0;
  for (let i = 0; i < N;) {
    if (produce(page, { pio: true, addr: 0x80, data: [i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff, 0] })) i++;
    else if ((spins++ & 0xfffff) === 0) await new Promise((r) => setTimeout(r, 0)); // full: spin, yield rarely
  }
  Atomics.store(new Int32Array(buffer), flagIndex, 1);
  const [a, b] = await Promise.all(results);
  const all = [...a!, ...b!].sort((x, y) => x - y);
  assert.equal(all.length, N, `claimed ${a!.length} + ${b!.length}`);
  all.forEach((v, i) => assert.equal(v, i, `write ${i} claimed once`));
  for (const list of [a!, b!]) list.forEach((v, i) => i > 0 && assert.ok(v > list[i - 1]!, "each in order"));
  assert.deepEqual(head(page), { first: N % MAX, last: N % MAX });
});

// ---- zones ----

Deno.test("checkCoalescedZone: typed errors naming the bad value and what was expected", () => {
  const bad: [unknown, RegExp][] = [
    [{ addr: -1, size: 4, pio: false }, /coalesced zone addr: -1: expected a non-negative safe integer/],
    [{ addr: 1.5, size: 4, pio: false }, /addr: 1\.5: expected a non-negative safe integer \(a guest physical/],
    [{ addr: 2 ** 53, size: 4, pio: true }, /addr: 9007199254740992: expected .* \(a port\)/],
    [{ addr: "0x80", size: 1, pio: true }, /addr: 0x80: expected a non-negative safe integer/],
    [{ addr: 0, size: -1, pio: false }, /size: -1: expected an integer 0\.\.0xffffffff \(a u32\)/],
    [{ addr: 0, size: 2 ** 32, pio: false }, /size: 4294967296: expected an integer 0\.\.0xffffffff/],
    [{ addr: 0, size: 0.5, pio: false }, /size: 0\.5/],
    [{ addr: 0x80, size: 1, pio: 1 }, /pio: 1: expected a boolean \(KVM's pio field is 0 .* or 1/],
    [{ addr: 2 ** 53 - 2, size: 4, pio: false }, /0x1ffffffffffffe \+ 0x4 ends beyond 2\^53/],
    [null, /coalesced zone: null: expected \{addr, size, pio\}/],
  ];
  for (const [z, re] of bad) {
    assert.throws(() => checkCoalescedZone(z as CoalescedZone), (e) => {
      assert.ok(e instanceof InvalidArgumentError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
  // What KVM accepts: size 0, PIO zones above 0xffff, sizes of 2^31 and more (both coalesce nothing there).
  assert.deepEqual(checkCoalescedZone({ addr: 0x80, size: 0, pio: true }), { addr: 0x80, size: 0, pio: true });
  assert.deepEqual(checkCoalescedZone({ addr: 0x10000, size: 16, pio: true }), {
    addr: 0x10000,
    size: 16,
    pio: true,
  });
  const extra = { addr: 0xd0000000, size: 0xffffffff, pio: false, junk: 1 } as CoalescedZone;
  assert.deepEqual(checkCoalescedZone(extra), { addr: 0xd0000000, size: 0xffffffff, pio: false }, "a plain copy");
  assert.deepEqual(checkCoalescedZone({ addr: 2 ** 53 - 4, size: 4, pio: false }).addr, 2 ** 53 - 4);
});

Deno.test("zoneContains and zonesAfterUnregister follow KVM's coalesced_mmio_in_range", () => {
  const z = { addr: 0x1000, size: 0x100, pio: false };
  assert.ok(zoneContains(z, 0x1000, 4));
  assert.ok(zoneContains(z, 0x10fc, 4));
  assert.ok(!zoneContains(z, 0x10fe, 4), "straddles the end");
  assert.ok(!zoneContains(z, 0xffe, 4), "straddles the start");
  assert.ok(zoneContains(z, 0x1100, 0), "an empty range at the end");
  assert.ok(!zoneContains(z, 0x1000, 2 ** 31), "a C int length of 2^31 is negative: no match");
  const zones: CoalescedZone[] = [
    { addr: 0x1000, size: 0x100, pio: false },
    { addr: 0x80, size: 4, pio: true },
    { addr: 0x1080, size: 0x80, pio: false },
    { addr: 0x1000, size: 0x100, pio: true },
    { addr: 0x2000, size: 0x10, pio: false },
  ];
  // Every MMIO zone containing [0x1080, 0x1090) goes, in order; the PIO zone at the same range stays.
  assert.deepEqual(zonesAfterUnregister(zones, { addr: 0x1080, size: 0x10, pio: false }), [
    zones[1],
    zones[3],
    zones[4],
  ]);
  // A range larger than the zone does not remove it; no match is not an error.
  assert.deepEqual(zonesAfterUnregister(zones, { addr: 0x1000, size: 0x1000, pio: false }), zones);
  assert.deepEqual(zonesAfterUnregister(zones, { addr: 0x5000, size: 1, pio: true }), zones);
  // Size 0: every zone of the bus containing the address, including one ending exactly there.
  assert.deepEqual(zonesAfterUnregister(zones, { addr: 0x1100, size: 0, pio: false }), [
    zones[1],
    zones[3],
    zones[4],
  ]);
  assert.deepEqual(zonesAfterUnregister(zones, { addr: 0x1000, size: 0x80000000, pio: false }), zones);
});

Deno.test("zoneTakesWrite: KVM's IO bus drops zones of 2^31+ bytes that end at or above 2^32", () => {
  const z = (addr: number, size: number) => ({ addr, size, pio: false });
  assert.ok(zoneTakesWrite(z(0xd0000000, 0x7fffffff), 0xd0000000, 4));
  assert.ok(!zoneTakesWrite(z(0xd0000000, 0x80000000), 0xd0000000, 4), "ends at 0x150000000");
  assert.ok(zoneTakesWrite(z(0x10000000, 0x80000000), 0x10000000, 4), "ends at 0x90000000");
  assert.ok(zoneTakesWrite(z(0x0fffffff, 0xf0000000), 0x10000000, 4), "ends at 2^32 - 1");
  assert.ok(!zoneTakesWrite(z(0x10000000, 0xf0000000), 0x10000000, 4), "ends at 2^32");
  assert.ok(!zoneTakesWrite(z(0x80, 0), 0x80, 1), "size 0");
  assert.ok(!zoneTakesWrite(z(0x80, 4), 0x82, 4), "straddles the end");
  assert.ok(zoneTakesWrite({ addr: 0x10, size: 0xffffffef, pio: true }, 0x8000, 1));
  assert.ok(!zoneTakesWrite({ addr: 0x10, size: 0xfffffff0, pio: true }, 0x8000, 1));
});

// ---- runUntil with a scripted vCPU filling the ring ----

const RUN = layOut(KVM_RUN);
const at = (p: string) => field(RUN, p).offset;
type Step = { writes?: RingWrite[]; exit: (run: KvmRun) => number };
const ioOut = (port: number, data: number[]) => (run: KvmRun) => {
  run.u8[at("io.direction")] = K.KVM_EXIT_IO_OUT;
  run.u8[at("io.size")] = data.length;
  run.dv.setUint16(at("io.port"), port, true);
  run.dv.setUint32(at("io.count"), 1, true);
  run.dv.setBigUint64(at("io.data_offset"), 4096n, true);
  run.u8.set(data, 4096);
  return K.KVM_EXIT_IO;
};
const mmioWrite = (gpa: number, data: number[]) => (run: KvmRun) => {
  run.dv.setBigUint64(at("mmio.phys_addr"), BigInt(gpa), true);
  run.dv.setUint32(at("mmio.len"), data.length, true);
  run.u8[at("mmio.is_write")] = 1;
  run.u8.set(data, at("mmio.data"));
  return K.KVM_EXIT_MMIO;
};
const hlt = () => K.KVM_EXIT_HLT;
const intr = () => K.KVM_EXIT_INTR;

/** A vCPU whose KVM_RUN appends `writes` to the ring, then reports the step's exit. */
function scripted(page: Uint8Array, steps: Step[]) {
  const run = KvmRun.fabricate();
  let next = 0;
  const runs: number[] = []; // the log length at each KVM_RUN entry
  const vcpu = {
    id: 3,
    kvmRun: run,
    runBase: 0,
    budget: 1000,
    instructions: NaN,
    getMpState: () => K.KVM_MP_STATE_RUNNABLE,
    host: {
      core: {
        run: () => {
          runs.push(log.length);
          const s = steps[next++];
          if (!s) throw new Error(`KVM_RUN ${next}: the script has ${steps.length} steps`);
          for (const x of s.writes ?? []) assert.ok(produce(page, x), "ring full in the script");
          run.dv.setUint32(at("exit_reason"), s.exit(run), true);
          return run.dv.getUint32(at("exit_reason"), true);
        },
      } as unknown as CoreExports,
    },
  } satisfies RunnableVcpu;
  return { vcpu, runs, ran: () => next };
}

type Logged = [string, number, number[], number];
const log: Logged[] = [];
/** Records every write (bus name, absolute address, bytes, vcpu); `stopOn` returns an outcome for one value. */
function recorder(bus: string, stopOn?: (d: Uint8Array) => ExitOutcome | undefined): BusDevice {
  return {
    name: `rec-${bus}`,
    read: (_o: number, d: Uint8Array) => void d.fill(0),
    write: (_o: number, d: Uint8Array, a: BusAccess) => {
      log.push([bus, a.address, [...d], a.vcpuId]);
      return stopOn?.(d);
    },
  };
}
function buses(stopOn?: (d: Uint8Array) => ExitOutcome | undefined) {
  log.length = 0;
  const pio = new PioBus(), mmio = new MmioBus();
  pio.insert(recorder("pio", stopOn), 0, 0x10000);
  mmio.insert(recorder("mmio", stopOn), 0xd0000000, 0x1000);
  return { pio, mmio };
}
const pioW = (port: number, data: number[]): RingWrite => ({ pio: true, addr: port, data });
const mmioW = (gpa: number, data: number[]): RingWrite => ({ pio: false, addr: gpa, data });

for (const path of ["fast", "general"] as const) {
  const extra = path === "general" ? { onExit: () => {} } : {};

  Deno.test(`runUntil (${path} path): coalesced writes reach the buses before each exit, in guest order`, () => {
    const page = plainPage();
    const { vcpu } = scripted(page, [
      { writes: [pioW(0x80, [1]), mmioW(0xd0000010, [2, 0, 0, 0])], exit: ioOut(0x3f8, [0x41]) },
      { writes: [pioW(0x80, [3])], exit: mmioWrite(0xd0000020, [4, 4]) },
      { writes: [mmioW(0xd0000000, [5, 6, 7, 8, 9, 10, 11, 12])], exit: hlt },
    ]);
    const r = runUntil(vcpu, { ...buses(), coalesced: page, ...extra });
    assert.deepEqual(log, [
      ["pio", 0x80, [1], 3],
      ["mmio", 0xd0000010, [2, 0, 0, 0], 3],
      ["pio", 0x3f8, [0x41], 3],
      ["pio", 0x80, [3], 3],
      ["mmio", 0xd0000020, [4, 4], 3],
      ["mmio", 0xd0000000, [5, 6, 7, 8, 9, 10, 11, 12], 3],
    ]);
    assert.deepEqual(r.stop, { kind: "hlt" });
    assert.equal(r.coalesced, 4);
    assert.equal(r.exits, 3);
    assert.deepEqual([r.counts.io, r.counts.mmio, r.counts.hlt], [1, 1, 1]);
  });

  Deno.test(`runUntil (${path} path): drained when the budget ends (KVM_EXIT_INTR) before the next run`, () => {
    const page = plainPage();
    const { vcpu, runs } = scripted(page, [
      { writes: [pioW(0x80, [1]), pioW(0x80, [2])], exit: intr },
      { writes: [pioW(0x80, [3])], exit: intr },
      { exit: hlt },
    ]);
    const r = runUntil(vcpu, { ...buses(), coalesced: page, ...extra });
    assert.deepEqual(runs, [0, 2, 3], "the log length at each KVM_RUN: drained at each INTR");
    assert.equal(r.coalesced, 3);
    assert.equal(r.exits, 1);
  });

  Deno.test(`runUntil (${path} path): a coalesced write's stop ends the run; the exit after it waits for the next call`, () => {
    const page = plainPage();
    const { vcpu, ran } = scripted(page, [
      { writes: [pioW(0x80, [1]), pioW(0x80, [0xff]), pioW(0x80, [2])], exit: ioOut(0x3f8, [0x42]) },
      { writes: [pioW(0x80, [3])], exit: hlt },
    ]);
    const halt = stop({ kind: "handler", detail: "0xff" });
    const b = buses((d) => (d[0] === 0xff ? halt : undefined));
    const r1 = runUntil(vcpu, { ...b, coalesced: page, ...extra });
    assert.deepEqual(r1.stop, { kind: "handler", detail: "0xff" });
    assert.deepEqual(log.map((l) => l[2][0]), [1, 0xff]);
    assert.equal(r1.coalesced, 2);
    assert.equal(r1.exits, 0, "the IO exit was not handled");
    assert.deepEqual(pendingEntries(page), [pioW(0x80, [2])], "later writes stay in the ring");
    const r2 = runUntil(vcpu, { ...b, coalesced: page, ...extra });
    assert.deepEqual(log.map((l) => l[2][0]), [1, 0xff, 2, 0x42, 3], "the rest, then the pending exit, then on");
    assert.equal(ran(), 2, "the pending exit was handled without re-entering the guest first");
    assert.deepEqual(r2.stop, { kind: "hlt" });
    assert.deepEqual([r2.exits, r2.counts.io, r2.coalesced], [2, 1, 2]);
  });
}

Deno.test("runUntil: a pending exit is dropped when the vCPU ran in between (its run page moved on)", () => {
  const page = plainPage();
  const { vcpu, ran } = scripted(page, [
    { writes: [pioW(0x80, [0xff])], exit: ioOut(0x3f8, [0x42]) },
    { exit: ioOut(0x3f8, [0x43]) },
    { exit: hlt },
  ]);
  const b = buses((d) => (d[0] === 0xff ? PAUSE : undefined));
  assert.deepEqual(runUntil(vcpu, { ...b, coalesced: page }).stop, { kind: "pause" });
  vcpu.kvmRun.generation++; // what vcpu.runRaw() does
  vcpu.host.core.run(0, 0);
  log.length = 0;
  assert.deepEqual(runUntil(vcpu, { ...b, coalesced: page }).stop, { kind: "hlt" });
  assert.deepEqual(log, [], "neither the stale 0x42 exit nor the 0x43 one run directly was delivered");
  assert.equal(ran(), 3);
});

Deno.test("runUntil: writes appended while an exit is handled (another vCPU) are drained when the run ends", () => {
  const page = plainPage();
  const { vcpu } = scripted(page, [{ exit: ioOut(0x3f8, [0x41]) }]);
  const pio = new PioBus(), mmio = new MmioBus();
  log.length = 0;
  mmio.insert(recorder("mmio"), 0xd0000000, 0x1000);
  pio.insert(
    {
      name: "producer",
      read: () => {},
      write: (_o, d) => {
        log.push(["pio", 0x3f8, [...d], 3]);
        produce(page, mmioW(0xd0000004, [9]));
      },
    },
    0x3f8,
    1,
  );
  const r = runUntil(vcpu, { pio, mmio, coalesced: page, maxExits: 1 });
  assert.deepEqual(r.stop, { kind: "max-exits", limit: 1 });
  assert.equal(r.coalesced, 1);
  assert.deepEqual(log, [["pio", 0x3f8, [0x41], 3], ["mmio", 0xd0000004, [9], 3]]);
});

Deno.test("runUntil: without `coalesced` the ring is not read and RunResult.coalesced is 0", () => {
  const page = plainPage();
  const { vcpu } = scripted(page, [{ writes: [pioW(0x80, [1])], exit: hlt }]);
  const r = runUntil(vcpu, buses());
  assert.equal(r.coalesced, 0);
  assert.deepEqual(log, []);
  assert.deepEqual(pendingEntries(page), [pioW(0x80, [1])]);
});
