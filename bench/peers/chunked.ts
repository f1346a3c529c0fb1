/**
 * Chunked guest loops for the emulator peers that run as separate processes
 * (QEMU TCG, Bochs): a 64 KiB real-mode ROM whose reset vector jumps to a
 * loop of `chunks` chunks. After each chunk the guest writes one marker byte
 * to {@link MARKER_PORT} (QEMU isa-debugcon, Bochs port 0xE9 hack), which
 * the emulator copies to its stdout; the host timestamps the bytes as they
 * arrive. Rates come from marker-to-marker intervals only, so process
 * start-up, ROM load and the first chunk (JIT warm-up) never enter a run.
 * After the last chunk the guest ends the process through the peer's exit
 * sequence (isa-debug-exit / the Bochs shutdown port).
 *
 * The mmio-write and mmio-read loops need a 32-bit address: the program first enters
 * "unreal" mode (protected mode just long enough to load DS with a 4 GiB
 * limit from a GDT in the ROM, then back to real mode), so `mov [ebx], al`
 * (or `mov al, [ebx]`) reaches {@link BENCH_MMIO} from real mode.
 *
 * Marker i (0-based) is `0x80 | (i & 0x7f)`: bytes ≥ 0x80 never occur in the
 * emulators' own ASCII output (Bochs prints its banner and debugger prompt
 * there), and the sequence proves no chunk was skipped or repeated.
 *
 * @module
 */
import { assemble } from "../../src/asm/x86.ts";
import {
  BENCH_BYTE,
  BENCH_MMIO,
  BENCH_PORT,
  MSR_PAT,
  STRING_IO_BUF,
  STRING_IO_BYTES,
  STRING_OUT_BUF,
  stringOutByte,
} from "../paths.ts";
import { ratePerSecond } from "../stats.ts";

/** The port of the per-chunk marker byte (QEMU isa-debugcon iobase, Bochs port_e9_hack). */
export const MARKER_PORT = 0xe9;
const ROM_SIZE = 0x10000;
/** Far jump F000:0000 at the reset vector F000:FFF0. */
const RESET_VECTOR = [0xea, 0x00, 0x00, 0x00, 0xf0];
/** Iterations of one `loop` round (CX starts at 0). */
const ROUND = 0x10000;

/** The measured guest loop of a chunk. */
export type ChunkBody =
  /** `out dx, al; loop top` to {@link BENCH_PORT} (unassigned in both emulators): `rounds` × 65536 exits per chunk. */
  | { readonly kind: "io-out"; readonly rounds: number }
  /** `in al, dx; loop top` from {@link BENCH_PORT} (unassigned: the emulator supplies the byte): `rounds` × 65536 exits. */
  | { readonly kind: "io-in"; readonly rounds: number }
  /** `dec ecx; jnz top` with ecx = `iterations`: 2 × iterations instructions per chunk. */
  | { readonly kind: "raw"; readonly iterations: number }
  /** `mov [ebx], al; loop top` to {@link BENCH_MMIO} (unassigned; unreal mode): `rounds` × 65536 exits per chunk. */
  | { readonly kind: "mmio-write"; readonly rounds: number }
  /** `mov al, [ebx]; loop top` from {@link BENCH_MMIO} (unassigned; unreal mode): `rounds` × 65536 exits per chunk. */
  | { readonly kind: "mmio-read"; readonly rounds: number }
  /** `xor eax, eax; cpuid; dec edi; jnz top`: `iterations` CPUIDs (in-emulator exits) per chunk. */
  | { readonly kind: "cpuid"; readonly iterations: number }
  /** `rdmsr` of IA32_PAT; `dec edi; jnz top`: `iterations` RDMSRs (in-emulator exits) per chunk. */
  | { readonly kind: "rdmsr"; readonly iterations: number }
  /**
   * `mov di, buf; mov cx, 16; rep insb; dec ebp; jnz top` from {@link BENCH_PORT} (unassigned: the emulator
   * supplies every byte) into {@link STRING_IO_BUF}: `iterations` REP INSBs of {@link STRING_IO_BYTES} bytes
   * per chunk, each 16 port reads inside the emulator.
   */
  | { readonly kind: "string-in"; readonly iterations: number }
  /**
   * `mov si, buf; mov cx, 16; rep outsb; dec ebp; jnz top` to {@link BENCH_PORT} (unassigned) from
   * {@link STRING_OUT_BUF}, which the program's prologue fills with the kvmsim path's source bytes
   * ({@link STRING_OUT_FILL}): `iterations` REP OUTSBs of {@link STRING_IO_BYTES} bytes per chunk; a unit is
   * one byte written (one port write, the counterpart of one kvmsim exit), so 16 units per REP OUTSB.
   */
  | { readonly kind: "string-out"; readonly iterations: number };

