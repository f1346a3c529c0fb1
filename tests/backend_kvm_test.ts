/**
 * One scenario, two backends: the same guests through createVmWithOneVcpu,
 * vm.runUntil and decodeExit on the simulator and on the host's /dev/kvm,
 * comparing the exit sequence (with completions), the registers and guest
 * memory — each also checked against the expected values, so agreeing on a
 * wrong answer fails too. Skipped (with the reason printed) where /dev/kvm is
 * unusable. Every KVM_RUN runs under the watchdog; the guests are budgeted
 * to reach HLT; the known host hang (real-mode `int 0x80`) runs in a child
 * process with a kill timeout.
 */
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { createVm, createVmWithOneVcpu, RESUME } from "../mod.ts";
import type { ExitHandlers } from "../src/exits/dispatch.ts";
import type { RecordedExit } from "../src/exits/decode.ts";
import type { BackendName, GuestVcpu, GuestVm } from "../src/backends/types.ts";
import type { GuestMode } from "../src/x86/setup.ts";
import type { KvmRegs } from "../src/x86/regs.ts";
import {
  KvmRunTimeoutError,
  KvmUnavailableError,
  KvmUnsupportedError,
  releaseWatchdog,
} from "../src/backends/kvm/mod.ts";
import { inChild, NO_KVM } from "./support/kvm_guard.ts";

const BITS: Record<GuestMode, 16 | 32 | 64> = { real: 16, protected: 32, long: 64 };
const WATCHDOG_MS = 5000;

interface Scenario {
  mode: GuestMode;
  asm: string;
  handlers?: ExitHandlers;
  /** Before the run (memory regions, capabilities). */
  setup?: (vm: GuestVm, vcpu: GuestVcpu) => void;
  /** After the run: values to compare across backends. */
  probe?: (vm: GuestVm, vcpu: GuestVcpu) => unknown;
}

interface Outcome {
  stop: unknown;
  exits: readonly RecordedExit[];
  regs: KvmRegs;
  probe: unknown;
}

function run(backend: BackendName, sc: Scenario): Outcome {
  const code = assemble(sc.asm, { bits: BITS[sc.mode], origin: 0x1000 }).bytes;
  const { vm, vcpu } = createVmWithOneVcpu({ backend, mode: sc.mode, code, runTimeoutMs: WATCHDOG_MS });
  try {
    sc.setup?.(vm, vcpu);
    const r = vm.runUntil(vcpu, { record: true, maxExits: 50, ...(sc.handlers ? { handlers: sc.handlers } : {}) });
    return { stop: r.stop, exits: r.recorded!, regs: vcpu.getRegs(), probe: sc.probe?.(vm, vcpu) };
  } finally {
    (vm as { close?: () => void }).close?.();
    releaseWatchdog();
  }
}

/** Run on both backends, assert they agree, return the (common) outcome. */
function both(sc: Scenario): Outcome {
  const sim = run("sim", sc);
  const kvm = run("kvm", sc);
  assert.deepEqual(kvm.exits, sim.exits, "exit sequence: kvm vs sim");
  assert.deepEqual(kvm.stop, sim.stop, "stop reason");
  assert.deepEqual(kvm.regs, sim.regs, "registers after the run");
  assert.deepEqual(kvm.probe, sim.probe, "probed state");
  return sim;
}

const kvmTest = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name: `sim = kvm: ${name}`, ignore: NO_KVM !== undefined, fn });

const io = (direction: "in" | "out", port: number, size: number, data: number[]) => ({
  reason: "io",
  direction,
  port,
  size,
  count: 1,
  data: new Uint8Array(data),
});

kvmTest("OUT and IN with completion (long mode)", () => {
  const o = both({
    mode: "long",
    asm: "mov al, 0x41\nout 0xe9, al\nin al, 0x60\nmov bl, al\nmov dx, 0x3f8\nin ax, dx\nhlt",
    handlers: {
      io: (e) => {
        if (e.direction === "in") e.fill(e.port === 0x60 ? 0x5a : 0xbeef);
        return RESUME;
      },
    },
  });
  assert.deepEqual(o.exits, [
    io("out", 0xe9, 1, [0x41]),
    io("in", 0x60, 1, [0x5a]),
    io("in", 0x3f8, 2, [0xef, 0xbe]),
    { reason: "hlt" },
  ]);
  assert.equal(o.regs.rax, 0xbeefn);
  assert.equal(o.regs.rbx, 0x5an);
  assert.deepEqual(o.stop, { kind: "hlt" });
});

