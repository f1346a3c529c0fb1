/**
 * Generates tests/x86_alu_vectors.json: expected results of integer instructions
 * taken from the real CPU. Each case's instruction is assembled with GNU `as`
 * (Intel syntax, 64-bit) and executed natively at ring 3 by native_runner.c
 * with the given RAX/RBX/RCX/RDX/RSI/RFLAGS; the test (tests/x86_core_alu_test.ts)
 * runs the same bytes in kvmsim's long mode and compares.
 *
 * Operand convention: destination in rAX (al/ax/eax/rax), source in rBX, shift
 * count in CL, RDX for MUL/DIV. `mask` is the set of flags the SDM defines for
 * the case (undefined flags are recorded in `out.rflags` but not compared).
 *
 * Run: tests/oracle/native_flags.sh  (needs gcc and binutils; the test does not).
 */
const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
const ALL = CF | PF | AF | ZF | SF | OF;

type Size = 1 | 2 | 4 | 8;
const SIZES: Size[] = [1, 2, 4, 8];
const A: Record<Size, string> = { 1: "al", 2: "ax", 4: "eax", 8: "rax" };
const B: Record<Size, string> = { 1: "bl", 2: "bx", 4: "ebx", 8: "rbx" };

interface Case {
  name: string;
  asm: string;
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rflags: bigint;
  mask: number;
}

const M64 = (1n << 64n) - 1n;
const mask = (s: Size) => (1n << BigInt(8 * s)) - 1n;
/** Interesting values for an operand size. */
function values(s: Size): bigint[] {
  const bits = BigInt(8 * s);
  const top = 1n << (bits - 1n);
  const m = mask(s);
  const v = [
    0n,
    1n,
    2n,
    0x0fn,
    0x10n,
    top - 1n,
    top,
    top + 1n,
    m,
    m - 1n,
    0x5a5a5a5a5a5a5a5an & m,
    0x123456789abcdef1n & m,
  ];
  return [...new Set(v.map((x) => x & m))];
}
/** Upper garbage in RAX/RBX so that 8/16/32-bit writes are checked for merging/zero-extension. */
const GARBAGE = 0xdead_beef_cafe_0000n;
const withGarbage = (v: bigint, s: Size) => (s === 8 ? v : ((GARBAGE & ~mask(s)) | v) & M64);

const FL0 = 0x202n; // IF (user mode keeps it) + bit 1
const FL_ALL = 0x202n | BigInt(ALL);
const cases: Case[] = [];
const add = (c: Omit<Case, "rcx" | "rdx" | "rsi"> & Partial<Case>) => cases.push({ rcx: 0n, rdx: 0n, rsi: 0n, ...c });

