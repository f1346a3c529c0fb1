/**
 * `kvmsim run paging-fault`: a 64-bit guest stores to 4 GiB, outside the
 * identity map. The #PF is delivered through the guest's IDT to a handler
 * that reads CR2 and the error code, maps the page (a 1 GiB page onto GPA 0),
 * and returns with IRETQ; the store is retried and lands in RAM.
 *
 * @module
 */
import { createVmWithOneVcpu } from "../mod.ts";
import { assemble } from "../src/asm/x86.ts";
import type { Scenario } from "../src/cli/scenario.ts";

const LOAD = 0x1000;
const FAULT_VA = 0x1_0000_0000n;
const PF_VECTOR = 14;

const GUEST = `
bits 64
start:
  mov rdi, ${FAULT_VA}
  mov qword [rdi], 0x1234        ; #PF: not present, write → handler → retried
  mov rax, [rdi]                 ; reads 0x1234 back through the new mapping
  hlt

; #PF handler: the CPU pushed the error code, RIP, CS, RFLAGS, RSP, SS.
pf_handler:
  pop r13                        ; error code
  mov rax, cr2                   ; faulting address
  mov r12, rax
  inc r14                        ; faults handled
  mov rdx, -4096
  mov rcx, cr3
  and rcx, rdx
  mov rcx, [rcx]                 ; PML4[0] → PDPT
  and rcx, rdx
  mov qword [rcx + 4 * 8], 0x83  ; PDPT[4]: 1 GiB page at GPA 0, present + writable
  invlpg [r12]
  iretq
`;

/** A 64-bit interrupt gate (type 0xE, present, DPL 0) as two little-endian qwords. */
function interruptGate64(handler: bigint, selector: number): [bigint, bigint] {
  const lo = (handler & 0xffffn) | (BigInt(selector) << 16n) | (0x8en << 40n) | (((handler >> 16n) & 0xffffn) << 48n);
  return [lo, handler >> 32n];
}

/** The #PF error code in words (SDM Vol. 3 §4.7). */
function describePfError(err: number): string {
  return [
    err & 1 ? "protection violation" : "not present",
    err & 2 ? "write" : "read",
    err & 4 ? "user" : "supervisor",
    ...(err & 8 ? ["reserved bit set"] : []),
    ...(err & 16 ? ["instruction fetch"] : []),
  ].join(", ");
}

export const scenario: Scenario = {
  name: "paging-fault",
  description:
    "64-bit guest: a store outside the identity map takes #PF through the IDT, the handler maps the page and IRETQs",
  run(ctx) {
    const asm = assemble(GUEST, { bits: 64, origin: LOAD });
    const { vm, vcpu, layout } = createVmWithOneVcpu({ mode: "long", code: asm.bytes, load: LOAD });
    const [lo, hi] = interruptGate64(BigInt(asm.labels.get("pf_handler")!), vcpu.getSregs().cs.selector);
    vm.write64(layout.idt! + 16 * PF_VECTOR, lo);
    vm.write64(layout.idt! + 16 * PF_VECTOR + 8, hi);

    const result = vm.runUntil(vcpu, { maxExits: 100 });
    const r = vcpu.getRegs();
    const err = Number(r.r13);
    ctx.log(`stop: ${result.stop.kind} after ${result.instructions} instructions`);
    ctx.log(
      `#PF handled ${r.r14} time(s): CR2 = 0x${r.r12.toString(16)}, error code 0x${err.toString(16)} (${
        describePfError(err)
      })`,
    );
    if (result.stop.kind !== "hlt" || r.r14 !== 1n || r.r12 !== FAULT_VA || err !== 0x2 || r.rax !== 0x1234n) {
      const why = result.stop.kind === "internal_error" ? `: ${result.stop.message}` : "";
      throw new Error(
        `paging-fault guest failed: stop ${result.stop.kind}${why}; faults ${r.r14}, cr2 0x${
          r.r12.toString(16)
        }, error 0x${err.toString(16)}, rax 0x${r.rax.toString(16)}`,
      );
    }
    ctx.log(`guest read back 0x${r.rax.toString(16)}; GPA 0 holds 0x${vm.read64(0).toString(16)}`);
    const t = vm.translate(FAULT_VA, Number(vcpu.getSregs().cr3));
    ctx.log(
      `0x${FAULT_VA.toString(16)} now translates to GPA 0x${t.gpa.toString(16)} (a ${t.pageSize >> 20} MiB page)`,
    );
  },
};
