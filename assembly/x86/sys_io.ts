// IN/OUT with an imm8 or DX port (E4–E7, EC–EF). `size` is 1, 2 or 4 bytes.
// Each exec* completes its instruction, including RIP.
import { RAX, ST_OK, reg64, setReg64, setRip, status } from "./cpu";
import { nextIp } from "./decode_state";
import { portIn, portOut } from "./io";

export function execIn(port: i32, size: i32): void {
  const v = portIn(port, size);
  if (status != ST_OK) return;
  setInResult(size, v);
  setRip(nextIp);
}

/**
 * What IN commits besides RIP: `v` into AL / AX / EAX (EAX zero-extends into RAX).
 * Also the re-entry completion of an IN exit (run.ts, PEND_PIO_IN_RAX).
 */
export function setInResult(size: i32, v: u32): void {
  const old = reg64(RAX);
  if (size == 4) setReg64(RAX, <u64>v);
  else if (size == 2) setReg64(RAX, (old & ~(<u64>0xffff)) | <u64>(v & 0xffff));
  else setReg64(RAX, (old & ~(<u64>0xff)) | <u64>(v & 0xff));
}

export function execOut(port: i32, size: i32): void {
  portOut(port, size, <u32>reg64(RAX));
  if (status != ST_OK) return;
  setRip(nextIp);
}
