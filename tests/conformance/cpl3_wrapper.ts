/**
 * The CPL 3 wrapper: runs a snippet's body at ring 3 on either backend
 * through the same createVmWithOneVcpu call, in long mode or in 32-bit
 * protected mode (flat segments, paging off: this PVM host does not support
 * non-PAE 32-bit paging, see kvm_divergences.ts) — or a protected-mode
 * snippet's 32-bit code in compatibility mode under long mode (`compat`) —
 * and reports what a CPL 0 run of the snippet reports, so the snippet's own
 * expectations apply.
 *
 * Set up on top of the snippet's environment (ENV of tests/snippets/run.ts):
 * - GDT entries 6/7 (selectors 0x33/0x3b): ring-3 code (64-bit in long mode,
 *   32-bit in protected mode) and flat ring-3 data; GDTR limit 8 entries;
 * - long mode: the US bit in every page-directory entry (PML4/PDPT entries
 *   have it);
 * - the wrapper's own TSS at CPL3_LAYOUT.tss (RSP0/ESP0 = CPL3_LAYOUT.kstackTop,
 *   SS0 = the flat data selector), loaded into TR through KVM_SET_SREGS with
 *   the TSS descriptor in GDT entry 4 rewritten to match. IO permission
 *   (`io`): "none" — IOPL 0 and the IO-map base beyond the TSS limit (no
 *   bitmap: IN/OUT/INS/OUTS at CPL 3 raise #GP(0)); "iopl" — IOPL 3 in RFLAGS;
 *   "bitmap" — IOPL 0 and an all-zero 8 KiB IO-permission bitmap (every port
 *   allowed) followed by the 0xff byte, inside the TSS limit;
 * - IDT gates 0–31 (64-bit or 32-bit interrupt gates, DPL 3 so INT n / INT3 /
 *   INTO at CPL 3 reach them as they do at CPL 0; `gateDpl` 0 makes them
 *   raise #GP(vector·8+2) instead) to ring-0 stubs at CPL3_LAYOUT.stubs + 16·v:
 *   `hlt` (the capture point), then the environment's reporting stub
 *   `mov dx, ENV.exceptionPort; mov al, v; out dx, al; hlt`;
 * - CS/SS/DS/ES (and FS/GS in protected mode) switched to the ring-3
 *   descriptors through KVM_SET_SREGS, then the snippet's registers, RFLAGS
 *   with the wrapper's IOPL.
 *
 * Every exception at CPL 3 goes through a gate to ring 0 with a stack switch
 * to RSP0/ESP0, so the frame (error code if the vector has one, RIP, CS,
 * RFLAGS, RSP, SS: 8-byte slots in long mode, 4-byte in protected mode) is at
 * a known place. The capture `hlt` exits to userspace with every GPR except
 * RSP untouched; the wrapper records a FaultRecord (vector from the stub's
 * address, frame, GPRs, CR2). Then:
 * - #GP(0) at a `hlt` byte is the snippet's final HLT (a CPL 0 HLT exit): the
 *   run ends with exits [hlt];
 * - anything else is an exception outcome: the run continues into the
 *   reporting stub, whose IO exit and HLT are the exits a CPL 0 run reports
 *   (the capture HLT itself is not reported).
 * IO and MMIO exits on the way are completed like the CPL 0 runner does
 * (reply data of the expected exit, else 0xff).
 *
 * The reported registers are the GPRs at the end of the run (after a
 * reporting stub: AL = vector, DX = port, as at CPL 0); RIP, RFLAGS and RSP
 * are the ring-3 ones from the frame: RIP one past the final `hlt`, or the
 * saved RIP of an exception; RF (set in the frame of every fault) and the
 * IOPL the wrapper set are cleared from RFLAGS.
 *
 * @module
 */
