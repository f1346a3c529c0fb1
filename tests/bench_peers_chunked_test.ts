/**
 * bench/peers/chunked.ts: the pure parts shared by the QEMU and Bochs peers —
 * ROM layout, chunk arithmetic, marker sequence and the window arithmetic
 * that keeps process start-up out of every run.
 */
import assert from "node:assert/strict";
import { assemble } from "../src/asm/x86.ts";
import { BENCH_BYTE, BENCH_PORT, STRING_IO_BYTES, STRING_OUT_SOURCE } from "../bench/paths.ts";
import {
  chunkedProgram,
  chunksFor,
  findOnPath,
  instructionsPerChunk,
  MARKER_PORT,
  markerByte,
  MarkerLog,
  medianInterval,
  prologueInstructions,
  romImage,
  STRING_OUT_FILL,
  unitsPerChunk,
  windowRates,
} from "../bench/peers/chunked.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("ROM image: 64 KiB, code at offset 0 (F000:0000), far jump F000:0000 at the reset vector", () => {
  const img = romImage("top:\n  jmp top\n");
  assert.equal(img.length, 0x10000);
  assert.deepEqual([...img.subarray(0, 2)], [0xeb, 0xfe]);
  assert.deepEqual([...img.subarray(0xfff0, 0xfff5)], [0xea, 0x00, 0x00, 0x00, 0xf0]);
  assert.ok(img.subarray(2, 0xfff0).every((b) => b === 0));
  assert.throws(() => romImage("times 0xfff1 db 0x90\n"), /ROM code is 65521 bytes: expected at most 0xfff0/);
});

Deno.test("chunked program: io-out body is `out dx, al; loop` to the bench port, marker OUT to 0xE9, then the exit", () => {
  const src = chunkedProgram({ kind: "io-out", rounds: 3 }, 10, "  mov al, 0x31\n  out 0xf4, al");
  const { bytes } = assemble(src, { bits: 16, origin: 0 });
  const h = hex(bytes);
  assert.ok(h.includes(`ba ${BENCH_PORT.toString(16).padStart(2, "0")} 00 b0 ${BENCH_BYTE.toString(16)}`), h);
  assert.ok(h.includes("bb 03 00"), `mov bx, 3 rounds: ${h}`);
  assert.ok(h.includes("ee e2 fd"), `out dx, al; loop top: ${h}`);
  assert.ok(h.includes(`e6 ${MARKER_PORT.toString(16)}`), `marker out: ${h}`);
  assert.ok(h.includes("66 83 fe 0a"), `cmp esi, 10: ${h}`);
  assert.ok(h.includes("b0 31 e6 f4"), `exit sequence: ${h}`);
});

Deno.test("chunked program: raw body is `dec ecx; jnz` with ecx = iterations; bad sizes are named", () => {
  const { bytes } = assemble(chunkedProgram({ kind: "raw", iterations: 1 << 20 }, 4, ""), { bits: 16, origin: 0 });
  const h = hex(bytes);
  assert.ok(h.includes("66 b9 00 00 10 00"), `mov ecx, 2^20: ${h}`);
  assert.ok(h.includes("66 49 75 fc"), `dec ecx; jnz top: ${h}`);
  assert.throws(() => chunkedProgram({ kind: "raw", iterations: 0 }, 4, ""), /raw chunk iterations 0: expected/);
  assert.throws(() => chunkedProgram({ kind: "io-out", rounds: 0x10000 }, 4, ""), /rounds 65536: expected/);
  assert.throws(() => chunkedProgram({ kind: "raw", iterations: 5 }, 1, ""), /chunks 1: expected an integer in 2/);
});

