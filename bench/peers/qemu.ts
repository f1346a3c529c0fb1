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
 * - string-in: `rep insb` of 16 bytes from BENCH_PORT into RAM (QEMU
 *   dispatches each byte: 16 unassigned-port reads per REP INSB). The unit
 *   is one REP INSB, the counterpart of kvmsim's one exit of count 16.
 * - string-out: `rep outsb` of 16 bytes from RAM (filled by the ROM's
 *   prologue with kvmsim's source bytes) to BENCH_PORT: 16 unassigned-port
 *   writes per REP OUTSB. The unit is one byte written, the counterpart of
 *   one kvmsim exit (KVM exits once per OUTS element); QEMU does not report
 *   the bytes, so only the markers and the exit code are checked.
 * - cpuid-inkernel / msr-inkernel: `xor eax, eax; cpuid` and `rdmsr` of
 *   IA32_PAT in a `dec edi; jnz` loop: instructions TCG answers in a helper,
 *   never leaving QEMU — the counterpart of kvmsim's in-core exits.
 *
 * - io-in / mmio-read: `in al, dx` / `mov al, [ebx]` (unreal mode) in a
 *   `loop`, from the unassigned port / address: the emulator supplies the
 *   value itself (no handler does, unlike kvmsim's; the guest does not check it).
 *
 * Not compared ({@link QEMU_NOT_COMPARED}, logged with the reason): hlt,
 * debug-int3, msr-user, and the coalesced paths (io-out/coalesced,
 * mmio-write/coalesced: no coalesced-write ring).
 *
 * @module
 */
import { BENCH_PORT, MSR_PAT, STRING_IO_BYTES } from "../paths.ts";
import { findOnPath, MARKER_PORT, type ProcessRun } from "./chunked.ts";
import type { Peer } from "./peer.ts";
import { type ProcessEngine, type ProcessLoop, processPlan } from "./process_peer.ts";

export const QEMU_BINARY = "qemu-system-x86_64";
export const QEMU_EXIT_PORT = 0xf4;
/** The value the guest writes to isa-debug-exit after the last chunk. */
export const QEMU_EXIT_VALUE = 0x31;
/** isa-debug-exit makes QEMU exit with (value << 1) | 1. */
export const QEMU_EXIT_CODE = (QEMU_EXIT_VALUE << 1) | 1;
export const QEMU_INSTALL = "sh scripts/install-peers.sh (apt-get install qemu-system-x86)";

/** Why these kvmsim paths (by id, or by family) have no qemu row. */
export const QEMU_NOT_COMPARED: Readonly<Record<string, string>> = {
  "io-out/coalesced":
    "TCG dispatches every port write to its device at once; QEMU's coalesced MMIO/PIO ring exists only under -accel kvm",
  "mmio-write/coalesced":
    "TCG dispatches every MMIO write to its region at once; QEMU's coalesced MMIO/PIO ring exists only under -accel kvm",
  "hlt": "TCG has no HLT exit (the vCPU sleeps until an interrupt)",
  "debug-int3":
    "a guest INT3 goes to the guest's IDT/IVT (#BP), never to QEMU; its gdbstub breakpoints are host-inserted and each hit is a gdb remote-protocol round trip over a socket, a different mechanism",
  "msr-user": "TCG answers every RDMSR itself (an unknown MSR is a #GP in the guest); there is no user-space MSR exit",
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
  {
    spec: {
      path: "string-in/unassigned-port",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rep insb\` of ${STRING_IO_BYTES} bytes from unassigned port 0x${
        BENCH_PORT.toString(16)
      } into RAM → QEMU's IO dispatch, once per byte (in-process)`,
      compared_to: "string-in/switch",
      note:
        `QEMU TCG, real mode; an exit = one ${STRING_IO_BYTES}-byte REP INSB = one kvmsim exit (count ${STRING_IO_BYTES}) = ${STRING_IO_BYTES} IO-read dispatches to unassigned_io_ops`,
    },
    body: { kind: "string-in", iterations: 1 << 15 },
  },
  {
    spec: {
      path: "string-out/unassigned-port",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rep outsb\` of ${STRING_IO_BYTES} bytes from RAM to unassigned port 0x${
        BENCH_PORT.toString(16)
      } → QEMU's IO dispatch, once per byte (in-process)`,
      compared_to: "string-out/switch",
      note:
        `QEMU TCG, real mode; unit = bytes written: an exit = one byte = one IO-write dispatch to unassigned_io_ops = one kvmsim exit (count 1), ${STRING_IO_BYTES} per REP OUTSB`,
    },
    body: { kind: "string-out", iterations: 1 << 15 },
  },
  {
    spec: {
      path: "cpuid-inkernel/loop",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description:
        "real mode `xor eax, eax; cpuid; dec edi; jnz`: CPUID in a TCG helper; CPUIDs between chunk markers per second",
      compared_to: "cpuid-inkernel/budget",
      note: "QEMU TCG, real mode; an exit = a CPUID QEMU handles itself (helper_cpuid)",
    },
    body: { kind: "cpuid", iterations: 1 << 20 },
  },
  {
    spec: {
      path: "msr-inkernel/loop",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`rdmsr\` of IA32_PAT (0x${
        MSR_PAT.toString(16)
      }); dec edi; jnz: RDMSR in a TCG helper; RDMSRs between chunk markers per second`,
      compared_to: "msr-inkernel/budget",
      note: "QEMU TCG, real mode; an exit = an RDMSR QEMU handles itself (helper_rdmsr)",
    },
    body: { kind: "rdmsr", iterations: 1 << 20 },
  },
  {
    spec: {
      path: "io-in/unassigned-port",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description: `real mode \`in al, dx; loop\` from unassigned port 0x${
        BENCH_PORT.toString(16)
      } → QEMU's IO dispatch (unassigned_io_ops answers 0xff) (in-process)`,
      compared_to: "io-in/switch",
      note: "QEMU TCG, real mode; an exit = an IO-read dispatch (the value is the emulator's, not a handler's)",
    },
    body: { kind: "io-in", rounds: 4 },
  },
  {
    spec: {
      path: "mmio-read/unassigned",
      engine: "qemu",
      unit: "exits",
      loop: "sampled",
      description:
        "unreal mode `mov al, [ebx]; loop` from unassigned 0xd0000000 → TCG's I/O slow path → the unassigned memory region (in-process)",
      compared_to: "mmio-read/switch",
      note: "QEMU TCG, unreal mode; an exit = a read no device claims",
    },
    body: { kind: "mmio-read", rounds: 4 },
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

export const qemuPeer: Peer = {
  name: "qemu",
  unavailable() {
    return Promise.resolve(
      findOnPath(QEMU_BINARY) === undefined ? `${QEMU_BINARY} not found on PATH; install: ${QEMU_INSTALL}` : undefined,
    );
  },
  plan(paths) {
    return processPlan(qemuEngine, QEMU_LOOPS, QEMU_NOT_COMPARED, paths);
  },
};
