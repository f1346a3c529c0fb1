/**
 * A Worker running one vCPU of a VM whose guest writes into a coalesced PIO
 * zone (tests/vm_coalesced_test.ts): message `{handle, ring}` — the vCPU handle
 * and the byte offset of the VM's ring page in the shared memory. After every
 * KVM_RUN it drains the ring (claiming entries with the other Workers) and
 * then takes the exit's own OUT value; posts back the u16 values it got, in
 * order, as `{drained, exited}`.
 *
 * @module
 */
import { attachVcpu, type VcpuHandle } from "../../src/vcpu_thread.ts";
import { CoalescedRing } from "../../src/exits/coalesced.ts";
import { ioSingleData } from "../../src/exits/decode.ts";
import { KVM_CONSTANTS as K } from "../../src/abi/constants.ts";

type Msg = MessageEvent<{ handle: VcpuHandle; ring: number }>;
const scope = self as unknown as { onmessage: (ev: Msg) => void; postMessage(v: unknown): void; close(): void };

scope.onmessage = (ev) => {
  const { handle, ring: at } = ev.data;
  const t = attachVcpu(handle);
  const ring = new CoalescedRing(new Uint8Array(handle.memory.buffer, at, 4096));
  const drained: number[] = [];
  const exited: number[] = [];
  const sink = (_pio: boolean, _addr: number, _len: number, d: Uint8Array) => void drained.push(d[0]! | d[1]! << 8);
  for (let runs = 0; runs < 1_000_000; runs++) {
    const reason = t.vcpu.runRaw();
    ring.drain(sink);
    if (reason === K.KVM_EXIT_HLT) break;
    if (reason === K.KVM_EXIT_IO) {
      const d = ioSingleData(t.vcpu.kvmRun)!;
      exited.push(d[0]! | d[1]! << 8);
    } else if (reason !== K.KVM_EXIT_INTR) throw new Error(`vcpu ${handle.id}: exit reason ${reason}`);
  }
  t.release();
  scope.postMessage({ drained, exited });
  scope.close();
};
