// LOCK prefix validity (Intel SDM vol. 2A "LOCK—Assert LOCK# Signal Prefix";
// AMD APM vol. 3 §1.2.5): LOCK is #UD unless the instruction is ADD, ADC, AND,
// BTC, BTR, BTS, CMPXCHG, CMPXCHG8B/16B, DEC, INC, NEG, NOT, OR, SBB, SUB, XOR,
// XADD or XCHG with a memory destination.
import { ST_OK, status } from "./cpu";
import { nextIp, setNextIp } from "./decode_state";
import { fetch8 } from "./mem";

@inline function isMem(modrm: u32): bool { return (modrm & 0xc0) != 0xc0; }

/** Whether LOCK may prefix opcode `op` (already fetched); peeks at the bytes after it. */
export function lockAllowed(op: u32): bool {
  const save = nextIp;
  let ok = false;
  if (op == 0x0f) {
    const op2 = fetch8();
    const m = fetch8();
    const reg = (m >> 3) & 7;
    ok = isMem(m) && (op2 == 0xab || op2 == 0xb3 || op2 == 0xbb || op2 == 0xb0 || op2 == 0xb1 || op2 == 0xc0 ||
      op2 == 0xc1 || (op2 == 0xba && reg >= 5) || (op2 == 0xc7 && reg == 1));
  } else {
    const m = fetch8();
    const reg = (m >> 3) & 7;
    if (op < 0x40) ok = (op & 7) < 2 && (op >> 3) != 7; // ALU r/m,r except CMP
    else if (op >= 0x80 && op <= 0x83) ok = reg != 7; // group 1 except CMP
    else if (op == 0x86 || op == 0x87) ok = true; // XCHG
    else if (op == 0xf6 || op == 0xf7) ok = reg == 2 || reg == 3; // NOT, NEG
    else if (op == 0xfe || op == 0xff) ok = reg < 2; // INC, DEC
    ok = ok && isMem(m);
  }
  setNextIp(save);
  // A fetch fault here is the fault the real decode would take: let it report.
  return ok || status != ST_OK;
}
