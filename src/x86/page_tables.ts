/**
 * 4-level x86-64 page tables built in guest memory, as kvm_util's
 * `virt_pg_map()` / `addr_gva2gpa()` do (lib/x86_64/processor.c): PML4 →
 * PDPT → PD → PT, with 2 MiB (PD.PS) and 1 GiB (PDPT.PS) leaves. Intel SDM
 * Vol. 3A §4.5 (4-level paging).
 *
 * @module
 */
import { UnmappedGvaError, VirtualMemoryError } from "../errors.ts";
import { LINEAR_ADDRESS_BITS, MAXPHYADDR } from "./cpuid.ts";

export const PTE_P = 1n << 0n;
export const PTE_RW = 1n << 1n;
export const PTE_US = 1n << 2n;
export const PTE_PWT = 1n << 3n;
export const PTE_PCD = 1n << 4n;
export const PTE_A = 1n << 5n;
export const PTE_D = 1n << 6n;
export const PTE_PS = 1n << 7n;
export const PTE_G = 1n << 8n;
export const PTE_NX = 1n << 63n;
/** Physical-address bits of an entry (51:12). */
export const PTE_ADDR_MASK = ((1n << 52n) - 1n) & ~0xfffn;

export const PAGE_4K = 0x1000;
export const PAGE_2M = 0x200000;
export const PAGE_1G = 0x40000000;
export type PageSize = typeof PAGE_4K | typeof PAGE_2M | typeof PAGE_1G;

/** Guest physical memory as the table builder needs it. */
export interface GuestPhys {
  read64(gpa: number): bigint;
  write64(gpa: number, v: bigint): void;
  /** A zeroed page for a new table. */
  allocTablePage(): number;
}

/** Whether `gva` is canonical for 48-bit linear addresses. */
export function isCanonical(gva: bigint): boolean {
  const top = BigInt.asUintN(64, gva) >> BigInt(LINEAR_ADDRESS_BITS - 1);
  return top === 0n || top === (1n << BigInt(64 - LINEAR_ADDRESS_BITS + 1)) - 1n;
}

