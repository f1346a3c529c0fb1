// decodeExit() on fabricated kvm_run bytes for every family, unknown and
// malformed payloads, stale-exit detection and the allocation-free accessors.
// Offsets here come from the layout table directly (not from decode.ts), so a
// wrong offset in the decoder fails these tests.
import assert from "node:assert/strict";
import { field, layOut } from "../src/abi/layout.ts";
import { KVM_RUN } from "../src/abi/kvm_structs.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import {
  debugException,
  debugPcHi,
  debugPcLo,
  decodeExit,
  exitReasonOf,
  ioCount,
  ioIsOut,
  ioPort,
  ioSingleData,
  ioSize,
  KvmRun,
  mmioData,
  mmioIsWrite,
  mmioLen,
  mmioPhysAddr,
  msrDataHi,
  msrDataLo,
  msrIndex,
  msrReason,
  setMsrData,
  setMsrError,
  snapshotExit,
} from "../src/exits/decode.ts";
import { StaleExitError } from "../src/errors.ts";

const L = layOut(KVM_RUN);
const off = (p: string) => field(L, p).offset;

function fab(reason: number): { run: KvmRun; dv: DataView; u8: Uint8Array } {
  const run = KvmRun.fabricate();
  const dv = run.dv;
  dv.setUint32(off("exit_reason"), reason, true);
  return { run, dv, u8: run.u8 };
}

function fabIo(dir: number, port: number, size: number, count: number, dataOffset = 4096) {
  const f = fab(K.KVM_EXIT_IO);
  f.u8[off("io.direction")] = dir;
  f.u8[off("io.size")] = size;
  f.dv.setUint16(off("io.port"), port, true);
  f.dv.setUint32(off("io.count"), count, true);
  f.dv.setBigUint64(off("io.data_offset"), BigInt(dataOffset), true);
  return f;
}

Deno.test("decodeExit() maps KVM_EXIT_IO out to io/out with the PIO-page payload", () => {
  const { run, u8 } = fabIo(K.KVM_EXIT_IO_OUT, 0x3f8, 1, 1);
  u8[4096] = 0x41;
  const e = decodeExit(run);
  assert.equal(e.reason, "io");
  if (e.reason !== "io") return;
  assert.equal(e.direction, "out");
  assert.equal(e.port, 0x3f8);
  assert.equal(e.size, 1);
  assert.equal(e.count, 1);
  assert.equal(e.dataOffset, 4096);
  assert.deepEqual([...e.data], [0x41]);
});

Deno.test("decodeExit() io/in: fill() writes count×size little-endian elements into the PIO page", () => {
  const { run, u8 } = fabIo(K.KVM_EXIT_IO_IN, 0x60, 2, 3);
  const e = decodeExit(run);
  assert.ok(e.reason === "io" && e.direction === "in");
  e.fill(0xbeef);
  assert.deepEqual([...u8.subarray(4096, 4102)], [0xef, 0xbe, 0xef, 0xbe, 0xef, 0xbe]);
  assert.equal(e.data.length, 6);
});

Deno.test("decodeExit() io with a payload beyond the mapping is unknown/malformed, not a throw", () => {
  const { run } = fabIo(K.KVM_EXIT_IO_OUT, 0x80, 4, 3000); // 12000 bytes at 4096 > 12288
  const e = decodeExit(run);
  assert.equal(e.reason, "unknown");
  assert.ok(e.reason === "unknown" && e.raw === K.KVM_EXIT_IO && /exceeds/.test(e.malformed ?? ""));
  const bad = fabIo(K.KVM_EXIT_IO_OUT, 0x80, 3, 1);
  assert.match((decodeExit(bad.run) as { malformed?: string }).malformed ?? "", /size 3/);
});

Deno.test("decodeExit() mmio: phys_addr as a number, len-cut data view, fill()", () => {
  const { run, dv, u8 } = fab(K.KVM_EXIT_MMIO);
  dv.setBigUint64(off("mmio.phys_addr"), 0xfed0_0000_1000n, true);
  dv.setUint32(off("mmio.len"), 4, true);
  u8[off("mmio.is_write")] = 0;
  const e = decodeExit(run);
  assert.ok(e.reason === "mmio");
  assert.equal(e.physAddr, 0xfed0_0000_1000);
  assert.equal(e.len, 4);
  assert.equal(e.isWrite, false);
  e.fill(0x12345678);
  assert.deepEqual([...u8.subarray(off("mmio.data"), off("mmio.data") + 8)], [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]);
  dv.setUint32(off("mmio.len"), 9, true);
  assert.equal(decodeExit(run).reason, "unknown");
});

