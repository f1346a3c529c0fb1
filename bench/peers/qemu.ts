/**
 * Peer "qemu": QEMU TCG (Debian `qemu-system-x86`, `qemu-system-x86_64
 * -accel tcg`) on a 64 KiB real-mode ROM given as `-bios`
 * (bench/peers/chunked.ts). Install: `sh scripts/install-peers.sh`.
 *
 * - io-out: `out dx, al; loop` to the unassigned port {@link BENCH_PORT}:
 *   QEMU's in-process IO dispatch (address-space lookup, unassigned-io ops),
 *   the closest thing TCG has to an exit.
 * - raw: `dec ecx; jnz` (one self-chained translation block: TCG's best case).
 *
 * Markers go to `isa-debugcon` at 0xE9 (chardev stdio); the guest ends the
 * process through `isa-debug-exit` at 0xF4 with value {@link QEMU_EXIT_VALUE},
 * so exit code (value << 1) | 1 = 99 proves it ran to the end. QEMU counts
 * neither port writes nor instructions, so the per-exit check is the marker
 * sequence (one marker per chunk, every chunk present, in order) and the exit
 * code; the OUT count per chunk is fixed by the loop.
 *
 * - mmio-write: `mov [ebx], al; loop` to BENCH_MMIO (0xd0000000, no device
 *   and no RAM there), in unreal mode: TCG's slow path for an I/O TLB entry
 *   → the unassigned memory region.
 *
 * Not compared: hlt (TCG has no HLT exit: with IF=0 the vCPU sleeps until
 * an interrupt that never comes).
 *
 * @module
 */
import { BENCH_PORT } from "../paths.ts";
import { findOnPath, MARKER_PORT, type ProcessRun } from "./chunked.ts";
import type { Peer, PeerOutcome, PeerSettings } from "./peer.ts";
import { measureProcessLoops, type ProcessEngine, type ProcessLoop } from "./process_peer.ts";

export const QEMU_BINARY = "qemu-system-x86_64";
export const QEMU_EXIT_PORT = 0xf4;
/** The value the guest writes to isa-debug-exit after the last chunk. */
export const QEMU_EXIT_VALUE = 0x31;
/** isa-debug-exit makes QEMU exit with (value << 1) | 1. */
export const QEMU_EXIT_CODE = (QEMU_EXIT_VALUE << 1) | 1;
export const QEMU_INSTALL = "sh scripts/install-peers.sh (apt-get install qemu-system-x86)";

/** Why these kvmsim paths have no qemu row. */
export const QEMU_NOT_COMPARED: Readonly<Record<string, string>> = {
  "hlt": "hlt not run on qemu: TCG has no HLT exit (the vCPU sleeps until an interrupt)",
};

export const QEMU_LOOPS: readonly ProcessLoop[] = [
  {
    spec: {
      path: "raw/dec-jnz",
      engine: "qemu",
      unit: "instructions",
      loop: "sampled",
      description: "real mode `dec ecx; jnz` in a 64 KiB -bios ROM; instructions between chunk markers per second",
      compared_to: "raw/dec-jnz",
      note: "QEMU TCG, real mode, one self-chained TB (kvmsim: long mode)",
    },
    body: { kind: "raw", iterations: 1 << 23 },
  },
  {
    spec: {
      path: "io-out/unassigned-port",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`out dx, al; loop\` to unassigned port 0x${
        BENCH_PORT.toString(16)
      } → QEMU's IO dispatch (in-process)`,
      compared_to: "io-out/switch",
      note: "QEMU TCG, real mode; an exit = an IO-dispatch to unassigned_io_ops",
    },
    body: { kind: "io-out", rounds: 4 },
  },
  {
    spec: {
      path: "mmio-write/unassigned",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description: "unreal mode `mov [ebx], al; loop` to unassigned 0xd0000000 → TCG I/O slow path (in-process)",
      compared_to: "mmio-write/switch",
      note: "QEMU TCG, unreal mode; an exit = a write to the unassigned memory region",
    },
    body: { kind: "mmio-write", rounds: 4 },
  },
];

/** The command line for `rom`: TCG, no default devices, markers on stdout, isa-debug-exit. */
export function qemuArgs(rom: string): string[] {
  return [
    "-accel",
    "tcg",
    "-machine",
    "pc",
    "-m",
    "16",
    "-bios",
    rom,
    "-display",
    "none",
    "-nodefaults",
    "-no-user-config",
    "-chardev",
    "stdio,id=marker,signal=off",
    "-device",
    `isa-debugcon,iobase=0x${MARKER_PORT.toString(16)},chardev=marker`,
    "-device",
    `isa-debug-exit,iobase=0x${QEMU_EXIT_PORT.toString(16)},iosize=1`,
  ];
}

/** Why a finished QEMU process did not end through isa-debug-exit. */
export function qemuEndProblem(run: Pick<ProcessRun, "code" | "signal" | "stderr">): string | undefined {
  if (run.code === QEMU_EXIT_CODE) return undefined;
  const tail = run.stderr.split("\n").filter((l) => l.trim() !== "").slice(-3).join(" | ");
  return `exit code ${run.code}${
    run.signal ? ` (signal ${run.signal})` : ""
  }: expected ${QEMU_EXIT_CODE} from isa-debug-exit value 0x${QEMU_EXIT_VALUE.toString(16)}${
    tail ? `; stderr: ${tail}` : ""
  }`;
}

export const qemuEngine: ProcessEngine = {
  name: "qemu",
  exitAsm: `  mov al, ${QEMU_EXIT_VALUE}\n  out ${QEMU_EXIT_PORT}, al`,
  invocation(_dir: string, rom: string) {
    return { cmd: QEMU_BINARY, args: qemuArgs(rom) };
  },
  checkEnd(run) {
    return qemuEndProblem(run);
  },
};

/** Log the paths qemu does not run, with the reason. */
function logNotCompared(settings: PeerSettings): void {
  for (const [family, why] of Object.entries(QEMU_NOT_COMPARED)) {
    if (settings.paths.some((p) => p.path.startsWith(`${family}/`))) settings.log?.(`  qemu: ${why}`);
  }
}

export const qemuPeer: Peer = {
  name: "qemu",
  async run(settings: PeerSettings): Promise<PeerOutcome> {
    if (findOnPath(QEMU_BINARY) === undefined) {
      return { kind: "skipped", reason: `${QEMU_BINARY} not found on PATH; install: ${QEMU_INSTALL}` };
    }
    logNotCompared(settings);
    return { kind: "rows", rows: await measureProcessLoops(qemuEngine, QEMU_LOOPS, settings) };
  },
};