import { assemble, createVmWithOneVcpu, type VcpuExit } from "../../mod.ts";
import type { BackendName } from "../../src/backends/types.ts";
import { releaseWatchdog } from "../../src/backends/kvm/mod.ts";
import { idtGate32, idtGate64, segmentDescriptor, systemSegment } from "../../src/x86/descriptors.ts";
import { LAYOUT, SEL_CODE32, SEL_CODE64, SEL_DATA, SEL_TSS } from "../../src/x86/setup.ts";
import { installRing3Segments, RING3_GDT_LIMIT, USER_CS, USER_DS, userIdentityPages } from "../../src/x86/ring3.ts";
import { type ActualExit, bitsOf, ENV, type SnippetResult, summarize, summarizeAt } from "../snippets/run.ts";
import { GPR_NAMES, type RegName, type Snippet } from "../snippets/types.ts";
import { expectedExits, KVM_RUN_TIMEOUT_MS } from "./runner.ts";

/** Offsets in the reserved area used by the wrapper (after the environment's stubs at LAYOUT.stubs). */
export const CPL3_LAYOUT = {
  /** The ring-0 stubs, 16 bytes per vector 0–31. */
  stubs: LAYOUT.stubs + 0x1000,
  /** RSP0 / ESP0: the exception frame is just below it. */
  kstackTop: LAYOUT.stubs + 0x3000,
  /** The wrapper's TSS (0x68 bytes, then the IO-permission bitmap and its 0xff byte). */
  tss: 0x10000,
} as const;

export { USER_CS, USER_DS } from "../../src/x86/ring3.ts";
export type Cpl3Mode = "long" | "protected";
export type IoPermission = "none" | "iopl" | "bitmap";
export interface Cpl3Options {
  /** How IO at CPL 3 is permitted (default "none"). */
  io?: IoPermission;
  /** DPL of the 32 exception gates (default 3). */
  gateDpl?: 0 | 3;
  /**
   * A protected-mode snippet: run its 32-bit code in IA-32e compatibility
   * mode instead (long-mode environment, ring-3 code descriptor L = 0, D = 1),
   * which PVM runs natively.
   */
  compat?: boolean;
  /**
   * Long-mode page-table edits after the US bits are set: the 2 MiB PDE
   * mapping `addr` becomes `(pde & and) | or` (for #PF checks at CPL 3).
   */
  pdes?: readonly { addr: number; and?: bigint; or?: bigint }[];
}

const RF = 1n << 16n;
const IOPL = 3n << 12n;
const TSS_BASE_SIZE = 0x68;
const IO_BITMAP_BYTES = 0x2000;
/** Vectors whose exceptions push an error code (SDM vol. 3 table 6-1). */
export const ERROR_CODE_VECTORS: ReadonlySet<number> = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

/** What the capture HLT saw: the exception at CPL 3 and the state it left. */
export interface FaultRecord {
  vector: number;
  /** The error code, for the vectors that push one. */
  error?: bigint;
  rip: bigint;
  cs: bigint;
  rflags: bigint;
  rsp: bigint;
  ss: bigint;
  /** Every GPR at the capture point (RSP: the ring-3 one from the frame). */
  gprs: Record<RegName, bigint>;
  /** CR2, for a #PF. */
  cr2?: bigint;
}

export interface Cpl3Result extends SnippetResult {
  /** The exception the body raised (undefined when it ended at its final HLT). */
  fault?: FaultRecord;
}

