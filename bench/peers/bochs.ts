/**
 * Peer "bochs": Bochs (Debian `bochs` 2.7, an interpreter) on a 64 KiB
 * real-mode ROM given as `romimage` (bench/peers/chunked.ts). Install:
 * `sh scripts/install-peers.sh` (bochs, bochs-term, vgabios).
 *
 * - io-out: `out dx, al; loop` to the unassigned port {@link BENCH_PORT}
 *   (Bochs's IO handler table → the unmapped-port device).
 * - raw: `dec ecx; jnz`.
 *
 * Markers go to port 0xE9 (`port_e9_hack`, copied to stdout). After the last
 * chunk the guest writes "Shutdown" byte-wise to port 0x8900 (Bochs's
 * unmapped-port device: "Shutdown port: shutdown requested", a panic with
 * `action=fatal`, so Bochs exits). Bochs's log lines start with its tick
 * count, which with the default `clock: sync=none` is one tick per retired
 * instruction: the shutdown line's count must equal the program's exact
 * instruction count (every OUT and every loop iteration retired).
 *
 * Debian's build has no `nogui` display library ("display library 'nogui'
 * not available") and has the internal debugger compiled in: the config uses
 * the `term` library (with TERM=dumb; the ROM never touches the VGA) and
 * stdin gets the debugger's `c` (continue). `cpu: ips` only sets the
 * emulated timers' pace.
 *
 * - mmio-write: `mov [ebx], al; loop` to the unassigned BENCH_MMIO, in
 *   unreal mode (Bochs's memory access path for an address no device and
 *   no RAM claims).
 *
 * - string-in: `rep insb` of 16 bytes from BENCH_PORT into RAM (one IO-read
 *   dispatch per byte; the unmapped-port device answers 0xff). The unit is
 *   one REP INSB, the counterpart of kvmsim's one exit of count 16: 16 port
 *   reads inside Bochs. Bochs ticks once per REP iteration
 *   ({@link BOCHS_REP_TICKS}), which the tick check counts.
 * - string-out: `rep outsb` of 16 bytes from RAM (filled by the ROM's
 *   prologue with kvmsim's source bytes) to BENCH_PORT: 16 port writes to
 *   the unmapped-port device per REP OUTSB. The unit is one byte written,
 *   the counterpart of one kvmsim exit (KVM exits once per OUTS element);
 *   the tick check counts every REP iteration and the prologue.
 * - cpuid-inkernel / msr-inkernel: `xor eax, eax; cpuid` and `rdmsr` of
 *   IA32_PAT in a `dec edi; jnz` loop, answered inside Bochs (an RDMSR
 *   that faulted would break the tick count).
 *
 * - io-in / mmio-read: `in al, dx` / `mov al, [ebx]` (unreal mode) in a
 *   `loop`, from the unassigned port / address: the emulator supplies the
 *   value itself (no handler does, unlike kvmsim's; the guest does not check it).
 *
 * Not compared ({@link BOCHS_NOT_COMPARED}, logged with the reason): hlt,
 * debug-int3, msr-user, and the coalesced paths (io-out/coalesced,
 * mmio-write/coalesced: no coalesced-write ring).
 *
 * @module
 */
import { BENCH_PORT, MSR_PAT, STRING_IO_BYTES } from "../paths.ts";
import { type ChunkBody, findOnPath, instructionsPerChunk, type ProcessRun, prologueInstructions } from "./chunked.ts";
import type { Peer } from "./peer.ts";
import { type ProcessEngine, type ProcessLoop, processPlan } from "./process_peer.ts";

export const BOCHS_BINARY = "bochs";
export const BOCHS_INSTALL = "sh scripts/install-peers.sh (apt-get install bochs bochs-term vgabios)";
export const BOCHS_SHUTDOWN_PORT = 0x8900;
/** The log line the shutdown port prints; its prefix is the tick (= instruction) count. */
const SHUTDOWN_LINE = /^(\d+)p\[UNMAP\s*\] >>PANIC<< Shutdown port: shutdown requested/m;
/** VGA ROMs Bochs can load (it needs one even though the ROM never calls it), first existing wins. */
export const BOCHS_VGA_ROMS = [
  "/usr/share/bochs/VGABIOS-lgpl-latest",
  "/usr/share/vgabios/vgabios.bin",
  "/usr/share/seabios/vgabios-isavga.bin",
] as const;
/** Where Debian puts the term display plugin. */
export const BOCHS_TERM_PLUGINS = [
  "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
  "/usr/lib/bochs/plugins/libbx_term_gui.so",
] as const;

/** Why these kvmsim paths (by id, or by family) have no bochs row. */
export const BOCHS_NOT_COMPARED: Readonly<Record<string, string>> = {
  "io-out/coalesced": "Bochs has no coalesced-write ring: every port write goes to its IO handler at once",
  "mmio-write/coalesced": "Bochs has no coalesced-write ring: every MMIO write goes to its memory handler at once",
  "hlt": "Bochs has no HLT exit (the CPU waits for an interrupt)",
  "debug-int3":
    "a guest INT3 goes to the guest's IVT (#BP); the internal debugger's breakpoints stop at an interactive text prompt, not a host callback",
  "msr-user":
    "Bochs answers every RDMSR itself (an unknown MSR is a #GP in the guest); there is no user-space MSR exit",
};

