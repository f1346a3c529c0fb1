/**
 * A Worker that drains a shared coalesced ring (tests/exits_coalesced_test.ts):
 * message `{buffer, flagIndex}` — the ring page is bytes 0..4096 of `buffer`,
 * `Int32Array(buffer)[flagIndex]` becomes 1 when the producer is done. Posts
 * back the u32 sequence number of every entry it claimed, in claim order.
 *
 * @module
 */
import { CoalescedRing } from "../../src/exits/coalesced.ts";

type Msg = MessageEvent<{ buffer: SharedArrayBuffer; flagIndex: number }>;
const scope = self as unknown as { onmessage: (ev: Msg) => void; postMessage(v: unknown): void; close(): void };

scope.onmessage = (ev) => {
  const { buffer, flagIndex } = ev.data;
  const ring = new CoalescedRing(new Uint8Array(buffer, 0, 4096));
  const flag = new Int32Array(buffer);
  const got: number[] = [];
  const sink = (_pio: boolean, _addr: number, _len: number, d: Uint8Array) => {
    got.push(d[0]! | d[1]! << 8 | d[2]! << 16 | d[3]! << 24);
  };
  for (;;) {
    const done = Atomics.load(flag, flagIndex) === 1; // read before the drain: nothing is produced after it
    ring.drain(sink);
    if (done) break;
  }
  scope.postMessage(got);
  scope.close();
};
