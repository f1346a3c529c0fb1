/**
 * Port IO and MMIO exit sequences: OUT/IN imm8 and DX ports, 8/16/32-bit,
 * IN completion merging into AL/AX and zero-extending EAX, string IO as KVM
 * emulates it (REP OUTS one element per exit, REP INS in read-ahead batches),
 * MMIO reads completed from the run page, MMIO writes with their data, a
 * read-modify-write on MMIO (read exit then write exit), a store that
 * straddles RAM and MMIO.
 *
 * Expectations: the SDM (IN/OUT/INS/OUTS) and the KVM API (KVM_EXIT_IO:
 * direction, size, port, count, data at data_offset; KVM_EXIT_MMIO:
 * phys_addr, len, is_write, data; the data of IN / MMIO reads is taken from
 * the run page on the next KVM_RUN). String IO is what Linux's emulator
 * does (arch/x86/kvm/emulate.c): OUTS, with or without REP, is one exit per
 * element with count 1 (em_out), the element's iteration committed before
 * the exit (RSI and RCX moved; RIP past the instruction without REP, at it
 * with REP even after the last element: the next entry finds RCX 0 and
 * completes). INS is one exit per read-ahead batch of min(bytes to the page
 * edge, 1024 / size, RCX) elements (pio_in_emulated), nothing committed at the
 * exit (RDI, RCX, RIP unchanged); the completion stores the batch.
 * tests/exits_string_io_kvm_test.ts checks the same against /dev/kvm.
 *
 * The string-IO snippets set their registers through `regs`, so the string
 * instruction is the first one, at ENV.load (0x1000).
 *
 * Flags: none change.
 */
import { type ExitSummary, le, type Snippet } from "./types.ts";

const out: Snippet[] = [];
const MMIO = 0xd0000000;

for (const mode of ["long", "protected", "real"] as const) {
  out.push(
    {
      name: `out imm8, al / ax / eax [${mode}]`,
      mode,
      asm: "out 0x80, al\nout 0x81, ax\nout 0x84, eax\nhlt",
      regs: { rax: 0x11223344n },
      exits: [
        { reason: "io", direction: "out", port: 0x80, size: 1, count: 1, data: [0x44] },
        { reason: "io", direction: "out", port: 0x81, size: 2, count: 1, data: [0x44, 0x33] },
        { reason: "io", direction: "out", port: 0x84, size: 4, count: 1, data: [0x44, 0x33, 0x22, 0x11] },
        { reason: "hlt" },
      ],
      expect: { regs: { rax: 0x11223344n } },
    },
    {
      name: `out dx (16-bit port 0xfffe) [${mode}]`,
      mode,
      asm: "mov dx, 0xfffe\nout dx, al\nmov dx, 0x3f8\nout dx, ax\nhlt",
      regs: { rax: 0xbeefn },
      exits: [
        { reason: "io", direction: "out", port: 0xfffe, size: 1, count: 1, data: [0xef] },
        { reason: "io", direction: "out", port: 0x3f8, size: 2, count: 1, data: [0xef, 0xbe] },
        { reason: "hlt" },
      ],
      expect: {},
    },
    {
      name: `in al / ax / eax completion [${mode}]`,
      mode,
      asm: "mov dx, 0x1234\nin al, dx\nmov ebx, eax\nin ax, 0x60\nmov ecx, eax\nin eax, dx\nhlt",
      regs: { rax: 0xffffffffn },
      exits: [
        { reason: "io", direction: "in", port: 0x1234, size: 1, count: 1, reply: [0x5a] },
        { reason: "io", direction: "in", port: 0x60, size: 2, count: 1, reply: [0x34, 0x12] },
        { reason: "io", direction: "in", port: 0x1234, size: 4, count: 1, reply: [0x78, 0x56, 0x34, 0x12] },
        { reason: "hlt" },
      ],
      expect: { regs: { rbx: 0xffffff5an, rcx: 0xffff1234n, rax: 0x12345678n } },
    },
  );
}
out.push({
  name: "in al merges, in eax zero-extends RAX (64-bit mode)",
  mode: "long",
  asm: "in al, 0x70\nmov rbx, rax\nin eax, 0x70\nhlt",
  regs: { rax: 0x1111111111111111n },
  exits: [
    { reason: "io", direction: "in", port: 0x70, size: 1, count: 1, reply: [0x99] },
    { reason: "io", direction: "in", port: 0x70, size: 4, count: 1, reply: [1, 0, 0, 0x80] },
    { reason: "hlt" },
  ],
  expect: { regs: { rbx: 0x1111111111111199n, rax: 0x80000001n } },
});

