// Translated hot loops (the core side; the translator is src/jit/translate.ts).
//
// fastRun() calls jitRun() at every taken backward branch. A direct-mapped
// cache in the state block (VS_JIT, keyed by RIP and the host address of its
// code) counts entries; at VS_JIT_HOT of them (0: JIT_HOT_DEFAULT; all ones:
// never translate, never run translations) the imported jitCompile() translates the
// block at that RIP into a WASM function appended to the instance's function
// table, or answers 0 (not translatable: the entry then stays -1).
//
// Contract of a translated function (jitFn):
//   (ip: u64, host: i32, m64: i32, avail: i32, budget: i32, gpr: i32, pr: i32, pw: i32, tlb: i32) -> i32
//   (pr/pw: the TLB permission bits of a data read/write at the current CPL, as
//   fastRun gets them; tlb: the address of this vCPU's TLB, S + VS_TLB)
// - It first checks that it was made for this (ip, host, m64), that the block
//   fits in the `avail` bytes of the fetch window, and that the code bytes at
//   `host` are still the ones it was made from; if not it returns -1 and
//   changes nothing (a stale or foreign translation: never run). So nothing
//   needs invalidating on TLB flushes, CR writes, mode changes or code writes.
// - Otherwise it runs whole iterations of the loop (at most `budget`
//   instructions; 0 if one iteration does not fit) with the GPRs in locals and
//   the lazy flags in locals, then stores the GPRs, the flag globals of
//   flags.ts (exported by index.ts and imported by the translation) exactly as
//   interpreting would have left them, and the next RIP in `jitIp`; it returns
//   the instructions retired. Memory operands and PUSH/POP (64-bit mode only)
//   go through the TLB exactly like fastRun's hostOf(): on a miss (or a
//   permission or page-crossing miss) the function leaves *before* that
//   instruction with everything retired so far committed (the interpreter then
//   runs it, faults or exits as usual); a store whose host address is in a page
//   of the loop's own code leaves right after that store. A Jcc out of the loop
//   leaves with jitIp = its target. It never faults or exits itself.
// Indices come from this instance's table only (each instance has its own):
// an index outside [jitLo, jitHi] (the entry was filled by another instance)
// is dropped, and an index of this instance made for other code returns -1.
import {
  JIT_COUNT, JIT_ENTRIES, JIT_HOST, JIT_HOT_DEFAULT, JIT_INDEX, JIT_IP, JIT_SIZEOF, VS_JIT, VS_JIT_HOT, VS_TLB,
} from "../abi.generated";
import { S } from "./cpu";
import { cpuidLookup } from "../kvm/cpuid";
import { msrPeek } from "../kvm/msr";
import { cpl } from "./mode";
import { portOutInKernel } from "./io";
import { ringTick } from "../kvm/coalesced";

/** RIP after the instructions the last translated call retired. */
export let jitIp: u64 = 0;

/** Range of table indices this instance's jitCompile() handed out (empty: lo > hi). */
let jitLo: i32 = 0x7fffffff;
let jitHi: i32 = 0;

/** Translate the block at `ip` (code at `host`, `avail` bytes readable); returns its table index or 0. */
@external("env", "jitCompile")
declare function jitCompile(host: i32, ip: u64, m64: i32, avail: i32): i32;

/** Offset of the cache entry of `ip` from VS_JIT (also used by assembly/floor/checked.ts). */
@inline export function jitSlot(ip: u64): i32 {
  return (<i32>((ip ^ (ip >> 7)) & <u64>(JIT_ENTRIES - 1))) * JIT_SIZEOF;
}
@inline function entryOf(ip: u64): i32 {
  return S + VS_JIT + jitSlot(ip);
}

/**
 * The block jitRun() last found not translatable (its entry's index -1): its (ip, host) is
 * answered 0 from these globals, without the cache entry's three loads, until jitRun()
 * writes an entry or jitForget() runs (run.ts refresh: another vCPU, or a TS write to the
 * state block). A loop that exits every iteration (`out dx, al; jmp`) probes its head at
 * every KVM_RUN.
 */
let noJitIp: u64 = 0;
let noJitHost: u32 = 0;
let noJitValid: bool = false;

/** Forget the not-translatable block jitProbe() keeps (the cache entries may have changed under it). */
export function jitForget(): void { noJitValid = false; }

/** jitRun() behind an inlined check that answers 0 at once for the block jitRun last found not translatable. */
@inline export function jitProbe(
  ip: u64, host: u32, m64: bool, avail: i32, budget: i32, g: i32, pr: u32, pw: u32,
): i32 {
  if (noJitValid && ip == noJitIp && host == noJitHost) return 0;
  return jitRun(ip, host, m64, avail, budget, g, pr, pw);
}

