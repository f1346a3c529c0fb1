/**
 * A bare harness over the WASM core for interpreter tests: one memory, one
 * memslot at GPA 0, one vCPU, raw state access through the layout tables.
 * (The public API is src/vm.ts; this exists so core tests need nothing else.)
 */
import { field, layOut } from "../../src/abi/layout.ts";
import { KVM_RUN } from "../../src/abi/kvm_structs.ts";
import { GPR_NAMES, type GprName, VCPU_STATE, VM_CONTROL } from "../../src/abi/vcpu_state.ts";
import { RAM_POOL_BASE, VCPU_STATE_OFFSET, vcpuRunBase, VM_CONTROL_BASE } from "../../src/abi/memory_map.ts";
import { createSharedMemory, instantiateCore } from "../../src/wasm.ts";

const VS = layOut(VCPU_STATE);
const VMC = layOut(VM_CONTROL);
const RUN = layOut(KVM_RUN);
const off = (l: typeof VS, p: string) => field(l, p).offset;

export class RawVm {
  readonly memory: WebAssembly.Memory;
  readonly dv: DataView;
  readonly u8: Uint8Array;
  readonly core = { run: (_b: number, _n: number) => 0 };
  readonly run0 = vcpuRunBase(0);
  readonly state = vcpuRunBase(0) + VCPU_STATE_OFFSET;

  /** `ramSize` bytes of guest RAM at GPA 0 (slot 0). */
  constructor(readonly ramSize = 1 << 20) {
    this.memory = createSharedMemory(RAM_POOL_BASE + ramSize);
    this.core = instantiateCore(this.memory);
    this.dv = new DataView(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
    const c = VM_CONTROL_BASE;
    this.dv.setUint32(c + off(VMC, "nslots"), 1, true);
    this.dv.setUint32(c + off(VMC, "ram_base"), RAM_POOL_BASE, true);
    this.dv.setUint32(c + off(VMC, "ram_size"), ramSize, true);
    this.dv.setUint32(c + off(VMC, "vcpu_base"), vcpuRunBase(0), true);
    this.dv.setUint32(c + off(VMC, "nvcpus"), 1, true);
    this.dv.setBigUint64(c + off(VMC, "slots.gpa"), 0n, true);
    this.dv.setBigUint64(c + off(VMC, "slots.size"), BigInt(ramSize), true);
    this.dv.setUint32(c + off(VMC, "slots.host"), RAM_POOL_BASE, true);
    this.dv.setUint32(c + off(VMC, "slots.id"), 0, true);
    this.dv.setUint32(c + off(VMC, "memslot_gen"), 1, true);
    this.realMode();
  }

  /** Flat real mode at CS=0 (all segments base 0, limit 0xffff). */
  realMode(): void {
    for (const seg of ["es", "cs", "ss", "ds", "fs", "gs"]) {
      this.setSeg(seg, { base: 0n, limit: 0xffff, selector: 0, type: seg === "cs" ? 0xb : 3, s: 1, present: 1 });
    }
    this.setSeg("ldtr", { base: 0n, limit: 0xffff, selector: 0, type: 2, s: 0, present: 1 });
    this.setSeg("tr", { base: 0n, limit: 0xffff, selector: 0, type: 3, s: 0, present: 1 });
    this.set64("cr0", 0x60000010n);
    this.set64("rflags", 2n);
    this.markDirty();
  }

  setSeg(
    name: string,
    v: {
      base: bigint;
      limit: number;
      selector: number;
      type: number;
      s: number;
      present: number;
      dpl?: number;
      db?: number;
      l?: number;
      g?: number;
    },
  ): void {
    const b = this.state + off(VS, `seg_${name}`);
    const f = (p: string) => this.state + off(VS, `seg_${name}.${p}`);
    this.dv.setBigUint64(b, v.base, true);
    this.dv.setUint32(f("limit"), v.limit, true);
    this.dv.setUint16(f("selector"), v.selector, true);
    this.u8[f("type")] = v.type;
    this.u8[f("present")] = v.present;
    this.u8[f("dpl")] = v.dpl ?? 0;
    this.u8[f("db")] = v.db ?? 0;
    this.u8[f("s")] = v.s;
    this.u8[f("l")] = v.l ?? 0;
    this.u8[f("g")] = v.g ?? 0;
  }

  get64(path: string): bigint {
    return this.dv.getBigUint64(this.state + off(VS, path), true);
  }
  set64(path: string, v: bigint): void {
    this.dv.setBigUint64(this.state + off(VS, path), BigInt.asUintN(64, v), true);
  }
  reg(name: GprName): bigint {
    return this.dv.getBigUint64(this.state + off(VS, "gpr") + 8 * GPR_NAMES.indexOf(name), true);
  }
  setReg(name: GprName | "rip" | "rflags", v: bigint): void {
    if (name === "rip" || name === "rflags") this.set64(name, v);
    else this.dv.setBigUint64(this.state + off(VS, "gpr") + 8 * GPR_NAMES.indexOf(name), BigInt.asUintN(64, v), true);
    this.markDirty();
  }
  markDirty(): void {
    const p = this.state + off(VS, "dirty");
    this.dv.setUint32(p, this.dv.getUint32(p, true) | 1, true);
  }

  /** Copy bytes into guest physical memory. */
  write(gpa: number, bytes: ArrayLike<number>): void {
    this.u8.set(bytes, RAM_POOL_BASE + gpa);
  }
  read(gpa: number, len: number): Uint8Array {
    return this.u8.slice(RAM_POOL_BASE + gpa, RAM_POOL_BASE + gpa + len);
  }

  /** KVM_RUN; returns the exit reason. */
  run(budget = 1_000_000): number {
    return this.core.run(this.run0, budget);
  }
  /** A kvm_run field by path (`io.port`), as a number. */
  runField(path: string): number {
    const f = field(RUN, path);
    const p = this.run0 + f.offset;
    switch (f.size) {
      case 1:
        return this.u8[p]!;
      case 2:
        return this.dv.getUint16(p, true);
      case 4:
        return this.dv.getUint32(p, true);
      default:
        return Number(this.dv.getBigUint64(p, true));
    }
  }
  /** Write a kvm_run byte field (e.g. immediate_exit). */
  setRunByte(path: string, v: number): void {
    this.u8[this.run0 + field(RUN, path).offset] = v;
  }
}