export const BOCHS_LOOPS: readonly ProcessLoop[] = [
  {
    spec: {
      path: "raw/dec-jnz",
      engine: "bochs",
      unit: "instructions",
      loop: "sampled",
      description: "real mode `dec ecx; jnz` in a 64 KiB romimage; instructions between chunk markers per second",
      compared_to: "raw/dec-jnz",
      note: "Bochs 2.7 interpreter (Debian build, debugger compiled in), real mode (kvmsim: long mode)",
    },
    body: { kind: "raw", iterations: 1 << 21 },
  },
  {
    spec: {
      path: "io-out/unassigned-port",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`out dx, al; loop\` to unassigned port 0x${
        BENCH_PORT.toString(16)
      } → Bochs's IO handler table (in-process)`,
      compared_to: "io-out/switch",
      note: "Bochs 2.7 interpreter, real mode; an exit = an IO-handler dispatch; instruction count checked",
    },
    body: { kind: "io-out", rounds: 2 },
  },
  {
    spec: {
      path: "mmio-write/unassigned",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description:
        "unreal mode `mov [ebx], al; loop` to unassigned 0xd0000000 → Bochs's memory access path (in-process)",
      compared_to: "mmio-write/switch",
      note: "Bochs 2.7 interpreter, unreal mode; an exit = a write no device claims; instruction count checked",
    },
    body: { kind: "mmio-write", rounds: 2 },
  },
  {
    spec: {
      path: "string-in/unassigned-port",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rep insb\` of ${STRING_IO_BYTES} bytes from unassigned port 0x${
        BENCH_PORT.toString(16)
      } into RAM → Bochs's IO handler table, once per byte (in-process)`,
      compared_to: "string-in/switch",
      note:
        `Bochs 2.7 interpreter, real mode; an exit = one ${STRING_IO_BYTES}-byte REP INSB = one kvmsim exit (count ${STRING_IO_BYTES}) = ${STRING_IO_BYTES} port reads in Bochs; ticks checked`,
    },
    body: { kind: "string-in", iterations: 1 << 14 },
  },
  {
    spec: {
      path: "string-out/unassigned-port",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rep outsb\` of ${STRING_IO_BYTES} bytes from RAM to unassigned port 0x${
        BENCH_PORT.toString(16)
      } → Bochs's IO handler table, once per byte (in-process)`,
      compared_to: "string-out/switch",
      note:
        `Bochs 2.7 interpreter, real mode; unit = bytes written: an exit = one byte = one port write in Bochs = one kvmsim exit (count 1), ${STRING_IO_BYTES} per REP OUTSB; ticks checked`,
    },
    body: { kind: "string-out", iterations: 1 << 14 },
  },
  {
    spec: {
      path: "cpuid-inkernel/loop",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description:
        "real mode `xor eax, eax; cpuid; dec edi; jnz`: CPUID inside Bochs; CPUIDs between chunk markers per second",
      compared_to: "cpuid-inkernel/budget",
      note: "Bochs 2.7 interpreter, real mode; an exit = a CPUID Bochs handles itself; ticks checked",
    },
    body: { kind: "cpuid", iterations: 1 << 18 },
  },
  {
    spec: {
      path: "msr-inkernel/loop",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rdmsr\` of IA32_PAT (0x${
        MSR_PAT.toString(16)
      }); dec edi; jnz: RDMSR inside Bochs; RDMSRs between chunk markers per second`,
      compared_to: "msr-inkernel/budget",
      note: "Bochs 2.7 interpreter, real mode; an exit = an RDMSR Bochs handles itself; ticks checked",
    },
    body: { kind: "rdmsr", iterations: 1 << 18 },
  },
  {
    spec: {
      path: "io-in/unassigned-port",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`in al, dx; loop\` from unassigned port 0x${
        BENCH_PORT.toString(16)
      } → Bochs's IO handler table (the unmapped-port device answers 0xff) (in-process)`,
      compared_to: "io-in/switch",
      note:
        "Bochs 2.7 interpreter, real mode; an exit = an IO-read dispatch (the value is the emulator's, not a handler's); ticks checked",
    },
    body: { kind: "io-in", rounds: 2 },
  },
  {
    spec: {
      path: "mmio-read/unassigned",
      engine: "bochs",
      unit: "exits",
      loop: "sampled",
      description:
        "unreal mode `mov al, [ebx]; loop` from unassigned 0xd0000000 → Bochs's memory access path for an address no device claims (in-process)",
      compared_to: "mmio-read/switch",
      note: "Bochs 2.7 interpreter, unreal mode; an exit = a read no device claims; ticks checked",
    },
    body: { kind: "mmio-read", rounds: 2 },
  },
];

