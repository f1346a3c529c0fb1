// HLT, VMMCALL, SWAPGS, CLI/STI, WBINVD/INVD. Each exec* completes its instruction.
import {
  KVM_EXIT_HLT, KVM_EXIT_HYPERCALL, KVM_EXIT_HYPERCALL_LONG_MODE, KVM_HC_MAP_GPA_RANGE, KVM_RUN_HYPERCALL_ARGS,
  KVM_RUN_HYPERCALL_FLAGS, KVM_RUN_HYPERCALL_NR, KVM_RUN_HYPERCALL_RET, VMC_HYPERCALL_EXIT_MASK, VM_CONTROL_BASE,
  VS_KERNEL_GS_BASE, VS_PENDING_FLAGS, VS_PENDING_RIP, VS_SEG_GS_BASE,
} from "../abi.generated";
import { RAX, RBX, RCX, RDX, RSI, RUN, S, reg64, setReg64, setRip } from "./cpu";
import { nextIp } from "./decode_state";
import { EXC_UD, gp0, raise } from "./exceptions";
import { MODE_LONG, MODE_REAL, RFLAGS_IF, RFLAGS_IOPL, cpl, mode } from "./mode";
import { PEND_HYPERCALL } from "./mem";
import { breakLoop, getFlags, setFlags } from "./core_link";
import { exitTo } from "../kvm/exits";
import { setInterruptShadow } from "./sys_int";

/** HLT: KVM_EXIT_HLT with RIP after the HLT (userspace irqchip); #GP(0) at CPL > 0. */
export function execHlt(): void {
  if (cpl() != 0) { gp0(); return; }
  setRip(nextIp);
  exitTo(KVM_EXIT_HLT);
}

/** WBINVD / INVD: no caches to flush; #GP(0) at CPL > 0. */
export function execWbinvd(): void {
  if (cpl() != 0) { gp0(); return; }
  setRip(nextIp);
}
export function execInvd(): void { execWbinvd(); }

const KVM_HC_VAPIC_POLL_IRQ: u64 = 1;
const KVM_HC_KICK_CPU: u64 = 5;
const KVM_HC_CLOCK_PAIRING: u64 = 9;
const KVM_HC_SEND_IPI: u64 = 10;
const KVM_HC_SCHED_YIELD: u64 = 11;
const KVM_EPERM: u64 = 1;
const KVM_EINVAL: u64 = 22;
const KVM_EOPNOTSUPP: u64 = 95;
const KVM_ENOSYS: u64 = 1000;
/** APIC_DEST_MASK | APIC_SHORT_MASK of the ICR (kvm_pv_send_ipi rejects them). */
const ICR_DEST_SHORT: u64 = 0x800 | 0xc0000;

/**
 * VMMCALL as Linux arch/x86/kvm/x86.c kvm_emulate_hypercall(): nr = RAX, a0..a2 =
 * RBX, RCX, RDX (truncated to 32 bits outside 64-bit mode); CPL > 0 → RAX =
 * -KVM_EPERM; KVM_HC_VAPIC_POLL_IRQ → 0; KVM_HC_MAP_GPA_RANGE with the number's bit
 * in KVM_CAP_EXIT_HYPERCALL's mask → KVM_EXIT_HYPERCALL (nr, args[0..2] = gpa,
 * npages, attrs; flags = KVM_EXIT_HYPERCALL_LONG_MODE in 64-bit mode; RAX =
 * hypercall.ret on completion), after the -KVM_EINVAL checks (unaligned gpa, no
 * pages, wrap). The PV calls KVM answers in the kernel, as for a VM without an
 * in-kernel LAPIC and without KVM_CAP_ENFORCE_PV_FEATURE_CPUID (guest_pv_has() is then
 * true): KICK_CPU and SCHED_YIELD find no vCPU to kick/yield to → 0; SEND_IPI → -KVM_EINVAL
 * for an ICR with destination mode/shorthand bits, else -EOPNOTSUPP (no APIC map);
 * CLOCK_PAIRING (64-bit hosts) → -KVM_EOPNOTSUPP (no TSC-based host clock to pair with).
 * Anything else → -KVM_ENOSYS. Outside 64-bit mode RAX gets the result truncated to
 * 32 bits. RIP moves past the VMMCALL.
 */
