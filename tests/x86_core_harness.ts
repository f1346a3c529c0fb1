/**
 * Guest-snippet harness for the core's tests (decoder + integer ISA).
 *
 * Builds a RawVm in real, 32-bit protected (flat) or 64-bit long mode (identity
 * map of the first 2 MiB with one 2 MiB page), loads code at CODE, runs it
 * until it stops, and reports registers/flags. Exceptions are caught through an
 * IVT/IDT whose vector v points at `hlt` at HANDLER + v, so a fault ends as a
 * HLT exit at HANDLER + v + 1 with the faulting IP on the stack — the same
 * result from the real run() (which delivers the exception) and from a
 * scratch core built with KVMSIM_CORE_WASM=path (exit 1 = fault in kvm_run.ex).
 */
import { field, layOut } from "../src/abi/layout.ts";
import { instantiateCore } from "../src/wasm.ts";
import { RawVm } from "./support/raw_vm.ts";
import { type GprName, VCPU_STATE } from "../src/abi/vcpu_state.ts";
import { RAM_POOL_BASE } from "../src/abi/memory_map.ts";

export const CODE = 0x1000;
export const HANDLER = 0x800;
export const DATA = 0x8000;
export const STACK_TOP = 0x7000;
/** Long mode: this 4 KiB page is not present (for #PF tests). */
export const HOLE = 0x201000;
const IDT = 0x600; // long/protected-mode IDT (handlers only for vectors 0..31)
const PT = 0x10000; // page tables for long mode
const VS = layOut(VCPU_STATE);

export type Mode = "real" | "prot" | "long";
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;

let scratch: WebAssembly.Module | undefined;
function scratchModule(): WebAssembly.Module | undefined {
  const p = Deno.env.get("KVMSIM_CORE_WASM");
  if (!p) return undefined;
  scratch ??= new WebAssembly.Module(Deno.readFileSync(p));
  return scratch;
}

export interface Outcome {
  /** "hlt" (the snippet's own HLT), "exception" (vector), or another exit reason number. */
  kind: "hlt" | "exception" | "exit";
  vector?: number;
  /** For exceptions: RIP the fault reported (the faulting instruction). */
  faultRip?: bigint;
  reason: number;
  vm: RawVm;
}

/**
 * A guest snippet: `bits`, its assembly text, and the bytes GNU as made of it
 * (filled in by tests/oracle/fill_snippets.ts; origin CODE).
 */
export function code(_bits: 16 | 32 | 64, _asm: string, hex: string): number[] {
  if (hex.length === 0) {
    throw new Error("snippet bytes missing: run deno run -A tests/oracle/fill_snippets.ts <test file>");
  }
  return hex.match(/../g)!.map((x) => parseInt(x, 16));
}

/** Vectors that push an error code in protected/long mode. */
const ERR_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);

export class CoreVm {
  readonly vm: RawVm;
  constructor(readonly mode: Mode, ramSize = 4 << 20) {
    this.vm = new RawVm(ramSize);
    const m = scratchModule();
    if (m) (this.vm as { core: unknown }).core = instantiateCore(this.vm.memory, m);
    // Handlers: one HLT per vector.
    this.vm.write(HANDLER, new Array(256).fill(0xf4));
    if (mode === "real") this.setupReal();
    else if (mode === "prot") this.setupProt();
    else this.setupLong();
    this.vm.setReg("rsp", BigInt(STACK_TOP));
    this.vm.setReg("rip", BigInt(CODE));
  }

  private setupReal(): void {
    const ivt: number[] = [];
    for (let v = 0; v < 256; v++) ivt.push((HANDLER + v) & 0xff, (HANDLER + v) >> 8, 0, 0);
    this.vm.write(0, ivt);
    this.vm.set64("idt.base", 0n);
    this.vm.dv.setUint16(this.vm.state + field(VS, "idt.limit").offset, 0x3ff, true);
  }

  private flatSegs(long: boolean): void {
    const code = {
      base: 0n,
      limit: 0xffffffff,
      selector: 8,
      type: 0xb,
      s: 1,
      present: 1,
      db: long ? 0 : 1,
      l: long ? 1 : 0,
      g: 1,
    };
    const data = { base: 0n, limit: 0xffffffff, selector: 16, type: 3, s: 1, present: 1, db: 1, g: 1 };
    this.vm.setSeg("cs", code);
    for (const s of ["ds", "es", "ss", "fs", "gs"]) this.vm.setSeg(s, data);
    this.vm.setSeg("tr", { base: 0n, limit: 0x67, selector: 0x18, type: 11, s: 0, present: 1 });
    // GDT: null, code, data (so system code that reloads selectors finds them).
    const gdt = [
      0n,
      long ? 0x00af9b000000ffffn : 0x00cf9b000000ffffn,
      0x00cf93000000ffffn,
    ];
    const bytes: number[] = [];
    for (const d of gdt) for (let i = 0; i < 8; i++) bytes.push(Number((d >> BigInt(8 * i)) & 0xffn));
    this.vm.write(0x500, bytes);
    this.vm.set64("gdt.base", 0x500n);
    this.vm.dv.setUint16(this.vm.state + field(VS, "gdt.limit").offset, 23, true);
  }

