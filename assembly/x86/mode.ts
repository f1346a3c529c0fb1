// Processor mode of the vCPU being run (real / protected / compatibility / 64-bit),
// recomputed from CR0, EFER and CS whenever one of them changes. Per-instance globals,
// valid only inside run() (refreshed at entry from the state block).
import {
  VS_CR0, VS_CR4, VS_EFER, VS_RFLAGS, VS_SEG_CS_DB, VS_SEG_CS_L, VS_SEG_SS_DB, VS_SEG_SS_DPL,
} from "../abi.generated";
import { S } from "./cpu";

export const MODE_REAL: i32 = 0;
export const MODE_PROT: i32 = 1;
export const MODE_COMPAT: i32 = 2;
export const MODE_LONG: i32 = 3;
/** Virtual-8086 mode: not supported (the run loop reports an internal error). */
export const MODE_V86: i32 = 4;

// Control-register and EFER bits.
export const CR0_PE: u64 = 1; export const CR0_MP: u64 = 2; export const CR0_EM: u64 = 4; export const CR0_TS: u64 = 8;
export const CR0_ET: u64 = 0x10; export const CR0_NE: u64 = 0x20; export const CR0_WP: u64 = 0x10000;
export const CR0_AM: u64 = 0x40000; export const CR0_NW: u64 = 0x20000000; export const CR0_CD: u64 = 0x40000000;
export const CR0_PG: u64 = 0x80000000;
export const CR4_VME: u64 = 1; export const CR4_PVI: u64 = 2; export const CR4_TSD: u64 = 4; export const CR4_DE: u64 = 8;
export const CR4_PSE: u64 = 0x10; export const CR4_PAE: u64 = 0x20; export const CR4_MCE: u64 = 0x40;
export const CR4_PGE: u64 = 0x80; export const CR4_PCE: u64 = 0x100; export const CR4_OSFXSR: u64 = 0x200;
export const CR4_OSXMMEXCPT: u64 = 0x400; export const CR4_UMIP: u64 = 0x800; export const CR4_LA57: u64 = 0x1000;
export const CR4_FSGSBASE: u64 = 0x10000; export const CR4_PCIDE: u64 = 0x20000; export const CR4_OSXSAVE: u64 = 0x40000;
export const CR4_SMEP: u64 = 0x100000; export const CR4_SMAP: u64 = 0x200000;
export const EFER_SCE: u64 = 1; export const EFER_LME: u64 = 0x100; export const EFER_LMA: u64 = 0x400;
export const EFER_NXE: u64 = 0x800; export const EFER_SVME: u64 = 0x1000; export const EFER_FFXSR: u64 = 0x4000;

export const RFLAGS_CF: u64 = 1; export const RFLAGS_TF: u64 = 0x100; export const RFLAGS_IF: u64 = 0x200;
export const RFLAGS_DF: u64 = 0x400; export const RFLAGS_IOPL: u64 = 0x3000; export const RFLAGS_NT: u64 = 0x4000;
export const RFLAGS_RF: u64 = 0x10000; export const RFLAGS_VM: u64 = 0x20000; export const RFLAGS_AC: u64 = 0x40000;
export const RFLAGS_VIF: u64 = 0x80000; export const RFLAGS_VIP: u64 = 0x100000; export const RFLAGS_ID: u64 = 0x200000;

export let mode: i32 = MODE_REAL;
let curCpl: i32 = 0;
let cs32: bool = false;
let ss32: bool = false;

/** Recompute mode and CPL from CR0.PE, EFER.LMA, RFLAGS.VM and the CS/SS caches. */
export function recomputeMode(): void {
  const cr0 = load<u64>(S + VS_CR0);
  const efer = load<u64>(S + VS_EFER);
  if ((cr0 & CR0_PE) == 0) {
    mode = MODE_REAL;
    curCpl = 0;
  } else if ((efer & EFER_LMA) != 0) {
    mode = load<u8>(S + VS_SEG_CS_L) != 0 ? MODE_LONG : MODE_COMPAT;
    curCpl = load<u8>(S + VS_SEG_SS_DPL) & 3;
  } else if ((load<u64>(S + VS_RFLAGS) & RFLAGS_VM) != 0) {
    mode = MODE_V86;
    curCpl = 3;
  } else {
    mode = MODE_PROT;
    // KVM takes CPL from SS.DPL (vmx_get_cpl / svm_get_cpl read the SS attributes).
    curCpl = load<u8>(S + VS_SEG_SS_DPL) & 3;
  }
  cs32 = mode != MODE_REAL && load<u8>(S + VS_SEG_CS_DB) != 0;
  ss32 = mode != MODE_REAL && load<u8>(S + VS_SEG_SS_DB) != 0;
  if (mode == MODE_REAL) {
    // Real mode keeps the cached D bit too (big real mode is rare; KVM honours the cache).
    cs32 = load<u8>(S + VS_SEG_CS_DB) != 0;
    ss32 = load<u8>(S + VS_SEG_SS_DB) != 0;
  }
}

/** Set the CPL after a privilege change (far transfers, interrupts, IRET). */
export function setCpl(c: i32): void { curCpl = c; }

/** Default operand/address size of the code segment is 32 bits (CS.D, outside 64-bit mode). */
@inline export function csDefault32(): bool { return cs32; }
/** 64-bit mode (long mode with CS.L = 1). */
@inline export function is64(): bool { return mode == MODE_LONG; }
/** Current privilege level (0–3). */
@inline export function cpl(): i32 { return curCpl; }
/** Stack address size in bytes: 8 in 64-bit mode, else 4 with SS.B, else 2. */
@inline export function stackSize(): i32 { return mode == MODE_LONG ? 8 : (ss32 ? 4 : 2); }
/** Long mode is active (EFER.LMA): 64-bit or compatibility mode. */
@inline export function longModeActive(): bool { return mode == MODE_LONG || mode == MODE_COMPAT; }
/** Paging enabled. */
@inline export function pagingOn(): bool { return (load<u64>(S + VS_CR0) & CR0_PG) != 0; }
/** CR4 value. */
@inline export function cr4(): u64 { return load<u64>(S + VS_CR4); }
