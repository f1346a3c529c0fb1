// REP OUTS / REP INS across pages, both directions and with an FS override, in
// long and protected mode: the exits are KVM's (arch/x86/kvm/emulate.c) — REP
// OUTS one exit per element with count 1 (em_out), REP INS one exit per
// read-ahead batch of min(bytes to the page edge in the DF direction,
// 1024 / size, RCX) elements, at least 1 (pio_in_emulated) — and the bytes
// are exactly those of an element-by-element copy (long mode stores a
// warm-TLB upward batch in one piece in io.ts).
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { createVmWithOneVcpu, type GuestMode } from "../src/x86/setup.ts";

const SRC = 0x20ff0, DST = 0x40ff8, N = 9000, FS_BASE = 0x100000;
const pattern = (i: number) => (i * 7 + 3) & 0xff;

function guest(asm: string, mode: GuestMode) {
  const code = assemble(asm, { bits: mode === "long" ? 64 : 32, origin: 0x1000 }).bytes;
  const g = createVmWithOneVcpu({ code, mode, load: 0x1000 });
  g.vm.writeGuest(SRC, Array.from({ length: N }, (_, i) => pattern(i)));
  g.vm.writeGuest(FS_BASE + SRC, Array.from({ length: N }, (_, i) => pattern(i) ^ 0xff));
  return g;
}

/** KVM's INS batches (emulate.c pio_in_emulated) for `cnt` bytes from `di`: bytes to the page edge vs 1 KiB vs RCX. */
function insbBatches(di: number, down: boolean, cnt: number): number[] {
  const out: number[] = [];
  while (cnt > 0) {
    const po = di & 0xfff;
    const n = Math.max(1, Math.min(down ? po : 4096 - po, 1024, cnt));
    out.push(n);
    cnt -= n;
    di += down ? -n : n;
  }
  return out;
}

/** Run to HLT; every OUT payload concatenated, and the count of every exit. */
function drain(vcpu: ReturnType<typeof guest>["vcpu"], fill?: (off: number, d: Uint8Array) => void) {
  const out: number[] = [];
  const counts: number[] = [];
  let exits = 0, inBytes = 0;
  for (;;) {
    const e = vcpu.run(1_000_000);
    if (e.reason === "hlt") return { out, exits, inBytes, counts };
    assert.ok(e.reason === "io", `unexpected ${e.reason}`);
    exits++;
    counts.push(e.count);
    if (e.direction === "out") out.push(...e.data);
    else {
      fill!(inBytes, e.data);
      inBytes += e.data.length;
    }
  }
}

for (const mode of ["long", "protected"] as const) {
  const r = (n: string) => (mode === "long" ? `r${n}` : `e${n}`);
  for (const down of [false, true]) {
    const start = down ? SRC + N - 1 : SRC;
    const want = Array.from({ length: N }, (_, i) => pattern(down ? N - 1 - i : i));
    Deno.test(
      `${mode}: rep outsb of ${N} bytes across pages, twice (the second pass on a warm TLB), DF=${down ? 1 : 0}`,
      () => {
        const { vcpu } = guest(
          `${down ? "std" : "cld"}\nmov ebp, 2\nagain:\nmov ${r("si")}, ${start}\nmov ecx, ${N}\nmov dx, 0x3f8\n` +
            `rep outsb\ndec ebp\njnz again\nhlt`,
          mode,
        );
        const { out, exits, counts } = drain(vcpu);
        assert.deepEqual(out, [...want, ...want]);
        assert.equal(exits, 2 * N, "one exit per element");
        assert.ok(counts.every((c) => c === 1), "every OUTS exit has count 1");
        const regs = vcpu.getRegs();
        assert.equal(regs.rcx, 0n);
        assert.equal(regs.rsi, BigInt(down ? start - N : start + N));
      },
    );
    Deno.test(`${mode}: rep insb of ${N} bytes across pages, DF=${down ? 1 : 0}`, () => {
      const dst = down ? DST + N - 1 : DST;
      const { vm, vcpu } = guest(
        `${down ? "std" : "cld"}\nmov ${r("di")}, ${dst}\nmov ecx, ${N}\nmov dx, 0x60\nrep insb\nhlt`,
        mode,
      );
      const { counts } = drain(vcpu, (off, d) => d.forEach((_, k) => (d[k] = pattern(off + k))));
      assert.deepEqual(counts, insbBatches(dst, down, N), "KVM's read-ahead batches");
      const mem = [...vm.readGuest(DST, N)];
      assert.deepEqual(mem, Array.from({ length: N }, (_, i) => pattern(down ? N - 1 - i : i)));
      assert.equal(vcpu.getRegs().rdi, BigInt(down ? dst - N : dst + N));
    });
  }
}

Deno.test("long: rep outsb with an FS override reads FS.base + RSI", () => {
  const { vcpu } = guest(
    `mov ecx, 0xc0000100\nmov eax, ${FS_BASE}\nxor edx, edx\nwrmsr\n` +
      `mov rsi, ${SRC}\nmov ecx, ${N}\nmov dx, 0x3f8\nfs rep outsb\nhlt`,
    "long",
  );
  const { out, exits } = drain(vcpu);
  assert.deepEqual(out, Array.from({ length: N }, (_, i) => pattern(i) ^ 0xff));
  assert.equal(exits, N);
});
