// Integration through the real WASM core: HLT, OUT → io exit, IN completion,
// MMIO read/write completion, string IO, serial output, debug-exit, limits,
// immediate_exit, dirty logging and read-only slots. Guest code is written
// with the mini assembler (src/asm/x86.ts).
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { createVmWithOneVcpu, type GuestMode } from "../src/x86/setup.ts";
import { Serial16550 } from "../src/devices/serial.ts";
import { BufferSink } from "../src/devices/sink.ts";
import { DebugExitDevice } from "../src/devices/debug_exit.ts";
import { TestMmioDevice } from "../src/devices/test_mmio.ts";
import { StaleExitError } from "../src/errors.ts";

const bitsOf = (m: GuestMode) => (m === "long" ? 64 : m === "protected" ? 32 : 16);
function guest(src: string, mode: GuestMode = "long", load = 0x1000) {
  const code = assemble(src, { bits: bitsOf(mode), origin: load }).bytes;
  return createVmWithOneVcpu({ code, mode, load });
}
const BUDGET = 100_000;

for (const mode of ["long", "protected", "real"] as const) {
  Deno.test(`${mode} mode: OUT gives an io exit with RIP at the OUT, then HLT with RIP after it`, () => {
    const { vcpu } = guest("mov al, 0x41\nout 0xe9, al\nhlt", mode);
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "io", `got ${e.reason}`);
    assert.deepEqual([e.direction, e.port, e.size, e.count, [...e.data]], ["out", 0xe9, 1, 1, [0x41]]);
    assert.equal(vcpu.getRegs().rip, 0x1002n);
    assert.equal(vcpu.run(BUDGET).reason, "hlt");
    assert.equal(vcpu.getRegs().rip, 0x1005n);
  });
}

Deno.test("IN completion: data filled into the PIO page reaches EAX on the next run()", () => {
  const { vcpu } = guest("mov dx, 0x1234\nin eax, dx\nmov ebx, eax\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.direction === "in" && e.port === 0x1234 && e.size === 4);
  e.fill(0xdeadbeef);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.throws(() => e.fill(1), StaleExitError);
  const r = vcpu.getRegs();
  assert.equal(r.rax, 0xdeadbeefn);
  assert.equal(r.rbx, 0xdeadbeefn);
});

Deno.test("MMIO read completion below 4 GiB (identity-mapped, in no memslot)", () => {
  const { vcpu } = guest("mov eax, [0xd0000010]\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "mmio", `got ${e.reason}`);
  assert.deepEqual([e.physAddr, e.len, e.isWrite], [0xd0000010, 4, false]);
  e.fill(0x12345678);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rax, 0x12345678n);
});

Deno.test("MMIO write: an exit with the data, the instruction completes", () => {
  const { vcpu } = guest("mov ebx, 0xd0000004\nmov dword [rbx], 0xcafef00d\nmov eax, 1\nhlt");
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "mmio" && e.isWrite);
  assert.deepEqual([e.physAddr, e.len, [...e.data]], [0xd0000004, 4, [0x0d, 0xf0, 0xfe, 0xca]]);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rax, 1n);
});

Deno.test("runUntil(): serial output through the PIO bus, stop at hlt, counts and records", () => {
  const { vm, vcpu } = guest(`
    mov esi, msg
    mov dx, 0x3f8
  next:
    lodsb
    test al, al
    jz done
    out dx, al
    jmp next
  done:
    hlt
  msg: db "Hi!", 10, 0`);
  const sink = new BufferSink();
  vm.pio.insert(new Serial16550({ sink }), 0x3f8, 8);
  const r = vm.runUntil(vcpu, { maxExits: 100, record: true });
  assert.deepEqual(r.stop, { kind: "hlt" });
  assert.equal(sink.text(), "Hi!\n");
  assert.equal(r.counts.io, 4);
  assert.equal(r.exits, 5);
  assert.deepEqual(r.recorded!.map((x) => x.reason), ["io", "io", "io", "io", "hlt"]);
  assert.ok(r.instructions > 10);
});