export function execVmmcall(): void {
  const op64 = mode == MODE_LONG;
  let nr = reg64(RAX);
  let a0 = reg64(RBX); let a1 = reg64(RCX); let a2 = reg64(RDX);
  if (!op64) { nr &= 0xffffffff; a0 &= 0xffffffff; a1 &= 0xffffffff; a2 &= 0xffffffff; }
  let ret: u64;
  if (cpl() != 0) ret = -KVM_EPERM;
  else if (nr == KVM_HC_VAPIC_POLL_IRQ || nr == KVM_HC_KICK_CPU || nr == KVM_HC_SCHED_YIELD) ret = 0;
  else if (nr == KVM_HC_SEND_IPI) {
    const icr = op64 ? reg64(RSI) : reg64(RSI) & 0xffffffff;
    ret = (icr & ICR_DEST_SHORT) != 0 ? -KVM_EINVAL : -KVM_EOPNOTSUPP;
  } else if (nr == KVM_HC_CLOCK_PAIRING) ret = -KVM_EOPNOTSUPP;
  else if (nr == <u64>KVM_HC_MAP_GPA_RANGE && (load<u32>(VM_CONTROL_BASE + VMC_HYPERCALL_EXIT_MASK) & (1 << KVM_HC_MAP_GPA_RANGE)) != 0) {
    if ((a0 & 0xfff) != 0 || a1 == 0 || (a0 >> 12) + a1 <= (a0 >> 12)) ret = -KVM_EINVAL;
    else {
      store<u64>(RUN + KVM_RUN_HYPERCALL_NR, nr);
      store<u64>(RUN + KVM_RUN_HYPERCALL_ARGS, a0);
      store<u64>(RUN + KVM_RUN_HYPERCALL_ARGS + 8, a1);
      store<u64>(RUN + KVM_RUN_HYPERCALL_ARGS + 16, a2);
      for (let i = 3; i < 6; i++) store<u64>(RUN + KVM_RUN_HYPERCALL_ARGS + i * 8, 0);
      store<u64>(RUN + KVM_RUN_HYPERCALL_RET, 0);
      store<u64>(RUN + KVM_RUN_HYPERCALL_FLAGS, op64 ? <u64>KVM_EXIT_HYPERCALL_LONG_MODE : 0);
      store<u64>(S + VS_PENDING_RIP, nextIp);
      store<u32>(S + VS_PENDING_FLAGS, load<u32>(S + VS_PENDING_FLAGS) | PEND_HYPERCALL);
      exitTo(KVM_EXIT_HYPERCALL);
      return;
    }
  } else ret = -KVM_ENOSYS;
  setReg64(RAX, op64 ? ret : ret & 0xffffffff);
  setRip(nextIp);
}

/** SWAPGS: 64-bit mode only (#UD otherwise), CPL 0 (#GP). */
export function execSwapgs(): void {
  if (mode != MODE_LONG) { raise(EXC_UD); return; }
  if (cpl() != 0) { gp0(); return; }
  const g = load<u64>(S + VS_SEG_GS_BASE);
  store<u64>(S + VS_SEG_GS_BASE, load<u64>(S + VS_KERNEL_GS_BASE));
  store<u64>(S + VS_KERNEL_GS_BASE, g);
  setRip(nextIp);
}

function iopl(): i32 { return <i32>((getFlags() & RFLAGS_IOPL) >> 12); }

/** CLI: #GP(0) when CPL > IOPL in protected mode (no VME/PVI). */
export function execCli(): void {
  if (mode != MODE_REAL && cpl() > iopl()) { gp0(); return; }
  setFlags(getFlags() & ~RFLAGS_IF);
  setRip(nextIp);
}

/** STI: as CLI; setting IF opens the one-instruction interrupt shadow. */
export function execSti(): void {
  if (mode != MODE_REAL && cpl() > iopl()) { gp0(); return; }
  const f = getFlags();
  if ((f & RFLAGS_IF) == 0) { setFlags(f | RFLAGS_IF); setInterruptShadow(); }
  setRip(nextIp);
  breakLoop();
}


