/**
 * The CPL 3 variant of the snippet table (tracking issue: "run the CPL3
 * variant where the instruction allows it"). On this host's software-nested
 * /dev/kvm (PVM) ring-0 guest code goes through KVM's instruction emulator,
 * while ring-3 guest code runs natively: a CPL 3 run is the real-CPU
 * reference.
 *
 * The wrapper, on either backend through the same createVmWithOneVcpu call:
 * - the snippet's long-mode environment (ENV of tests/snippets/run.ts), plus
 *   ring-3 code/data descriptors in GDT entries 6/7 (selectors 0x33/0x3b),
 *   the US bit in every page-directory entry (PML4/PDPT entries have it), the
 *   TSS RSP0 at CPL3_LAYOUT.kstackTop and IDT gate 13 pointing at a one-byte
 *   ring-0 `hlt` at CPL3_LAYOUT.handler;
 * - CS/SS/DS/ES switched to the ring-3 descriptors through KVM_SET_SREGS
 *   (no IRETQ needed), the snippet's registers, RFLAGS with IOPL 0;
 * - the snippet's final `hlt` raises #GP at CPL 3 (a hardware event the host
 *   delivers), the gate stack-switches to RSP0 and the ring-0 `hlt` exits to
 *   userspace with every GPR except RSP untouched. RIP, RFLAGS and RSP of the
 *   ring-3 code come from the #GP frame (error code, RIP, CS, RFLAGS, RSP,
 *   SS); RIP is reported one past the faulting `hlt` (where a CPL 0 HLT
 *   leaves it) and RF (set in the frame of every fault) is cleared.
 *
 * Eligible snippets: long mode, marked `cpl3`, expecting only the final HLT
 * exit, with no instruction whose CPL 3 behaviour differs (cpl3Eligibility).
 *
 * @module
 */
import { assemble, createVmWithOneVcpu } from "../../mod.ts";
import type { BackendName } from "../../src/backends/types.ts";
import { releaseWatchdog } from "../../src/backends/kvm/mod.ts";
import { idtGate64, segmentDescriptor } from "../../src/x86/descriptors.ts";
import { flatSegment } from "../../src/x86/regs.ts";
import { LAYOUT } from "../../src/x86/setup.ts";
import { compareSnippet, ENV, type Mismatch, type SnippetResult } from "../snippets/run.ts";
import { GPR_NAMES, type RegName, type Snippet } from "../snippets/types.ts";
import { KVM_RUN_TIMEOUT_MS } from "./runner.ts";

/** Offsets in the reserved area used by the wrapper (after the exception stubs at LAYOUT.stubs). */
export const CPL3_LAYOUT = {
  /** The ring-0 #GP handler: one `hlt`. */
  handler: LAYOUT.stubs + 0x1000,
  /** TSS RSP0: the #GP frame is the 48 bytes below it. */
  kstackTop: LAYOUT.stubs + 0x2000,
} as const;

export const USER_CS = 0x33, USER_DS = 0x3b;
const GP = 13;
const RF = 1n << 16n;
const IOPL = 3n << 12n;

/**
 * Mnemonics whose effect at CPL 3 differs from CPL 0 (fault, or silently do
 * less: POPF/IRET keep IF/IOPL, segment loads check DPL, descriptor-table
 * stores report this wrapper's GDT) or that leave the snippet environment
 * (IO, software interrupts, system calls).
 */
const PRIVILEGED = new Set([
  "in",
  "out",
  "ins",
  "insb",
  "insw",
  "insd",
  "outs",
  "outsb",
  "outsw",
  "outsd",
  "cli",
  "sti",
  "clts",
  "lgdt",
  "lidt",
  "lldt",
  "ltr",
  "sgdt",
  "sidt",
  "sldt",
  "str",
  "smsw",
  "lmsw",
  "invd",
  "wbinvd",
  "invlpg",
  "invpcid",
  "wrmsr",
  "rdmsr",
  "rdpmc",
  "rdtsc",
  "rdtscp",
  "swapgs",
  "sysret",
  "sysretq",
  "sysexit",
  "syscall",
  "sysenter",
  "int",
  "int1",
  "int3",
  "into",
  "iret",
  "iretd",
  "iretq",
  "popf",
  "popfd",
  "popfq",
  "lar",
  "lsl",
  "verr",
  "verw",
  "arpl",
  "monitor",
  "mwait",
  "xsetbv",
  "cpuid",
  "lss",
  "lfs",
  "lgs",
  "lds",
  "les",
  "retf",
  "lret",
  "ljmp",
  "lcall",
  "ud2",
]);
const SEGMENT_REG = /\b(cs|ds|es|fs|gs|ss)\b/;
const CONTROL_REG = /\b(cr\d|dr\d)\b/;

