/**
 * Locked read-modify-writes are atomic across vCPUs (assembly/x86/atomic_rmw.ts):
 * two vCPUs of one VM, each in its own Worker with its own core instance on the
 * shared memory, hammer the same counters with LOCK INC/ADD/SUB/DEC/ADC/SBB/
 * XADD, CMPXCHG and CMPXCHG8B loops, XCHG- and BTS-based spinlocks and
 * OR/AND/XOR/BTC on disjoint bits, at byte/word/dword/qword sizes, and the
 * totals must be exact. Single-vCPU checks: every locked form leaves registers,
 * flags and memory exactly as its unlocked form (also when it falls back:
 * misaligned, split across pages, faulting), and a locked RMW on MMIO is still
 * the read exit followed by the write exit.
 */
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { vcpuHandle } from "../src/vcpu_thread.ts";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import type { GprName } from "../src/abi/vcpu_state.ts";
import { CODE, CoreVm, DATA, HOLE } from "./x86_core_harness.ts";

const KVM_EXIT_HLT = 5;
const KVM_EXIT_INTR = 10;
const N = 200_000;
const T = BigInt(2 * N);
const BASE = 0x200000;

/** One iteration touches every counter; r15 counts down, r9 = 1 << rdi (the vCPU's own bit), r11 = ~r9. */
const HAMMER = `
top:
  lock inc byte [${BASE}]
  lock add word [${BASE + 2}], 3
  lock inc dword [${BASE + 4}]
  lock add qword [${BASE + 8}], rsi
  lock sub dword [${BASE + 0x10}], 2
  lock dec qword [${BASE + 0x18}]
  stc
  lock adc dword [${BASE + 0x20}], 0
  stc
  lock sbb word [${BASE + 0x24}], 0
  mov eax, 1
  lock xadd dword [${BASE + 0x28}], eax
  mov al, 1
  lock xadd byte [${BASE + 0x70}], al
  mov ax, 1
  lock xadd word [${BASE + 0x72}], ax
r1:
  mov rax, [${BASE + 0x30}]
  lea rdx, [rax + 5]
  lock cmpxchg [${BASE + 0x30}], rdx
  jnz r1
r2:
  mov eax, [${BASE + 0x38}]
  mov edx, [${BASE + 0x3c}]
  mov ebx, eax
  mov ecx, edx
  add ebx, 7
  adc ecx, 0
  db 0xf0, 0x0f, 0xc7, 0x0c, 0x25, 0x38, 0x00, 0x20, 0x00 ; lock cmpxchg8b [${BASE + 0x38}]
  jnz r2
s1:
  mov al, 1
  xchg [${BASE + 0x40}], al
  test al, al
  jnz s1
  mov ebx, [${BASE + 0x44}]
  inc ebx
  mov [${BASE + 0x44}], ebx
  mov byte [${BASE + 0x40}], 0
s2:
  lock bts word [${BASE + 0x48}], 3
  jc s2
  mov rbx, [${BASE + 0x50}]
  add rbx, 1
  mov [${BASE + 0x50}], rbx
  lock btr word [${BASE + 0x48}], 3
s3:
  mov rbx, 1
  xchg [${BASE + 0x78}], rbx
  test rbx, rbx
  jnz s3
  inc dword [${BASE + 0x80}]
  mov ebx, 0
  xchg [${BASE + 0x78}], rbx
  lock or qword [${BASE + 0x58}], r9
  test [${BASE + 0x58}], r9
  jnz o1
  inc r10
o1:
  lock and qword [${BASE + 0x58}], r11
  test [${BASE + 0x58}], r9
  jz o2
  inc r10
o2:
  lock xor byte [${BASE + 0x60}], r9b
  test [${BASE + 0x60}], r9b
  jnz o3
  inc r10
o3:
  lock btc dword [${BASE + 0x60}], edi
  test [${BASE + 0x60}], r9b
  jz o4
  inc r10
o4:
  lock not dword [${BASE + 0x68}]
  lock neg word [${BASE + 0x6c}]
  dec r15
  jnz top
  hlt
`;

const workerSrc = (mod: string) => `
  import { attachVcpu } from "${mod}";
  self.onmessage = (e) => {
    const { vcpu } = attachVcpu(e.data);
    // At most ~200 M instructions (a lost lock release would spin forever): then exit stays INTR.
    let r, calls = 0;
    do { r = vcpu.runRaw(1 << 20); } while (r === ${KVM_EXIT_INTR} && ++calls < 200);
    const g = vcpu.getRegs();
    self.postMessage({ reason: r, r10: g.r10, r15: g.r15 });
  };`;

