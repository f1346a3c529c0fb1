// A measuring stand-in, not part of the core (bench/exit_floor.ts builds it on the fly):
// the KVM_RUN of io-out/switch's guest loop (`out dx, al; jmp` back) as a core would run it
// if that exit-to-exit path were translated ahead of time. It keeps every check and store
// kvmsim's run() does on the path: the entry (VS_DIRTY, the memslot generation, kvm_run's
// sync regs, pending flags, replay count, immediate_exit, mode/events flags), the fast
// completion of the pending OUT (RIP, the retired count, the replay log), a translation
// lookup keyed by RIP and host address with a check of the code bytes, the JMP, the OUT's
// IO permission and coalescing tests, its replay fragment, pending completion and kvm_run
// io fields and data, and finish()'s exit bookkeeping (RFLAGS, the TSC fold, exit_reason
// with if_flag and ready_for_interrupt_injection, cr8, apic_base, the exit count). What it
// leaves out is decoding: its time is a bound for a translating exit path.
import {
  JIT_HOST, JIT_IP, KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_PIO_PAGE_OFFSET, KVM_RUN_APIC_BASE, KVM_RUN_CR8,
  KVM_RUN_EXIT_REASON, KVM_RUN_IMMEDIATE_EXIT, KVM_RUN_IO_DATA_OFFSET, KVM_RUN_IO_DIRECTION, KVM_RUN_KVM_DIRTY_REGS,
  KVM_RUN_KVM_VALID_REGS, PAGE_SIZE, REPLAY_ADDR, REPLAY_DATA, REPLAY_KIND, REPLAY_SIZEOF, VCPU_STATE_OFFSET,
  VMC_COALESCED_NZONES, VMC_MEMSLOT_GEN, VM_CONTROL_BASE, VS_APIC_BASE, VS_CR8, VS_DIRTY, VS_EXITS, VS_GPR,
  VS_INSTRUCTIONS, VS_INTERRUPT_SHADOW, VS_JIT, VS_PENDING_FLAGS, VS_PENDING_INSN_RIP, VS_PENDING_RIP, VS_REPLAY,
  VS_REPLAY_COUNT, VS_RFLAGS, VS_RIP, VS_TLB_GEN, VS_TSC,
} from "../abi.generated";
import { PEND_PIO_OUT } from "../x86/mem";
import { RK_PIO_OUT } from "../x86/replay";
import { jitSlot } from "../x86/jit";

const PIO_DATA: i32 = KVM_PIO_PAGE_OFFSET * PAGE_SIZE;

let lastRun: i32 = -1;
let S: i32 = 0;
let RUN: i32 = 0;
let tlbGen: u32 = 0;
let plainExit: bool = false;
let instrBase: u64 = 0;
let flags: u64 = 2;
// The trace: the JMP at jmpIp (host address jmpHost, 2 bytes EB rel8) to the OUT at outIp.
let jmpIp: u64 = 0;
let jmpHost: i32 = 0;
let code: u32 = 0;
let outIp: u64 = 0;

/** Record the translated path (the JMP's RIP and host address, its code bytes, the OUT's RIP) and its cache entry. */
export function setTrace(runBase: i32, ip: u64, host: i32, target: u64): void {
  jmpIp = ip;
  jmpHost = host;
  code = load<u16>(host);
  outIp = target;
  const e = runBase + VCPU_STATE_OFFSET + VS_JIT + jitSlot(ip);
  store<u64>(e + JIT_IP, ip);
  store<u32>(e + JIT_HOST, <u32>host);
}

