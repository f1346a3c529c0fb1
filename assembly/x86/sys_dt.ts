// LGDT/LIDT/SGDT/SIDT on the memory operand ea/eaSeg: 2-byte limit then a
// 3/4-byte (16/32-bit operand size) or 8-byte (64-bit mode) base. Complete the instruction.
import { VS_GDT_BASE, VS_GDT_LIMIT, VS_IDT_BASE, VS_IDT_LIMIT } from "../abi.generated";
import { S, ST_OK, setRip, status } from "./cpu";
import { ea, eaSeg, nextIp, opSize, addrSize } from "./decode_state";
import { gp0 } from "./exceptions";
import { MODE_LONG, cpl, mode } from "./mode";
import { readMem, writeMem } from "./mem";
import { canonical } from "./segments";

@inline function amask(): u64 { return addrSize == 8 ? <u64>-1 : addrSize == 4 ? <u64>0xffffffff : <u64>0xffff; }

function loadDt(baseOff: i32, limitOff: i32): void {
  if (cpl() != 0) { gp0(); return; }
  const limit = readMem(eaSeg, ea, 2);
  if (status != ST_OK) return;
  const l64 = mode == MODE_LONG;
  let base = readMem(eaSeg, (ea + 2) & amask(), l64 ? 8 : 4);
  if (status != ST_OK) return;
  if (l64 && !canonical(base)) { gp0(); return; }
  if (!l64 && opSize == 2) base &= 0xffffff;
  store<u64>(S + baseOff, base);
  store<u16>(S + limitOff, <u16>limit);
  setRip(nextIp);
}

function storeDt(baseOff: i32, limitOff: i32): void {
  const l64 = mode == MODE_LONG;
  writeMem(eaSeg, ea, 2, <u64>load<u16>(S + limitOff));
  if (status != ST_OK) return;
  writeMem(eaSeg, (ea + 2) & amask(), l64 ? 8 : 4, load<u64>(S + baseOff));
  if (status != ST_OK) return;
  setRip(nextIp);
}

export function execLgdt(): void { loadDt(VS_GDT_BASE, VS_GDT_LIMIT); }
export function execLidt(): void { loadDt(VS_IDT_BASE, VS_IDT_LIMIT); }
export function execSgdt(): void { storeDt(VS_GDT_BASE, VS_GDT_LIMIT); }
export function execSidt(): void { storeDt(VS_IDT_BASE, VS_IDT_LIMIT); }