// ALU ops: all pairs (CF-in only matters for ADC/SBB).
for (const op of ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]) {
  const logic = op === "or" || op === "and" || op === "xor";
  for (const s of SIZES) {
    const vs = values(s);
    for (const a of vs) {
      for (const b of vs) {
        const fls = op === "adc" || op === "sbb" ? [FL0, FL0 | 1n] : [FL0];
        for (const fl of fls) {
          add({
            name: `${op}${8 * s}`,
            asm: `${op} ${A[s]}, ${B[s]}`,
            rax: withGarbage(a, s),
            rbx: withGarbage(b, s),
            rflags: fl,
            mask: logic ? ALL & ~AF : ALL,
          });
        }
      }
    }
  }
}
// ALU r, imm8 (83 /x ib, sign-extended) and r, imm (81 / 05-style) forms.
for (const op of ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]) {
  const logic = op === "or" || op === "and" || op === "xor";
  for (const s of [2, 4, 8] as Size[]) {
    for (const imm of ["-3", "0x7f", "-128", s === 2 ? "0x1234" : "0x12345678"]) {
      for (const a of values(s)) {
        add({
          name: `${op}i${8 * s}`,
          asm: `${op} ${B[s]}, ${imm}`,
          rax: 0n,
          rbx: withGarbage(a, s),
          rflags: FL0 | 1n,
          mask: logic ? ALL & ~AF : ALL,
        });
      }
    }
  }
}
// INC/DEC/NEG/NOT (CF-in matters: INC/DEC keep it).
for (const op of ["inc", "dec", "neg", "not"]) {
  for (const s of SIZES) {
    for (const a of values(s)) {
      for (const fl of [FL0, FL_ALL]) {
        add({ name: `${op}${8 * s}`, asm: `${op} ${A[s]}`, rax: withGarbage(a, s), rbx: 0n, rflags: fl, mask: ALL });
      }
    }
  }
}
// Shifts and rotates by CL.
const COUNTS = [0n, 1n, 2n, 3n, 7n, 8n, 9n, 15n, 16n, 17n, 31n, 32n, 33n, 63n, 64n, 65n, 0xffn];
for (const op of ["rol", "ror", "rcl", "rcr", "shl", "shr", "sar"]) {
  for (const s of SIZES) {
    const bits = BigInt(8 * s);
    const vs = [1n, mask(s), 1n << (bits - 1n), 0x5a5a5a5a5a5a5a5an & mask(s), 0x8123456789abcdefn & mask(s)];
    for (const a of vs) {
      for (const cnt of COUNTS) {
        for (const fl of [FL0, FL_ALL]) {
          const c = Number(cnt & (s === 8 ? 63n : 31n));
          let m: number;
          if (c === 0) m = ALL;
          else if (op === "rol" || op === "ror" || op === "rcl" || op === "rcr") {
            m = ALL & ~(c === 1 ? 0 : OF);
          } else {
            m = CF | SF | ZF | PF | (c === 1 ? OF : 0);
            if ((op === "shl" || op === "shr") && c > 8 * s) m &= ~CF; // CF undefined when count > width
          }
          add({
            name: `${op}${8 * s}`,
            asm: `${op} ${A[s]}, cl`,
            rax: withGarbage(a, s),
            rbx: 0n,
            rcx: cnt,
            rflags: fl,
            mask: m,
          });
        }
      }
    }
  }
}
// One-bit and immediate forms (same semantics, other encodings).
for (const s of SIZES) {
  for (const a of [1n, 1n << BigInt(8 * s - 1), mask(s)]) {
    add({
      name: `shl1_${8 * s}`,
      asm: `shl ${A[s]}, 1`,
      rax: withGarbage(a, s),
      rbx: 0n,
      rflags: FL0,
      mask: ALL & ~AF,
    });
    add({
      name: `sar_imm${8 * s}`,
      asm: `sar ${A[s]}, 3`,
      rax: withGarbage(a, s),
      rbx: 0n,
      rflags: FL0,
      mask: CF | SF | ZF | PF,
    });
    add({ name: `rcr1_${8 * s}`, asm: `rcr ${A[s]}, 1`, rax: withGarbage(a, s), rbx: 0n, rflags: FL0 | 1n, mask: ALL });
  }
}
// SHLD/SHRD.
for (const op of ["shld", "shrd"]) {
  for (const s of [2, 4, 8] as Size[]) {
    const vs = [mask(s), 0x8123456789abcdefn & mask(s), 1n];
    for (const a of vs) {
      for (const b of [0x5a5a5a5a5a5a5a5an & mask(s), mask(s), 0n]) {
        for (const cnt of [0n, 1n, 2n, 4n, 8n, 15n, 16n, 31n, 32n, 63n]) {
          const c = Number(cnt & (s === 8 ? 63n : 31n));
          const m = c === 0 ? ALL : CF | SF | ZF | PF | (c === 1 ? OF : 0);
          if (c > 8 * s) continue; // result undefined
          add({
            name: `${op}${8 * s}`,
            asm: `${op} ${A[s]}, ${B[s]}, cl`,
            rax: withGarbage(a, s),
            rbx: withGarbage(b, s),
            rcx: cnt,
            rflags: FL0,
            mask: m,
          });
        }
      }
    }
  }
}
// MUL/IMUL (one operand), IMUL two- and three-operand.
for (const op of ["mul", "imul"]) {
  for (const s of SIZES) {
    const vs = values(s);
    for (const a of vs) {
      for (const b of vs) {
        add({
          name: `${op}${8 * s}`,
          asm: `${op} ${B[s]}`,
          rax: withGarbage(a, s),
          rbx: withGarbage(b, s),
          rdx: GARBAGE,
          rflags: FL0,
          mask: CF | OF,
        });
      }
    }
  }
}
for (const s of [2, 4, 8] as Size[]) {
  const vs = values(s);
  for (const a of vs) {
    for (const b of vs) {
      add({
        name: `imul2_${8 * s}`,
        asm: `imul ${A[s]}, ${B[s]}`,
        rax: withGarbage(a, s),
        rbx: withGarbage(b, s),
        rflags: FL0,
        mask: CF | OF,
      });
    }
    for (const imm of [-1, 0x7f, -128, 3]) {
      add({
        name: `imul3_${8 * s}`,
        asm: `imul ${A[s]}, ${B[s]}, ${imm}`,
        rax: 0n,
        rbx: withGarbage(a, s),
        rflags: FL0,
        mask: CF | OF,
      });
    }
    add({
      name: `imul3z_${8 * s}`,
      asm: `imul ${A[s]}, ${B[s]}, ${s === 2 ? 0x1234 : 0x12345678}`,
      rax: 0n,
      rbx: withGarbage(a, s),
      rflags: FL0,
      mask: CF | OF,
    });
  }
}
// DIV/IDIV: RDX:RAX / RBX, including #DE on zero and on overflow.
for (const op of ["div", "idiv"]) {
  for (const s of SIZES) {
    const vs = values(s);
    const his = [0n, 1n, mask(s), 1n << BigInt(8 * s - 1)];
    for (const lo of vs.slice(0, 8)) {
      for (const hi of his) {
        for (const d of [0n, 1n, 2n, 3n, mask(s), 1n << BigInt(8 * s - 1), 0x7fn, 0x1234n & mask(s)]) {
          // For 8-bit the dividend is AX (AH = hi byte).
          const rax = s === 1 ? ((GARBAGE & ~0xffffn) | ((hi & 0xffn) << 8n) | lo) : withGarbage(lo, s);
          const rdx = s === 1 ? GARBAGE : withGarbage(hi, s);
          add({ name: `${op}${8 * s}`, asm: `${op} ${B[s]}`, rax, rbx: withGarbage(d, s), rdx, rflags: FL0, mask: 0 });
        }
      }
    }
  }
}
// BT/BTS/BTR/BTC (register forms), BSF/BSR.
for (const op of ["bt", "bts", "btr", "btc"]) {
  for (const s of [2, 4, 8] as Size[]) {
    for (const a of [0x5a5a5a5a5a5a5a5an & mask(s), mask(s), 0n]) {
      for (const bit of [0n, 1n, 7n, BigInt(8 * s - 1), BigInt(8 * s), 200n]) {
        for (const fl of [FL0, FL_ALL]) {
          add({
            name: `${op}${8 * s}`,
            asm: `${op} ${A[s]}, ${B[s]}`,
            rax: withGarbage(a, s),
            rbx: bit,
            rflags: fl,
            mask: CF | ZF,
          });
        }
      }
      add({
        name: `${op}i${8 * s}`,
        asm: `${op} ${A[s]}, 5`,
        rax: withGarbage(a, s),
        rbx: 0n,
        rflags: FL0,
        mask: CF | ZF,
      });
    }
  }
}
for (const op of ["bsf", "bsr"]) {
  for (const s of [2, 4, 8] as Size[]) {
    for (const b of [0n, 1n, 0x80n, mask(s), 1n << BigInt(8 * s - 1), 0x5a50n & mask(s)]) {
      for (const fl of [FL0, FL_ALL]) {
        add({
          name: `${op}${8 * s}`,
          asm: `${op} ${A[s]}, ${B[s]}`,
          rax: GARBAGE | 0x1234n,
          rbx: withGarbage(b, s),
          rflags: fl,
          mask: ZF,
        });
      }
    }
  }
}
// CMPXCHG/XADD register forms, CBW family, MOVSX/MOVZX, CMOV/SETcc after a CMP.
for (const s of SIZES) {
  for (const [a, b] of [[5n, 5n], [5n, 6n], [0n, mask(s)]]) {
    add({
      name: `cmpxchg${8 * s}`,
      asm: `cmpxchg ${B[s]}, ${s === 1 ? "dl" : s === 2 ? "dx" : s === 4 ? "edx" : "rdx"}`,
      rax: withGarbage(a!, s),
      rbx: withGarbage(b!, s),
      rdx: 0x1111111111111111n,
      rflags: FL0,
      mask: ALL,
    });
    add({
      name: `xadd${8 * s}`,
      asm: `xadd ${A[s]}, ${B[s]}`,
      rax: withGarbage(a!, s),
      rbx: withGarbage(b!, s),
      rflags: FL0,
      mask: ALL,
    });
  }
}
for (
  const asm of [
    "cbw",
    "cwde",
    "cdqe",
    "cwd",
    "cdq",
    "cqo",
    "movsx eax, bl",
    "movsx rax, bx",
    "movzx eax, bh",
    "movsxd rax, ebx",
    "bswap eax",
    "bswap rax",
  ]
) {
  for (const v of [0x7fn, 0x80n, 0x8000n, 0x80000000n, 0x1234567890abcdefn, 0xfedcba9876543210n]) {
    add({ name: asm.split(" ")[0]!, asm, rax: v, rbx: v, rdx: GARBAGE, rflags: FL0, mask: ALL });
  }
}
for (const cc of ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]) {
  for (const fl of [0x202n, 0x203n, 0x242n, 0x282n, 0xa02n, 0x206n, 0x2c3n, 0xac2n, 0xa83n]) {
    add({ name: `set${cc}`, asm: `set${cc} al`, rax: GARBAGE, rbx: 0n, rflags: fl, mask: ALL });
    add({
      name: `cmov${cc}32`,
      asm: `cmov${cc} eax, ebx`,
      rax: GARBAGE | 7n,
      rbx: GARBAGE | 9n,
      rflags: fl,
      mask: ALL,
    });
  }
}
add({ name: "lahf", asm: "lahf", rax: GARBAGE, rbx: 0n, rflags: 0x2d7n, mask: ALL });
add({ name: "sahf", asm: "sahf", rax: 0xd500n, rbx: 0n, rflags: 0x202n, mask: ALL });
add({ name: "sahf0", asm: "sahf", rax: 0x0000n, rbx: 0n, rflags: 0xad7n, mask: ALL });
add({ name: "cmc", asm: "cmc", rax: 0n, rbx: 0n, rflags: 0x202n, mask: ALL });