kvmTest("MMIO write and read with completion (long mode)", () => {
  const o = both({
    mode: "long",
    asm: "mov ebx, 0xd0000000\nmov dword [rbx], 0x12345678\nmov eax, [rbx+8]\nhlt",
    handlers: {
      mmio: (e) => {
        if (!e.isWrite) e.fill(0xcafebaben);
        return RESUME;
      },
    },
  });
  assert.deepEqual(o.exits, [
    { reason: "mmio", physAddr: 0xd0000000, len: 4, isWrite: true, data: new Uint8Array([0x78, 0x56, 0x34, 0x12]) },
    { reason: "mmio", physAddr: 0xd0000008, len: 4, isWrite: false, data: new Uint8Array([0xbe, 0xba, 0xfe, 0xca]) },
    { reason: "hlt" },
  ]);
  assert.equal(o.regs.rax, 0xcafebaben);
});

kvmTest("HLT", () => {
  const o = both({ mode: "long", asm: "hlt" });
  assert.deepEqual(o.exits, [{ reason: "hlt" }]);
  assert.equal(o.regs.rip, 0x1001n);
});

kvmTest("a long-mode guest: loop, stack, call", () => {
  const o = both({
    mode: "long",
    asm: "mov rcx, 10\nxor eax, eax\nl: add rax, rcx\ndec rcx\njnz l\nmov rsp, 0x800000\npush rax\ncall f\npop rbx\n" +
      "out 0x80, al\nhlt\nf: mov rdx, 0x1122334455667788\nret",
    probe: (vm) => Array.from(vm.readGuest(0x800000 - 8, 8)),
  });
  assert.deepEqual(o.exits, [io("out", 0x80, 1, [55]), { reason: "hlt" }]);
  assert.equal(o.regs.rbx, 55n);
  assert.equal(o.regs.rdx, 0x1122334455667788n);
  assert.equal(o.regs.rsp, 0x800000n);
  assert.deepEqual(o.probe, [55, 0, 0, 0, 0, 0, 0, 0]);
});

kvmTest("a real-mode guest: segment arithmetic", () => {
  const o = both({
    mode: "real",
    asm: "mov ax, 0x100\nmov ds, ax\nmov byte [0x10], 0x55\nmov al, [0x10]\nout 0x80, al\nhlt",
    probe: (vm, vcpu) => ({ byte: vm.readGuest(0x1010, 1)[0], ds: vcpu.getSregs().ds.base }),
  });
  assert.deepEqual(o.exits, [io("out", 0x80, 1, [0x55]), { reason: "hlt" }]);
  assert.deepEqual(o.probe, { byte: 0x55, ds: 0x1000n });
});

kvmTest("a protected-mode guest: 32-bit memory and IO", () => {
  const o = both({
    mode: "protected",
    asm: "mov eax, 0x12345678\nmov [0x3000], eax\nmov ebx, [0x3000]\nadd ebx, 1\nout 0x80, eax\nhlt",
    probe: (vm) => Array.from(vm.readGuest(0x3000, 4)),
  });
  assert.deepEqual(o.exits, [io("out", 0x80, 4, [0x78, 0x56, 0x34, 0x12]), { reason: "hlt" }]);
  assert.equal(o.regs.rbx, 0x12345679n);
  assert.deepEqual(o.probe, [0x78, 0x56, 0x34, 0x12]);
});

kvmTest("dirty log: the written pages, then cleared", () => {
  const o = both({
    mode: "long",
    asm: "mov rbx, 0x4000000\nmov byte [rbx], 1\nmov byte [rbx+0x3000], 1\nmov byte [rbx+0x5000], 1\nhlt",
    setup: (vm) => {
      vm.addMemoryRegion({ slot: 1, gpa: 0x4000000, pages: 16, flags: K.KVM_MEM_LOG_DIRTY_PAGES });
    },
    probe: (vm) => ({ first: Array.from(vm.getDirtyLog(1)), second: Array.from(vm.getDirtyLog(1)) }),
  });
  assert.deepEqual(o.probe, { first: [0x29, 0, 0, 0, 0, 0, 0, 0], second: [0, 0, 0, 0, 0, 0, 0, 0] });
});