Deno.test("runUntil(): the debug-exit port stops the run with the guest's code (fast path)", () => {
  const { vm, vcpu } = guest("mov al, 5\nout 0xf4, al\nhlt");
  vm.pio.insert(new DebugExitDevice(), 0xf4, 4);
  const r = vm.runUntil(vcpu);
  assert.deepEqual(r.stop, { kind: "debug-exit", value: 5, code: 11, port: 0xf4 });
});

Deno.test("runUntil(): MMIO device on the MMIO bus sees read-modify-write as read then write", () => {
  const { vm, vcpu } = guest("mov ebx, 0xd0000100\nadd dword [rbx], 3\nhlt");
  const dev = new TestMmioDevice(0x1000);
  dev.poke(0x100, 40n, 4);
  vm.mmio.insert(dev, 0xd0000000, 0x1000);
  const r = vm.runUntil(vcpu, { maxExits: 10 });
  assert.deepEqual(r.stop, { kind: "hlt" });
  assert.deepEqual(dev.accesses.map((a) => [a.kind, a.offset, a.value]), [["read", 0x100, 40n], ["write", 0x100, 43n]]);
});

Deno.test("runUntil(): an instruction the core does not implement stops with internal_error and its bytes", () => {
  // RDPMC (0f 33) is outside kvmsim's instruction set: KVM_INTERNAL_ERROR_EMULATION.
  const { vm, vcpu } = createVmWithOneVcpu({ code: [0x0f, 0x33, 0xf4] });
  const r = vm.runUntil(vcpu, { maxExits: 5 });
  assert.ok(
    r.stop.kind === "internal_error" && r.stop.suberror === K.KVM_INTERNAL_ERROR_EMULATION,
    JSON.stringify(r.stop.kind),
  );
  assert.match(r.stop.message, /KVM_INTERNAL_ERROR_EMULATION insn 0f 33/);
});

Deno.test("runUntil(): unmapped IN reads all-ones; handlers override defaults", () => {
  const { vm, vcpu } = guest("in al, 0x70\nmov bl, al\nin al, 0x71\nhlt");
  const r = vm.runUntil(vcpu, {
    handlers: { io: (e) => (e.port === 0x71 ? (e.fill(0x42), { kind: "resume" }) : undefined) },
  });
  assert.deepEqual(r.stop, { kind: "hlt" });
  const regs = vcpu.getRegs();
  assert.equal(regs.rbx & 0xffn, 0xffn);
  assert.equal(regs.rax & 0xffn, 0x42n);
  assert.equal(vm.pio.stats.unmappedReads, 1);
});

Deno.test("runUntil(): maxInstructions and maxExits stop an endless guest", () => {
  const a = guest("spin: jmp spin");
  const r1 = a.vm.runUntil(a.vcpu, { maxInstructions: 5000 });
  assert.deepEqual(r1.stop, { kind: "max-insns", limit: 5000 });
  assert.equal(r1.instructions, 5000);
  const b = guest("spin: out 0x80, al\njmp spin");
  const r2 = b.vm.runUntil(b.vcpu, { maxExits: 250 });
  assert.deepEqual(r2.stop, { kind: "max-exits", limit: 250 });
  assert.equal(r2.counts.io, 250);
});

Deno.test("budget exhaustion returns KVM_EXIT_INTR; immediate_exit returns INTR without executing", () => {
  const { vcpu } = guest("spin: jmp spin");
  assert.equal(vcpu.run(100).reason, "intr");
  const before = vcpu.instructions;
  vcpu.immediateExit = true;
  assert.equal(vcpu.runRaw(), K.KVM_EXIT_INTR);
  assert.equal(vcpu.instructions, before);
  vcpu.immediateExit = false;
});

Deno.test("string IO: rep outsb is one exit per element (count 1), RSI/RCX moved, RIP at the REP until it completes", () => {
  // rep outsb at 0x100e (after 5 + 5 + 4 bytes of movs), hlt at 0x1010, buf at 0x1011 (KVM em_out: count 1).
  const { vcpu } = guest("mov esi, buf\nmov ecx, 5\nmov dx, 0x3f8\nrep outsb\nhlt\nbuf: db 1, 2, 3, 4, 5");
  for (let i = 0; i < 5; i++) {
    const e = vcpu.run(BUDGET);
    assert.ok(e.reason === "io" && e.direction === "out", `exit ${i}: ${e.reason}`);
    assert.deepEqual([e.port, e.size, e.count, [...e.data.subarray(0, 1)]], [0x3f8, 1, 1, [i + 1]], `exit ${i}`);
    const r = vcpu.getRegs();
    assert.deepEqual([r.rsi, r.rcx, r.rip], [0x1011n + BigInt(i + 1), BigInt(4 - i), 0x100en], `exit ${i}`);
  }
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rip, 0x1011n);
});

