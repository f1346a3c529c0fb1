// Recording a fault or trap for the run loop to deliver (docs/core-contract.md
// "Faults"). raise*/raiseErr set status = ST_FAULT; nothing is delivered here.
import { VS_CR2 } from "../abi.generated";
import { S, ST_FAULT, setStatus } from "./cpu";

export const EXC_DE: i32 = 0; export const EXC_DB: i32 = 1; export const EXC_NMI: i32 = 2; export const EXC_BP: i32 = 3;
export const EXC_OF: i32 = 4; export const EXC_BR: i32 = 5; export const EXC_UD: i32 = 6; export const EXC_NM: i32 = 7;
export const EXC_DF: i32 = 8; export const EXC_TS: i32 = 10; export const EXC_NP: i32 = 11; export const EXC_SS: i32 = 12;
export const EXC_GP: i32 = 13; export const EXC_PF: i32 = 14; export const EXC_MF: i32 = 16; export const EXC_AC: i32 = 17;
export const EXC_MC: i32 = 18; export const EXC_XM: i32 = 19;

/** Vector of the pending exception (valid when status == ST_FAULT). */
export let excVector: i32 = 0;
/** The pending exception pushes an error code. */
export let excHasError: bool = false;
export let excError: u32 = 0;
/** The pending event is a trap/software interrupt: delivered with RIP = the next instruction. */
export let excIsTrap: bool = false;

/** Raise a fault without error code (#DE, #UD, #NM, #MF, #XM, …). */
export function raise(vector: i32): void {
  excVector = vector;
  excHasError = false;
  excError = 0;
  excIsTrap = false;
  setStatus(ST_FAULT);
}

/** Raise a fault with an error code (#DF, #TS, #NP, #SS, #GP, #PF, #AC). */
export function raiseErr(vector: i32, code: u32): void {
  excVector = vector;
  excHasError = true;
  excError = code;
  excIsTrap = false;
  setStatus(ST_FAULT);
}

/** #GP(code). */
@inline export function gp(code: u32): void { raiseErr(EXC_GP, code); }
/** #GP(0). */
@inline export function gp0(): void { raiseErr(EXC_GP, 0); }

/** #PF at linear address `lin` with the error code (CR2 is written as the fault is detected). */
export function raisePF(lin: u64, code: u32): void {
  store<u64>(S + VS_CR2, lin);
  raiseErr(EXC_PF, code);
}

/** Raise a trap-class event (delivered with RIP after the instruction). */
export function raiseTrap(vector: i32): void {
  raise(vector);
  excIsTrap = true;
}

/** Vectors that push an error code in protected/long mode. */
export function hasErrorCode(vector: i32): bool {
  return vector == EXC_DF || (vector >= EXC_TS && vector <= EXC_PF) || vector == EXC_AC || vector == 21 || vector == 29 || vector == 30;
}
