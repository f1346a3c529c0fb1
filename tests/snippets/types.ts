/**
 * The guest-snippet table format: backend-neutral data, no kvmsim types. A
 * snippet is guest code in kvmsim's assembler syntax plus the machine state
 * before it and the state (and the userspace exits) it must produce. The
 * runner (run.ts) executes one on kvmsim through the public API; a second
 * backend (real /dev/kvm) can execute the same table and compare.
 *
 * The environment every snippet runs in (see ENV in run.ts): the
 * createVmWithOneVcpu layout — RAM at GPA 0, ENV.memSize bytes; code at
 * ENV.load; real mode at CS = 0; protected mode flat 32-bit, paging off;
 * long mode with the low 4 GiB identity-mapped by 2 MiB pages; RSP =
 * ENV.stackTop in protected and long mode; GPRs 0 and RFLAGS 0x2 unless
 * `regs` says otherwise; exceptions 0–31 in protected/long mode reported by
 * stubs as `out ENV.exceptionPort, al` (AL = vector) followed by `hlt`.
 *
 * @module
 */

export type SnippetMode = "real" | "protected" | "long";

import { KVM_REGS_NAMES } from "../../src/x86/regs.ts";

/** The register names a snippet may set or expect: `kvm_regs`' fields in struct order (the one list, src/x86/regs.ts). */
export const GPR_NAMES = KVM_REGS_NAMES;
export type RegName = typeof GPR_NAMES[number];
export type Regs = Partial<Record<RegName, bigint>>;

export interface MemBytes {
  gpa: number;
  bytes: number[];
}

/**
 * One userspace exit as the snippet expects it, in order. Fields that are
 * present are compared; `reply` is not compared: it is the data the runner
 * puts into the run page to complete an IN or an MMIO read. `regs`: the
 * registers as userspace sees them at this exit (KVM_GET_REGS before the
 * next KVM_RUN); only those listed are compared.
 */
export type ExitSummary =
  | { reason: "io"; direction: "out"; port: number; size: number; count?: number; data?: number[]; regs?: Regs }
  | { reason: "io"; direction: "in"; port: number; size: number; count?: number; reply: number[]; regs?: Regs }
  | { reason: "mmio"; isWrite: true; physAddr: number; len: number; data?: number[]; regs?: Regs }
  | { reason: "mmio"; isWrite: false; physAddr: number; len: number; reply: number[]; regs?: Regs }
  | { reason: "hlt" }
  | { reason: "shutdown" };

export interface Expect {
  /** Only the registers listed are compared (rflags under `flagsMask`). */
  regs?: Regs;
  /** RFLAGS bits compared when `regs.rflags` is given (the bits the SDM defines here); default all. */
  flagsMask?: bigint;
  /** Guest-physical bytes after the run. */
  memory?: MemBytes[];
}

export interface Snippet {
  name: string;
  mode: SnippetMode;
  /** kvmsim assembler source, assembled at ENV.load in the mode's bit width. */
  asm: string;
  /** Initial registers (on top of the environment's). */
  regs?: Regs;
  /** Initial guest-physical memory. */
  memory?: MemBytes[];
  /** Every userspace exit in order; default `[{reason: "hlt"}]`. */
  exits?: ExitSummary[];
  expect: Expect;
  /** The snippet needs no CPL 0 privilege (no IO, no system instructions, no HLT before the end). */
  cpl3?: boolean;
}

/** The flag bits. */
export const CF = 0x1n,
  PF = 0x4n,
  AF = 0x10n,
  ZF = 0x40n,
  SF = 0x80n,
  TF = 0x100n,
  IF = 0x200n,
  DF = 0x400n,
  OF = 0x800n;
export const OSZAPC = OF | SF | ZF | AF | PF | CF;

/** Little-endian bytes of `v` in `n` bytes. */
export function le(v: bigint | number, n: number): number[] {
  let x = BigInt.asUintN(n * 8, BigInt(v));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
  }
  return out;
}

/** The exits of an exception reported by the environment's stubs: OUT of the vector, then HLT. */
export function exceptionExits(port: number, vector: number): ExitSummary[] {
  return [{ reason: "io", direction: "out", port, size: 1, count: 1, data: [vector] }, { reason: "hlt" }];
}
