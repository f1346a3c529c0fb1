/** Every snippet family table, in the order the tests run them. */
import type { Snippet } from "./types.ts";
import { snippets as mov } from "./mov.ts";
import { snippets as alu } from "./alu.ts";
import { snippets as incdecNegnot } from "./incdec_negnot.ts";
import { snippets as muldiv } from "./muldiv.ts";
import { snippets as shiftsRotates } from "./shifts_rotates.ts";
import { snippets as bitOps } from "./bit_ops.ts";
import { snippets as setccCmovcc } from "./setcc_cmovcc.ts";
import { snippets as stack } from "./stack.ts";
import { snippets as controlFlow } from "./control_flow.ts";
import { snippets as stringOps } from "./string_ops.ts";
import { snippets as io } from "./io.ts";
import { snippets as system } from "./system.ts";
import { snippets as paging } from "./paging.ts";
import { snippets as exceptions } from "./exceptions.ts";
import { snippets as realMode } from "./real_mode.ts";
import { snippets as protectedMode } from "./protected_mode.ts";

export const FAMILIES: ReadonlyMap<string, readonly Snippet[]> = new Map([
  ["mov", mov],
  ["alu", alu],
  ["incdec_negnot", incdecNegnot],
  ["muldiv", muldiv],
  ["shifts_rotates", shiftsRotates],
  ["bit_ops", bitOps],
  ["setcc_cmovcc", setccCmovcc],
  ["stack", stack],
  ["control_flow", controlFlow],
  ["string_ops", stringOps],
  ["io", io],
  ["system", system],
  ["paging", paging],
  ["exceptions", exceptions],
  ["real_mode", realMode],
  ["protected_mode", protectedMode],
]);
