// Direct-mapped software TLB in the state block (VS_TLB, TLB_ENTRIES entries of
// tag = linear page + 1, host page offset, permission bits). Flushed on CR3 writes,
// CR0/CR4/EFER changes, VS_DIRTY and memslot generation changes; INVLPG drops one entry.
import { TLB_ENTRIES, TLB_HOST, TLB_PERM, TLB_SIZEOF, TLB_TAG, VS_TLB } from "../abi.generated";
import { S } from "./cpu";
import { invalidateFetch } from "./fetchwin";

export const P_SR: u32 = 1; export const P_SW: u32 = 2; export const P_SX: u32 = 4;
export const P_UR: u32 = 8; export const P_UW: u32 = 16; export const P_UX: u32 = 32;

@inline export function tlbEntry(lin: u64): usize {
  return <usize>(S + VS_TLB) + (<usize>((lin >> 12) & <u64>(TLB_ENTRIES - 1)) << 4);
}

// The last linear page found to be MMIO (no memslot): tag = linear page + 1, the
// GPA page and the permission bits of its walk, so the exit and the replay of an
// MMIO access do not walk the page tables and search the memslots again. Flushed
// with the TLB (same invalidation rules: CR3/paging changes, INVLPG, memslots, VS_DIRTY).
export let mmioTag: u64 = 0;
export let mmioGpaPage: u64 = 0;
export let mmioPerm: u32 = 0;

export function mmioFill(lin: u64, gpaPage: u64, perm: u32): void {
  mmioTag = (lin >> 12) + 1;
  mmioGpaPage = gpaPage;
  mmioPerm = perm;
}

export function tlbFlush(): void {
  mmioTag = 0;
  const base = <usize>(S + VS_TLB);
  for (let i = 0; i < TLB_ENTRIES; i++) store<u64>(base + <usize>(i * TLB_SIZEOF) + TLB_TAG, 0);
  invalidateFetch();
}

export function tlbFlushPage(lin: u64): void {
  if (mmioTag == (lin >> 12) + 1) mmioTag = 0;
  const e = tlbEntry(lin);
  if (load<u64>(e + TLB_TAG) == (lin >> 12) + 1) store<u64>(e + TLB_TAG, 0);
  invalidateFetch();
}

export function tlbFill(lin: u64, hostPage: u64, perm: u32): void {
  const e = tlbEntry(lin);
  store<u64>(e + TLB_TAG, (lin >> 12) + 1);
  store<u32>(e + TLB_HOST, <u32>hostPage);
  store<u32>(e + TLB_PERM, perm);
}