/**
 * At a taken backward branch to `ip` (inside the fetch window with `avail`
 * bytes to its end, code at `host`): run its translation if there is one, with
 * at most `budget` instructions. Returns the instructions retired (0: nothing
 * ran, interpret on); when nonzero the next RIP is in jitIp.
 */
export function jitRun(ip: u64, host: u32, m64: bool, avail: i32, budget: i32, g: i32, pr: u32, pw: u32): i32 {
  const e = entryOf(ip);
  if (load<i32>(e + JIT_INDEX) < 0 && load<u64>(e + JIT_IP) == ip && load<u32>(e + JIT_HOST) == host) {
    // Not translatable: jitProbe answers it from now on.
    noJitIp = ip;
    noJitHost = host;
    noJitValid = true;
    return 0;
  }
  const hot = load<u32>(S + VS_JIT_HOT);
  if (hot == 0xffffffff) return 0;
  noJitValid = false; // the entry below may change
  if (load<u64>(e + JIT_IP) != ip || load<u32>(e + JIT_HOST) != host) {
    store<u64>(e + JIT_IP, ip);
    store<u32>(e + JIT_HOST, host);
    store<i32>(e + JIT_INDEX, 0);
    store<u32>(e + JIT_COUNT, 1);
    return 0;
  }
  let idx = load<i32>(e + JIT_INDEX);
  if (idx == 0) {
    const c = load<u32>(e + JIT_COUNT) + 1;
    store<u32>(e + JIT_COUNT, c);
    if (c < (hot == 0 ? <u32>JIT_HOT_DEFAULT : hot)) return 0;
    idx = jitCompile(<i32>host, ip, m64 ? 1 : 0, avail);
    if (idx <= 0) { store<i32>(e + JIT_INDEX, -1); return 0; }
    if (idx < jitLo) jitLo = idx;
    if (idx > jitHi) jitHi = idx;
    store<i32>(e + JIT_INDEX, idx);
  }
  if (idx < jitLo || idx > jitHi) { // not ours (-1: not translatable; else another instance's)
    if (idx > 0) { store<i32>(e + JIT_INDEX, 0); store<u32>(e + JIT_COUNT, 0); }
    return 0;
  }
  const r = call_indirect<i32>(<u32>idx, ip, <i32>host, m64 ? 1 : 0, avail, budget, g, <i32>pr, <i32>pw, S + VS_TLB);
  if (jitDrop) { jitDrop = false; store<i32>(e + JIT_INDEX, -1); } // interpreted from now on (jitRdmsr, jitOut)
  if (r < 0) { // stale: the code changed (or the window shrank); count afresh
    store<i32>(e + JIT_INDEX, 0);
    store<u32>(e + JIT_COUNT, 0);
    return 0;
  }
  return r;
}

// ---- Helpers a translated block calls (imported from this instance; src/jit/translate.ts) ----

/** CPUID(eax, ecx) into kvm/cpuid.ts cpuidEax..cpuidEdx, which the block reads back (in-kernel, never faults). */
export function jitCpuid(eax: u32, ecx: u32): void { cpuidLookup(eax, ecx); }

/**
 * RDMSR of `index` at CPL 0 answered in the kernel without a side effect (kvm/msr.ts
 * msrPeek): 1 with the value in msrValue; 0 (nothing done) otherwise, and the block leaves
 * before the RDMSR for the interpreter to run it (#GP, a user-space exit, the TSC).
 */
export function jitRdmsr(index: u32): i32 {
  if (cpl() == 0 && msrPeek(index)) return 1;
  // The interpreter will run this RDMSR (an exit, a #GP, the TSC): a block that leaves at
  // it every time costs more than it saves, so jitRun drops the translation.
  jitDrop = true;
  return 0;
}

/**
 * OUT of `size` (1 or 4) bytes of `v` to `port`: 1 when a coalesced PIO zone took it in the
 * kernel (io.ts portOutInKernel; a tick of the held ring, as a backward branch is one);
 * 0 (nothing done) otherwise, and the block leaves before the OUT for the interpreter to
 * run it. A full ring is passing, so the translation stays; an OUT that no zone takes
 * exits every time, and jitRun drops the translation.
 */
export function jitOut(port: u32, size: u32, v: u32): i32 {
  const r = portOutInKernel(<i32>port, <i32>size, v);
  if (r > 0) { ringTick(); return 1; }
  if (r < 0) jitDrop = true;
  return 0;
}

/** Set by a helper whose instruction the block cannot run: jitRun marks the block not translatable. */
let jitDrop: bool = false;