// ---- assemble ----
async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const p = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Feed stdin while stdout is drained (a large input would otherwise deadlock on the pipes).
  const feeding = stdin === undefined ? Promise.resolve() : (async () => {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  })();
  const o = await p.output();
  await feeding;
  if (!o.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(o.stderr)}`);
  return new TextDecoder().decode(o.stdout);
}

const dir = await Deno.makeTempDir();
const texts = [...new Set(cases.map((c) => c.asm))];
await Deno.writeTextFile(`${dir}/a.s`, ".intel_syntax noprefix\n.code64\n" + texts.join("\n") + "\n");
await run("as", ["--listing-lhs-width=6", `-al=${dir}/a.lst`, "-o", `${dir}/a.o`, `${dir}/a.s`]);
const bytes = new Map<string, string>();
const lines = (await Deno.readTextFile(`${dir}/a.lst`)).split("\n");
for (const l of lines) {
  const m = /^\s*\d+ [0-9a-f]{4} ([0-9A-F ]+?)\s*\t(.*)$/.exec(l);
  if (m) bytes.set(m[2]!.trim(), m[1]!.replace(/ /g, "").toLowerCase());
}
for (const t of texts) if (!bytes.has(t)) throw new Error(`no bytes for "${t}" in the listing`);

const here = new URL(".", import.meta.url).pathname;
await run("gcc", ["-O1", "-o", `${dir}/runner`, `${here}native_runner.c`]);
const h = (v: bigint) => v.toString(16);
const input =
  cases.map((c) => [bytes.get(c.asm)!, h(c.rax), h(c.rbx), h(c.rcx), h(c.rdx), h(c.rsi), h(c.rflags)].join(" ")).join(
    "\n",
  ) + "\n";
const out = (await run(`${dir}/runner`, [], input)).trim().split("\n");
if (out.length !== cases.length) throw new Error(`runner gave ${out.length} results for ${cases.length} cases`);
const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown";
// Grouped by instruction text: { asm, bytes, cases: [[rax, rbx, rcx, rdx, rflags, mask, out]] }
// with out = [rax, rbx, rcx, rdx, rflags] or "DE" (all numbers lowercase hex without 0x).
const groups = new Map<string, { name: string; asm: string; bytes: string; cases: unknown[] }>();
cases.forEach((c, i) => {
  const o = out[i]!.split(" ");
  let g = groups.get(c.asm);
  if (!g) groups.set(c.asm, g = { name: c.name, asm: c.asm, bytes: bytes.get(c.asm)!, cases: [] });
  const res = o[0] === "DE" ? "DE" : [o[0], o[1], o[2], o[3], o[5]];
  g.cases.push([h(c.rax), h(c.rbx), h(c.rcx), h(c.rdx), h(c.rflags), c.mask.toString(16), res]);
});
const vectors = [...groups.values()];
const file = new URL("../x86_alu_vectors.json", import.meta.url);
await Deno.writeTextFile(
  file,
  JSON.stringify({ generator: "tests/oracle/gen_vectors.ts", cpu, vectors }).replaceAll('{"name"', '\n{"name"') + "\n",
);
await Deno.remove(dir, { recursive: true });
console.log(`${cases.length} cases in ${vectors.length} groups from ${cpu} -> ${file.pathname}`);
