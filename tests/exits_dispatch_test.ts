// dispatchExit() as a pure function of (exit, context): fabricated exits,
// user handlers, arch/feature hooks and each family's default handling.
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { KVM_RUN } from "../src/abi/kvm_structs.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { decodeExit, KvmRun } from "../src/exits/decode.ts";
import { dispatchExit, type ExitContext } from "../src/exits/dispatch.ts";
import { MmioBus, PioBus } from "../src/devices/bus.ts";
import { TestMmioDevice } from "../src/devices/test_mmio.ts";
import { DebugExitDevice } from "../src/devices/debug_exit.ts";
import { stop } from "../src/exits/outcome.ts";

const L = layOut(KVM_RUN);
const off = (p: string) => field(L, p).offset;

function ctx(): ExitContext {
  return { pio: new PioBus(), mmio: new MmioBus(), vcpuId: 0 };
}
function fab(reason: number, fill: (dv: DataView, u8: Uint8Array) => void = () => {}): KvmRun {
  const run = KvmRun.fabricate();
  run.dv.setUint32(off("exit_reason"), reason, true);
  fill(run.dv, run.u8);
  return run;
}
function io(dir: number, port: number, size: number, count = 1) {
  return fab(K.KVM_EXIT_IO, (dv, u8) => {
    u8[off("io.direction")] = dir;
    u8[off("io.size")] = size;
    dv.setUint16(off("io.port"), port, true);
    dv.setUint32(off("io.count"), count, true);
    dv.setBigUint64(off("io.data_offset"), 4096n, true);
  });
}

Deno.test("dispatchExit() defaults: hlt/shutdown stop, intr resumes, system_event stops with its type", () => {
  const c = ctx();
  assert.deepEqual(dispatchExit(decodeExit(fab(K.KVM_EXIT_HLT)), c), { kind: "stop", why: { kind: "hlt" } });
  assert.deepEqual(dispatchExit(decodeExit(fab(K.KVM_EXIT_SHUTDOWN)), c), { kind: "stop", why: { kind: "shutdown" } });
  assert.deepEqual(dispatchExit(decodeExit(fab(K.KVM_EXIT_INTR)), c), { kind: "resume" });
  const se = fab(K.KVM_EXIT_SYSTEM_EVENT, (dv) => dv.setUint32(off("system_event.type"), 1, true));
  assert.deepEqual(dispatchExit(decodeExit(se), c), {
    kind: "stop",
    why: { kind: "system_event", type: 1, typeName: "KVM_SYSTEM_EVENT_SHUTDOWN", data: [] },
  });
});

Deno.test("dispatchExit() unmapped IO in reads all-ones into the PIO page and is counted", () => {
  const c = ctx();
  const run = io(K.KVM_EXIT_IO_IN, 0x1234, 2, 2);
  assert.equal(dispatchExit(decodeExit(run), c).kind, "resume");
  assert.deepEqual([...run.u8.subarray(4096, 4100)], [0xff, 0xff, 0xff, 0xff]);
  assert.equal(c.pio.stats.unmappedReads, 2);
});

Deno.test("dispatchExit() IO out to a debug-exit device stops with the code", () => {
  const c = ctx();
  c.pio.insert(new DebugExitDevice(), 0xf4, 4);
  const run = io(K.KVM_EXIT_IO_OUT, 0xf4, 1);
  run.u8[4096] = 0x10;
  assert.deepEqual(dispatchExit(decodeExit(run), c), {
    kind: "stop",
    why: { kind: "debug-exit", value: 0x10, code: 0x21, port: 0xf4 },
  });
});