Deno.test("decodeExit() hlt, shutdown, intr have no payload", () => {
  for (
    const [nr, name] of [[K.KVM_EXIT_HLT, "hlt"], [K.KVM_EXIT_SHUTDOWN, "shutdown"], [K.KVM_EXIT_INTR, "intr"]] as const
  ) {
    assert.deepEqual(decodeExit(fab(nr).run), { reason: name, generation: 0 });
  }
});

Deno.test("decodeExit() debug: exception, pc, dr6, dr7", () => {
  const { run, dv } = fab(K.KVM_EXIT_DEBUG);
  dv.setUint32(off("debug.arch.exception"), 3, true);
  dv.setBigUint64(off("debug.arch.pc"), 0xffff_8000_0000_1234n, true);
  dv.setBigUint64(off("debug.arch.dr6"), 0xffff0ff0n, true);
  dv.setBigUint64(off("debug.arch.dr7"), 0x400n, true);
  assert.deepEqual(decodeExit(run), {
    reason: "debug",
    generation: 0,
    exception: 3,
    pc: 0xffff_8000_0000_1234n,
    dr6: 0xffff0ff0n,
    dr7: 0x400n,
  });
});

Deno.test("decodeExit() internal_error EMULATION carries the instruction bytes", () => {
  const { run, dv, u8 } = fab(K.KVM_EXIT_INTERNAL_ERROR);
  dv.setUint32(off("internal.suberror"), K.KVM_INTERNAL_ERROR_EMULATION, true);
  dv.setUint32(off("internal.ndata"), 3, true);
  dv.setBigUint64(off("emulation_failure.flags"), 1n, true);
  u8[off("emulation_failure.insn_size")] = 3;
  u8.set([0x0f, 0xae, 0xf0], off("emulation_failure.insn_bytes"));
  const e = decodeExit(run);
  assert.ok(e.reason === "internal_error");
  assert.equal(e.suberrorName, "KVM_INTERNAL_ERROR_EMULATION");
  assert.equal(e.ndata, 3);
  assert.equal(e.data[0], 1n); // data[0] aliases emulation_failure.flags
  assert.equal(e.emulationFlags, 1n);
  assert.deepEqual([...e.insnBytes!], [0x0f, 0xae, 0xf0]);
});

Deno.test("decodeExit() internal_error without the bytes flag has no insnBytes; ndata is clamped", () => {
  const { run, dv } = fab(K.KVM_EXIT_INTERNAL_ERROR);
  dv.setUint32(off("internal.suberror"), K.KVM_INTERNAL_ERROR_DELIVERY_EV, true);
  dv.setUint32(off("internal.ndata"), 99, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "internal_error");
  assert.equal(e.insnBytes, undefined);
  assert.equal(e.ndata, 16);
  assert.equal(e.suberrorName, "KVM_INTERNAL_ERROR_DELIVERY_EV");
});

Deno.test("decodeExit() x86_rdmsr: setData()/setError() write msr.data / msr.error", () => {
  const { run, dv, u8 } = fab(K.KVM_EXIT_X86_RDMSR);
  dv.setUint32(off("msr.reason"), K.KVM_MSR_EXIT_REASON_FILTER, true);
  dv.setUint32(off("msr.index"), 0xc0010114, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "x86_rdmsr");
  assert.equal(e.index, 0xc0010114);
  assert.equal(e.msrReasonName, "KVM_MSR_EXIT_REASON_FILTER");
  e.setData(0x1122334455667788n);
  assert.equal(dv.getBigUint64(off("msr.data"), true), 0x1122334455667788n);
  e.setError();
  assert.equal(u8[off("msr.error")], 1);
});

Deno.test("MSR exit accessors read what decodeExit reads and write what setData()/setError() write", () => {
  const { run, dv, u8 } = fab(K.KVM_EXIT_X86_WRMSR);
  dv.setUint32(off("msr.reason"), K.KVM_MSR_EXIT_REASON_UNKNOWN, true);
  dv.setUint32(off("msr.index"), 0xc0001234, true);
  dv.setBigUint64(off("msr.data"), 0x8899aabbccddeeffn, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "x86_wrmsr");
  assert.deepEqual([msrIndex(run), msrReason(run)], [e.index, e.msrReason]);
  assert.equal(BigInt(msrDataHi(run)) << 32n | BigInt(msrDataLo(run)), e.data);
  setMsrData(run, 0x55667788, 0x11223344);
  assert.equal(dv.getBigUint64(off("msr.data"), true), 0x1122334455667788n);
  setMsrData(run, -1, 2 ** 32 + 5); // each half mod 2^32
  assert.equal(dv.getBigUint64(off("msr.data"), true), 0x00000005ffffffffn);
  setMsrError(run);
  assert.equal(u8[off("msr.error")], 1);
});

