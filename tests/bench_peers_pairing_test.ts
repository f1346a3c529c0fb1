/**
 * bench/peers/pairing.ts: the bracketed rounds of a kvmsim path and its
 * peer rows, on fake engines that log when they run (no timing).
 */
import assert from "node:assert/strict";
import { measurePaired, pairingOf, roundOrder } from "../bench/peers/pairing.ts";
import { PeerCheckError, type PeerLoop, type PeerSampler } from "../bench/peers/peer.ts";
import type { PeerRowSpec } from "../bench/report.ts";

const spec = (engine: "v86" | "qemu", compared_to = "io-out/switch"): PeerRowSpec => ({
  path: `io-out/${engine}-loop`,
  engine,
  unit: "exits",
  loop: "sampled",
  description: "fake",
  compared_to,
});

/** A fake peer whose r-th window rates `rates[r]`, logging open / sample / close into `events`. */
function fakeLoop(engine: "v86" | "qemu", rates: number[], events: string[], failAt = -1): PeerLoop {
  return {
    spec: spec(engine),
    open(settings) {
      events.push(`open ${engine} warmup=${settings.warmup}`);
      let r = 0;
      const sampler: PeerSampler = {
        sample() {
          events.push(`${engine} ${r}`);
          if (r === failAt) return Promise.reject(new PeerCheckError(engine, "fake", `window ${r} failed`));
          return Promise.resolve(rates[r++]!);
        },
        close() {
          events.push(`close ${engine}`);
          return Promise.resolve();
        },
      };
      return Promise.resolve(sampler);
    },
  };
}

function fakeKvmsim(rates: number[], events: string[]) {
  let r = 0;
  return {
    path: "io-out/switch",
    warmup: () => void events.push("kvmsim warmup"),
    sample: () => (events.push(`kvmsim ${r}`), rates[r++]!),
  };
}

Deno.test("round order alternates: peers in order in even rounds, reversed in odd rounds", () => {
  assert.deepEqual(roundOrder(0, 3), [0, 1, 2]);
  assert.deepEqual(roundOrder(1, 3), [2, 1, 0]);
  assert.deepEqual(roundOrder(2, 1), [0]);
});

Deno.test("paired rounds: engines opened and kvmsim warmed up first; every peer window between two kvmsim samples", async () => {
  const events: string[] = [];
  const out = await measurePaired(
    fakeKvmsim([10, 20, 30, 40, 50, 60, 70], events),
    [fakeLoop("v86", [5, 10, 60], events), fakeLoop("qemu", [1, 2, 3], events)],
    { durationMs: 1, runs: 3, warmup: 2 },
  );
  assert.deepEqual(events, [
    "open v86 warmup=2",
    "open qemu warmup=2",
    "kvmsim warmup",
    "kvmsim 0",
    "v86 0",
    "kvmsim 1",
    "qemu 0",
    "kvmsim 2",
    "qemu 1",
    "kvmsim 3",
    "v86 1",
    "kvmsim 4",
    "v86 2",
    "kvmsim 5",
    "qemu 2",
    "kvmsim 6",
    "close v86",
    "close qemu",
  ]);
  assert.deepEqual(out.kvmsim, [10, 20, 30, 40, 50, 60, 70]);
  const [v86, qemu] = out.peers;
  assert.deepEqual(v86!.samples, [5, 10, 60]);
  // v86's windows sit between kvmsim 10|20, 40|50 and 50|60.
  assert.deepEqual(v86!.pairing?.kvmsim_samples, [15, 45, 55]);
  assert.deepEqual(v86!.pairing?.ratios, [3, 4.5, 55 / 60]);
  assert.equal(v86!.pairing?.ratio_median, 3);
  assert.equal(v86!.pairing?.ratio_min, 55 / 60);
  assert.equal(v86!.pairing?.ratio_max, 4.5);
  assert.equal(v86!.pairing?.method, "bracketed");
  assert.equal(v86!.pairing?.rounds, 3);
  // qemu's: 20|30, 30|40, 60|70.
  assert.deepEqual(qemu!.pairing?.kvmsim_samples, [25, 35, 65]);
  assert.deepEqual(qemu!.pairing?.ratios, [25, 17.5, 65 / 3]);
  // The JSON row contract: path, engine, rate, ns, min, max, runs.
  assert.ok("exits_per_s" in v86! && v86!.exits_per_s === 10 && v86!.ns_per_exit === 1e8);
  assert.equal(v86!.min, 5);
  assert.equal(v86!.max, 60);
  assert.equal(v86!.runs, 3);
});

Deno.test("paired rounds: a failed peer window propagates and every opened engine is still closed", async () => {
  const events: string[] = [];
  await assert.rejects(
    measurePaired(
      fakeKvmsim([10, 20], events),
      [fakeLoop("v86", [5, 10], events), fakeLoop("qemu", [1, 2], events, 1)],
      { durationMs: 1, runs: 2, warmup: 0 },
    ),
    /qemu fake: window 1 failed/,
  );
  assert.deepEqual(events.slice(-2), ["close v86", "close qemu"]);
});

Deno.test("paired rounds: a peer row compared with another kvmsim path, or no peer at all, is refused", async () => {
  await assert.rejects(
    measurePaired(fakeKvmsim([1], []), [], { durationMs: 1, runs: 1, warmup: 0 }),
    /pairing io-out\/switch: no peer loop to pair with/,
  );
  const loop = { ...fakeLoop("v86", [1], []), spec: spec("v86", "mmio-write/switch") };
  await assert.rejects(
    measurePaired(fakeKvmsim([1], []), [loop], { durationMs: 1, runs: 1, warmup: 0 }),
    /peer row v86 io-out\/v86-loop is compared with mmio-write\/switch, not io-out\/switch/,
  );
});

Deno.test("pairing record: ratios need one peer sample per kvmsim sample", () => {
  assert.throws(() => pairingOf("p/x", [1, 2], [1]), /2 kvmsim and 1 peer samples: expected the same number/);
  const p = pairingOf("p/x", [4, 9, 1], [2, 3, 4]);
  assert.deepEqual(p.ratios, [2, 3, 0.25]);
  assert.equal(p.ratio_median, 2);
  assert.equal(p.ratio_max, 3);
});