const index = (gva: bigint, level: number) =>
  Number((BigInt.asUintN(64, gva) >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
const levelOf = (size: PageSize) => (size === PAGE_4K ? 1 : size === PAGE_2M ? 2 : 3);
const hx = (v: bigint | number) => `0x${v.toString(16)}`;

export interface MapOptions {
  pageSize?: PageSize;
  /** Leaf permission bits besides P (default RW). PS is added for large pages. */
  flags?: bigint;
}

/**
 * Map `gva` → `gpa` (one page of `pageSize`) under the PML4 at `pml4`.
 * Throws {@link VirtualMemoryError} for unaligned, non-canonical or
 * already-mapped addresses (kvm_util's TEST_ASSERTs).
 */
export function mapPage(mem: GuestPhys, pml4: number, gva: bigint, gpa: number, opts: MapOptions = {}): void {
  const size = opts.pageSize ?? PAGE_4K;
  const flags = opts.flags ?? PTE_RW;
  gva = BigInt.asUintN(64, gva);
  if (gva % BigInt(size) !== 0n) {
    throw new VirtualMemoryError(`virtual address ${hx(gva)} not on a ${hx(size)} page boundary`);
  }
  if (!isCanonical(gva)) {
    throw new VirtualMemoryError(`virtual address ${hx(gva)} is not canonical (48-bit linear addresses)`);
  }
  if (gpa % size !== 0) throw new VirtualMemoryError(`physical address ${hx(gpa)} not on a ${hx(size)} page boundary`);
  if (gpa + size > 2 ** MAXPHYADDR) {
    throw new VirtualMemoryError(`physical address ${hx(gpa)} beyond MAXPHYADDR ${MAXPHYADDR}`);
  }
  const leafLevel = levelOf(size);
  let table = pml4;
  for (let level = 4; level > leafLevel; level--) {
    const slot = table + 8 * index(gva, level);
    const e = mem.read64(slot);
    if ((e & PTE_P) === 0n) {
      const next = mem.allocTablePage();
      mem.write64(slot, BigInt(next) | PTE_P | PTE_RW | PTE_US);
      table = next;
    } else if ((e & PTE_PS) !== 0n) {
      throw new VirtualMemoryError(`virtual address ${hx(gva)} is already mapped by a large page at level ${level}`);
    } else {
      table = Number(e & PTE_ADDR_MASK);
    }
  }
  const slot = table + 8 * index(gva, leafLevel);
  if ((mem.read64(slot) & PTE_P) !== 0n) {
    throw new VirtualMemoryError(`virtual address ${hx(gva)} is already mapped (level ${leafLevel} entry present)`);
  }
  mem.write64(slot, BigInt(gpa) | PTE_P | flags | (leafLevel > 1 ? PTE_PS : 0n));
}

/** The result of a successful walk. */
export interface Translation {
  gpa: number;
  /** 1 = 4 KiB PTE, 2 = 2 MiB PDE, 3 = 1 GiB PDPTE. */
  level: number;
  pageSize: PageSize;
  /** The leaf entry. */
  entry: bigint;
}

/** Translate `gva` through the tables at `pml4` (no permission checks). Throws {@link UnmappedGvaError}. */
export function walk(mem: GuestPhys, pml4: number, gva: bigint): Translation {
  gva = BigInt.asUintN(64, gva);
  if (!isCanonical(gva)) throw new UnmappedGvaError(gva, 4, "non-canonical address");
  let table = pml4;
  for (let level = 4; level >= 1; level--) {
    const e = mem.read64(table + 8 * index(gva, level));
    if ((e & PTE_P) === 0n) throw new UnmappedGvaError(gva, level, "entry not present");
    const leaf = level === 1 || ((level === 2 || level === 3) && (e & PTE_PS) !== 0n);
    if (leaf) {
      const pageSize = (level === 1 ? PAGE_4K : level === 2 ? PAGE_2M : PAGE_1G) as PageSize;
      const base = e & PTE_ADDR_MASK & ~BigInt(pageSize - 1);
      return { gpa: Number(base | (gva & BigInt(pageSize - 1))), level, pageSize, entry: e };
    }
    table = Number(e & PTE_ADDR_MASK);
  }
  throw new UnmappedGvaError(gva, 0, "walk ended without a leaf");
}

/** Text dump of the present entries (kvm_util virt_dump). */
export function dumpTables(mem: GuestPhys, pml4: number, indent = 0, maxLines = 64): string {
  const out: string[] = [];
  const pad = " ".repeat(indent);
  const names = ["", "pte", "pde", "pdpte", "pml4e"];
  const rec = (table: number, level: number, base: bigint) => {
    for (let i = 0; i < 512 && out.length < maxLines; i++) {
      const e = mem.read64(table + 8 * i);
      if ((e & PTE_P) === 0n) continue;
      let va = base | (BigInt(i) << BigInt(12 + 9 * (level - 1)));
      if (va & (1n << 47n)) va |= 0xffff000000000000n;
      const leaf = level === 1 || (level <= 3 && (e & PTE_PS) !== 0n);
      out.push(
        `${pad}${"  ".repeat(4 - level)}${names[level]} [${i}] va ${hx(va)} -> ${hx(e & PTE_ADDR_MASK)} flags ${
          hx(e & 0xfffn)
        }${leaf ? " (leaf)" : ""}`,
      );
      if (!leaf) rec(Number(e & PTE_ADDR_MASK), level - 1, va & 0xffffffffffffn);
    }
  };
  rec(pml4, 4, 0n);
  if (out.length >= maxLines) out.push(`${pad}… (truncated at ${maxLines} lines)`);
  return out.join("\n");
}