/** Undefined when `s` can run at CPL 3 with this wrapper, else why not. */
export function cpl3Eligibility(s: Snippet): string | undefined {
  if (s.mode !== "long") return `mode ${s.mode} (only long mode is wrapped)`;
  if (!s.cpl3) return "not marked cpl3";
  const exits = s.exits ?? [{ reason: "hlt" }];
  if (exits.length !== 1 || exits[0]?.reason !== "hlt") {
    return `expects exits ${JSON.stringify(exits)} (only a final HLT is wrapped)`;
  }
  const rf = s.regs?.rflags ?? 2n;
  if (rf & (1n << 8n)) return "starts with TF set";
  for (const raw of s.asm.split("\n")) {
    const line = raw.replace(/[;#].*$/, "").replace(/^\s*[\w.]+:/, "").trim().toLowerCase();
    if (!line) continue;
    const words = line.split(/[\s,]+/);
    const first = words[0] ?? "";
    const mn = /^(rep|repe|repz|repne|repnz|lock)$/.test(first) ? words[1] ?? "" : first;
    if (PRIVILEGED.has(mn)) return `uses ${mn}`;
    if (/^(jmp|call)$/.test(mn) && /\bfar\b/.test(line)) return `uses far ${mn}`;
    if (SEGMENT_REG.test(line.slice(mn.length)) && !/^(db|dw|dd|dq)$/.test(mn)) {
      return `touches a segment register (${line})`;
    }
    if (CONTROL_REG.test(line)) return `touches a control/debug register (${line})`;
  }
  return undefined;
}

/** Run `s` at CPL 3 on `backend` (see the module note) and return what a CPL 0 run would report. */
export function runCpl3(backend: BackendName, s: Snippet): SnippetResult {
  const code = assemble(s.asm, { bits: 64, origin: ENV.load }).bytes;
  const { vm, vcpu, layout } = createVmWithOneVcpu({
    backend,
    code,
    mode: "long",
    load: ENV.load,
    memSize: ENV.memSize,
    exceptionPort: ENV.exceptionPort,
    ...(backend === "kvm" ? { runTimeoutMs: KVM_RUN_TIMEOUT_MS } : {}),
  });
  try {
    const base = layout.reservedBase, gdt = layout.gdt!, idt = layout.idt!, tss = layout.tss!;
    const ucode = flatSegment(USER_CS, 0xb, { l: 1, db: 0, dpl: 3 });
    const udata = flatSegment(USER_DS, 0x3, { dpl: 3 });
    vm.write64(gdt + 8 * 6, segmentDescriptor(ucode));
    vm.write64(gdt + 8 * 7, segmentDescriptor(udata));
    const pd = base + LAYOUT.pd;
    for (let i = 0; i < 4 * 512; i++) vm.write64(pd + 8 * i, vm.read64(pd + 8 * i) | 0x4n);
    const handler = base + CPL3_LAYOUT.handler, kstack = base + CPL3_LAYOUT.kstackTop;
    vm.writeGuest(handler, [0xf4]);
    const [lo, hi] = idtGate64(BigInt(handler), 0x08);
    vm.write64(idt + 16 * GP, lo);
    vm.write64(idt + 16 * GP + 8, hi);
    vm.write64(tss + 4, BigInt(kstack));
    vcpu.setSregs({
      gdt: { base: BigInt(gdt), limit: 8 * 8 - 1 },
      cs: ucode,
      ss: udata,
      ds: { ...udata },
      es: { ...udata },
    });
    for (const m of s.memory ?? []) vm.writeGuest(m.gpa, m.bytes);
    const regs = { ...s.regs };
    regs.rflags = ((regs.rflags ?? 2n) & ~IOPL) | 2n;
    vcpu.setRegs(regs);

    let stop = "";
    const e = (() => {
      try {
        return vcpu.run(ENV.budget);
      } catch (err) {
        stop = `run threw ${err instanceof Error ? err.message : String(err)}`;
        return undefined;
      }
    })();
    const r = vcpu.getRegs();
    const out = Object.fromEntries(GPR_NAMES.map((n) => [n, r[n]])) as Record<RegName, bigint>;
    if (e !== undefined) {
      if (e.reason !== "hlt") {
        const detail = e.reason === "io" ? ` port 0x${e.port.toString(16)} data ${e.data[0]}` : "";
        stop = `CPL 3 run ended by ${e.reason}${detail} at rip 0x${r.rip.toString(16)}, expected the #GP handler's hlt`;
      } else if (r.rip !== BigInt(handler + 1)) {
        stop = `hlt at rip 0x${(r.rip - 1n).toString(16)}, expected the #GP handler at 0x${handler.toString(16)}`;
      } else {
        const at = (i: number) => vm.read64(kstack - 48 + 8 * i);
        const [err, rip, cs, rflags, rsp] = [at(0), at(1), at(2), at(3), at(4)];
        if (r.rsp !== BigInt(kstack - 48)) {
          stop = `handler RSP 0x${r.rsp.toString(16)}, expected 0x${(kstack - 48).toString(16)}`;
        } else if (err !== 0n || cs !== BigInt(USER_CS)) {
          stop = `#GP frame error ${err} cs 0x${cs.toString(16)}, expected 0 / 0x33`;
        } else if (vm.readGuest(Number(rip), 1)[0] !== 0xf4) stop = `#GP at rip 0x${rip.toString(16)}, not a hlt`;
        else {
          out.rip = rip + 1n;
          out.rflags = rflags & ~RF;
          out.rsp = rsp;
        }
      }
    }
    const memory = (s.expect.memory ?? []).map((m) => ({
      gpa: m.gpa,
      bytes: [...vm.readGuest(m.gpa, m.bytes.length)],
    }));
    return { exits: stop ? [] : [{ reason: "hlt" }], regs: out, memory, stop };
  } finally {
    (vm as { close?: () => void }).close?.();
    if (backend === "kvm") releaseWatchdog();
  }
}

/** Run `s` at CPL 3 on `backend` and list every mismatch against its (CPL 0) expectations. */
export function checkCpl3(backend: BackendName, s: Snippet): Mismatch[] {
  let r: SnippetResult;
  try {
    r = runCpl3(backend, s);
  } catch (e) {
    return [{ field: "run", expected: "a run", actual: `threw ${e instanceof Error ? e.message : String(e)}` }];
  }
  return compareSnippet(s, r);
}