Deno.test("dispatchExit() MMIO read and write go to the MMIO bus at device offsets", () => {
  const c = ctx();
  const dev = new TestMmioDevice(0x100);
  dev.poke(0x10, 0xcafef00dn, 4);
  c.mmio.insert(dev, 0xd0000000, 0x100);
  const rd = fab(K.KVM_EXIT_MMIO, (dv) => {
    dv.setBigUint64(off("mmio.phys_addr"), 0xd0000010n, true);
    dv.setUint32(off("mmio.len"), 4, true);
  });
  dispatchExit(decodeExit(rd), c);
  assert.equal(rd.dv.getUint32(off("mmio.data"), true), 0xcafef00d);
  const wr = fab(K.KVM_EXIT_MMIO, (dv, u8) => {
    dv.setBigUint64(off("mmio.phys_addr"), 0xd0000020n, true);
    dv.setUint32(off("mmio.len"), 2, true);
    u8[off("mmio.is_write")] = 1;
    dv.setUint16(off("mmio.data"), 0xabcd, true);
  });
  dispatchExit(decodeExit(wr), c);
  assert.deepEqual(dev.accesses.map((a) => [a.kind, a.offset, a.size, a.value]), [["read", 0x10, 4, 0xcafef00dn], [
    "write",
    0x20,
    2,
    0xabcdn,
  ]]);
});

Deno.test("dispatchExit() default MSR handling fails the access (guest #GP); hypercall answers -KVM_ENOSYS", () => {
  const c = ctx();
  const m = fab(K.KVM_EXIT_X86_RDMSR);
  dispatchExit(decodeExit(m), c);
  assert.equal(m.u8[off("msr.error")], 1);
  const h = fab(K.KVM_EXIT_HYPERCALL);
  dispatchExit(decodeExit(h), c);
  assert.equal(h.dv.getBigUint64(off("hypercall.ret"), true), BigInt.asUintN(64, -1000n));
});

Deno.test("dispatchExit() unknown → internal_error with UNEXPECTED_EXIT_REASON and the raw code", () => {
  assert.deepEqual(dispatchExit(decodeExit(fab(42)), ctx()), {
    kind: "internal_error",
    message: "unexpected exit reason 42 (KVM_EXIT_42 (unknown))",
    suberror: K.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
    data: [42n],
  });
});

Deno.test("dispatchExit() internal_error and fail_entry → internal_error outcome", () => {
  const ie = fab(K.KVM_EXIT_INTERNAL_ERROR, (dv) => dv.setUint32(off("internal.suberror"), 3, true));
  const r = dispatchExit(decodeExit(ie), ctx());
  assert.ok(r.kind === "internal_error" && r.suberror === 3 && /DELIVERY_EV/.test(r.message));
  assert.equal(dispatchExit(decodeExit(fab(K.KVM_EXIT_FAIL_ENTRY)), ctx()).kind, "internal_error");
});

Deno.test("a user handler wins; returning undefined falls through to the default", () => {
  const c = ctx();
  const seen: string[] = [];
  const handlers = {
    hlt: () => ({ kind: "pause" as const }),
    io: () => {
      seen.push("io");
      return undefined;
    },
  };
  assert.deepEqual(dispatchExit(decodeExit(fab(K.KVM_EXIT_HLT)), c, { handlers }), { kind: "pause" });
  const run = io(K.KVM_EXIT_IO_IN, 0x99, 1);
  assert.equal(dispatchExit(decodeExit(run), c, { handlers }).kind, "resume");
  assert.deepEqual(seen, ["io"]);
  assert.equal(run.u8[4096], 0xff);
});

Deno.test("hooks see arch/feature exits (io, unknown) before the defaults, but not generic ones", () => {
  const c = ctx();
  const saw: string[] = [];
  const hook = (e: { reason: string }) => {
    saw.push(e.reason);
    return e.reason === "unknown" ? stop({ kind: "handler", detail: "vmgexit handled" }) : undefined;
  };
  assert.deepEqual(dispatchExit(decodeExit(fab(0x7fff)), c, { hooks: [hook] }), {
    kind: "stop",
    why: { kind: "handler", detail: "vmgexit handled" },
  });
  dispatchExit(decodeExit(io(K.KVM_EXIT_IO_OUT, 0x80, 1)), c, { hooks: [hook] });
  dispatchExit(decodeExit(fab(K.KVM_EXIT_HLT)), c, { hooks: [hook] });
  assert.deepEqual(saw, ["unknown", "io"]);
});