Deno.test("chunked program: mmio-write enters unreal mode once, then `mov [ebx], al; loop` to BENCH_MMIO", () => {
  const { bytes } = assemble(chunkedProgram({ kind: "mmio-write", rounds: 2 }, 4, ""), { bits: 16, origin: 0 });
  const h = hex(bytes);
  assert.ok(h.startsWith("66 31 f6 fa 2e 0f 01 16"), `xor esi, esi; cli; lgdt [cs:gdtr]: ${h}`);
  assert.ok(h.includes("0f 22 c0 bb 08 00 8e db 24 fe 0f 22 c0 31 db 8e db"), `PE on, ds = 8, PE off, ds = 0: ${h}`);
  assert.ok(h.includes("66 bb 00 00 00 d0"), `mov ebx, 0xd0000000: ${h}`);
  assert.ok(h.includes("67 88 03 e2 fb"), `mov [ebx], al; loop top: ${h}`);
  assert.ok(h.includes("ff ff 00 00 00 93 cf 00"), `flat data descriptor, accessed: ${h}`);
  // gdtr: limit 15, base = 0xf0000 + the GDT's offset in the ROM.
  const gdt = h.split(" ").join("").indexOf("ffff00000093cf00") / 2 - 8;
  const gdtr = [...bytes.subarray(gdt + 16, gdt + 22)];
  assert.deepEqual(gdtr, [15, 0, gdt & 0xff, gdt >> 8, 0x0f, 0x00]);
  assert.equal(prologueInstructions({ kind: "mmio-write", rounds: 1 }), 11);
  assert.equal(prologueInstructions({ kind: "io-out", rounds: 1 }), 0);
});

Deno.test("chunked program: cpuid and rdmsr bodies count in edi, string-in in ebp (INSB moves di)", () => {
  const h = (body: Parameters<typeof chunkedProgram>[0]) =>
    hex(assemble(chunkedProgram(body, 4, ""), { bits: 16, origin: 0 }).bytes);
  const cpuid = h({ kind: "cpuid", iterations: 0x100 });
  assert.ok(
    cpuid.includes("66 bf 00 01 00 00 66 31 c0 0f a2 66 4f 75 f7"),
    `mov edi; xor eax; cpuid; dec edi; jnz: ${cpuid}`,
  );
  const msr = h({ kind: "rdmsr", iterations: 0x100 });
  assert.ok(
    msr.includes("66 b9 77 02 00 00 66 bf 00 01 00 00 0f 32 66 4f 75 fa"),
    `mov ecx, 0x277; rdmsr loop: ${msr}`,
  );
  const str = h({ kind: "string-in", iterations: 2 });
  // No prologue: xor esi, esi; mov dx, port; mov ebp, 2; then mov di, 0x8000; mov cx, 16; rep insb; dec ebp; jnz;
  // the marker's mov ax, si follows (ES = 0 after reset).
  assert.ok(
    str.startsWith("66 31 f6 ba 10 00 66 bd 02 00 00 00 bf 00 80 b9 10 00 f3 6c 66 4d 75 f4 89 f0"),
    `insb loop: ${str}`,
  );
  assert.throws(() => chunkedProgram({ kind: "cpuid", iterations: 0 }, 4, ""), /cpuid chunk iterations 0: expected/);
  assert.equal(prologueInstructions({ kind: "string-in", iterations: 1 }), 0);
  const inb = h({ kind: "io-in", rounds: 2 });
  assert.ok(inb.includes("ba 10 00 bb 02 00 31 c9 ec e2 fd 4b 75 f8"), `mov dx; mov bx, 2; in al, dx; loop: ${inb}`);
  const rd = h({ kind: "mmio-read", rounds: 2 });
  assert.ok(rd.startsWith("66 31 f6 fa 2e 0f 01 16"), `unreal-mode entry first: ${rd}`);
  assert.ok(rd.includes("66 bb 00 00 00 d0 bf 02 00 31 c9 67 8a 03 e2 fb"), `mov al, [ebx]; loop: ${rd}`);
  assert.equal(prologueInstructions({ kind: "mmio-read", rounds: 1 }), 11);
});

