/**
 * Where the fuzzer's memory operands point. SCRATCH is a 256-byte area
 * straddling the 2 MiB page boundary at 0x200000; STACK_WINDOW is the 256
 * bytes below the environment's RSP; both are compared after every run.
 * `memOperand` builds an operand in every addressing form: absolute disp32,
 * RIP-relative, base, base + disp8/disp32, base + index*scale + disp,
 * index*scale + disp, 32-bit address size (0x67, wrapping at 4 GiB) and
 * RSP-relative; the base/index values are loaded by `mov`s placed in the same
 * group, and base + index*scale + disp wraps modulo 2^64 (or 2^32) onto the
 * target. MMIO_BASE and UNMAPPED_BASE are the targets of deliberate accesses
 * outside RAM (MMIO exits, #PF).
 *
 * @module
 */
import { ENV } from "../snippets/run.ts";
import { GPRS64, REGS, SIZE_KW, type Width } from "./registers.ts";
import { randomValue, type Rng } from "./rng.ts";
import { immText, type Insn, plain, u64 } from "./sequence.ts";

/** The data area memory operands address; compared after every run. Straddles the 2 MiB page at 0x200000. */
export const SCRATCH = { base: 0x1fff80, size: 256 } as const;
/** Bytes below the initial RSP (ENV.stackTop) compared after every run (pushes, RSP-relative stores, #DE frames). */
export const STACK_WINDOW = { base: ENV.stackTop - 256, size: 256 } as const;
/** Guest-physical MMIO (no RAM, no device: a userspace exit per access; reads are answered with 0xff bytes). */
export const MMIO_BASE = 0xd0000000;
/** Linear addresses above the identity-mapped low 4 GiB: not present (#PF). */
export const UNMAPPED_BASE = 0x100000000n;

/**
 * A memory operand `SIZE [...]` of w/8 bytes at a random SCRATCH address (or in the stack window for the
 * RSP-relative form), in a random addressing form; the `mov`s that load its base/index registers go to
 * `setup`. `target`: the address to reach instead; `ea`: an arbitrary 64-bit effective address to encode
 * (a segment base is added to it; base-register forms only); `avoid`: registers the setup must not load.
 */
export function memOperand(
  rng: Rng,
  w: Width,
  setup: Insn[],
  opts: { target?: number; ea?: bigint; avoid?: readonly string[] } = {},
): { text: string; addr: number } {
  const bytes = w / 8;
  const target = opts.target ?? SCRATCH.base + rng.int(SCRATCH.size - bytes + 1);
  const T = opts.ea ?? BigInt(target);
  const free = GPRS64.filter((r) => !(opts.avoid ?? []).includes(r));
  const base = rng.pick(free);
  const index = rng.pick(free.filter((r) => r !== base));
  const scale = rng.pick([1, 2, 4, 8]);
  const idxVal = () => rng.int(4) === 0 ? randomValue(rng) : BigInt(rng.int(600) - 300);
  const disp = () => (rng.int(2) ? BigInt(rng.int(256) - 128) : BigInt(rng.int(2 ** 32) - 2 ** 31));
  const sign = (d: bigint) => (d < 0n ? `-0x${(-d).toString(16)}` : `+0x${d.toString(16)}`);
  const kw = SIZE_KW[w];
  switch (opts.ea !== undefined ? 2 + rng.int(4) : rng.int(opts.target === undefined ? 9 : 8)) {
    case 0:
      return { text: `${kw} [${immText(T)}]`, addr: target };
    case 1:
      return { text: `${kw} [rel ${immText(T)}]`, addr: target };
    case 2:
      setup.push(plain(`mov ${base}, ${immText(T)}`));
      return { text: `${kw} [${base}]`, addr: target };
    case 3: {
      const d = disp();
      setup.push(plain(`mov ${base}, ${immText(u64(T - d))}`));
      return { text: `${kw} [${base}${sign(d)}]`, addr: target };
    }
    case 4:
    case 5: {
      const d = disp(), i = idxVal();
      setup.push(
        plain(`mov ${index}, ${immText(i)}`),
        plain(`mov ${base}, ${immText(u64(T - i * BigInt(scale) - d))}`),
      );
      return { text: `${kw} [${base}+${index}*${scale}${sign(d)}]`, addr: target };
    }
    case 6: {
      // No base: disp32 is sign-extended, so index*scale stays small and positive.
      const i = BigInt(rng.int(0x1000));
      setup.push(plain(`mov ${index}, ${immText(i)}`));
      return { text: `${kw} [${index}*${scale}${sign(T - i * BigInt(scale))}]`, addr: target };
    }
    case 7: {
      // 32-bit address size: the sum wraps at 4 GiB.
      const b32 = REGS[32][GPRS64.indexOf(base)]!, i32 = REGS[32][GPRS64.indexOf(index)]!;
      const i = BigInt(rng.u32()), d = disp();
      const b = BigInt.asUintN(32, T - i * BigInt(scale) - d);
      setup.push(plain(`mov ${i32}, ${immText(i)}`), plain(`mov ${b32}, ${immText(b)}`));
      return { text: `${kw} [${b32}+${i32}*${scale}${sign(d)}]`, addr: target };
    }
    default: {
      // RSP-relative into the stack window below the environment's RSP (every unit leaves RSP balanced).
      const k = bytes + rng.int(128 - bytes + 1);
      return { text: `${kw} [rsp-0x${k.toString(16)}]`, addr: ENV.stackTop - k };
    }
  }
}
