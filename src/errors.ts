/**
 * Typed errors of the VM API. Each mirrors one of kvm_util's TEST_ASSERT
 * checks (seed 001) or one KVM ioctl error, says the bad value and what was
 * expected, and can be caught by class (`instanceof MemoryRegionOverlapError`)
 * or by `code`.
 *
 * @module
 */

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/** Base class of every kvmsim API error. `code` is a stable machine-readable name. */
export class KvmsimError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A guest physical address or size is not a multiple of the page size (kvm_util: "not on a page boundary"). */
export class NotPageAlignedError extends KvmsimError {
  constructor(readonly what: string, readonly value: number, readonly pageSize: number) {
    super(
      "not_page_aligned",
      `${what} ${hex(value)} is not on a page boundary: expected a multiple of ${hex(pageSize)}`,
    );
  }
}

/** A physical range ends beyond the VM's maximum GFN (kvm_util: "Physical range beyond maximum supported physical address"). */
export class BeyondMaxGfnError extends KvmsimError {
  constructor(readonly gpa: number, readonly pages: number, readonly maxGfn: number) {
    super(
      "beyond_max_gfn",
      `memory region ${hex(gpa)} + ${hex(pages)} pages ends at GFN ${hex(gpa / 4096 + pages - 1)}, ` +
        `beyond the maximum supported GFN ${hex(maxGfn)}`,
    );
  }
}

/** A new memory region overlaps an existing one (kvm_util: "overlapping userspace_mem_region already exists"). */
export class MemoryRegionOverlapError extends KvmsimError {
  constructor(
    readonly start: number,
    readonly end: number,
    readonly existingSlot: number,
    readonly existingStart: number,
    readonly existingEnd: number,
  ) {
    super(
      "region_overlap",
      `memory region ${hex(start)}-${hex(end)} overlaps slot ${existingSlot} (${hex(existingStart)}-${
        hex(existingEnd)
      })`,
    );
  }
}

/** A memory region with the requested slot id exists (kvm_util: "A mem region with the requested slot already exists"). */
export class DuplicateSlotError extends KvmsimError {
  constructor(readonly slot: number, readonly existingStart: number, readonly existingSize: number) {
    super(
      "duplicate_slot",
      `slot ${slot} is already in use by the region at ${hex(existingStart)} (size ${
        hex(existingSize)
      }): expected an unused slot id`,
    );
  }
}

/** A slot id is out of range or names no region (kvm_util memslot2region: "Mem region not found"). */
export class NoSuchSlotError extends KvmsimError {
  constructor(readonly slot: number, detail: string) {
    super("no_such_slot", `no memory region with slot ${slot}: ${detail}`);
  }
}

/** The guest RAM pool cannot back a new region or bitmap (kvm_util: "Insufficient Memory" / mmap failure). */
export class PoolExhaustedError extends KvmsimError {
  constructor(readonly requested: number, readonly largestFree: number, readonly poolSize: number) {
    super(
      "pool_exhausted",
      `guest RAM pool exhausted: ${hex(requested)} bytes requested, largest free block ${hex(largestFree)} ` +
        `of a ${hex(poolSize)}-byte pool (pass a larger ramPoolSize to createVm)`,
    );
  }
}

/** A flags value or flags change that KVM_SET_USER_MEMORY_REGION rejects with EINVAL. */
export class InvalidMemoryFlagsError extends KvmsimError {
  constructor(readonly slot: number, readonly flags: number, detail: string) {
    super("invalid_memory_flags", `slot ${slot} flags ${hex(flags)}: ${detail}`);
  }
}

/** KVM_GET_DIRTY_LOG on a slot without KVM_MEM_LOG_DIRTY_PAGES (KVM: ENOENT). */
export class DirtyLogDisabledError extends KvmsimError {
  constructor(readonly slot: number, readonly flags: number) {
    super(
      "dirty_log_disabled",
      `slot ${slot} (flags ${hex(flags)}) does not log dirty pages: expected KVM_MEM_LOG_DIRTY_PAGES`,
    );
  }
}