Deno.test({
  name: "two vCPUs in two Workers: locked RMWs of every kind and size lose no update",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { bytes } = assemble(HAMMER, { bits: 64, origin: 0x1000 });
    const { vm, vcpu } = createVmWithOneVcpu({ code: bytes });
    const v1 = vm.addVcpu(1);
    v1.setSregs(vcpu.getSregs());
    const regs = vcpu.getRegs();
    const mine = (i: number) => ({
      ...regs,
      r15: BigInt(N),
      rdi: BigInt(i),
      r9: 1n << BigInt(i),
      r11: BigInt.asUintN(64, ~(1n << BigInt(i))),
      rsi: 0x100000001n,
      r10: 0n,
    });
    vcpu.setRegs(mine(0));
    v1.setRegs(mine(1));
    vm.write64(BASE + 0x38, 0xffff0000n); // CMPXCHG8B carries into EDX
    vm.write64(BASE + 0x68, 0x12345678n);
    vm.write64(BASE + 0x6c, 0x1234n);
    const url = URL.createObjectURL(
      new Blob([workerSrc(new URL("../src/vcpu_thread.ts", import.meta.url).href)], { type: "text/javascript" }),
    );
    try {
      const results = await Promise.all(
        [vcpu, v1].map((v) =>
          new Promise<{ reason: number; r10: bigint; r15: bigint }>((resolve, reject) => {
            const w = new Worker(url, { type: "module" });
            w.onmessage = (e) => {
              resolve(e.data);
              w.terminate();
            };
            w.onerror = (e) => {
              reject(new Error(`vCPU worker failed: ${e.message}`));
              w.terminate();
            };
            w.postMessage(vcpuHandle(vm, v));
          })
        ),
      );
      for (const [i, r] of results.entries()) {
        assert.equal(r.reason, KVM_EXIT_HLT, `vCPU ${i} exit`);
        assert.equal(r.r15, 0n, `vCPU ${i} iterations left`);
        assert.equal(r.r10, 0n, `vCPU ${i} saw its own bit changed by the other vCPU`);
      }
      const u = (off: number, bits: number) => BigInt.asUintN(bits, vm.read64(BASE + off));
      const m = (v: bigint, bits: number) => BigInt.asUintN(bits, v);
      assert.equal(u(0, 8), m(T, 8), "lock inc byte");
      assert.equal(u(2, 16), m(3n * T, 16), "lock add word");
      assert.equal(u(4, 32), T, "lock inc dword");
      assert.equal(u(8, 64), T * 0x100000001n, "lock add qword");
      assert.equal(u(0x10, 32), m(-2n * T, 32), "lock sub dword");
      assert.equal(u(0x18, 64), m(-T, 64), "lock dec qword");
      assert.equal(u(0x20, 32), T, "lock adc dword (CF = 1)");
      assert.equal(u(0x24, 16), m(-T, 16), "lock sbb word (CF = 1)");
      assert.equal(u(0x28, 32), T, "lock xadd dword");
      assert.equal(u(0x70, 8), m(T, 8), "lock xadd byte");
      assert.equal(u(0x72, 16), m(T, 16), "lock xadd word");
      assert.equal(u(0x30, 64), 5n * T, "lock cmpxchg loop");
      assert.equal(u(0x38, 64), 0xffff0000n + 7n * T, "lock cmpxchg8b loop");
      assert.equal(u(0x40, 8), 0n, "xchg byte lock released");
      assert.equal(u(0x44, 32), T, "counter under the xchg byte spinlock");
      assert.equal(u(0x48, 16), 0n, "bts word lock released");
      assert.equal(u(0x50, 64), T, "counter under the bts/btr spinlock");
      assert.equal(u(0x78, 64), 0n, "xchg qword lock released");
      assert.equal(u(0x80, 32), T, "counter under the xchg qword spinlock");
      assert.equal(u(0x58, 64), 0n, "lock or/and on disjoint bits");
      assert.equal(u(0x60, 8), 0n, "lock xor/btc on disjoint bits");
      // An even number of NOTs / NEGs in total: back to the start.
      assert.equal(u(0x68, 32), 0x12345678n, "lock not dword");
      assert.equal(u(0x6c, 16), 0x1234n, "lock neg word");
    } finally {
      URL.revokeObjectURL(url);
    }
  },
});

// ---- Single vCPU: locked forms change nothing but atomicity ----

const GPRS: GprName[] = ["rax", "rcx", "rdx", "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11"];

interface Run {
  kind: string;
  vector?: number;
  faultRip?: bigint;
  regs: bigint[];
  flags: number;
  mem: bigint[];
}

