/**
 * One vCPU of a VM run from another thread (a Worker): the KVM model of one
 * thread per vCPU calling KVM_RUN on its own vCPU fd.
 *
 * The thread that created the VM takes a {@link VcpuHandle} (structured-
 * cloneable: the shared `WebAssembly.Memory`, the compiled module, the vCPU's
 * block) and posts it to the Worker; the Worker calls {@link attachVcpu},
 * which instantiates the core again on the same memory (module globals are
 * per instance, vCPU state lives in the memory: src/wasm.ts) and gives back a
 * {@link Vcpu} whose run loop and exit handlers then live in that Worker.
 *
 * ```ts
 * // main thread
 * worker.postMessage(vcpuHandle(vm, vm.addVcpu(1)));
 * // worker
 * self.onmessage = (e) => { const { vcpu } = attachVcpu(e.data); vcpu.run(); };
 * ```
 *
 * Ownership: while a Worker runs a vCPU, no other thread may run it or write
 * its state (registers, MSRs, events); exactly as with KVM, where vCPU ioctls
 * are issued by the thread that runs the vCPU. To hand the vCPU back, the
 * Worker calls {@link VcpuThread.release}: a core instance keeps per-vCPU
 * caches (mode, exit counter, debug state) for the vCPU it ran last and
 * reloads them only when the state block is marked dirty. The VM-wide state (memslots,
 * CPUID, MSR filter) must not change while any vCPU thread is inside `run()`:
 * the core reads those tables without locks (KVM protects them with SRCU).
 *
 * Guest memory shared by vCPUs running at once: LOCK-prefixed
 * read-modify-writes and XCHG with memory are atomic on naturally aligned RAM
 * (assembly/x86/atomic_rmw.ts); split locks (misaligned or page-crossing),
 * CMPXCHG16B, and locked accesses while data breakpoints are armed are not.
 * The page walker sets accessed/dirty bits with an atomic OR, the core sets
 * dirty-log bits with an atomic OR and getDirtyLog() fetches-and-clears each
 * byte atomically, so none of those updates is lost between threads.
 *
 * @module
 */
import { field, layOut } from "./abi/layout.ts";
import { MAX_VCPUS, VCPU_STATE, VM_CONTROL } from "./abi/vcpu_state.ts";
import { VCPU_STATE_OFFSET, vcpuRunBase, VM_CONTROL_BASE } from "./abi/memory_map.ts";
import { InvalidArgumentError, NoSuchVcpuError } from "./errors.ts";
import { Vcpu, type VcpuHost } from "./vcpu.ts";
import type { Vm } from "./vm.ts";
import { type CoreExports, instantiateCore } from "./wasm.ts";
import type { CpuidEntry } from "./x86/cpuid.ts";

const VCPU_ID = field(layOut(VCPU_STATE), "vcpu_id").offset;
const DIRTY = field(layOut(VCPU_STATE), "dirty").offset;
const NVCPUS = VM_CONTROL_BASE + field(layOut(VM_CONTROL), "nvcpus").offset;

/** What a thread needs to run one vCPU of an existing VM. Every field survives `postMessage`. */
export interface VcpuHandle {
  /** The VM's shared memory (initial == maximum). */
  readonly memory: WebAssembly.Memory;
  /** The compiled core the VM runs ({@link Vm.module}). */
  readonly module: WebAssembly.Module;
  /** The vCPU id (KVM_CREATE_VCPU's argument). */
  readonly id: number;
  /** The vCPU block index (its kvm_run page is at `vcpuRunBase(block)`). */
  readonly block: number;
  /** Instructions per `run()` before KVM_EXIT_INTR. */
  readonly budget: number;
  /** CPUID.1.EAX of the VM's table (what {@link VcpuHost.cpuidSignature} answers). */
  readonly cpuidSignature: number;
  /** The VM's CPUID table when the handle was made (what {@link VcpuHost.cpuidTable} answers). */
  readonly cpuid: readonly CpuidEntry[];
}

/** The handle of `vcpu`, one of `vm`'s vCPUs, to post to the Worker that will run it. */
export function vcpuHandle(vm: Vm, vcpu: Vcpu): VcpuHandle {
  if (vm.vcpu(vcpu.id) !== vcpu) {
    throw new NoSuchVcpuError(vcpu.id, "the vcpu object does not belong to this VM");
  }
  return {
    memory: vm.memory,
    module: vm.module,
    id: vcpu.id,
    block: vcpu.block,
    budget: vcpu.budget,
    cpuidSignature: vm.cpuidSignature(),
    cpuid: vm.getCpuid(),
  };
}

/** A vCPU attached in this thread: its own core instance on the VM's memory. */
export class VcpuThread implements VcpuHost {
  readonly core: CoreExports;
  readonly buffer: SharedArrayBuffer;
  readonly vcpu: Vcpu;
  readonly #signature: number;

  constructor(readonly handle: VcpuHandle) {
    const { memory, module, id, block } = handle;
    if (!(memory instanceof WebAssembly.Memory) || !(memory.buffer instanceof SharedArrayBuffer)) {
      throw new InvalidArgumentError("vcpu handle memory", `${String(memory)}: expected a shared WebAssembly.Memory`);
    }
    if (!(module instanceof WebAssembly.Module)) {
      throw new InvalidArgumentError("vcpu handle module", `${String(module)}: expected a WebAssembly.Module`);
    }
    if (!Number.isInteger(block) || block < 0 || block >= MAX_VCPUS) {
      throw new InvalidArgumentError("vcpu handle block", `${block}: expected a block index 0..${MAX_VCPUS - 1}`);
    }
    this.buffer = memory.buffer;
    const dv = new DataView(this.buffer);
    const runBase = vcpuRunBase(block);
    if (runBase + VCPU_STATE_OFFSET + VCPU_ID + 4 > this.buffer.byteLength) {
      throw new InvalidArgumentError(
        "vcpu handle",
        `block ${block} ends past the ${this.buffer.byteLength}-byte memory: expected a VM's memory`,
      );
    }
    const nvcpus = dv.getUint32(NVCPUS, true);
    const stored = dv.getUint32(runBase + VCPU_STATE_OFFSET + VCPU_ID, true);
    if (block >= nvcpus || stored !== id) {
      throw new NoSuchVcpuError(
        id,
        `block ${block} holds vcpu id ${stored} (VM has ${nvcpus} blocks in use): expected vcpu ${id} there`,
      );
    }
    this.#signature = handle.cpuidSignature;
    this.core = instantiateCore(memory, module);
    this.vcpu = new Vcpu(this, id, block, runBase);
    this.vcpu.budget = handle.budget;
  }

  cpuidSignature(): number {
    return this.#signature;
  }

  cpuidTable(): readonly CpuidEntry[] {
    return this.handle.cpuid;
  }

  /**
   * Give the vCPU back: mark its state dirty (so whichever instance runs it
   * next reloads what this thread changed) and make this thread's Vcpu
   * unusable. Call it after the last run() in this thread.
   */
  release(): void {
    const words = new Int32Array(this.buffer, this.vcpu.stateBase + DIRTY, 1);
    Atomics.or(words, 0, 1);
    this.vcpu.markRemoved();
  }
}

/** Attach to the vCPU of `handle` from this thread (typically inside a Worker). */
export function attachVcpu(handle: VcpuHandle): VcpuThread {
  return new VcpuThread(handle);
}