/** No guest physical memory at an address (kvm_util addr_gpa2hva: "No vm physical memory at"). */
export class NoGuestMemoryError extends KvmsimError {
  constructor(readonly gpa: number, readonly len: number) {
    super("no_guest_memory", `no guest physical memory at ${hex(gpa)} (length ${hex(len)}) in any memory region`);
  }
}

/** A host offset is not inside any region's backing (kvm_util addr_hva2gpa: "No mapping to a guest physical address"). */
export class NoHostMappingError extends KvmsimError {
  constructor(readonly hva: number) {
    super("no_host_mapping", `no mapping to a guest physical address for host offset ${hex(hva)}`);
  }
}

/** A guest virtual address is not mapped by the page tables (kvm_util addr_gva2gpa). */
export class UnmappedGvaError extends KvmsimError {
  constructor(readonly gva: bigint, readonly level: number, readonly detail: string) {
    super("unmapped_gva", `guest virtual address ${hex(gva)} is not mapped: ${detail} (level ${level})`);
  }
}

/** A virtual-memory request kvm_util rejects (overflow, unaligned, no free range, already mapped). */
export class VirtualMemoryError extends KvmsimError {
  constructor(detail: string) {
    super("virtual_memory", detail);
  }
}

/** No free guest physical page at or above the requested minimum (kvm_util vm_phy_page_alloc). */
export class NoPhysPageError extends KvmsimError {
  constructor(readonly paddrMin: number, readonly slot: number) {
    super("no_phys_page", `no guest physical page available at or above ${hex(paddrMin)} in slot ${slot}`);
  }
}

/** A vCPU with the id exists (kvm_util vm_vcpu_add: "vcpu with the specified id already exists"). */
export class VcpuExistsError extends KvmsimError {
  constructor(readonly id: number) {
    super("vcpu_exists", `vcpu ${id} already exists: expected a new vcpu id`);
  }
}

/** No vCPU with the id, or the id is out of range (kvm_util: "vcpu not found"). */
export class NoSuchVcpuError extends KvmsimError {
  constructor(readonly id: number, detail: string) {
    super("no_such_vcpu", `vcpu ${id}: ${detail}`);
  }
}

/** KVM_GET/SET_MSRS on an index outside the in-kernel MSR table. */
export class UnknownMsrError extends KvmsimError {
  constructor(readonly index: number, readonly known: readonly string[]) {
    super("unknown_msr", `MSR 0x${index.toString(16)} is not in kvmsim's MSR table (known: ${known.join(", ")})`);
  }
}

/** An argument outside what the ioctl accepts (KVM: EINVAL / E2BIG). */
export class InvalidArgumentError extends KvmsimError {
  constructor(readonly what: string, detail: string) {
    super("invalid_argument", `${what}: ${detail}`);
  }
}

/** An exit's payload was used after the vCPU ran again. */
export class StaleExitError extends KvmsimError {
  constructor(readonly reason: string, readonly exitGeneration: number, readonly currentGeneration: number) {
    super(
      "stale_exit",
      `${reason} exit from run ${exitGeneration} used after run ${currentGeneration} started: ` +
        `fill IO-in / MMIO-read data and set MSR / hypercall results before the next run()`,
    );
  }
}

/** A device range overlaps one already on the bus. */
export class BusOverlapError extends KvmsimError {
  constructor(
    readonly bus: string,
    readonly deviceName: string,
    readonly start: number,
    readonly len: number,
    readonly existingName: string,
    readonly existingStart: number,
    readonly existingLen: number,
  ) {
    super(
      "bus_overlap",
      `${bus} range ${hex(start)}-${hex(start + len - 1)} (${deviceName}) overlaps ${hex(existingStart)}-${
        hex(existingStart + existingLen - 1)
      } (${existingName})`,
    );
  }
}

/** The WASM core returned something the contract does not allow. */
export class CoreContractError extends KvmsimError {
  constructor(detail: string) {
    super("core_contract", detail);
  }
}