export function run(runBase: i32, budget: i32): i32 {
  const dirty = load<u32>(runBase + VCPU_STATE_OFFSET + VS_DIRTY);
  let clean = plainExit && runBase == lastRun && dirty == 0;
  plainExit = false;
  if (runBase != lastRun || dirty != 0) {
    RUN = runBase;
    S = runBase + VCPU_STATE_OFFSET;
    lastRun = runBase;
    store<u32>(S + VS_DIRTY, 0);
    flags = load<u64>(S + VS_RFLAGS);
    instrBase = load<u64>(S + VS_INSTRUCTIONS);
  }
  const gen = load<u32>(VM_CONTROL_BASE + VMC_MEMSLOT_GEN);
  if (gen != tlbGen) {
    tlbGen = gen;
    store<u32>(S + VS_TLB_GEN, gen);
  }
  if ((load<u64>(RUN + KVM_RUN_KVM_VALID_REGS) | load<u64>(RUN + KVM_RUN_KVM_DIRTY_REGS)) != 0) return -22;
  const pf = load<u32>(S + VS_PENDING_FLAGS);
  const replays = load<u32>(S + VS_REPLAY_COUNT);
  const immediate = <u32>load<u8>(RUN + KVM_RUN_IMMEDIATE_EXIT);
  if ((pf | replays | immediate) != 0) {
    if (pf != PEND_PIO_OUT || replays != 1 || immediate != 0) unreachable();
    if (!clean && (load<u64>(S + VS_RIP) != load<u64>(S + VS_PENDING_INSN_RIP) ||
      load<u8>(S + VS_INTERRUPT_SHADOW) != 0 || (flags & 0x10100) != 0)) unreachable();
    store<u32>(S + VS_PENDING_FLAGS, 0);
    store<u64>(S + VS_RIP, load<u64>(S + VS_PENDING_RIP));
    store<u64>(S + VS_INSTRUCTIONS, load<u64>(S + VS_INSTRUCTIONS) + 1);
    store<u64>(S + VS_REPLAY_COUNT, 0);
  }
  if (budget <= 0) unreachable();
  // The translation of the path at RIP: found by RIP and host address, its code checked.
  let rip = load<u64>(S + VS_RIP);
  const e = S + VS_JIT + jitSlot(rip);
  if (rip != jmpIp || load<u64>(e + JIT_IP) != rip || load<u32>(e + JIT_HOST) != <u32>jmpHost ||
    load<u16>(jmpHost) != <u16>code) unreachable();
  // JMP rel8, then OUT DX, AL: CPL 0 (IOPL not needed), no coalesced zone.
  rip = outIp;
  const port = <u32>(load<u64>(S + VS_GPR + 16) & 0xffff);
  const v = <u32>(load<u64>(S + VS_GPR) & 0xff);
  if (load<u32>(VM_CONTROL_BASE + VMC_COALESCED_NZONES) != 0) unreachable();
  const n = load<u32>(S + VS_REPLAY_COUNT);
  const f = S + VS_REPLAY + <i32>n * REPLAY_SIZEOF;
  store<u64>(f + REPLAY_ADDR, <u64>port);
  store<u64>(f + REPLAY_DATA, <u64>v);
  store<u64>(f + REPLAY_KIND, <u64>RK_PIO_OUT | (<u64>1 << 32));
  store<u64>(S + VS_REPLAY_COUNT, <u64>(n + 1) | (<u64>(n + 1) << 32));
  store<u64>(S + VS_RIP, rip);
  store<u64>(S + VS_PENDING_RIP, rip + 1);
  store<u64>(S + VS_PENDING_INSN_RIP, rip);
  store<u32>(S + VS_PENDING_FLAGS, load<u32>(S + VS_PENDING_FLAGS) | PEND_PIO_OUT);
  store<u32>(RUN + PIO_DATA, v);
  store<u64>(RUN + KVM_RUN_IO_DIRECTION, <u64>KVM_EXIT_IO_OUT | (<u64>1 << 8) | (<u64>port << 16) | (<u64>1 << 32));
  store<u64>(RUN + KVM_RUN_IO_DATA_OFFSET, <u64>PIO_DATA);
  // One instruction (the JMP) retired before the exit.
  store<u64>(S + VS_INSTRUCTIONS, load<u64>(S + VS_INSTRUCTIONS) + 1);
  // finish()
  store<u64>(S + VS_RFLAGS, flags);
  const ins = load<u64>(S + VS_INSTRUCTIONS);
  if (ins != instrBase) {
    store<u64>(S + VS_TSC, load<u64>(S + VS_TSC) + (ins - instrBase));
    instrBase = ins;
  }
  const ifl = (flags & 0x200) != 0;
  const ready = ifl && load<u8>(S + VS_INTERRUPT_SHADOW) == 0;
  store<u64>(RUN + KVM_RUN_EXIT_REASON, <u64><u32>KVM_EXIT_IO | (ready ? <u64>1 << 32 : 0) | (ifl ? <u64>1 << 40 : 0));
  store<u64>(RUN + KVM_RUN_CR8, load<u64>(S + VS_CR8));
  store<u64>(RUN + KVM_RUN_APIC_BASE, load<u64>(S + VS_APIC_BASE));
  store<u64>(S + VS_EXITS, load<u64>(S + VS_EXITS) + 1);
  plainExit = true;
  return KVM_EXIT_IO;
}