  private idt(long: boolean): void {
    const bytes: number[] = [];
    for (let v = 0; v < 32; v++) {
      const off = HANDLER + v;
      const e = [off & 0xff, off >> 8, 8, 0, 0, 0x8e, 0, 0];
      bytes.push(...e);
      if (long) bytes.push(0, 0, 0, 0, 0, 0, 0, 0);
    }
    this.vm.write(IDT, bytes);
    this.vm.set64("idt.base", BigInt(IDT));
    this.vm.dv.setUint16(this.vm.state + field(VS, "idt.limit").offset, long ? 32 * 16 - 1 : 32 * 8 - 1, true);
  }

  private setupProt(): void {
    this.flatSegs(false);
    this.idt(false);
    this.vm.set64("cr0", 0x60000011n);
  }

  private setupLong(): void {
    this.flatSegs(true);
    this.idt(true);
    const q = (a: number, v: bigint) => this.vm.dv.setBigUint64(this.ramOff(a), v, true);
    q(PT, BigInt(PT + 0x1000) | 3n);
    q(PT + 0x1000, BigInt(PT + 0x2000) | 3n);
    q(PT + 0x2000, 0x83n); // 2 MiB page at 0
    // 2–4 MiB in 4 KiB pages (PT + 0x3000) with a hole at HOLE (not present).
    q(PT + 0x2008, BigInt(PT + 0x3000) | 3n);
    for (let i = 0; i < 512; i++) {
      const pa = 0x200000 + i * 0x1000;
      q(PT + 0x3000 + 8 * i, pa === HOLE ? 0n : BigInt(pa) | 3n);
    }
    this.vm.set64("cr3", BigInt(PT));
    this.vm.set64("cr4", 0x20n);
    this.vm.set64("efer", 0x500n);
    this.vm.set64("cr0", 0x80000011n);
  }

  ramOff(gpa: number): number {
    return RAM_POOL_BASE + gpa;
  }

  load(code: number[], at = CODE): this {
    this.vm.write(at, code);
    return this;
  }
  set(regs: Partial<Record<GprName | "rflags", bigint | number>>): this {
    for (const [k, v] of Object.entries(regs)) this.vm.setReg(k as GprName, BigInt(v!));
    return this;
  }
  reg(name: GprName | "rip" | "rflags"): bigint {
    return name === "rip" || name === "rflags" ? this.vm.get64(name) : this.vm.reg(name);
  }
  /** Arithmetic flags only (CF PF AF ZF SF OF) plus DF. */
  flags(): number {
    return Number(this.vm.get64("rflags") & 0xcd5n);
  }
  runField(p: string): number {
    return this.vm.runField(p);
  }

  /** The return IP the exception frame holds (real mode: 16-bit IP; else after the error code). */
  private stackedIp(vector: number): bigint {
    const sp = Number(this.vm.reg("rsp"));
    if (this.mode === "real") return BigInt(this.vm.dv.getUint16(RAM_POOL_BASE + (sp & 0xffff), true));
    const at = sp + (ERR_VECTORS.has(vector) ? (this.mode === "long" ? 8 : 4) : 0);
    return this.mode === "long"
      ? this.vm.dv.getBigUint64(RAM_POOL_BASE + at, true)
      : BigInt(this.vm.dv.getUint32(RAM_POOL_BASE + at, true));
  }

  /** Guest memory helpers. */
  peek(gpa: number, size: 1 | 2 | 4 | 8): bigint {
    const p = RAM_POOL_BASE + gpa;
    return size === 8 ? this.vm.dv.getBigUint64(p, true) : BigInt(
      size === 4 ? this.vm.dv.getUint32(p, true) : size === 2 ? this.vm.dv.getUint16(p, true) : this.vm.u8[p]!,
    );
  }
  poke(gpa: number, size: 1 | 2 | 4 | 8, v: bigint | number): void {
    const p = RAM_POOL_BASE + gpa;
    const b = BigInt(v);
    if (size === 8) this.vm.dv.setBigUint64(p, BigInt.asUintN(64, b), true);
    else if (size === 4) this.vm.dv.setUint32(p, Number(BigInt.asUintN(32, b)), true);
    else if (size === 2) this.vm.dv.setUint16(p, Number(BigInt.asUintN(16, b)), true);
    else this.vm.u8[p] = Number(BigInt.asUintN(8, b));
  }

  /** Run until a stop (HLT, exception, other exit); `budget` instructions per run() call. */
  run(budget = 1_000_000, maxCalls = 1000): Outcome {
    for (let i = 0; i < maxCalls; i++) {
      const reason = this.vm.run(budget);
      if (reason === KVM_EXIT_INTR) continue;
      if (reason === 1) {
        // Scratch core: fault still pending.
        return {
          kind: "exception",
          vector: this.vm.runField("ex.exception"),
          faultRip: this.vm.get64("rip"),
          reason,
          vm: this.vm,
        };
      }
      if (reason === KVM_EXIT_HLT) {
        const rip = Number(this.vm.get64("rip"));
        if (rip > HANDLER && rip <= HANDLER + 256) {
          const vector = rip - HANDLER - 1;
          return { kind: "exception", vector, faultRip: this.stackedIp(vector), reason, vm: this.vm };
        }
        return { kind: "hlt", reason, vm: this.vm };
      }
      return { kind: "exit", reason, vm: this.vm };
    }
    throw new Error(`guest did not stop within ${maxCalls} run() calls of ${budget} instructions`);
  }
}