Deno.test("debug exit accessors read what decodeExit reads", () => {
  const { run, dv } = fab(K.KVM_EXIT_DEBUG);
  dv.setUint32(off("debug.arch.exception"), 3, true);
  dv.setBigUint64(off("debug.arch.pc"), 0xffffffff81234567n, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "debug");
  assert.equal(debugException(run), e.exception);
  assert.equal(BigInt(debugPcHi(run)) << 32n | BigInt(debugPcLo(run)), e.pc);
});

Deno.test("decodeExit() x86_wrmsr carries the written value", () => {
  const { run, dv } = fab(K.KVM_EXIT_X86_WRMSR);
  dv.setUint32(off("msr.index"), 0x10, true);
  dv.setBigUint64(off("msr.data"), 0xdeadn, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "x86_wrmsr" && e.data === 0xdeadn && e.index === 0x10);
});

Deno.test("decodeExit() hypercall: nr, args, long mode flag, setReturn()", () => {
  const { run, dv } = fab(K.KVM_EXIT_HYPERCALL);
  dv.setBigUint64(off("hypercall.nr"), 12n, true);
  for (let i = 0; i < 6; i++) dv.setBigUint64(off("hypercall.args") + 8 * i, BigInt(i + 1), true);
  dv.setBigUint64(off("hypercall.flags"), 1n, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "hypercall");
  assert.equal(e.nr, 12n);
  assert.deepEqual(e.args, [1n, 2n, 3n, 4n, 5n, 6n]);
  assert.equal(e.longMode, true);
  e.setReturn(0n);
  dv.setBigUint64(off("hypercall.ret"), 7n, true);
  e.setReturn(5n);
  assert.equal(dv.getBigUint64(off("hypercall.ret"), true), 5n);
});

Deno.test("decodeExit() system_event: type name, ndata-bounded data, flags = data[0]", () => {
  const { run, dv } = fab(K.KVM_EXIT_SYSTEM_EVENT);
  dv.setUint32(off("system_event.type"), 2, true);
  dv.setUint32(off("system_event.ndata"), 2, true);
  dv.setBigUint64(off("system_event.data"), 1n, true);
  dv.setBigUint64(off("system_event.data") + 8, 0xabn, true);
  const e = decodeExit(run);
  assert.ok(e.reason === "system_event");
  assert.equal(e.typeName, "KVM_SYSTEM_EVENT_RESET");
  assert.deepEqual(e.data, [1n, 0xabn]);
  assert.equal(e.flags, 1n);
});

Deno.test("decodeExit() fail_entry and memory_fault", () => {
  const f = fab(K.KVM_EXIT_FAIL_ENTRY);
  f.dv.setBigUint64(off("fail_entry.hardware_entry_failure_reason"), 0x80000021n, true);
  f.dv.setUint32(off("fail_entry.cpu"), 3, true);
  assert.deepEqual(decodeExit(f.run), {
    reason: "fail_entry",
    generation: 0,
    hardwareEntryFailureReason: 0x80000021n,
    cpu: 3,
  });
  const m = fab(K.KVM_EXIT_MEMORY_FAULT);
  m.dv.setBigUint64(off("memory_fault.flags"), 8n, true);
  m.dv.setBigUint64(off("memory_fault.gpa"), 0x100000n, true);
  m.dv.setBigUint64(off("memory_fault.size"), 0x1000n, true);
  assert.deepEqual(decodeExit(m.run), {
    reason: "memory_fault",
    generation: 0,
    flags: 8n,
    gpa: 0x100000n,
    size: 0x1000n,
    private: true,
  });
});

Deno.test("decodeExit() carries unknown reasons with their name, never throws", () => {
  for (const nr of [0, 7, 27, 41, 0xffffffff]) {
    const e = decodeExit(fab(nr).run);
    assert.ok(e.reason === "unknown");
    assert.equal(e.raw, nr);
    assert.equal(e.payload.length, 256);
  }
  assert.equal((decodeExit(fab(7).run) as { name: string }).name, "KVM_EXIT_IRQ_WINDOW_OPEN");
});

