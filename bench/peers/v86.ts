/**
 * Peer "v86" (npm `v86@0.5.462`, JIT on): the io-out and raw dec/jnz loops in
 * real mode, from a hand-made 64 KiB BIOS whose reset vector jumps to the
 * loop (/work/shared/spec/toolchain.md §5).
 *
 * - io-out: `out dx, al; jmp` to {@link BENCH_PORT}; the "exit" is v86's
 *   call of the JS handler registered with `cpu.io.register_write`.
 * - raw: `dec ecx; jnz` (32-bit operands in real mode); the rate is
 *   `get_instruction_counter()` per second.
 * - raw/alu-mem: the ALU/memory/stack mix in real mode (bench/peers/v86_alu_mem.ts),
 *   its registers and memory checked against the closed forms after every window.
 *
 * v86 runs asynchronously in slices, so a run is a sampling window: counts
 * at the start and the end of `durationMs` of wall time. Checks per window:
 * every byte the handler saw is {@link BENCH_BYTE}; instructions retired =
 * 2 × port writes (± one iteration) on io-out; no port write on raw.
 *
 * @module
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { assemble } from "../../src/asm/x86.ts";
import { BENCH_BYTE, BENCH_PORT, type BenchPath } from "../paths.ts";
import { peerRow, type PeerRowSpec, type ResultRow } from "../report.ts";
import { ratePerSecond, summarize } from "../stats.ts";
import { type Peer, PeerCheckError, type PeerOutcome, type PeerSettings } from "./peer.ts";
import { V86_ALU_MEM_ASM, v86AluMemCheck, type V86CpuView } from "./v86_alu_mem.ts";

const BUILD = new URL("../../node_modules/v86/build/", import.meta.url);
const BIOS_SIZE = 0x10000;
/** Far jump F000:0000 at the reset vector F000:FFF0. */
const RESET_VECTOR = [0xea, 0x00, 0x00, 0x00, 0xf0];

/** One v86 loop and the kvmsim path it is compared with. */
interface V86Loop {
  readonly spec: PeerRowSpec;
  /** 16-bit code placed at BIOS offset 0 (F000:0000); the loop is at `top`. */
  readonly asm: string;
  /** The guest's result after `retired` instructions (v86's counter since boot): what differs, or undefined. */
  readonly check?: (cpu: V86CpuView, retired: number) => string | undefined;
}

export const V86_LOOPS: readonly V86Loop[] = [
  {
    spec: {
      path: "raw/dec-jnz",
      engine: "v86",
      unit: "instructions",
      loop: "sampled",
      description: "real mode `dec ecx; jnz` loop in a 64 KiB BIOS; get_instruction_counter() per second",
      compared_to: "raw/dec-jnz",
      note: "v86 JIT, real mode (kvmsim: long mode)",
    },
    asm: `
  xor ecx, ecx
top:
  dec ecx
  jnz top
  jmp top
`,
  },
  {
    spec: {
      path: "io-out/port-handler",
      engine: "v86",
      unit: "exits",
      loop: "port-handler",
      description: "real mode `out dx, al; jmp` → cpu.io.register_write handler (JS)",
      compared_to: "io-out/switch",
      note: "v86 JIT, real mode; an exit = a WASM→JS handler call",
    },
    asm: `
  mov dx, ${BENCH_PORT}
  mov al, ${BENCH_BYTE}
top:
  out dx, al
  jmp top
`,
  },
  {
    spec: {
      path: "raw/alu-mem",
      engine: "v86",
      unit: "instructions",
      loop: "sampled",
      description:
        "real mode variant of the ALU/memory/stack mix (ebp for r8d, a dword for r9d); get_instruction_counter() per second",
      compared_to: "raw/alu-mem",
      note: "v86 JIT, real mode (kvmsim: long mode); result checked per window",
    },
    asm: V86_ALU_MEM_ASM,
    check: v86AluMemCheck,
  },
];

/** The BIOS image: `asm` at offset 0, the reset vector at 0xFFF0. */
export function biosImage(asm: string): Uint8Array<ArrayBuffer> {
  const { bytes } = assemble(asm, { bits: 16, origin: 0 });
  if (bytes.length > 0xfff0) throw new RangeError(`v86 BIOS code is ${bytes.length} bytes: expected at most 0xfff0`);
  const img = new Uint8Array(BIOS_SIZE);
  img.set(bytes, 0);
  img.set(RESET_VECTOR, 0xfff0);
  return img;
}

// deno-lint-ignore no-explicit-any
type V86Ctor = new (opts: Record<string, unknown>) => any;

