// Segmentation of data accesses: real-mode base+offset with the cached limit,
// protected/compatibility-mode type/limit checks (expand-down included), and
// 64-bit mode (FS/GS base only, canonical check → #GP(0), or #SS(0) for SS).
import {
  SEG_BASE, SEG_DB, SEG_LIMIT, SEG_PRESENT, SEG_SIZEOF, SEG_TYPE, SEG_UNUSABLE, VS_SEG_ES,
} from "../abi.generated";
import { S, SEG_FS, SEG_GS, SEG_NONE, SEG_SS } from "./cpu";
import { EXC_GP, EXC_SS, raiseErr } from "./exceptions";
import { MODE_LONG, MODE_REAL, mode } from "./mode";
import { ACC_EXEC, ACC_WRITE } from "./paging";

@inline export function segAddr(seg: i32): usize { return <usize>(S + VS_SEG_ES + seg * SEG_SIZEOF); }
@inline export function segBase(seg: i32): u64 { return load<u64>(segAddr(seg) + SEG_BASE); }

@inline export function canonical(lin: u64): bool { return ((lin + 0x0000800000000000) >> 48) == 0; }

function segFault(seg: i32): void { raiseErr(seg == SEG_SS ? EXC_SS : EXC_GP, 0); }

/** Linear address of `size` bytes at `off` in `seg` for `acc`; sets status on a fault. */
export function segLinear(seg: i32, off: u64, size: i32, acc: i32): u64 {
  if (mode == MODE_LONG) {
    let lin = off;
    if (seg == SEG_FS || seg == SEG_GS) lin += segBase(seg);
    if (!canonical(lin) || !canonical(lin + <u64>(size - 1))) { segFault(seg); return 0; }
    return lin;
  }
  if (seg == SEG_NONE) return off & 0xffffffff;
  const a = segAddr(seg);
  const limit = <u64>load<u32>(a + SEG_LIMIT);
  const last = off + <u64>(size - 1);
  if (mode == MODE_REAL) {
    if (last > limit) { segFault(seg); return 0; }
    return (load<u64>(a + SEG_BASE) + off) & 0xffffffff;
  }
  if (load<u8>(a + SEG_PRESENT) == 0 || load<u8>(a + SEG_UNUSABLE) != 0) { segFault(seg); return 0; }
  const type = load<u8>(a + SEG_TYPE);
  if ((type & 8) != 0) {
    // Code segment: never writable; readable only with the R bit (fetches use the CS path).
    if (acc == ACC_WRITE || (acc != ACC_EXEC && (type & 2) == 0)) { segFault(seg); return 0; }
    if (last > limit) { segFault(seg); return 0; }
  } else {
    if (acc == ACC_WRITE && (type & 2) == 0) { segFault(seg); return 0; }
    if ((type & 4) != 0) {
      const top: u64 = load<u8>(a + SEG_DB) != 0 ? 0xffffffff : 0xffff;
      if (off <= limit || last > top) { segFault(seg); return 0; }
    } else if (last > limit) { segFault(seg); return 0; }
  }
  return (load<u64>(a + SEG_BASE) + off) & 0xffffffff;
}
