// The vCPU being run by this instance: base addresses and register access.
// Per-instance module globals (each Worker has its own instance), no heap.
import {
  VCPU_STATE_OFFSET, VS_GPR, VS_RIP, VS_RFLAGS,
} from "../abi.generated";

/** kvm_run page of the vCPU being run (absolute offset in the shared memory). */
export let RUN: i32 = 0;
/** State block of the vCPU being run (RUN + VCPU_STATE_OFFSET). */
export let S: i32 = 0;

export function selectVcpu(runBase: i32): void {
  RUN = runBase;
  S = runBase + VCPU_STATE_OFFSET;
}

// Status of the instruction being executed. Anything but ST_OK unwinds to the
// run loop, which delivers the exception or performs the userspace exit.
export const ST_OK: i32 = 0;
/** An exception is pending (see exceptions.ts); the instruction is not committed. */
export const ST_FAULT: i32 = 1;
/** A userspace exit is pending (kvm_run filled); the instruction is not committed. */
export const ST_EXIT: i32 = 2;
export let status: i32 = ST_OK;
export function setStatus(s: i32): void { status = s; }

// GPR numbers (x86 encoding order).
export const RAX: i32 = 0; export const RCX: i32 = 1; export const RDX: i32 = 2; export const RBX: i32 = 3;
export const RSP: i32 = 4; export const RBP: i32 = 5; export const RSI: i32 = 6; export const RDI: i32 = 7;

// Segment register numbers (encoding order) — also the index into VS_SEG_*.
export const SEG_ES: i32 = 0; export const SEG_CS: i32 = 1; export const SEG_SS: i32 = 2;
export const SEG_DS: i32 = 3; export const SEG_FS: i32 = 4; export const SEG_GS: i32 = 5;
export const SEG_LDTR: i32 = 6; export const SEG_TR: i32 = 7;
/** "No segment": the offset is already a linear address. */
export const SEG_NONE: i32 = -1;

@inline export function reg64(r: i32): u64 { return load<u64>(S + VS_GPR + (r << 3)); }
@inline export function setReg64(r: i32, v: u64): void { store<u64>(S + VS_GPR + (r << 3), v); }
@inline export function rip(): u64 { return load<u64>(S + VS_RIP); }
@inline export function setRip(v: u64): void { store<u64>(S + VS_RIP, v); }
@inline export function rflags(): u64 { return load<u64>(S + VS_RFLAGS); }
@inline export function setRflags(v: u64): void { store<u64>(S + VS_RFLAGS, v); }