/** The V86 constructor and the wasm bytes, or why they cannot be loaded. */
export async function loadV86(): Promise<{ V86: V86Ctor; wasm: Uint8Array<ArrayBuffer> } | { missing: string }> {
  const lib = new URL("libv86.mjs", BUILD), wasmUrl = new URL("v86.wasm", BUILD);
  let wasm: Uint8Array<ArrayBuffer>;
  try {
    wasm = Deno.readFileSync(fromFileUrl(wasmUrl)) as Uint8Array<ArrayBuffer>;
  } catch (e) {
    return {
      missing: `npm package v86 not installed (${fromFileUrl(wasmUrl)}: ${
        (e as Error).message
      }); run npm i -D v86@0.5.462`,
    };
  }
  try {
    const mod = await import(lib.href);
    if (typeof mod.V86 !== "function") return { missing: `${fromFileUrl(lib)} exports no V86 constructor` };
    return { V86: mod.V86 as V86Ctor, wasm };
  } catch (e) {
    return { missing: `cannot import ${fromFileUrl(lib)}: ${(e as Error).message}` };
  }
}

/** Untimed run before the windows, so that the JIT has compiled the loop. */
const V86_JIT_WARMUP_MS = 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Boot v86 on the loop's BIOS, sample it, stop it. */
async function measureLoop(
  V86: V86Ctor,
  wasm: Uint8Array<ArrayBuffer>,
  loop: V86Loop,
  s: Omit<PeerSettings, "paths">,
): Promise<ResultRow> {
  const path = loop.spec.path;
  const emulator = new V86({
    wasm_fn: (imports: WebAssembly.Imports) => WebAssembly.instantiate(wasm, imports).then((r) => r.instance.exports),
    bios: { buffer: biosImage(loop.asm).buffer },
    memory_size: 16 << 20,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    acpi: false,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PeerCheckError("v86", path, "emulator-loaded did not fire within 20 s")),
        20_000,
      );
      emulator.add_listener("emulator-loaded", () => (clearTimeout(timer), resolve()));
    });
    let writes = 0, badBytes = 0;
    emulator.v86.cpu.io.register_write(BENCH_PORT, {}, (v: number) => {
      writes++;
      if (v !== BENCH_BYTE) badBytes++;
    });
    // v86's counter is 32 bits: `retired` accumulates it (windows are far shorter than a wrap).
    let retired = 0, lastCount = 0;
    const count = (): number => {
      const c = (emulator.get_instruction_counter() as number) >>> 0;
      retired += (c - lastCount) >>> 0;
      lastCount = c;
      return c;
    };
    emulator.run();
    const window = async (): Promise<number> => {
      const w0 = writes, i0 = count();
      const t0 = performance.now();
      await sleep(s.durationMs);
      const w1 = writes, i1 = count();
      const ms = performance.now() - t0;
      const exits = w1 - w0, insns = (i1 - i0) >>> 0;
      if (badBytes !== 0) {
        throw new PeerCheckError(
          "v86",
          path,
          `${badBytes} port writes carried a byte other than 0x${BENCH_BYTE.toString(16)}`,
        );
      }
      if (loop.spec.unit === "exits") {
        if (exits === 0) {
          throw new PeerCheckError("v86", path, `no port write in ${ms.toFixed(0)} ms (${insns} instructions retired)`);
        }
        if (Math.abs(insns - 2 * exits) > 4) {
          throw new PeerCheckError(
            "v86",
            path,
            `${insns} instructions retired for ${exits} port writes: expected ${2 * exits} ± 4`,
          );
        }
        return ratePerSecond(exits, ms);
      }
      if (exits !== 0) throw new PeerCheckError("v86", path, `${exits} port writes on a loop that does none`);
      if (insns === 0) throw new PeerCheckError("v86", path, `no instruction retired in ${ms.toFixed(0)} ms`);
      const problem = loop.check?.(emulator.v86.cpu as V86CpuView, retired);
      if (problem !== undefined) throw new PeerCheckError("v86", path, `guest result: ${problem}`);
      return ratePerSecond(insns, ms);
    };
    // The JIT compiles the loop during the first few hundred ms: one fixed warm-up window first.
    await sleep(V86_JIT_WARMUP_MS);
    count();
    for (let i = 0; i < s.warmup; i++) await window();
    const rates: number[] = [];
    for (let i = 0; i < s.runs; i++) rates.push(await window());
    return peerRow(loop.spec, summarize(rates));
  } finally {
    await emulator.destroy();
  }
}

/** The v86 loops whose kvmsim counterpart is among `paths`. */
export function v86LoopsFor(paths: readonly BenchPath[]): V86Loop[] {
  return V86_LOOPS.filter((l) => paths.some((p) => p.path === l.spec.compared_to));
}

export const v86Peer: Peer = {
  name: "v86",
  async run(settings: PeerSettings): Promise<PeerOutcome> {
    const loaded = await loadV86();
    if ("missing" in loaded) return { kind: "skipped", reason: loaded.missing };
    const rows: ResultRow[] = [];
    for (const loop of v86LoopsFor(settings.paths)) {
      const row = await measureLoop(loaded.V86, loaded.wasm, loop, settings);
      settings.log?.(
        `  ${row.path} (v86): ${
          Math.round("exits_per_s" in row ? row.exits_per_s : row.instr_per_s)
        } ${row.unit}/s over ${row.runs} runs`,
      );
      rows.push(row);
    }
    return { kind: "rows", rows };
  },
};