/** Run `body` (then HLT) in long mode with `regs`, `init` qwords at `at`; report everything it can change. */
function runForm(
  body: string,
  regs: Partial<Record<GprName, bigint>>,
  at: number,
  init: bigint[],
  mode: "long" | "prot" = "long",
): Run {
  const c = new CoreVm(mode);
  for (const [i, v] of init.entries()) c.poke(at + 8 * i, 8, v);
  const { bytes } = assemble(`${body}\nhlt`, { bits: mode === "long" ? 64 : 32, origin: CODE });
  c.load([...bytes]);
  c.set(regs);
  const o = c.run();
  return {
    kind: o.kind,
    vector: o.vector,
    faultRip: o.faultRip,
    regs: GPRS.map((r) => c.reg(r)),
    flags: c.flags(),
    mem: init.map((_, i) => c.peek(at + 8 * i, 8)),
  };
}

/** Each form with its operands: the locked run must equal the unlocked one. */
const FORMS: string[] = [
  "add byte [rdi], cl",
  "add word [rdi], cx",
  "add dword [rdi], ecx",
  "add qword [rdi], rcx",
  "or dword [rdi], ecx",
  "adc qword [rdi], rcx",
  "sbb byte [rdi], cl",
  "and word [rdi], cx",
  "sub dword [rdi], ecx",
  "xor qword [rdi], rcx",
  "add byte [rdi], 0x7f",
  "sub dword [rdi], 0x12345678",
  "adc word [rdi], -1",
  "sbb qword [rdi], 1",
  "or byte [rdi], 0x80",
  "and qword [rdi], 0x7ffffff0",
  "xor word [rdi], 0x5555",
  "inc byte [rdi]",
  "inc word [rdi]",
  "dec dword [rdi]",
  "dec qword [rdi]",
  "not byte [rdi]",
  "not qword [rdi]",
  "neg word [rdi]",
  "neg dword [rdi]",
  "bts dword [rdi], ecx",
  "btr qword [rdi], rcx",
  "btc word [rdi], cx",
  "bts dword [rdi], 31",
  "btr word [rdi], 5",
  "btc qword [rdi], 63",
  "xadd byte [rdi], cl",
  "xadd word [rdi], cx",
  "xadd dword [rdi], ecx",
  "xadd qword [rdi], rcx",
  "cmpxchg byte [rdi], cl",
  "cmpxchg word [rdi], cx",
  "cmpxchg dword [rdi], ecx",
  "cmpxchg qword [rdi], rcx",
  "db 0x0f, 0xc7, 0x0f", // cmpxchg8b [rdi]
];

/** The locked form of `form` (a `db` line gets the prefix byte). */
const locked = (form: string) => form.startsWith("db ") ? form.replace("db ", "db 0xf0, ") : `lock ${form}`;

const VALUES: bigint[] = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffffffn, 0x8000000000000000n, -1n];

Deno.test("single vCPU: locked forms give the unlocked forms' results, flags and memory", () => {
  let n = 0;
  for (const form of FORMS) {
    for (const [k, v] of VALUES.entries()) {
      const w = VALUES[(k * 3 + 1) % VALUES.length]!;
      // rax equal to memory on even k (CMPXCHG succeeds), different on odd k; CF in and out of the ALU.
      const regs = {
        rdi: BigInt(DATA),
        rcx: BigInt.asUintN(64, w),
        rax: k % 2 === 0 ? BigInt.asUintN(64, v) : 0x1234n,
        rdx: k % 2 === 0 ? BigInt.asUintN(64, v) >> 32n : 0n,
        rbx: 0xabcdef01n,
      };
      const init = [BigInt.asUintN(64, v), 0x1111222233334444n];
      for (const cf of ["clc", "stc"]) {
        // BT* with a register bit offset: keep the operand inside the two qwords.
        const pre = /^bt. \w+ \[rdi\], [re]?cx$/.test(form) ? "and ecx, 0x1f" : "";
        const plain = runForm(`${pre}\n${cf}\n${form}`, regs, DATA, init);
        const lk = runForm(`${pre}\n${cf}\n${locked(form)}`, regs, DATA, init);
        assert.equal(plain.kind, "hlt", form);
        // RIP differs by the prefix byte; everything else must match.
        assert.deepEqual(lk, plain, `${locked(form)} with [rdi] = ${v}, rcx = ${w}, ${cf}`);
        n++;
      }
    }
  }
  assert.equal(n, FORMS.length * VALUES.length * 2);
});