/** Where the string-IO snippets' first instruction is (ENV.load). */
const AT = 0x1000n;
for (const mode of ["long", "protected", "real"] as const) {
  const BUF = 0x8000;
  const bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  for (
    const [sfx, size, count, len] of [["b", 1, 5, 2], ["w", 2, 3, mode === "real" ? 2 : 3], [
      "d",
      4,
      2,
      mode === "real" ? 3 : 2,
    ]] as const
  ) {
    // len: bytes of `rep outs<sfx>` / `rep ins<sfx>` in the mode (the 66 prefix for w outside real mode, d in it).
    out.push({
      name:
        `rep outs${sfx} count ${count}: one exit per element, count 1, RSI/RCX already moved, RIP at the REP [${mode}]`,
      mode,
      asm: `rep outs${sfx}\nhlt`,
      regs: { rsi: BigInt(BUF), rcx: BigInt(count), rdx: 0x3f8n },
      memory: [{ gpa: BUF, bytes }],
      exits: [
        ...Array.from({ length: count }, (_, i): ExitSummary => ({
          reason: "io",
          direction: "out",
          port: 0x3f8,
          size,
          count: 1,
          data: bytes.slice(i * size, (i + 1) * size),
          regs: { rsi: BigInt(BUF + size * (i + 1)), rcx: BigInt(count - 1 - i), rip: AT },
        })),
        { reason: "hlt" },
      ],
      expect: { regs: { rsi: BigInt(BUF + size * count), rcx: 0n, rip: AT + BigInt(len) + 1n } },
    });
    const reply = Array.from({ length: size * count }, (_, i) => 0xa0 + i);
    out.push({
      name:
        `rep ins${sfx} count ${count}: one read-ahead batch, nothing committed at the exit, completion stores it [${mode}]`,
      mode,
      asm: `rep ins${sfx}\nhlt`,
      regs: { rdi: BigInt(BUF), rcx: BigInt(count), rdx: 0x60n },
      memory: [{ gpa: BUF, bytes: new Array(16).fill(0xee) }],
      exits: [
        {
          reason: "io",
          direction: "in",
          port: 0x60,
          size,
          count,
          reply,
          regs: { rdi: BigInt(BUF), rcx: BigInt(count), rip: AT },
        },
        { reason: "hlt" },
      ],
      expect: {
        regs: { rdi: BigInt(BUF + size * count), rcx: 0n, rip: AT + BigInt(len) + 1n },
        memory: [{ gpa: BUF, bytes: [...reply, ...new Array(16 - reply.length).fill(0xee)] }],
      },
    });
  }
  out.push(
    {
      name: `outsb without rep: one element, count 1, RSI and RIP already past it [${mode}]`,
      mode,
      asm: "outsb\noutsb\nhlt",
      regs: { rsi: BigInt(BUF), rdx: 0x3f8n },
      memory: [{ gpa: BUF, bytes: [0x41, 0x42] }],
      exits: [
        {
          reason: "io",
          direction: "out",
          port: 0x3f8,
          size: 1,
          count: 1,
          data: [0x41],
          regs: { rsi: BigInt(BUF + 1), rip: AT + 1n },
        },
        {
          reason: "io",
          direction: "out",
          port: 0x3f8,
          size: 1,
          count: 1,
          data: [0x42],
          regs: { rsi: BigInt(BUF + 2), rip: AT + 2n },
        },
        { reason: "hlt" },
      ],
      expect: { regs: { rsi: BigInt(BUF + 2), rip: AT + 3n } },
    },
    {
      name: `std; rep outsw count 2: elements from RSI downwards [${mode}]`,
      mode,
      asm: "rep outsw\nhlt",
      regs: { rsi: BigInt(BUF + 2), rcx: 2n, rdx: 0x3f8n, rflags: 0x402n },
      memory: [{ gpa: BUF, bytes: [0x11, 0x22, 0x33, 0x44] }],
      exits: [
        {
          reason: "io",
          direction: "out",
          port: 0x3f8,
          size: 2,
          count: 1,
          data: [0x33, 0x44],
          regs: { rsi: BigInt(BUF), rcx: 1n, rip: AT },
        },
        {
          reason: "io",
          direction: "out",
          port: 0x3f8,
          size: 2,
          count: 1,
          data: [0x11, 0x22],
          regs: { rsi: BigInt(BUF - 2), rcx: 0n, rip: AT },
        },
        { reason: "hlt" },
      ],
      expect: { regs: { rsi: BigInt(BUF - 2), rcx: 0n } },
    },
    {
      name: `rep outsb / rep insb with RCX 0: no exit, RIP past them [${mode}]`,
      mode,
      asm: "rep outsb\nrep insb\nhlt",
      regs: { rsi: BigInt(BUF), rdi: BigInt(BUF), rdx: 0x3f8n },
      memory: [{ gpa: BUF, bytes: [0x41] }],
      expect: {
        regs: { rsi: BigInt(BUF), rdi: BigInt(BUF), rcx: 0n, rip: AT + 5n },
        memory: [{ gpa: BUF, bytes: [0x41] }],
      },
    },
    {
      name:
        `rep insw count 40 from 16 bytes below a page edge: batches of 16 and 24 (bytes to the edge vs elements) [${mode}]`,
      mode,
      asm: "rep insw\nhlt",
      regs: { rdi: 0x5ff0n, rcx: 40n, rdx: 0x60n },
      exits: [
        {
          reason: "io",
          direction: "in",
          port: 0x60,
          size: 2,
          count: 16,
          reply: Array.from({ length: 32 }, (_, i) => i),
          regs: { rdi: 0x5ff0n, rcx: 40n, rip: AT },
        },
        {
          reason: "io",
          direction: "in",
          port: 0x60,
          size: 2,
          count: 24,
          reply: Array.from({ length: 48 }, (_, i) => 32 + i),
          regs: { rdi: 0x6010n, rcx: 24n, rip: AT },
        },
        { reason: "hlt" },
      ],
      expect: {
        regs: { rdi: 0x6040n, rcx: 0n },
        memory: [{ gpa: 0x5ff0, bytes: Array.from({ length: 80 }, (_, i) => i) }],
      },
    },
  );
}

