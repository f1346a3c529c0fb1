/**
 * `kvmsim run real-mode`: a 16-bit real-mode guest installs its own INT 0x40
 * handler in the interrupt vector table and prints through it, one software
 * interrupt per character, to a 16550 UART on COM1.
 *
 * @module
 */
import { BufferSink, COM1_PORT, createVmWithOneVcpu, Serial16550, SERIAL_PORTS } from "../mod.ts";
import { assemble } from "../src/asm/x86.ts";
import type { Scenario } from "../src/cli/scenario.ts";
import { ExitLog } from "./support/exits.ts";

const LOAD = 0x7c00; // where a BIOS would put a boot sector

const GUEST = `
bits 16
COM1   equ ${COM1_PORT}
VECTOR equ 0x40

start:
  mov word [VECTOR * 4], putc      ; IVT entry: offset
  mov word [VECTOR * 4 + 2], 0     ;            segment
  mov si, msg
.next:
  lodsb
  test al, al
  jz .done
  int VECTOR
  jmp .next
.done:
  hlt

; INT 0x40: write AL to COM1.
putc:
  push dx
  mov dx, COM1
  out dx, al
  pop dx
  iret

msg: db "Hello from real mode, printed by an INT 0x40 handler!", 10, 0
`;

export const scenario: Scenario = {
  name: "real-mode",
  description: "16-bit guest at 0x7c00 prints through its own INT 0x40 handler (IVT) to COM1",
  run(ctx) {
    const code = assemble(GUEST, { bits: 16, origin: LOAD }).bytes;
    const { vm, vcpu } = createVmWithOneVcpu({ mode: "real", code, load: LOAD, memSize: 1 << 20 });
    vcpu.setRegs({ rsp: 0x7c00n }); // the stack grows down below the code
    const out = new BufferSink();
    vm.pio.insert(new Serial16550({ sink: out }), COM1_PORT, SERIAL_PORTS);

    const log = new ExitLog();
    const result = vm.runUntil(vcpu, { onExit: log.onExit, maxExits: 10_000 });
    ctx.log(`guest printed: ${JSON.stringify(out.text())}`);
    ctx.log(`exits: ${result.exits}, instructions: ${result.instructions}`);
    for (const line of log.lines()) ctx.log(`  ${line}`);
    const regs = vcpu.getRegs();
    const cs = vcpu.getSregs().cs;
    ctx.log(
      `stop: ${result.stop.kind} at cs:ip ${cs.selector.toString(16).padStart(4, "0")}:${
        regs.rip.toString(16).padStart(4, "0")
      }`,
    );
    const ivt = vm.guestView(0x40 * 4, 4);
    ctx.log(
      `IVT[0x40] = ${(ivt[3]! << 8 | ivt[2]!).toString(16).padStart(4, "0")}:${
        (ivt[1]! << 8 | ivt[0]!).toString(16).padStart(4, "0")
      }`,
    );
    if (result.stop.kind !== "hlt" || !out.text().startsWith("Hello from real mode")) {
      const why = result.stop.kind === "internal_error" ? `: ${result.stop.message}` : "";
      throw new Error(`real-mode guest failed: stop ${result.stop.kind}${why}; output ${JSON.stringify(out.text())}`);
    }
  },
};
