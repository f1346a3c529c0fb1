// Decoded state of the instruction being executed. Written by the decoder
// (decode.ts), read by every execute routine (core and system). Per-instance
// module globals: no heap, nothing shared between vCPUs.

/** RIP of the first byte of the instruction (faults report this RIP). */
export let insnStart: u64 = 0;
/** Offset within CS of the next byte to fetch; RIP to commit when the instruction completes. */
export let nextIp: u64 = 0;
/** Operand size in bytes after prefixes and REX.W: 2, 4 or 8. */
export let opSize: i32 = 4;
/** Address size in bytes after the 0x67 prefix: 2, 4 or 8. */
export let addrSize: i32 = 4;
/** REX byte (0x40–0x4F) or 0 when absent. */
export let rex: i32 = 0;
/** Segment override (SEG_* from cpu.ts) or -1 when none. */
export let segOverride: i32 = -1;
/** 0, 0xF2 (REPNE) or 0xF3 (REP/REPE): the last of F2/F3 seen. */
export let repPrefix: i32 = 0;
/** 1 when a LOCK (F0) prefix was present. */
export let lockPrefix: i32 = 0;
/** ModRM fields once decoded: mod (0–3), reg (0–15 with REX.R), rm (0–15 with REX.B when mod == 3). */
export let modrmMod: i32 = 0;
export let modrmReg: i32 = 0;
export let modrmRm: i32 = 0;
/** Effective address offset (already truncated to addrSize) for a memory operand. */
export let ea: u64 = 0;
/** Segment for the memory operand: the override or the default (DS, or SS for rBP/rSP bases). */
export let eaSeg: i32 = 3;

// Setters: AssemblyScript exports `let` bindings read-only to other modules.
@inline export function setInsnStart(v: u64): void { insnStart = v; }
@inline export function setNextIp(v: u64): void { nextIp = v; }
@inline export function setOpSize(v: i32): void { opSize = v; }
@inline export function setAddrSize(v: i32): void { addrSize = v; }
@inline export function setRex(v: i32): void { rex = v; }
@inline export function setSegOverride(v: i32): void { segOverride = v; }
@inline export function setRepPrefix(v: i32): void { repPrefix = v; }
@inline export function setLockPrefix(v: i32): void { lockPrefix = v; }
@inline export function setModrm(mod: i32, reg: i32, rm: i32): void { modrmMod = mod; modrmReg = reg; modrmRm = rm; }
@inline export function setEa(seg: i32, off: u64): void { eaSeg = seg; ea = off; }
