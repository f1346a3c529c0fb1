// Writers of kvm_run exits that several modules produce.
import {
  KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
  KVM_RUN_EMULATION_FAILURE_FLAGS, KVM_RUN_EMULATION_FAILURE_INSN_BYTES, KVM_RUN_EMULATION_FAILURE_INSN_SIZE,
  KVM_RUN_EMULATION_FAILURE_NDATA, KVM_RUN_EMULATION_FAILURE_SUBERROR, KVM_RUN_INTERNAL_DATA,
  KVM_RUN_INTERNAL_NDATA, KVM_RUN_INTERNAL_SUBERROR,
} from "../abi.generated";
import { RUN, ST_EXIT, setStatus } from "../x86/cpu";
import { insnStart } from "../x86/decode_state";
import { peekCode } from "../x86/mem";

/** End the instruction with a userspace exit `reason` (kvm_run's union already filled). */
export function exitTo(reason: i32): void {
  exitReason = reason;
  setStatus(ST_EXIT);
}

/** Reason of the last exitTo(); run.ts finish() stores it into kvm_run.exit_reason. */
export let exitReason: i32 = 0;

/**
 * KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION for an instruction kvmsim
 * does not implement, laid out like Linux arch/x86/kvm/x86.c
 * prepare_emulation_failure_exit(): flags = INSTRUCTION_BYTES, insn_size and
 * insn_bytes (padded with 0x90), data[0] = flags, data[1..2] = the instruction bytes,
 * data[3..7] = the five exit-info words (zero here: there is no hardware exit), ndata = 8.
 * insn_size is what KVM's decoder had fetched: it prefetches 15 bytes from the
 * instruction's start, stopping at the end of the code page or the CS limit
 * (__do_insn_fetch_bytes), so it is 15 unless the page or limit ends sooner —
 * here the fetch window, which ends at the same places. Bytes are never read
 * past it.
 */
export function internalErrorEmulation(): void {
  const n = 15;
  const p = RUN + KVM_RUN_EMULATION_FAILURE_INSN_BYTES;
  for (let i = 0; i < 15; i++) store<u8>(p + i, 0x90);
  let got = 0;
  for (let i = 0; i < n; i++) {
    const b = peekCode(insnStart + <u64>i);
    if (b < 0) break;
    store<u8>(p + i, <u8>b);
    got++;
  }
  internalErrorBytes(got);
}

/** The emulation-failure exit with `size` instruction bytes already in insn_bytes. */
export function internalErrorBytes(size: i32): void {
  store<u32>(RUN + KVM_RUN_EMULATION_FAILURE_SUBERROR, KVM_INTERNAL_ERROR_EMULATION);
  let ndata: u32 = 6;
  store<u64>(RUN + KVM_RUN_EMULATION_FAILURE_FLAGS, 0);
  if (size > 0) {
    store<u64>(RUN + KVM_RUN_EMULATION_FAILURE_FLAGS, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES);
    store<u8>(RUN + KVM_RUN_EMULATION_FAILURE_INSN_SIZE, <u8>size);
    ndata = 8;
  }
  const info = RUN + KVM_RUN_INTERNAL_DATA + <i32>(ndata - 5) * 8;
  for (let i = 0; i < 5; i++) store<u64>(info + i * 8, 0);
  store<u32>(RUN + KVM_RUN_EMULATION_FAILURE_NDATA, ndata);
  exitTo(KVM_EXIT_INTERNAL_ERROR);
}

/** KVM_EXIT_INTERNAL_ERROR with `suberror` and up to 4 data words (DELIVERY_EV, SIMUL_EX). */
export function internalError(suberror: i32, ndata: i32, d0: u64, d1: u64, d2: u64, d3: u64): void {
  store<u32>(RUN + KVM_RUN_INTERNAL_SUBERROR, <u32>suberror);
  store<u32>(RUN + KVM_RUN_INTERNAL_NDATA, <u32>ndata);
  const d = RUN + KVM_RUN_INTERNAL_DATA;
  store<u64>(d, d0); store<u64>(d + 8, d1); store<u64>(d + 16, d2); store<u64>(d + 24, d3);
  exitTo(KVM_EXIT_INTERNAL_ERROR);
}