/** Run `s`'s body at CPL 3 on `backend` (see the module note). */
export function runCpl3(backend: BackendName, s: Snippet, opts: Cpl3Options = {}): Cpl3Result {
  if (s.mode === "real") throw new Error(`${s.name}: real mode has no CPL 3 (expected long or protected)`);
  if (opts.compat && s.mode !== "protected") throw new Error(`${s.name}: compat needs a protected-mode snippet`);
  const mode: Cpl3Mode = opts.compat ? "long" : s.mode;
  const io = opts.io ?? "none";
  const gateDpl = opts.gateDpl ?? 3;
  const long = mode === "long";
  const code = assemble(s.asm, { bits: bitsOf(s.mode), origin: ENV.load }).bytes;
  const { vm, vcpu, layout } = createVmWithOneVcpu({
    backend,
    code,
    mode,
    load: ENV.load,
    memSize: ENV.memSize,
    exceptionPort: ENV.exceptionPort,
    ...(backend === "kvm" ? { runTimeoutMs: KVM_RUN_TIMEOUT_MS } : {}),
  });
  try {
    const base = layout.reservedBase, gdt = layout.gdt!, idt = layout.idt!;
    const { code: ucode, data: udata } = installRing3Segments(vm, gdt, s.mode === "long");
    if (long) {
      const pd = base + LAYOUT.pd;
      userIdentityPages(vm, base);
      for (const e of opts.pdes ?? []) {
        const at = pd + 8 * Math.floor(e.addr / (2 << 20));
        vm.write64(at, (vm.read64(at) & (e.and ?? ~0n)) | (e.or ?? 0n));
      }
    } else if (opts.pdes?.length) {
      throw new Error(`${s.name}: pdes need long mode (protected mode runs with paging off)`);
    }
    // The TSS: RSP0/ESP0 at +4, SS0 at +8 (32-bit), IO-map base at +0x66.
    const tss = base + CPL3_LAYOUT.tss, kstack = base + CPL3_LAYOUT.kstackTop;
    vm.guestView(tss, TSS_BASE_SIZE + IO_BITMAP_BYTES + 1).fill(0);
    vm.write64(tss + 4, BigInt(kstack));
    if (!long) vm.writeGuest(tss + 8, [SEL_DATA, 0]);
    vm.writeGuest(tss + 0x66, [TSS_BASE_SIZE, 0]);
    vm.writeGuest(tss + TSS_BASE_SIZE + IO_BITMAP_BYTES, [0xff]);
    const tssLimit = io === "bitmap" ? TSS_BASE_SIZE + IO_BITMAP_BYTES : TSS_BASE_SIZE - 1;
    const tr = systemSegment(BigInt(tss), tssLimit, 0xb, SEL_TSS);
    vm.write64(gdt + SEL_TSS, segmentDescriptor(tr));
    vm.write64(gdt + SEL_TSS + 8, 0n);
    // Stubs and gates.
    const stubs = base + CPL3_LAYOUT.stubs, port = ENV.exceptionPort;
    for (let v = 0; v < 32; v++) {
      const at = stubs + 16 * v;
      vm.writeGuest(at, [0xf4, 0x66, 0xba, port & 0xff, port >> 8, 0xb0, v, 0xee, 0xf4, 0xeb, 0xfd]);
      if (long) {
        const [lo, hi] = idtGate64(BigInt(at), SEL_CODE64, gateDpl);
        vm.write64(idt + 16 * v, lo);
        vm.write64(idt + 16 * v + 8, hi);
      } else vm.write64(idt + 8 * v, idtGate32(at, SEL_CODE32, gateDpl));
    }
    vcpu.setSregs({
      gdt: { base: BigInt(gdt), limit: RING3_GDT_LIMIT },
      tr,
      cs: ucode,
      ss: udata,
      ds: { ...udata },
      es: { ...udata },
      ...(long ? {} : { fs: { ...udata }, gs: { ...udata } }),
    });
    for (const m of s.memory ?? []) vm.writeGuest(m.gpa, m.bytes);
    const regs = { ...s.regs };
    const wrapperIopl = io === "iopl" ? IOPL : 0n;
    regs.rflags = ((regs.rflags ?? 2n) & ~IOPL) | wrapperIopl | 2n;
    vcpu.setRegs(regs);

    const expected = expectedExits(s);
    const exits: ActualExit[] = [];
    let stop = "", fault: FaultRecord | undefined, finalHlt: FaultRecord | undefined;
    const w = long ? 8 : 4;
    const frameWord = (at: number) => (long ? vm.read64(at) : vm.read64(at) & 0xffffffffn);
    for (;;) {
      if (exits.length >= ENV.maxExits) {
        stop = `more than ${ENV.maxExits} exits`;
        break;
      }
      let e: VcpuExit;
      try {
        e = vcpu.run(ENV.budget);
      } catch (err) {
        stop = `run threw ${err instanceof Error ? err.message : String(err)}`;
        break;
      }
      if (e.reason === "io" || e.reason === "mmio") {
        exits.push(summarizeAt(e, expected[exits.length], () => vcpu.getRegs()));
        const want = expected[exits.length - 1];
        const isRead = e.reason === "io" ? e.direction === "in" : !e.isWrite;
        const reply = want && "reply" in want && want.reason === e.reason && isRead ? want.reply : undefined;
        if (reply) e.data.set(reply.slice(0, e.data.length));
        else if (isRead) e.data.fill(0xff);
        continue;
      }
      const r = vcpu.getRegs();
      const off = Number(r.rip) - 1 - stubs;
      if (e.reason === "hlt" && off >= 0 && off < 32 * 16 && off % 16 === 0 && fault === undefined) {
        const vector = off / 16;
        const hasError = ERROR_CODE_VECTORS.has(vector);
        const frame = kstack - w * (hasError ? 6 : 5);
        if (r.rsp !== BigInt(frame)) {
          stop = `vector ${vector} handler RSP 0x${r.rsp.toString(16)}, expected 0x${frame.toString(16)}`;
          break;
        }
        const words = Array.from({ length: hasError ? 6 : 5 }, (_, i) => frameWord(frame + w * i));
        const [rip, cs, rflags, rsp, ss] = hasError ? words.slice(1) : words;
        const gprs = Object.fromEntries(GPR_NAMES.map((n) => [n, r[n]])) as Record<RegName, bigint>;
        gprs.rsp = rsp!;
        gprs.rip = rip!;
        gprs.rflags = rflags!;
        const rec: FaultRecord = {
          vector,
          ...(hasError ? { error: words[0]! } : {}),
          rip: rip!,
          cs: cs!,
          rflags: rflags!,
          rsp: rsp!,
          ss: ss!,
          gprs,
          ...(vector === 14 ? { cr2: vcpu.getSregs().cr2 } : {}),
        };
        if (cs !== BigInt(USER_CS) || ss !== BigInt(USER_DS)) {
          stop = `vector ${vector} frame CS 0x${cs!.toString(16)} SS 0x${
            ss!.toString(16)
          }, expected the ring-3 0x33 / 0x3b`;
          break;
        }
        const inRam = rip! < BigInt(ENV.memSize);
        if (vector === 13 && rec.error === 0n && inRam && vm.readGuest(Number(rip), 1)[0] === 0xf4) {
          finalHlt = rec;
          exits.push({ reason: "hlt" });
          break;
        }
        fault = rec;
        continue;
      }
      exits.push(summarize(e));
      if (e.reason !== "hlt" && e.reason !== "shutdown") {
        const sum = exits[exits.length - 1]!;
        stop = `stopped by ${e.reason}${"detail" in sum && sum.detail ? ` (${sum.detail})` : ""} at rip 0x${
          r.rip.toString(16)
        }`;
      }
      break;
    }
    const r = vcpu.getRegs();
    const out = Object.fromEntries(GPR_NAMES.map((n) => [n, r[n]])) as Record<RegName, bigint>;
    const ring3 = finalHlt ?? fault;
    if (ring3) {
      out.rip = ring3 === finalHlt ? ring3.rip + 1n : ring3.rip;
      out.rflags = ring3.rflags & ~RF & ~wrapperIopl;
      out.rsp = ring3.rsp;
    }
    const memory = (s.expect.memory ?? []).map((m) => ({
      gpa: m.gpa,
      bytes: [...vm.readGuest(m.gpa, m.bytes.length)],
    }));
    return { exits, regs: out, memory, stop, ...(fault ? { fault } : {}) };
  } finally {
    (vm as { close?: () => void }).close?.();
    if (backend === "kvm") releaseWatchdog();
  }
}