Deno.test("decodeExit() never throws on random bytes", () => {
  const run = KvmRun.fabricate();
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < 2000; i++) {
    for (let b = 0; b < 320; b++) run.u8[b] = rnd();
    run.dv.setUint32(8, rnd() % 42, true);
    const e = decodeExit(run);
    assert.equal(typeof e.reason, "string");
  }
});

Deno.test("a stale io exit throws StaleExitError on data and fill() after the generation moves", () => {
  const { run } = fabIo(K.KVM_EXIT_IO_IN, 0x71, 1, 1);
  const e = decodeExit(run);
  assert.ok(e.reason === "io");
  e.fill(1); // current: fine
  run.generation++; // what vcpu.run() does before entering the core
  assert.throws(() => e.fill(2), StaleExitError);
  assert.throws(
    () => e.data,
    (err: Error) => err instanceof StaleExitError && /io exit from run 0 used after run 1/.test(err.message),
  );
});

Deno.test("stale mmio / msr / hypercall / unknown setters throw", () => {
  const m = fab(K.KVM_EXIT_MMIO);
  m.dv.setUint32(off("mmio.len"), 1, true);
  const me = decodeExit(m.run);
  const r = fab(K.KVM_EXIT_X86_RDMSR);
  const re = decodeExit(r.run);
  const h = fab(K.KVM_EXIT_HYPERCALL);
  const he = decodeExit(h.run);
  const u = fab(99);
  const ue = decodeExit(u.run);
  for (const f of [m, r, h, u]) f.run.generation = 5;
  assert.ok(me.reason === "mmio" && re.reason === "x86_rdmsr" && he.reason === "hypercall" && ue.reason === "unknown");
  assert.throws(() => me.fill(0), StaleExitError);
  assert.throws(() => re.setData(0n), StaleExitError);
  assert.throws(() => re.setError(), StaleExitError);
  assert.throws(() => he.setReturn(0n), StaleExitError);
  assert.throws(() => ue.payload, StaleExitError);
});

Deno.test("exits carry the run generation they were decoded in", () => {
  const { run } = fab(K.KVM_EXIT_HLT);
  run.generation = 41;
  assert.equal(decodeExit(run).generation, 41);
});

Deno.test("allocation-free accessors agree with decodeExit()", () => {
  const { run, u8 } = fabIo(K.KVM_EXIT_IO_OUT, 0xe9, 4, 1);
  u8.set([1, 2, 3, 4], 4096);
  assert.equal(exitReasonOf(run), K.KVM_EXIT_IO);
  assert.equal(ioIsOut(run), true);
  assert.equal(ioPort(run), 0xe9);
  assert.equal(ioSize(run), 4);
  assert.equal(ioCount(run), 1);
  const d = ioSingleData(run)!;
  assert.deepEqual([...d], [1, 2, 3, 4]);
  assert.equal(ioSingleData(run), d, "the view is cached");
  const multi = fabIo(K.KVM_EXIT_IO_OUT, 0xe9, 1, 2);
  assert.equal(ioSingleData(multi.run), undefined);
  const m = fab(K.KVM_EXIT_MMIO);
  m.dv.setBigUint64(off("mmio.phys_addr"), 0xd0000000n, true);
  m.dv.setUint32(off("mmio.len"), 2, true);
  m.u8[off("mmio.is_write")] = 1;
  assert.equal(mmioPhysAddr(m.run), 0xd0000000);
  assert.equal(mmioLen(m.run), 2);
  assert.equal(mmioIsWrite(m.run), true);
  assert.equal(mmioData(m.run)!.length, 2);
});

Deno.test("decoder works on a run page at a non-zero base in a shared buffer", () => {
  const sab = new SharedArrayBuffer(65536);
  const run = new KvmRun(sab, 0x4000);
  new DataView(sab).setUint32(0x4000 + off("exit_reason"), K.KVM_EXIT_HLT, true);
  assert.equal(decodeExit(run).reason, "hlt");
  assert.throws(() => new KvmRun(sab, 0x4004 + 65536), RangeError);
});

Deno.test("snapshotExit() copies payloads so records survive later runs", () => {
  const { run, u8 } = fabIo(K.KVM_EXIT_IO_OUT, 0x3f8, 1, 1);
  u8[4096] = 0x41;
  const snap = snapshotExit(decodeExit(run));
  run.generation++;
  u8[4096] = 0x42;
  assert.deepEqual(snap, {
    reason: "io",
    direction: "out",
    port: 0x3f8,
    size: 1,
    count: 1,
    data: new Uint8Array([0x41]),
  });
});