/**
 * Bochs ticks once per iteration of a REP string instruction: with the
 * debugger compiled in (Debian's build), repeat() leaves after every
 * iteration and the instruction is fetched again.
 */
export const BOCHS_REP_TICKS = true;

/** The guest's exit: "Shutdown" written byte-wise to port 0x8900. */
export const BOCHS_EXIT_ASM = [
  `  mov dx, 0x${BOCHS_SHUTDOWN_PORT.toString(16)}`,
  ...[..."Shutdown"].flatMap((c) => [`  mov al, ${c.charCodeAt(0)}`, "  out dx, al"]),
].join("\n");

/**
 * Instructions Bochs retires for `chunks` chunks of `body` up to the
 * shutdown line: the reset far jump and `xor esi, esi`, the prologue
 * (unreal-mode entry, string-out's buffer fill), the chunks, then the
 * exit sequence without its last OUT (the panic is logged inside it).
 */
export function bochsExpectedTicks(body: ChunkBody, chunks: number): number {
  const exitBeforeLastOut = 1 + 2 * "Shutdown".length - 1;
  return 2 + prologueInstructions(body) + chunks * instructionsPerChunk(body, BOCHS_REP_TICKS) +
    exitBeforeLastOut;
}

/** The bochsrc for `rom` (paths must not hold spaces or commas: the parser splits on them). */
export function bochsConfig(rom: string, vgaRom: string): string {
  for (const p of [rom, vgaRom]) {
    if (/[\s,"]/.test(p)) {
      throw new RangeError(`bochsrc path ${JSON.stringify(p)}: expected no spaces, commas or quotes`);
    }
  }
  return [
    "# written by kvmsim bench/peers/bochs.ts",
    `romimage: file=${rom}`,
    `vgaromimage: file=${vgaRom}`,
    "megs: 16",
    "display_library: term",
    "port_e9_hack: enabled=1",
    "cpu: count=1, ips=100000000",
    "clock: sync=none",
    "log: -",
    "panic: action=fatal",
    "error: action=report",
    "info: action=report",
    "debug: action=ignore",
    "",
  ].join("\n");
}

/** Why a finished Bochs process did not end at the shutdown port after exactly the program's instructions. */
export function bochsEndProblem(stderr: string, body: ChunkBody, chunks: number): string | undefined {
  const m = SHUTDOWN_LINE.exec(stderr);
  const tail = stderr.split("\n").filter((l) => l.trim() !== "").slice(-3).join(" | ");
  if (m === null) return `no "Shutdown port: shutdown requested" line in Bochs's log; its end: ${tail}`;
  const ticks = Number(m[1]);
  const want = bochsExpectedTicks(body, chunks);
  if (ticks !== want) {
    return `shut down at tick ${ticks}: expected ${want} (= instructions of ${chunks} chunks and the exit sequence)`;
  }
  return undefined;
}

function firstExisting(paths: readonly string[]): string | undefined {
  for (const p of paths) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // try the next
    }
  }
  return undefined;
}

/** Why Bochs cannot run here (binary, term plugin, VGA ROM), or undefined. */
export function bochsMissing(): string | undefined {
  if (findOnPath(BOCHS_BINARY) === undefined) return `${BOCHS_BINARY} not found on PATH; install: ${BOCHS_INSTALL}`;
  if (firstExisting(BOCHS_TERM_PLUGINS) === undefined) {
    return `Bochs term display plugin not found (${BOCHS_TERM_PLUGINS.join(", ")}); install: ${BOCHS_INSTALL}`;
  }
  if (firstExisting(BOCHS_VGA_ROMS) === undefined) {
    return `no VGA ROM for Bochs (${BOCHS_VGA_ROMS.join(", ")}); install: ${BOCHS_INSTALL}`;
  }
  return undefined;
}

export const bochsEngine: ProcessEngine = {
  name: "bochs",
  exitAsm: BOCHS_EXIT_ASM,
  invocation(dir: string, rom: string) {
    const vga = firstExisting(BOCHS_VGA_ROMS);
    if (vga === undefined) throw new Error(`no VGA ROM for Bochs (${BOCHS_VGA_ROMS.join(", ")})`);
    const rc = `${dir}/bochsrc`;
    Deno.writeTextFileSync(rc, bochsConfig(rom, vga));
    return { cmd: BOCHS_BINARY, args: ["-q", "-f", rc], input: "c\n", env: { TERM: "dumb" } };
  },
  checkEnd(run: ProcessRun, body: ChunkBody, chunks: number) {
    return bochsEndProblem(run.stderr, body, chunks);
  },
};

export const bochsPeer: Peer = {
  name: "bochs",
  unavailable() {
    return Promise.resolve(bochsMissing());
  },
  plan(paths) {
    return processPlan(bochsEngine, BOCHS_LOOPS, BOCHS_NOT_COMPARED, paths);
  },
};
