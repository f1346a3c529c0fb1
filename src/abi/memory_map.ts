/**
 * Where things live in a VM's shared memory (design.md §1):
 * `[static | VM control | vCPU blocks (kvm_run mapping + state) | guest RAM pool]`.
 *
 * @module
 */
import { layOut } from "./layout.ts";
import { MAX_VCPUS, VCPU_STATE, VM_CONTROL } from "./vcpu_state.ts";

export const PAGE_SIZE = 4096;
export const WASM_PAGE = 65536;
/** Bytes below this are reserved for the module's own static data (`--memoryBase`). */
export const STATIC_SIZE = 65536;
/** Offset of the VM control block. */
export const VM_CONTROL_BASE = STATIC_SIZE;
const controlSize = layOut(VM_CONTROL).size;
/** Size of the kvm_run mapping: run page, PIO data page, coalesced-MMIO page (KVM_GET_VCPU_MMAP_SIZE). */
export const RUN_MMAP_SIZE = 3 * PAGE_SIZE;
const stateSize = layOut(VCPU_STATE).size;
/** Bytes per vCPU block: the kvm_run mapping then the state block, rounded to 4 KiB. */
export const VCPU_BLOCK_SIZE = Math.ceil((RUN_MMAP_SIZE + stateSize) / PAGE_SIZE) * PAGE_SIZE;
/** Offset of the state block inside a vCPU block. */
export const VCPU_STATE_OFFSET = RUN_MMAP_SIZE;
/** Offset of vCPU 0's block. */
export const VCPU_AREA_BASE = Math.ceil((VM_CONTROL_BASE + controlSize) / WASM_PAGE) * WASM_PAGE;
/** Offset of the guest RAM pool (memslot backing and dirty bitmaps). */
export const RAM_POOL_BASE = Math.ceil((VCPU_AREA_BASE + MAX_VCPUS * VCPU_BLOCK_SIZE) / WASM_PAGE) * WASM_PAGE;
/** Largest shared memory a VM may have (wasm32: 4 GiB less one page). */
export const MAX_MEMORY_BYTES = 65535 * WASM_PAGE;

/** Offset of vCPU `i`'s kvm_run page. */
export function vcpuRunBase(i: number): number {
  return VCPU_AREA_BASE + i * VCPU_BLOCK_SIZE;
}
