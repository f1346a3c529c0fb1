/**
 * The CLI's value parsers (src/cli/parse.ts) and exit records
 * (src/cli/exit_json.ts), in-process: every exit family's JSON shape, with
 * fabricated exits (no core needed).
 */
import assert from "node:assert/strict";
import { UsageError } from "../src/cli/errors.ts";
import { parseCount, parseHexBytes, parseSize, parseUint, splitAssignment } from "../src/cli/parse.ts";
import { exitLine, exitToJson } from "../src/cli/exit_json.ts";
import type { VcpuExit } from "../src/exits/exit.ts";

Deno.test("parseSize: plain, K/M/G suffixes, hex; rejects other units", () => {
  assert.equal(parseSize("--mem", "4096"), 4096);
  assert.equal(parseSize("--mem", "64K"), 64 << 10);
  assert.equal(parseSize("--mem", "16M"), 16 << 20);
  assert.equal(parseSize("--mem", "16m"), 16 << 20);
  assert.equal(parseSize("--mem", "2G"), 2 * 2 ** 30);
  assert.equal(parseSize("--mem", "1MiB"), 1 << 20);
  assert.equal(parseSize("--mem", "0x100000"), 1 << 20);
  for (const bad of ["", "12Q", "M", "-1M", "1.5M", "16 MB x"]) {
    assert.throws(
      () => parseSize("--mem", bad),
      (e: Error) => e instanceof UsageError && /--mem: .* is not a size/.test(e.message),
      bad,
    );
  }
});

