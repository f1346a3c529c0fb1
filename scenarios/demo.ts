/**
 * `kvmsim run demo` (what `npm start` runs): a 64-bit guest written in
 * kvmsim's assembler greets through a 16550 UART on COM1, talks to a test
 * MMIO device, and stops through the debug-exit port. Then a tight OUT loop
 * measures how many IO exits per second the run loop turns around, with a
 * TypeScript device handling every one.
 *
 * @module
 */
import {
  type BusDevice,
  COM1_PORT,
  createVmWithOneVcpu,
  DEBUG_EXIT_PORT,
  DebugExitDevice,
  Serial16550,
  SERIAL_PORTS,
  TestMmioDevice,
} from "../mod.ts";
import { assemble } from "../src/asm/x86.ts";
import type { Scenario, ScenarioContext } from "../src/cli/scenario.ts";
import { ExitLog } from "./support/exits.ts";

const TEST_MMIO = 0xd000_0000;
const LOAD = 0x1000;

const GUEST = `
bits 64
COM1       equ ${COM1_PORT}
LSR        equ COM1 + 5
TEST_MMIO  equ ${TEST_MMIO}
DEBUG_EXIT equ ${DEBUG_EXIT_PORT}

start:
  mov rsi, greeting
  call puts

  mov ebx, TEST_MMIO
  mov dword [rbx], 0x12345678      ; MMIO write: register 0
  mov eax, [rbx]                   ; MMIO read it back
  cmp eax, 0x12345678
  jne fail
  mov rax, [rbx + 8]               ; 8-byte read of a register the host preset
  not rax
  mov [rbx + 0x10], rax            ; write its complement back

  mov rsi, bye
  call puts
  mov al, 0                        ; debug-exit value 0: success
  out DEBUG_EXIT, al
  hlt                              ; not reached: the debug-exit port stops the run

fail:
  mov al, 1
  out DEBUG_EXIT, al
  hlt

; puts: print the NUL-terminated string at rsi, polling LSR.THRE before each byte.
puts:
  mov dx, LSR
.wait:
  in al, dx
  test al, 0x20
  jz .wait
  lodsb
  test al, al
  jz .done
  mov dx, COM1
  out dx, al
  jmp puts
.done:
  ret

greeting: db "Hello from a 64-bit kvmsim guest!", 10, 0
bye:      db "MMIO checked, leaving through the debug-exit port.", 10, 0
`;

function greet(ctx: ScenarioContext): void {
  const code = assemble(GUEST, { bits: 64, origin: LOAD }).bytes;
  const { vm, vcpu } = createVmWithOneVcpu({ mode: "long", code, load: LOAD });
  const serial = new Serial16550();
  const mmio = new TestMmioDevice(0x1000);
  mmio.poke(8, 0x0123_4567_89ab_cdefn, 8);
  vm.pio.insert(serial, COM1_PORT, SERIAL_PORTS);
  vm.pio.insert(new DebugExitDevice(), DEBUG_EXIT_PORT, 1);
  vm.mmio.insert(mmio, TEST_MMIO, 0x1000);

  const log = new ExitLog();
  ctx.log(`guest (${code.length} bytes at 0x${LOAD.toString(16)}, long mode) says:`);
  const result = vm.runUntil(vcpu, { onExit: log.onExit, maxExits: 100_000 });
  ctx.log(
    `exits: ${result.exits} (${
      Object.entries(result.counts).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(", ")
    })`,
  );
  for (const line of log.lines()) ctx.log(`  ${line}`);
  const stop = result.stop;
  ctx.log(
    `stop: ${stop.kind}${stop.kind === "debug-exit" ? ` value ${stop.value} (QEMU exit code ${stop.code})` : ""}`,
  );
  const echoed = mmio.regs.slice(0x10, 0x18);
  const expect = 0x0123_4567_89ab_cdefn ^ 0xffff_ffff_ffff_ffffn;
  const got = new DataView(echoed.buffer).getBigUint64(0, true);
  if (stop.kind !== "debug-exit" || stop.value !== 0 || got !== expect) {
    throw new Error(
      `demo guest failed: stop ${
        JSON.stringify(stop, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))
      }, MMIO echo 0x${got.toString(16)} (expected 0x${expect.toString(16)})`,
    );
  }
  ctx.log(`test device: ${mmio.accesses.length} accesses, register 0x10 = 0x${got.toString(16)} (~0x123456789abcdef)`);
}

/** A port device that only counts (the "TS handler in the loop"). */
class Counter implements BusDevice {
  readonly name = "counter";
  writes = 0;
  read(_o: number, data: Uint8Array): void {
    data.fill(0);
  }
  write(): void {
    this.writes++;
  }
}

function throughput(ctx: ScenarioContext, seconds = 0.5): void {
  // l: out 0x80, al ; jmp l
  const { vm, vcpu } = createVmWithOneVcpu({ mode: "long", code: [0xe6, 0x80, 0xeb, 0xfc], load: LOAD });
  const counter = new Counter();
  vm.pio.insert(counter, 0x80, 1);
  vm.runUntil(vcpu, { maxExits: 100_000 }); // warm up the JIT
  let exits = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < seconds * 1000) {
    const r = vm.runUntil(vcpu, { maxExits: 250_000 });
    if (r.stop.kind !== "max-exits") throw new Error(`throughput loop stopped early: ${r.stop.kind}`);
    exits += r.exits;
    elapsed = performance.now() - t0;
  }
  ctx.log(
    `io-out exits: ${(exits / elapsed / 1000).toFixed(1)} M/s (${exits} exits in ${
      (elapsed / 1000).toFixed(2)
    } s, each handled by a TS device)`,
  );
}

export const scenario: Scenario = {
  name: "demo",
  description: "64-bit guest: serial greeting on COM1, MMIO to a test device, debug-exit stop; then IO exits/s",
  run(ctx) {
    greet(ctx);
    throughput(ctx);
  },
};