/** Units (exits or instructions) one chunk of `body` does. */
export function unitsPerChunk(body: ChunkBody): number {
  switch (body.kind) {
    case "io-out":
    case "io-in":
    case "mmio-write":
    case "mmio-read":
      return body.rounds * ROUND;
    case "raw":
      return 2 * body.iterations;
    case "cpuid":
    case "rdmsr":
    case "string-in":
      return body.iterations;
    case "string-out":
      return body.iterations * STRING_IO_BYTES;
    default: {
      const never: never = body;
      throw new RangeError(`unknown chunk body ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Instructions one chunk retires, including the marker and the chunk-loop
 * tail (Bochs checks its tick count against it). `repIterations`: a REP
 * string instruction counts once per iteration (Bochs with its debugger
 * compiled in re-executes it for every iteration), else once.
 */
export function instructionsPerChunk(body: ChunkBody, repIterations = false): number {
  // marker: mov ax, si; and al; or al; out; inc esi; cmp esi; jne = 7
  const tail = 7;
  switch (body.kind) {
    case "io-out":
      // mov dx; mov al; mov bx; per round: xor cx, 65536 × (out, loop), dec bx, jnz
      return 3 + body.rounds * (3 + 2 * ROUND) + tail;
    case "mmio-write":
      // mov ebx; mov al; mov di; per round: xor cx, 65536 × (mov [ebx], loop), dec di, jnz
      return 3 + body.rounds * (3 + 2 * ROUND) + tail;
    case "io-in":
      // mov dx; mov bx; per round: xor cx, 65536 × (in, loop), dec bx, jnz
      return 2 + body.rounds * (3 + 2 * ROUND) + tail;
    case "mmio-read":
      // mov ebx; mov di; per round: xor cx, 65536 × (mov al, [ebx], loop), dec di, jnz
      return 2 + body.rounds * (3 + 2 * ROUND) + tail;
    case "raw":
      // mov ecx; iterations × (dec, jnz)
      return 1 + 2 * body.iterations + tail;
    case "cpuid":
      // mov edi; iterations × (xor, cpuid, dec, jnz)
      return 1 + 4 * body.iterations + tail;
    case "rdmsr":
      // mov ecx; mov edi; iterations × (rdmsr, dec, jnz)
      return 2 + 3 * body.iterations + tail;
    case "string-in":
      // mov dx; mov ebp; iterations × (mov di, mov cx, rep insb, dec, jnz)
      return 2 + (4 + (repIterations ? STRING_IO_BYTES : 1)) * body.iterations + tail;
    case "string-out":
      // mov edi, esi; mov dx; mov ebp; iterations × (mov si, mov cx, rep outsb, dec, jnz); mov esi, edi
      return 4 + (4 + (repIterations ? STRING_IO_BYTES : 1)) * body.iterations + tail;
    default: {
      const never: never = body;
      throw new RangeError(`unknown chunk body ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Instructions before the first chunk (after the reset far jump and `xor
 * esi, esi`): the unreal-mode entry (mmio-write, mmio-read), the source
 * buffer fill (string-out); none has a REP instruction.
 */
export function prologueInstructions(body: ChunkBody): number {
  switch (body.kind) {
    case "mmio-write":
    case "mmio-read":
      return 11;
    case "string-out":
      // mov di; mov al; mov cx; 16 × (stosb, add, loop)
      return 3 + 3 * STRING_IO_BYTES;
    case "string-in":
    case "io-out":
    case "io-in":
    case "raw":
    case "cpuid":
    case "rdmsr":
      return 0;
    default: {
      const never: never = body;
      throw new RangeError(`unknown chunk body ${JSON.stringify(never)}`);
    }
  }
}

/** Unreal mode: DS gets base 0 and a 4 GiB limit from GDT entry 1, then the CPU is back in real mode. */
export const UNREAL_PROLOGUE = `
  cli
  lgdt [cs:gdtr]
  mov eax, cr0
  or al, 1
  mov cr0, eax
  mov bx, 8
  mov ds, bx
  and al, 0xfe
  mov cr0, eax
  xor bx, bx
  mov ds, bx`;

/** The GDT of {@link UNREAL_PROLOGUE}: null, flat 4 GiB data (accessed bit set: the ROM is read-only). */
export const UNREAL_DATA = `
align 8
gdt:
  dq 0
  dq 0x00cf93000000ffff
gdtr:
  dw 15
  dd 0xf0000 + gdt`;

/**
 * The string-out source buffer, filled by the guest (real mode, ES = 0 after
 * reset): byte i of {@link STRING_OUT_BUF} = (i × 7 + 3) & 0xff, the kvmsim
 * path's {@link stringOutByte}. Clobbers di, al, cx.
 */
export const STRING_OUT_FILL = `
  mov di, 0x${STRING_OUT_BUF.toString(16)}
  mov al, ${stringOutByte(0)}
  mov cx, ${STRING_IO_BYTES}
fill:
  stosb
  add al, ${stringOutByte(1) - stringOutByte(0)}
  loop fill`;

function checkRounds(body: { readonly kind: string; readonly rounds: number }): void {
  if (!Number.isInteger(body.rounds) || body.rounds < 1 || body.rounds > 0xffff) {
    throw new RangeError(`${body.kind} chunk rounds ${body.rounds}: expected an integer in 1..65535`);
  }
}

function checkIterations(body: { readonly kind: string; readonly iterations: number }): void {
  if (!Number.isInteger(body.iterations) || body.iterations < 1 || body.iterations > 0xffff_ffff) {
    throw new RangeError(`${body.kind} chunk iterations ${body.iterations}: expected an integer in 1..2^32-1`);
  }
}

function bodyAsm(body: ChunkBody): string {
  switch (body.kind) {
    case "io-out":
      checkRounds(body);
      return `
  mov dx, ${BENCH_PORT}
  mov al, ${BENCH_BYTE}
  mov bx, ${body.rounds}
round:
  xor cx, cx
top:
  out dx, al
  loop top
  dec bx
  jnz round`;
    case "raw":
      checkIterations(body);
      return `
  mov ecx, ${body.iterations}
top:
  dec ecx
  jnz top`;
    case "mmio-write":
      checkRounds(body);
      return `
  mov ebx, 0x${BENCH_MMIO.toString(16)}
  mov al, ${BENCH_BYTE}
  mov di, ${body.rounds}
round:
  xor cx, cx
top:
  mov [ebx], al
  loop top
  dec di
  jnz round`;
    case "io-in":
      checkRounds(body);
      return `
  mov dx, ${BENCH_PORT}
  mov bx, ${body.rounds}
round:
  xor cx, cx
top:
  in al, dx
  loop top
  dec bx
  jnz round`;
    case "mmio-read":
      checkRounds(body);
      return `
  mov ebx, 0x${BENCH_MMIO.toString(16)}
  mov di, ${body.rounds}
round:
  xor cx, cx
top:
  mov al, [ebx]
  loop top
  dec di
  jnz round`;
    case "cpuid":
      checkIterations(body);
      return `
  mov edi, ${body.iterations}
top:
  xor eax, eax
  cpuid
  dec edi
  jnz top`;
    case "rdmsr":
      checkIterations(body);
      return `
  mov ecx, 0x${MSR_PAT.toString(16)}
  mov edi, ${body.iterations}
top:
  rdmsr
  dec edi
  jnz top`;
    case "string-in":
      checkIterations(body);
      // INSB moves di (ES = 0 after reset): ebp counts the iterations; esi (the chunk counter) is untouched.
      return `
  mov dx, ${BENCH_PORT}
  mov ebp, ${body.iterations}
top:
  mov di, ${STRING_IO_BUF}
  mov cx, ${STRING_IO_BYTES}
  rep insb
  dec ebp
  jnz top`;
    case "string-out":
      checkIterations(body);
      // OUTSB moves si (DS = 0 after reset): edi keeps the chunk counter (esi) meanwhile, ebp counts the iterations.
      return `
  mov edi, esi
  mov dx, ${BENCH_PORT}
  mov ebp, ${body.iterations}
top:
  mov si, 0x${STRING_OUT_BUF.toString(16)}
  mov cx, ${STRING_IO_BYTES}
  rep outsb
  dec ebp
  jnz top
  mov esi, edi`;
    default: {
      const never: never = body;
      throw new RangeError(`unknown chunk body ${JSON.stringify(never)}`);
    }
  }
}

/**
 * The 16-bit guest program: `chunks` × (body, marker), then `exitAsm`
 * (which must not return; a trailing `hlt` loop catches it if it does).
 */
export function chunkedProgram(body: ChunkBody, chunks: number, exitAsm: string): string {
  if (!Number.isInteger(chunks) || chunks < 2 || chunks > 0x7fff_ffff) {
    throw new RangeError(`chunks ${chunks}: expected an integer in 2..2^31-1 (intervals need two markers)`);
  }
  const unreal = body.kind === "mmio-write" || body.kind === "mmio-read";
  return `
  xor esi, esi${unreal ? UNREAL_PROLOGUE : ""}${body.kind === "string-out" ? STRING_OUT_FILL : ""}
chunk:${bodyAsm(body)}
  mov ax, si
  and al, 0x7f
  or al, 0x80
  out ${MARKER_PORT}, al
  inc esi
  cmp esi, ${chunks}
  jne chunk
${exitAsm}
stop:
  hlt
  jmp stop
${unreal ? UNREAL_DATA : ""}
`;
}

/** The ROM image: `asm` assembled at F000:0000 (offset 0), the reset vector at 0xFFF0. */
export function romImage(asm: string): Uint8Array<ArrayBuffer> {
  const { bytes } = assemble(asm, { bits: 16, origin: 0 });
  if (bytes.length > 0xfff0) throw new RangeError(`ROM code is ${bytes.length} bytes: expected at most 0xfff0`);
  const img = new Uint8Array(ROM_SIZE);
  img.set(bytes, 0);
  img.set(RESET_VECTOR, 0xfff0);
  return img;
}

/** Marker byte of chunk `i`. */
export function markerByte(i: number): number {
  return 0x80 | (i & 0x7f);
}

/**
 * Collects marker bytes from an output stream with their arrival time, and
 * checks their sequence. Bytes < 0x80 are the emulator's own text (kept for
 * error messages).
 */
export class MarkerLog {
  readonly times: number[] = [];
  text = "";
  /** The first out-of-sequence marker, if any. */
  bad: string | undefined;

  feed(chunk: Uint8Array, now: number): void {
    for (const b of chunk) {
      if (b < 0x80) {
        if (this.text.length < 4096) this.text += String.fromCharCode(b);
        continue;
      }
      const want = markerByte(this.times.length);
      if (b !== want && this.bad === undefined) {
        this.bad = `marker ${this.times.length} is 0x${b.toString(16)}: expected 0x${want.toString(16)}`;
      }
      this.times.push(now);
    }
  }
}

/**
 * Rates of consecutive windows over the marker times: a window starts at a
 * marker and ends at the first later marker at least `durationMs` after it;
 * rate = chunks in the window × `units` per chunk / its length. Marker 0
 * (end of the first chunk, after boot) is the first start, so nothing before
 * it counts. Returns at most `max` rates.
 */
export function windowRates(times: readonly number[], units: number, durationMs: number, max: number): number[] {
  const rates: number[] = [];
  let a = 0;
  for (let b = 1; b < times.length && rates.length < max; b++) {
    const ms = times[b]! - times[a]!;
    if (ms >= durationMs) {
      rates.push(ratePerSecond((b - a) * units, ms));
      a = b;
    }
  }
  return rates;
}

/**
 * Chunks for a measuring process: enough for `windows` windows of
 * `durationMs` at `chunkMs` per chunk with 50 % margin, plus the first
 * (boot) chunk and one spare.
 */
export function chunksFor(chunkMs: number, durationMs: number, windows: number): number {
  if (!Number.isFinite(chunkMs) || chunkMs <= 0) throw new RangeError(`chunk time ${chunkMs} ms: expected > 0`);
  const perWindow = Math.max(1, Math.ceil(durationMs / chunkMs));
  return Math.ceil(perWindow * windows * 1.5) + 2;
}

/** Median marker-to-marker interval (ms), from the second marker on. */
export function medianInterval(times: readonly number[]): number {
  if (times.length < 2) throw new RangeError(`${times.length} markers: expected at least 2 for an interval`);
  const d = times.slice(1).map((t, i) => t - times[i]!).sort((x, y) => x - y);
  const mid = d.length >>> 1;
  return d.length % 2 === 1 ? d[mid]! : (d[mid - 1]! + d[mid]!) / 2;
}

/** What one emulator process produced. */
export interface ProcessRun {
  readonly markers: MarkerLog;
  readonly code: number;
  readonly signal: string | null;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Where to find a program: the first PATH entry holding it, or undefined. */
export function findOnPath(name: string, path = Deno.env.get("PATH") ?? ""): string | undefined {
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const full = `${dir}/${name}`;
    try {
      if (Deno.statSync(full).isFile) return full;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Run `cmd args`, timestamping marker bytes on its stdout; `input` is
 * written to its stdin (then closed). SIGKILL after `timeoutMs` (Bochs's
 * term GUI ignores SIGTERM).
 */
export async function runMarked(
  cmd: string,
  args: readonly string[],
  opts: { readonly input?: string; readonly env?: Record<string, string>; readonly timeoutMs: number },
): Promise<ProcessRun> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdin: opts.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
  }).spawn();
  let timedOut = false, exited = false;
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, opts.timeoutMs);
  try {
    // Drain stderr from the start (Bochs logs before it reads stdin); keep the head and the tail (the exit lines).
    const errParts: Uint8Array[] = [];
    let errBytes = 0;
    const readErr = (async () => {
      for await (const c of child.stderr) {
        errParts.push(c);
        errBytes += c.length;
        while (errBytes > 256 * 1024 && errParts.length > 2) errBytes -= errParts.splice(1, 1)[0]!.length;
      }
    })();
    if (opts.input !== undefined) {
      const w = child.stdin.getWriter();
      try {
        await w.write(new TextEncoder().encode(opts.input));
        await w.close();
      } catch {
        // The process is already gone: its status and stderr say why.
      }
    }
    const markers = new MarkerLog();
    for await (const c of child.stdout) markers.feed(c, performance.now());
    await readErr;
    const status = await child.status;
    exited = true;
    const err = new Uint8Array(errBytes);
    let at = 0;
    for (const p of errParts) {
      err.set(p, at);
      at += p.length;
    }
    return { markers, code: status.code, signal: status.signal, stderr: new TextDecoder().decode(err), timedOut };
  } finally {
    clearTimeout(timer);
    if (!exited) {
      kill();
      await child.status;
    }
  }
}

/** The last `n` non-empty lines of `text` (for error messages). */
export function tailLines(text: string, n = 4): string {
  return text.split("\n").filter((l) => l.trim() !== "").slice(-n).join(" | ");
}