Deno.test("parseUint: decimal, hex, binary, _ separators, two's complement only where allowed, width checks", () => {
  assert.equal(parseUint("v", "0x3F8", 16), 0x3f8n);
  assert.equal(parseUint("v", "1_000", 16), 1000n);
  assert.equal(parseUint("v", "0b101", 8), 5n);
  assert.equal(parseUint("v", "-1", 64, true), 0xffff_ffff_ffff_ffffn);
  assert.equal(parseUint("v", "-0x8000000000000000", 64, true), 0x8000_0000_0000_0000n);
  assert.throws(() => parseUint("v", "-1", 16), /"-1" is not a number/);
  assert.throws(() => parseUint("v", "-0x8000000000000001", 64, true), /does not fit 64 bits/);
  assert.throws(
    () => parseUint("--in port", "0x10000", 16),
    /--in port: 0x10000 does not fit 16 bits \(expected 0\.\.0xffff\)/,
  );
  assert.throws(() => parseUint("v", "12g", 64), /"12g" is not a number/);
  assert.equal(parseCount("--max-exits", "10", 1), 10);
  assert.throws(() => parseCount("--max-exits", "0", 1), /--max-exits: 0 is out of range \(expected 1\.\./);
});

Deno.test("parseHexBytes and splitAssignment", () => {
  assert.deepEqual([...parseHexBytes("--code", "b0 41\ne6E9f4")], [0xb0, 0x41, 0xe6, 0xe9, 0xf4]);
  assert.throws(() => parseHexBytes("--code", "0xb0"), /"x" at position 1 is not a hex digit/);
  assert.throws(() => parseHexBytes("--code", "b04"), /odd number of hex digits \(3\)/);
  assert.throws(() => parseHexBytes("--code", "  "), /--code: empty/);
  assert.deepEqual(splitAssignment("--set", "rax = 0x10"), ["rax", "0x10"]);
  assert.deepEqual(splitAssignment("--in", "0x60=1=2"), ["0x60", "1=2"]);
  for (const bad of ["rax", "=1", "rax="]) {
    assert.throws(() => splitAssignment("--set", bad), /expected NAME=VALUE/, bad);
  }
});

const noop = () => {};
const view = (bytes: number[]) => Uint8Array.from(bytes);

Deno.test("exitToJson: the JSON shape of every exit family, and its text line", () => {
  const cases: [VcpuExit, object, string][] = [
    [
      {
        reason: "io",
        generation: 0,
        direction: "out",
        port: 0x3f8,
        size: 1,
        count: 1,
        dataOffset: 4096,
        data: view([0x41]),
        fill: noop,
      },
      { reason: "io", direction: "out", port: "0x3f8", size: 1, count: 1, data: "0x41" },
      "io out port 0x3f8 size 1 count 1 data 0x41",
    ],
    [
      {
        reason: "io",
        generation: 0,
        direction: "in",
        port: 0x60,
        size: 2,
        count: 2,
        dataOffset: 4096,
        data: view([0xef, 0xbe, 0x34, 0x12]),
        fill: noop,
      },
      { reason: "io", direction: "in", port: "0x60", size: 2, count: 2, data: ["0xbeef", "0x1234"] },
      "io in port 0x60 size 2 count 2 data [0xbeef 0x1234]",
    ],
    [
      {
        reason: "mmio",
        generation: 0,
        physAddr: 0xd000_0000,
        len: 4,
        isWrite: true,
        data: view([0x78, 0x56, 0x34, 0x12]),
        fill: noop,
      },
      { reason: "mmio", phys_addr: "0xd0000000", len: 4, is_write: true, data: "0x12345678" },
      "mmio write phys_addr 0xd0000000 len 4 data 0x12345678",
    ],
    [{ reason: "hlt", generation: 0 }, { reason: "hlt" }, "hlt"],
    [{ reason: "shutdown", generation: 0 }, { reason: "shutdown" }, "shutdown"],
    [
      { reason: "debug", generation: 0, exception: 1, pc: 0x1001n, dr6: 0xffff4ff0n, dr7: 0x400n },
      { reason: "debug", exception: 1, pc: "0x1001", dr6: "0xffff4ff0", dr7: "0x400" },
      "debug exception 1 pc 0x1001 dr6 0xffff4ff0 dr7 0x400",
    ],
    [
      {
        reason: "internal_error",
        generation: 0,
        suberror: 1,
        suberrorName: "KVM_INTERNAL_ERROR_EMULATION",
        ndata: 1,
        data: [1n],
        emulationFlags: 1n,
        insnBytes: view([0x0f, 0x28]),
      },
      {
        reason: "internal_error",
        suberror: 1,
        suberror_name: "KVM_INTERNAL_ERROR_EMULATION",
        ndata: 1,
        data: ["0x1"],
        insn_bytes: "0f28",
      },
      "internal_error suberror 1 suberror_name KVM_INTERNAL_ERROR_EMULATION ndata 1 data [0x1] insn_bytes 0f28",
    ],
    [
      {
        reason: "system_event",
        generation: 0,
        type: 1,
        typeName: "KVM_SYSTEM_EVENT_SHUTDOWN",
        ndata: 1,
        data: [0n],
        flags: 0n,
      },
      { reason: "system_event", type: 1, type_name: "KVM_SYSTEM_EVENT_SHUTDOWN", ndata: 1, data: ["0x0"] },
      "system_event type 1 type_name KVM_SYSTEM_EVENT_SHUTDOWN ndata 1 data [0x0]",
    ],
    [
      {
        reason: "x86_wrmsr",
        generation: 0,
        msrReason: 2,
        msrReasonName: "KVM_MSR_EXIT_REASON_UNKNOWN",
        index: 0x1234,
        data: 0x55n,
        setData: noop,
        setError: noop,
      },
      {
        reason: "x86_wrmsr",
        msr_reason: 2,
        msr_reason_name: "KVM_MSR_EXIT_REASON_UNKNOWN",
        index: "0x1234",
        data: "0x55",
        error: false,
      },
      "x86_wrmsr msr_reason 2 msr_reason_name KVM_MSR_EXIT_REASON_UNKNOWN index 0x1234 data 0x55 error false",
    ],
    [
      { reason: "memory_fault", generation: 0, flags: 8n, gpa: 0x1000n, size: 0x1000n, private: true },
      { reason: "memory_fault", flags: "0x8", gpa: "0x1000", size: "0x1000", private: true },
      "memory_fault flags 0x8 gpa 0x1000 size 0x1000 private true",
    ],
  ];
  for (const [exit, json, line] of cases) {
    const got = exitToJson(exit);
    assert.deepEqual(got, json);
    assert.equal(exitLine(got), line);
  }
  const rd: VcpuExit = {
    reason: "x86_rdmsr",
    generation: 0,
    msrReason: 2,
    msrReasonName: "KVM_MSR_EXIT_REASON_UNKNOWN",
    index: 0x1234,
    data: 0n,
    setData: noop,
    setError: noop,
  };
  assert.equal(exitToJson(rd, { value: 0x1122n }).data, "0x1122");
  assert.equal(exitToJson(rd, { error: true }).error, true);
  const hc: VcpuExit = {
    reason: "hypercall",
    generation: 0,
    nr: 12n,
    args: [0x1000n, 1n, 0n, 0n, 0n, 0n],
    flags: 1n,
    longMode: true,
    setReturn: noop,
  };
  assert.deepEqual(exitToJson(hc, { value: 0xfffffffffffffc18n }), {
    reason: "hypercall",
    nr: "0xc",
    args: ["0x1000", "0x1", "0x0", "0x0", "0x0", "0x0"],
    flags: "0x1",
    long_mode: true,
    ret: "0xfffffffffffffc18",
  });
});