for (const mode of ["long", "protected"] as const) {
  const b = mode === "long" ? "rbx" : "ebx";
  const exitsRW: ExitSummary[] = [];
  out.push(
    {
      name: `mmio read 1/2/4 bytes completed from the run page [${mode}]`,
      mode,
      asm: `mov ${b}, ${MMIO}\nmov al, [${b}]\nmov cx, [${b} + 2]\nmov edx, [${b} + 4]\nhlt`,
      regs: { rax: 0xffffffffn, rcx: 0xffffffffn },
      exits: [
        { reason: "mmio", isWrite: false, physAddr: MMIO, len: 1, reply: [0x12] },
        { reason: "mmio", isWrite: false, physAddr: MMIO + 2, len: 2, reply: [0x34, 0x12] },
        { reason: "mmio", isWrite: false, physAddr: MMIO + 4, len: 4, reply: [0x78, 0x56, 0x34, 0x12] },
        { reason: "hlt" },
      ],
      expect: { regs: { rax: 0xffffff12n, rcx: 0xffff1234n, rdx: 0x12345678n } },
    },
    {
      name: `mmio write 1/2/4 bytes with data [${mode}]`,
      mode,
      asm:
        `mov ${b}, ${MMIO}\nmov byte [${b}], 0x5a\nmov word [${b} + 0x10], 0x1234\nmov dword [${b} + 0x20], 0xcafef00d\nhlt`,
      exits: [
        { reason: "mmio", isWrite: true, physAddr: MMIO, len: 1, data: [0x5a] },
        { reason: "mmio", isWrite: true, physAddr: MMIO + 0x10, len: 2, data: [0x34, 0x12] },
        { reason: "mmio", isWrite: true, physAddr: MMIO + 0x20, len: 4, data: le(0xcafef00d, 4) },
        { reason: "hlt" },
      ],
      expect: {},
    },
    {
      name: `mmio read-modify-write: add dword [mmio], 3 → read exit, write exit [${mode}]`,
      mode,
      asm: `mov ${b}, ${MMIO + 0x100}\nadd dword [${b}], 3\nhlt`,
      exits: [
        { reason: "mmio", isWrite: false, physAddr: MMIO + 0x100, len: 4, reply: le(0xfffffffe, 4) },
        { reason: "mmio", isWrite: true, physAddr: MMIO + 0x100, len: 4, data: le(1, 4) },
        { reason: "hlt" },
      ],
      expect: { regs: { rflags: 0x2n | 0x1n | 0x10n }, flagsMask: 0x8d5n },
    },
  );
  void exitsRW;
}
out.push(
  {
    name: "mmio qword read and write (64-bit)",
    mode: "long",
    asm: `mov rbx, ${MMIO}\nmov rax, [rbx]\nmov [rbx + 8], rax\nhlt`,
    exits: [
      { reason: "mmio", isWrite: false, physAddr: MMIO, len: 8, reply: le(0x0102030405060708n, 8) },
      { reason: "mmio", isWrite: true, physAddr: MMIO + 8, len: 8, data: le(0x0102030405060708n, 8) },
      { reason: "hlt" },
    ],
    expect: { regs: { rax: 0x0102030405060708n } },
  },
  {
    name: "a store straddling the end of RAM: RAM part written, MMIO exit for the rest",
    mode: "long",
    asm: "mov ebx, 0x3ffffe\nmov dword [rbx], 0x44332211\nhlt",
    exits: [{ reason: "mmio", isWrite: true, physAddr: 0x400000, len: 2, data: [0x33, 0x44] }, { reason: "hlt" }],
    expect: { memory: [{ gpa: 0x3ffffe, bytes: [0x11, 0x22] }] },
  },
  {
    name: "IO then MMIO then IO: exits in program order",
    mode: "long",
    asm: `mov al, 1\nout 0xe9, al\nmov ebx, ${MMIO}\nmov dword [rbx], 2\nmov al, 3\nout 0xe9, al\nhlt`,
    exits: [
      { reason: "io", direction: "out", port: 0xe9, size: 1, count: 1, data: [1] },
      { reason: "mmio", isWrite: true, physAddr: MMIO, len: 4, data: [2, 0, 0, 0] },
      { reason: "io", direction: "out", port: 0xe9, size: 1, count: 1, data: [3] },
      { reason: "hlt" },
    ],
    expect: {},
  },
);

export const snippets: Snippet[] = out;