Deno.test("chunked program: string-out fills the source buffer once, then REP OUTSB from it with esi kept in edi", () => {
  const h = hex(assemble(chunkedProgram({ kind: "string-out", iterations: 2 }, 4, ""), { bits: 16, origin: 0 }).bytes);
  // Prologue: xor esi, esi; mov di, 0xa000; mov al, 3; mov cx, 16; fill: stosb; add al, 7; loop fill.
  assert.ok(h.startsWith("66 31 f6 bf 00 a0 b0 03 b9 10 00 aa 04 07 e2 fb"), `buffer fill: ${h}`);
  // Body: mov edi, esi; mov dx, port; mov ebp, 2; top: mov si, 0xa000; mov cx, 16; rep outsb; dec ebp; jnz top;
  // mov esi, edi; then the marker's mov ax, si (OUTSB moved si: the chunk counter comes back from edi).
  assert.ok(
    h.includes("66 89 f7 ba 10 00 66 bd 02 00 00 00 be 00 a0 b9 10 00 f3 6e 66 4d 75 f4 66 89 fe 89 f0"),
    `outsb loop: ${h}`,
  );
  // The fill writes byte i = (i × 7 + 3) & 0xff, the kvmsim path's source bytes (mov al, 3 then add al, 7).
  let al = 3;
  const filled = Array.from({ length: STRING_IO_BYTES }, () => {
    const b = al;
    al = (al + 7) & 0xff;
    return b;
  });
  assert.deepEqual(filled, STRING_OUT_SOURCE);
  assert.ok(
    STRING_OUT_FILL.endsWith("mov al, 3\n  mov cx, 16\nfill:\n  stosb\n  add al, 7\n  loop fill"),
    STRING_OUT_FILL,
  );
  // mov di, mov al, mov cx, then 16 × (stosb, add, loop); no REP instruction.
  assert.equal(prologueInstructions({ kind: "string-out", iterations: 1 }), 3 + 3 * 16);
  assert.throws(() => chunkedProgram({ kind: "string-out", iterations: 0 }, 4, ""), /string-out chunk iterations 0/);
});

Deno.test("chunk arithmetic: units and retired instructions per chunk", () => {
  assert.equal(unitsPerChunk({ kind: "io-out", rounds: 4 }), 4 * 65536);
  assert.equal(unitsPerChunk({ kind: "raw", iterations: 1000 }), 2000);
  assert.equal(unitsPerChunk({ kind: "mmio-write", rounds: 3 }), 3 * 65536);
  assert.equal(instructionsPerChunk({ kind: "mmio-write", rounds: 1 }), 3 + (3 + 131072) + 7);
  // io-out: mov dx, mov al, mov bx; per round xor cx + 65536 × (out, loop) + dec bx + jnz; 7-instruction tail.
  assert.equal(instructionsPerChunk({ kind: "io-out", rounds: 2 }), 3 + 2 * (3 + 131072) + 7);
  // raw: mov ecx + iterations × (dec, jnz) + tail.
  assert.equal(instructionsPerChunk({ kind: "raw", iterations: 1000 }), 1 + 2000 + 7);
  assert.equal(unitsPerChunk({ kind: "io-in", rounds: 2 }), 2 * 65536);
  assert.equal(instructionsPerChunk({ kind: "io-in", rounds: 2 }), 2 + 2 * (3 + 131072) + 7);
  assert.equal(instructionsPerChunk({ kind: "mmio-read", rounds: 1 }), 2 + (3 + 131072) + 7);
  assert.equal(unitsPerChunk({ kind: "cpuid", iterations: 1000 }), 1000);
  assert.equal(instructionsPerChunk({ kind: "cpuid", iterations: 1000 }), 1 + 4000 + 7);
  assert.equal(instructionsPerChunk({ kind: "rdmsr", iterations: 1000 }), 2 + 3000 + 7);
  // string-in: mov dx, mov ebp, then per iteration mov di, mov cx, the REP INSB (retires once, or with
  // repIterations once per byte), dec ebp, jnz.
  assert.equal(unitsPerChunk({ kind: "string-in", iterations: 10 }), 10);
  assert.equal(instructionsPerChunk({ kind: "string-in", iterations: 10 }), 2 + 10 * 5 + 7);
  assert.equal(instructionsPerChunk({ kind: "string-in", iterations: 10 }, true), 2 + 10 * 20 + 7);
  // string-out: a unit is one byte written (16 per REP OUTSB); mov edi, mov dx, mov ebp, per iteration mov si,
  // mov cx, the REP OUTSB (once, or once per byte), dec ebp, jnz; mov esi, edi.
  assert.equal(unitsPerChunk({ kind: "string-out", iterations: 10 }), 160);
  assert.equal(instructionsPerChunk({ kind: "string-out", iterations: 10 }), 4 + 10 * 5 + 7);
  assert.equal(instructionsPerChunk({ kind: "string-out", iterations: 10 }, true), 4 + 10 * 20 + 7);
});

