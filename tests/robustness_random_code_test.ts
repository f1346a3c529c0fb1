// A guest can only crash itself: random bytes run as code in real, protected and long mode, from random
// registers, with random system state (segments, CR0/CR4/EFER bits, GDT/IDT, CR3) and guest debug on
// some, answered IO/MMIO reads and every exit resumed. Every KVM_RUN must return a known exit reason
// (never throw, trap or hang past its budget), and the vCPU's state stays readable.
import assert from "node:assert/strict";
import { createVmWithOneVcpu } from "../src/x86/setup.ts";
import { exitReasonName, KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { InvalidArgumentError } from "../src/errors.ts";
import { rng } from "./support/x86_gen.ts";

const END = new Set<number>([K.KVM_EXIT_SHUTDOWN, K.KVM_EXIT_INTERNAL_ERROR, K.KVM_EXIT_HLT, K.KVM_EXIT_FAIL_ENTRY]);

Deno.test("random code and random system state: every KVM_RUN returns a known exit, the simulator never fails", () => {
  const r = rng(0x6b766d);
  const seen = new Map<string, number>();
  let refused = 0;
  for (let t = 0; t < 600; t++) {
    const mode = (["real", "protected", "long"] as const)[t % 3];
    const code = Uint8Array.from({ length: 256 }, () => r() & 0xff);
    const { vcpu } = createVmWithOneVcpu({ code, mode, load: 0x1000 });
    const regs = vcpu.getRegs();
    for (const n of ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9"] as const) {
      regs[n] = BigInt(r()) << BigInt(r() & 31);
    }
    regs.rflags = BigInt(0x2 | (r() & 0xcd5));
    vcpu.setRegs(regs);
    if (t % 2 === 1) {
      const s = vcpu.getSregs();
      for (const n of ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const) {
        if ((r() & 3) !== 0) continue;
        s[n] = {
          ...s[n],
          type: r() & 15,
          s: r() & 1,
          dpl: r() & 3,
          db: r() & 1,
          l: r() & 1,
          g: r() & 1,
          present: r() & 1,
          limit: r() >>> 0,
          base: BigInt(r() >>> 0),
        };
      }
      if ((r() & 3) === 0) s.cr0 ^= 1n << BigInt(r() & 31);
      if ((r() & 3) === 0) s.cr4 ^= 1n << BigInt(r() & 22);
      if ((r() & 3) === 0) s.efer ^= 1n << BigInt(r() & 11);
      if ((r() & 7) === 0) s.cr3 = BigInt((r() >>> 0) & ~0xfff);
      if ((r() & 7) === 0) s.idt = { base: BigInt(r() >>> 0), limit: r() & 0xffff };
      if ((r() & 7) === 0) s.gdt = { base: BigInt(r() >>> 0), limit: r() & 0xffff };
      try {
        vcpu.setSregs(s);
      } catch (e) {
        assert.ok(e instanceof InvalidArgumentError, String(e)); // what KVM_SET_SREGS refuses
        refused++;
      }
      if ((r() & 3) === 0) {
        vcpu.setGuestDebug({
          control: K.KVM_GUESTDBG_ENABLE | (r() & 1 ? K.KVM_GUESTDBG_SINGLESTEP : K.KVM_GUESTDBG_USE_SW_BP),
        });
      }
    }
    for (let k = 0; k < 40; k++) {
      const e = vcpu.runRaw(2000);
      const name = exitReasonName(e);
      assert.ok(name !== undefined && !name.startsWith("unknown"), `case ${t} (${mode}): exit ${e}`);
      seen.set(name, (seen.get(name) ?? 0) + 1);
      if (END.has(e)) break;
      if (e === K.KVM_EXIT_IO || e === K.KVM_EXIT_MMIO) {
        vcpu.kvmRun.u8.fill(r() & 0xff, vcpu.runBase + 4096, vcpu.runBase + 4104);
      }
    }
    vcpu.getRegs();
    vcpu.getSregs();
    vcpu.getEvents();
  }
  // The cases reached the exits they are meant to exercise.
  for (
    const want of ["KVM_EXIT_IO", "KVM_EXIT_MMIO", "KVM_EXIT_SHUTDOWN", "KVM_EXIT_INTERNAL_ERROR", "KVM_EXIT_DEBUG"]
  ) {
    assert.ok((seen.get(want) ?? 0) > 0, `no ${want}: ${JSON.stringify([...seen])}`);
  }
  assert.ok(refused > 0, "no random state was refused by setSregs");
});