Deno.test("single vCPU, 32-bit protected mode: locked forms give the unlocked forms' results", () => {
  const forms = [
    "add dword [edi], ecx",
    "sbb word [edi], cx",
    "inc byte [edi]",
    "neg dword [edi]",
    "bts dword [edi], 7",
    "xadd dword [edi], ecx",
    "cmpxchg dword [edi], ecx",
    "db 0x0f, 0xc7, 0x0f", // cmpxchg8b [edi]
  ];
  for (const form of forms) {
    for (const v of [0n, 0x7fffffffn, 0xffffffffn]) {
      const regs = { rdi: BigInt(DATA), rcx: 0x80000001n, rax: v, rdx: 0n, rbx: 5n };
      const init = [v, 0n];
      const plain = runForm(`stc\n${form}`, regs, DATA, init, "prot");
      const lk = runForm(`stc\n${locked(form)}`, regs, DATA, init, "prot");
      assert.equal(plain.kind, "hlt", form);
      assert.deepEqual(lk, plain, `${locked(form)} with [edi] = ${v}`);
    }
  }
});

Deno.test("single vCPU: XCHG with memory (always locked) at every size, and its register results", () => {
  for (
    const [size, reg, mask] of [["byte", "cl", 0xffn], ["word", "cx", 0xffffn], ["dword", "ecx", 0xffffffffn]] as const
  ) {
    const r = runForm(`xchg ${size} [rdi], ${reg}`, { rdi: BigInt(DATA), rcx: 0x1122334455667788n }, DATA, [
      0x99aabbccddeeff00n,
    ]);
    const merged = size === "dword" ? 0x99aabbccddeeff00n & mask : (0x1122334455667788n & ~mask) |
      (0x99aabbccddeeff00n & mask);
    assert.equal(r.regs[1], merged, `xchg ${size} register`);
    assert.equal(r.mem[0], (0x99aabbccddeeff00n & ~mask) | (0x1122334455667788n & mask), `xchg ${size} memory`);
  }
  const q = runForm("xchg [rdi], rcx", { rdi: BigInt(DATA), rcx: 5n }, DATA, [7n]);
  assert.deepEqual([q.regs[1], q.mem[0]], [7n, 5n]);
});

Deno.test("single vCPU: misaligned and page-split locked operands (the non-atomic fallback) give the same results", () => {
  // DATA + 0xffd: a dword and a qword that cross into the next page; DATA + 1: misaligned within the page.
  for (const off of [1, 0xffd, 0xfff]) {
    for (
      const form of ["add dword [rdi], ecx", "xadd qword [rdi], rcx", "cmpxchg dword [rdi], ecx", "inc word [rdi]"]
    ) {
      const regs = { rdi: BigInt(DATA + off), rcx: 0x80000001n, rax: 0n };
      const init = [0x0123456789abcdefn, 0xfedcba9876543210n];
      const at = DATA + (off & ~7);
      const plain = runForm(form, regs, at, init);
      const locked = runForm(`lock ${form}`, regs, at, init);
      assert.deepEqual(locked, plain, `lock ${form} at DATA + ${off}`);
    }
    const x = runForm("xchg [rdi], ecx", { rdi: BigInt(DATA + off), rcx: 0xaabbccddn }, DATA + (off & ~7), [0n, 0n]);
    assert.equal(x.regs[1], 0n);
  }
});

Deno.test("single vCPU: a locked RMW that faults (#PF) commits nothing: memory, registers and flags as before", () => {
  for (const form of ["lock inc dword [rdi]", "lock xadd [rdi], rcx", "xchg [rdi], rcx", "db 0xf0, 0x0f, 0xc7, 0x0f"]) {
    const r = runForm(`stc\n${form}`, { rdi: BigInt(HOLE), rcx: 3n, rax: 0n }, DATA, [0n]);
    assert.equal(r.kind, "exception", form);
    assert.equal(r.vector, 14, form);
    assert.equal(r.regs[1], 3n, form);
    assert.equal(r.flags & 1, 1, `${form}: CF as set before`);
  }
});

Deno.test("a locked RMW on MMIO stays the read exit, then the write exit, then retires once", () => {
  const { bytes } = assemble("mov ebx, 0xd0000000\nlock add dword [rbx], 5\nmov ecx, 9\nhlt", {
    bits: 64,
    origin: 0x1000,
  });
  const { vcpu } = createVmWithOneVcpu({ code: bytes });
  const rd = vcpu.run(100_000);
  assert.ok(rd.reason === "mmio" && !rd.isWrite && rd.len === 4 && rd.physAddr === 0xd0000000, "read exit");
  rd.fill(0x7ffffffe);
  const wr = vcpu.run(100_000);
  assert.ok(wr.reason === "mmio" && wr.isWrite && wr.len === 4, "write exit");
  assert.deepEqual([...wr.data], [3, 0, 0, 0x80]);
  assert.equal(vcpu.run(100_000).reason, "hlt");
  const r = vcpu.getRegs();
  assert.equal(r.rcx, 9n);
  assert.equal(r.rflags & 0x800n, 0x800n, "OF from 0x7ffffffe + 5");
  assert.equal(vcpu.instructions, 4);
});