kvmTest("user-space MSR exits: RDMSR and WRMSR of an unknown MSR", () => {
  const answer = 0xaabbccdd11223344n;
  const o = both({
    mode: "long",
    asm: "mov ecx, 0x12345678\nrdmsr\nmov esi, eax\nmov edi, edx\nmov eax, 0x11\nmov edx, 0x22\nwrmsr\nhlt",
    setup: (vm) => vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN),
    handlers: {
      x86_rdmsr: (e) => {
        e.setData(answer);
        return RESUME;
      },
      x86_wrmsr: () => RESUME,
    },
  });
  const unknown = K.KVM_MSR_EXIT_REASON_UNKNOWN;
  assert.deepEqual(o.exits, [
    // Recorded as KVM reported it (data 0), before the handler answered.
    { reason: "x86_rdmsr", msrReason: unknown, index: 0x12345678, data: 0n },
    { reason: "x86_wrmsr", msrReason: unknown, index: 0x12345678, data: 0x22_00000011n },
    { reason: "hlt" },
  ]);
  assert.equal(o.regs.rsi, 0x11223344n);
  assert.equal(o.regs.rdi, 0xaabbccddn);
});

kvmTest("createVm({backend: 'kvm'}): regions, host view, vCPU state", () => {
  const vm = createVm({ backend: "kvm", memSize: 1 << 20 });
  try {
    const vcpu = vm.addVcpu(0);
    vm.writeGuest(0x2000, [1, 2, 3]);
    assert.deepEqual(Array.from(vm.guestView(0x2000, 3)), [1, 2, 3]);
    vcpu.setRegs({ rbx: 0x1234n });
    assert.equal(vcpu.getRegs().rbx, 0x1234n);
    const efer = 0xc0000080;
    assert.equal(vcpu.getMsr(efer), 0n);
    vcpu.setMsr(0xc0000102, 0x5555n); // MSR_KERNEL_GS_BASE
    assert.equal(vcpu.getMsr(0xc0000102), 0x5555n);
    assert.equal(vcpu.getMpState(), K.KVM_MP_STATE_RUNNABLE);
    assert.ok(Number.isNaN(vcpu.instructions), "KVM does not count instructions");
    assert.throws(() => vm.addMemoryRegion({ slot: 1, gpa: 0x80000, size: 0x1000 }), /overlaps slot 0/);
    assert.throws(() => vm.runUntil(vcpu, { maxInstructions: 10 }), KvmUnsupportedError);
  } finally {
    vm.close();
  }
});

kvmTest("watchdog: a guest that never exits ends in KvmRunTimeoutError", () => {
  const { vm, vcpu } = createVmWithOneVcpu({ backend: "kvm", code: [0xeb, 0xfe], runTimeoutMs: 200 }); // jmp $
  try {
    const t = performance.now();
    assert.throws(() => vcpu.run(), (e: unknown) => e instanceof KvmRunTimeoutError && e.timeoutMs === 200);
    assert.ok(performance.now() - t < 3000, "the watchdog fired late");
    assert.equal(vcpu.getRegs().rip, 0x1000n);
  } finally {
    vm.close();
    releaseWatchdog();
  }
});

kvmTest("known host hang: real-mode int 0x80 is stopped by the watchdog (child process, SIGKILL at 20 s)", async () => {
  const out = await inChild(
    `
const { createVmWithOneVcpu } = await import(ROOT + "mod.ts");
const { KvmRunTimeoutError, releaseWatchdog } = await import(ROOT + "src/backends/kvm/mod.ts");
const { vm, vcpu } = createVmWithOneVcpu({ backend: "kvm", mode: "real", code: [0xcd, 0x80, 0xf4], runTimeoutMs: 500 });
let what = "exit";
try { what = vcpu.run().reason; } catch (e) { what = e instanceof KvmRunTimeoutError ? "timeout" : String(e); }
vm.close(); releaseWatchdog();
console.log(what);`,
    20000,
  );
  assert.equal(out.trim(), "timeout");
});

Deno.test("kvm backend: a missing device is a typed error naming the path and errno", () => {
  try {
    createVm({ backend: "kvm", device: "/nonexistent/kvm", memSize: 1 << 20 });
    assert.fail("expected KvmUnavailableError");
  } catch (e) {
    assert.ok(e instanceof KvmUnavailableError, String(e));
    assert.equal(e.path, "/nonexistent/kvm");
    assert.equal(e.errno, 2);
    assert.match(e.message, /^cannot use \/nonexistent\/kvm: open failed with ENOENT/);
  }
});