Deno.test("dirty logging through the core: guest writes set bits, getDirtyLog() clears them", () => {
  const { vm, vcpu } = guest("mov dword [0x5000], 1\nmov dword [0x9000], 2\nhlt");
  vm.setMemoryRegionFlags(0, K.KVM_MEM_LOG_DIRTY_PAGES);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const log = vm.getDirtyLog(0);
  const pages = [...log].flatMap((b, i) => [0, 1, 2, 3, 4, 5, 6, 7].filter((k) => b & (1 << k)).map((k) => i * 8 + k));
  assert.ok(pages.includes(5) && pages.includes(9), `dirty pages ${pages}`);
  assert.ok(vm.getDirtyLog(0).every((b) => b === 0));
});

Deno.test("dirty logging: a page written again after getDirtyLog() is logged again (the TLB is not left writable)", () => {
  const { vm, vcpu } = guest("top:\nmov dword [0x200000], 1\nout 0x80, al\njmp top");
  vm.setMemoryRegionFlags(0, K.KVM_MEM_LOG_DIRTY_PAGES);
  const bit = (log: Uint8Array, page: number) => (log[page >> 3]! >> (page & 7)) & 1;
  for (let round = 0; round < 3; round++) {
    assert.equal(vcpu.run(BUDGET).reason, "io");
    assert.equal(bit(vm.getDirtyLog(0), 0x200), 1, `round ${round}`);
  }
  assert.equal(bit(vm.getDirtyLog(0), 0x200), 0, "nothing written since");
});

Deno.test("a write to a read-only slot is an MMIO exit; reads come from memory", () => {
  const { vm, vcpu } = guest("mov eax, [0x2000000]\nmov dword [0x2000000], 7\nhlt", "long");
  vm.addMemoryRegion({ slot: 1, gpa: 0x2000000, pages: 1, flags: K.KVM_MEM_READONLY });
  vm.writeGuest(0x2000000, [0x11, 0x22, 0x33, 0x44]);
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "mmio" && e.isWrite && e.physAddr === 0x2000000, `got ${JSON.stringify(e.reason)}`);
  assert.equal(vcpu.getRegs().rax, 0x44332211n);
});

Deno.test("setRegs() between runs takes effect (dirty flag honoured by the core)", () => {
  const { vcpu } = guest("out 0x80, al\nhlt");
  vcpu.setRegs({ rax: 0x99n });
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io");
  assert.equal(e.data[0], 0x99);
});

Deno.test("user-space MSR exit: RDMSR of an unknown MSR exits, setData() completes into EDX:EAX", () => {
  const { vm, vcpu } = guest("mov ecx, 0xc0011234\nrdmsr\nhlt");
  vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_UNKNOWN);
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "x86_rdmsr", `got ${e.reason}`);
  assert.equal(e.index, 0xc0011234);
  assert.equal(e.msrReason, K.KVM_MSR_EXIT_REASON_UNKNOWN);
  e.setData(0x1122334455667788n);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  const r = vcpu.getRegs();
  assert.deepEqual([r.rax, r.rdx], [0x55667788n, 0x11223344n]);
  // mov, rdmsr (retired when user space completes it, like an IN or OUT), hlt.
  assert.equal(vcpu.instructions, 3);
});

Deno.test("MSR filter: a denied WRMSR exits with KVM_MSR_EXIT_REASON_FILTER and the value", () => {
  const { vm, vcpu } = guest("mov ecx, 0xc0000081\nmov eax, 0x10\nxor edx, edx\nwrmsr\nhlt");
  vm.enableUserSpaceMsr(K.KVM_MSR_EXIT_REASON_FILTER);
  vm.setMsrFilter({
    flags: 0,
    ranges: [{ flags: K.KVM_MSR_FILTER_WRITE, nmsrs: 8, base: 0xc0000080, bitmap: Uint8Array.of(0) }],
  });
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "x86_wrmsr", `got ${e.reason}`);
  assert.deepEqual([e.index, e.data, e.msrReason], [0xc0000081, 0x10n, K.KVM_MSR_EXIT_REASON_FILTER]);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getMsr(0xc0000081), 0n, "userspace handled it: the in-kernel MSR is unchanged");
});