Deno.test("markers: 0x80 | chunk index, text bytes kept aside, an out-of-sequence marker is reported", () => {
  assert.equal(markerByte(0), 0x80);
  assert.equal(markerByte(127), 0xff);
  assert.equal(markerByte(128), 0x80);
  const log = new MarkerLog();
  log.feed(new Uint8Array([0x3c, 0x62, 0x80, 0x81]), 10);
  log.feed(new Uint8Array([0x82]), 20);
  assert.deepEqual(log.times, [10, 10, 20]);
  assert.equal(log.text, "<b");
  assert.equal(log.bad, undefined);
  log.feed(new Uint8Array([0x85, 0x84]), 30);
  assert.equal(log.bad, "marker 3 is 0x85: expected 0x83");
  assert.equal(log.times.length, 5);
});

Deno.test("window rates: start at marker 0 (boot excluded), end at the first marker >= duration later", () => {
  // Boot took 100 ms (marker 0 at t=100); then one chunk per 10 ms of 1000 units.
  const times = [100, 110, 120, 130, 140, 150];
  assert.deepEqual(windowRates(times, 1000, 20, 10), [100_000, 100_000]);
  assert.deepEqual(windowRates(times, 1000, 20, 1), [100_000]);
  // Uneven chunks: window 0 = markers 0..2 (2 chunks in 25 ms), window 1 = 2..3 (1 chunk in 30 ms).
  assert.deepEqual(windowRates([0, 5, 25, 55], 10, 20, 5), [800, 1000 / 3]);
  // A start-up of any length changes nothing: shifting every marker leaves the rates.
  assert.deepEqual(windowRates(times.map((t) => t + 5000), 1000, 20, 10), [100_000, 100_000]);
  assert.deepEqual(windowRates([100], 1000, 20, 10), []);
});

Deno.test("chunks for a measuring process: windows × duration / chunk time with 50 % margin, plus boot and spare", () => {
  assert.equal(chunksFor(10, 300, 4), Math.ceil(30 * 4 * 1.5) + 2);
  assert.equal(chunksFor(500, 300, 2), Math.ceil(1 * 2 * 1.5) + 2);
  assert.throws(() => chunksFor(0, 300, 2), /chunk time 0 ms: expected > 0/);
  assert.equal(medianInterval([0, 10, 30, 31]), 10);
  assert.equal(medianInterval([0, 10, 30]), 15);
  assert.throws(() => medianInterval([1]), /1 markers: expected at least 2/);
});

Deno.test("findOnPath: the first PATH directory holding the file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/prog`, "");
    assert.equal(findOnPath("prog", `/nonexistent:${dir}`), `${dir}/prog`);
    assert.equal(findOnPath("absent", `/nonexistent:${dir}`), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
