// The core's doors into System code: every system instruction the decoder
// recognises is handed to System's exec* function here (one place to keep the
// names in step with sys_*.ts). System's exec* functions complete their
// instruction (RIP included); the core commits only where noted (POPF, SMSW).
import { ST_OK, setRip, status } from "./cpu";
import { modrmMod, modrmRm, ea, eaSeg, nextIp, opSize } from "./decode_state";
import { setReg } from "./exec_operands";
import { getFlags, setFlags } from "./flags";
import { execIns, execOuts } from "./io";
import { loadSeg, execFarCall, execFarJmp, execFarRet } from "./sys_seg";
import { internalErrorEmulation } from "../kvm/exits";
import { writeMem } from "./mem";
import { execCpuid } from "./sys_cpuid";
import {
  execClts, execInvlpg, execLmsw, execMovFromCr, execMovFromDr, execMovToCr, execMovToDr, execSmsw, execXgetbv,
  execXsetbv,
} from "./sys_cr";
import { execLgdt, execLidt, execSgdt, execSidt } from "./sys_dt";
import { execInt, execInt3, execInto, execIret, popfWrite } from "./sys_int";
import { execIn, execOut } from "./sys_io";
import { execCli, execHlt, execInvd, execSti, execSwapgs, execVmmcall, execWbinvd } from "./sys_misc";
import { execRdmsr, execRdtsc, execRdtscp, execWrmsr } from "./sys_msr";

/** An instruction the CPU would execute but kvmsim does not implement. */
export function sysUnsupported(): void { internalErrorEmulation(); }

@inline export function sysLoadSeg(seg: i32, sel: u32): void { loadSeg(seg, sel); }
@inline export function sysFarJmp(sel: u32, off: u64): void { execFarJmp(sel, off); }
@inline export function sysFarCall(sel: u32, off: u64): void { execFarCall(sel, off); }
@inline export function sysFarRet(imm: u32): void { execFarRet(<i32>imm); }
@inline export function sysIns(): void { execIns(); }
@inline export function sysOuts(): void { execOuts(); }

/** IN / OUT with the accumulator (System completes the instruction). */
@inline export function sysIn(port: i32, size: i32): void { execIn(port, size); }
@inline export function sysOut(port: i32, size: i32): void { execOut(port, size); }

/** POPF's flag write with the privilege rules (System's popfWrite); the caller commits. */
@inline export function sysPopf(v: u64, size: i32): void { popfWrite(v, size); }

const AC: u64 = 0x40000;

/** CLAC / STAC (CPL checked by the caller). */
export function sysSetAc(on: bool): void {
  const f = getFlags();
  setFlags(on ? f | AC : f & ~AC);
  setRip(nextIp);
}

@inline export function sysCli(): void { execCli(); }
@inline export function sysSti(): void { execSti(); }
@inline export function sysHlt(): void { execHlt(); }
@inline export function sysInt(v: i32): void { execInt(v); }
@inline export function sysInt3(): void { execInt3(); }
@inline export function sysInto(): void { execInto(); }
@inline export function sysIret(): void { execIret(); }
@inline export function sysCpuid(): void { execCpuid(); }
@inline export function sysRdmsr(): void { execRdmsr(); }
@inline export function sysWrmsr(): void { execWrmsr(); }
@inline export function sysRdtsc(): void { execRdtsc(); }
@inline export function sysRdtscp(): void { execRdtscp(); }
/** MOV to/from CRn/DRn with the GPR number of the other operand; System completes the instruction. */
@inline export function sysMovFromCr(cr: i32, gpr: i32): void { execMovFromCr(cr, gpr); }
@inline export function sysMovToCr(cr: i32, gpr: i32): void { execMovToCr(cr, gpr); }
@inline export function sysMovFromDr(dr: i32, gpr: i32): void { execMovFromDr(dr, gpr); }
@inline export function sysMovToDr(dr: i32, gpr: i32): void { execMovToDr(dr, gpr); }
@inline export function sysLgdt(): void { execLgdt(); }
@inline export function sysLidt(): void { execLidt(); }
@inline export function sysSgdt(): void { execSgdt(); }
@inline export function sysSidt(): void { execSidt(); }
/** SMSW r/m (ModRM decoded): 16 bits to memory, the operand size to a register. */
export function sysSmsw(): void {
  const v = execSmsw();
  if (status != ST_OK) return;
  if (modrmMod == 3) setReg(modrmRm, opSize, v);
  else {
    writeMem(eaSeg, ea, 2, v);
    if (status != ST_OK) return;
  }
  setRip(nextIp);
}
@inline export function sysLmsw(v: u32): void { execLmsw(v); }
@inline export function sysClts(): void { execClts(); }
@inline export function sysInvlpg(): void { execInvlpg(); }
// Not provided by System yet (no sys_* function): LLDT, LTR, SYSCALL/SYSRET, SYSENTER/SYSEXIT.
@inline export function sysLldt(sel: u32): void { internalErrorEmulation(); }
@inline export function sysLtr(sel: u32): void { internalErrorEmulation(); }
@inline export function sysXgetbv(): void { execXgetbv(); }
@inline export function sysXsetbv(): void { execXsetbv(); }
@inline export function sysWbinvd(): void { execWbinvd(); }
@inline export function sysInvd(): void { execInvd(); }
@inline export function sysVmmcall(): void { execVmmcall(); }
@inline export function sysSwapgs(): void { execSwapgs(); }
@inline export function sysSyscall(): void { internalErrorEmulation(); }
@inline export function sysSysret(): void { internalErrorEmulation(); }
@inline export function sysSysenter(): void { internalErrorEmulation(); }
@inline export function sysSysexit(): void { internalErrorEmulation(); }