Deno.test("hypercall exit: VMMCALL KVM_HC_MAP_GPA_RANGE exits when enabled; setReturn() lands in RAX", () => {
  const { vm, vcpu } = guest("mov eax, 12\nmov ebx, 0x100000\nmov ecx, 4\nmov edx, 0\nvmmcall\nhlt");
  vm.enableHypercallExit(1 << K.KVM_HC_MAP_GPA_RANGE);
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "hypercall", `got ${e.reason}`);
  assert.equal(e.nr, 12n);
  assert.deepEqual(e.args.slice(0, 3), [0x100000n, 4n, 0n]);
  assert.equal(e.longMode, true);
  e.setReturn(0n);
  assert.equal(vcpu.run(BUDGET).reason, "hlt");
  assert.equal(vcpu.getRegs().rax, 0n);
});

Deno.test("guest debug: INT3 with KVM_GUESTDBG_USE_SW_BP is a debug exit; runUntil stops with debug", () => {
  const { vm, vcpu } = guest("nop\nint3\nhlt");
  vcpu.setGuestDebug({ control: K.KVM_GUESTDBG_ENABLE | K.KVM_GUESTDBG_USE_SW_BP });
  const r = vm.runUntil(vcpu, { maxExits: 5 });
  assert.deepEqual(r.stop, { kind: "debug", exception: 3, pc: 0x1001n });
});

Deno.test("a triple fault (exception with not-present IDT gates) stops with shutdown", () => {
  const { vm, vcpu } = guest("ud2");
  assert.deepEqual(vm.runUntil(vcpu, { maxExits: 5 }).stop, { kind: "shutdown" });
});

Deno.test("exceptionPort: a #UD is reported as an OUT of the vector", () => {
  const code = assemble("ud2", { bits: 64, origin: 0x1000 }).bytes;
  const { vcpu } = createVmWithOneVcpu({ code, exceptionPort: 0x510 });
  const e = vcpu.run(BUDGET);
  assert.ok(e.reason === "io" && e.port === 0x510, `got ${e.reason}`);
  assert.equal(e.data[0], 6);
});

Deno.test("runUntil(): a user HLT handler resumes, stops, or falls through to the default; counts and staleness hold", () => {
  const { vm, vcpu } = guest("xor ebx, ebx\ntop:\ninc ebx\nhlt\njmp top");
  let calls = 0;
  const r = vm.runUntil(vcpu, {
    handlers: {
      hlt: (exit) => {
        assert.equal(exit.generation, vcpu.kvmRun.generation, "the exit is current while its handler runs");
        calls++;
        if (calls < 5) return { kind: "resume" };
        return calls === 5 ? { kind: "stop", why: { kind: "hlt" } } : undefined;
      },
    },
  });
  assert.deepEqual(r.stop, { kind: "hlt" });
  assert.equal(r.exits, 5);
  assert.equal(r.counts.hlt, 5);
  assert.equal(vcpu.getRegs().rbx, 5n);
  // A handler answering undefined gets the default: KVM_EXIT_HLT stops the run.
  const again = vm.runUntil(vcpu, { handlers: { hlt: () => (calls++, undefined) } });
  assert.deepEqual(again.stop, { kind: "hlt" });
  assert.deepEqual([again.exits, again.counts.hlt, calls], [1, 1, 6]);
  assert.equal(vcpu.getRegs().rbx, 6n);
  // maxExits counts HLT exits handled in the loop.
  const capped = vm.runUntil(vcpu, { maxExits: 3, handlers: { hlt: () => ({ kind: "resume" }) } });
  assert.deepEqual(capped.stop, { kind: "max-exits", limit: 3 });
  assert.equal(capped.counts.hlt, 3);
  assert.equal(vcpu.getRegs().rbx, 9n);
});
