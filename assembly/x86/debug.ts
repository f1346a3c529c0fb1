// Debug registers and KVM_SET_GUEST_DEBUG: execute breakpoints (checked before an
// instruction), data breakpoints (noted during accesses, reported after the
// instruction), single step. With KVM_GUESTDBG_USE_HW_BP the debugger's
// debugreg[0..3]/[7] (VS_GUEST_DEBUG_DR) are used and hits exit to userspace;
// otherwise the guest's own DR0–DR7 raise #DB in the guest.
import {
  KVM_EXIT_DEBUG, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
  KVM_RUN_DEBUG_ARCH_DR6, KVM_RUN_DEBUG_ARCH_DR7, KVM_RUN_DEBUG_ARCH_EXCEPTION, KVM_RUN_DEBUG_ARCH_PAD,
  KVM_RUN_DEBUG_ARCH_PC, VS_DR, VS_GUEST_DEBUG_CONTROL, VS_GUEST_DEBUG_DR,
} from "../abi.generated";
import { RUN, S } from "./cpu";
import { exitTo } from "../kvm/exits";

/** DR6 bits that read as 1 (DR6_ACTIVE_LOW in KVM). */
export const DR6_FIXED: u64 = 0xffff0ff0;
export const DR6_BS: u64 = 0x4000;
export const DR6_BD: u64 = 0x2000;

/** Some data breakpoint is enabled (readMem/writeMem call noteDataAccess). */
export let dataBpArmed: bool = false;
/** Some execute breakpoint is enabled. */
export let execBpArmed: bool = false;
/** B0–B3 of data breakpoints hit by the instruction in flight. */
export let dataBpHits: u32 = 0;

@inline export function guestDebug(): u32 { return load<u32>(S + VS_GUEST_DEBUG_CONTROL); }
@inline export function gdbOn(flag: i32): bool {
  const c = guestDebug();
  return (c & KVM_GUESTDBG_ENABLE) != 0 && (c & <u32>flag) != 0;
}
export function singleStepDebug(): bool { return gdbOn(KVM_GUESTDBG_SINGLESTEP); }
export function swBpDebug(): bool { return gdbOn(KVM_GUESTDBG_USE_SW_BP); }
export function hwBpDebug(): bool { return gdbOn(KVM_GUESTDBG_USE_HW_BP); }

/** Base of the debug registers in effect: the debugger's with USE_HW_BP, else the guest's. */
@inline function drBase(): usize { return <usize>(S + (hwBpDebug() ? VS_GUEST_DEBUG_DR : VS_DR)); }
@inline export function effDr7(): u64 { return load<u64>(drBase() + 56); }

/** Recompute the armed flags from DR7 (after MOV DR7, KVM_SET_GUEST_DEBUG, VS_DIRTY). */
export function refreshDebug(): void {
  const dr7 = effDr7();
  dataBpArmed = false;
  execBpArmed = false;
  for (let i = 0; i < 4; i++) {
    if (((dr7 >> (<u64>i * 2)) & 3) == 0) continue;
    const rw = (dr7 >> (16 + <u64>i * 4)) & 3;
    if (rw == 0) execBpArmed = true;
    else if (rw == 1 || rw == 3) dataBpArmed = true;
  }
  dataBpHits = 0;
}

/** B0–B3 mask of execute breakpoints at linear address `lin`. */
export function execBpMatch(lin: u64): u32 {
  const base = drBase();
  const dr7 = load<u64>(base + 56);
  let hits: u32 = 0;
  for (let i = 0; i < 4; i++) {
    if (((dr7 >> (<u64>i * 2)) & 3) == 0) continue;
    if (((dr7 >> (16 + <u64>i * 4)) & 3) != 0) continue;
    if (load<u64>(base + <usize>(i * 8)) == lin) hits |= <u32>1 << <u32>i;
  }
  return hits;
}

/** Record data-breakpoint hits of an access of `size` bytes at `lin`. */
export function noteDataAccess(lin: u64, size: i32, write: bool): void {
  const base = drBase();
  const dr7 = load<u64>(base + 56);
  for (let i = 0; i < 4; i++) {
    if (((dr7 >> (<u64>i * 2)) & 3) == 0) continue;
    const rw = (dr7 >> (16 + <u64>i * 4)) & 3;
    if (rw == 0 || rw == 2 || (rw == 1 && !write)) continue;
    const lenCode = (dr7 >> (18 + <u64>i * 4)) & 3;
    const len: u64 = lenCode == 0 ? 1 : lenCode == 1 ? 2 : lenCode == 3 ? 4 : 8;
    const a = load<u64>(base + <usize>(i * 8)) & ~(len - 1);
    if (lin < a + len && a < lin + <u64>size) dataBpHits |= <u32>1 << <u32>i;
  }
}

export function clearDataHits(): void { dataBpHits = 0; }

/** KVM_EXIT_DEBUG with debug.arch (exception, pc, dr6, dr7). */
export function debugExit(exception: u32, pc: u64, dr6: u64): void {
  store<u32>(RUN + KVM_RUN_DEBUG_ARCH_EXCEPTION, exception);
  store<u32>(RUN + KVM_RUN_DEBUG_ARCH_PAD, 0);
  store<u64>(RUN + KVM_RUN_DEBUG_ARCH_PC, pc);
  store<u64>(RUN + KVM_RUN_DEBUG_ARCH_DR6, dr6);
  store<u64>(RUN + KVM_RUN_DEBUG_ARCH_DR7, effDr7());
  exitTo(KVM_EXIT_DEBUG);
}

/** The guest's DR6 |= bits (for a #DB delivered into the guest). */
export function guestDr6Set(bits: u64): void {
  const p = <usize>(S + VS_DR + 48);
  store<u64>(p, (load<u64>(p) & ~(<u64>0xf)) | DR6_FIXED | bits);
}
