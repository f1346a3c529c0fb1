/**
 * A 16550A-style UART, enough for guests that print (the PC COM1 at 0x3f8).
 * Registers (offset, DLAB=0): 0 THR/RBR, 1 IER, 2 IIR (read) / FCR (write),
 * 3 LCR, 4 MCR, 5 LSR, 6 MSR, 7 SCR; with LCR.DLAB=1 offsets 0/1 are the
 * divisor latch. The transmitter is always empty (LSR.THRE|TEMT), so polled
 * output works; there are no interrupts (IIR = 0x01, "none pending"). Input
 * queued with {@link Serial16550.pushInput} is returned through RBR with
 * LSR.DR set while bytes remain.
 *
 * @module
 */
import { type BusAccess, type BusDevice, fillBytes } from "./bus.ts";
import { type ByteSink, stdoutSink } from "./sink.ts";

/** The standard COM1 base port. */
export const COM1_PORT = 0x3f8;
/** Number of ports a 16550 occupies. */
export const SERIAL_PORTS = 8;

const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const LCR_DLAB = 0x80;

export class Serial16550 implements BusDevice {
  readonly name: string;
  readonly sink: ByteSink;
  #ier = 0;
  #lcr = 0x03;
  #mcr = 0;
  #scr = 0;
  #dll = 0x01;
  #dlm = 0;
  #rx: number[] = [];
  /** Bytes the guest transmitted. */
  transmitted = 0;

  constructor(opts: { sink?: ByteSink; name?: string } = {}) {
    this.sink = opts.sink ?? stdoutSink();
    this.name = opts.name ?? "serial16550";
  }

  /** Queue bytes for the guest to read from RBR. */
  pushInput(bytes: ArrayLike<number> | string): void {
    const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    for (let i = 0; i < b.length; i++) this.#rx.push(b[i]! & 0xff);
  }

  /** Line status: transmitter always empty, data ready while input is queued. */
  lsr(): number {
    return LSR_THRE | LSR_TEMT | (this.#rx.length > 0 ? LSR_DR : 0);
  }

  read(offset: number, data: Uint8Array, _a: BusAccess): void {
    // Multi-byte accesses read the register at `offset`, upper bytes 0.
    fillBytes(data, 0);
    data[0] = this.#readReg(offset);
  }

  write(offset: number, data: Uint8Array, _a: BusAccess): void {
    this.#writeReg(offset, data[0]!);
  }

  #readReg(offset: number): number {
    const dlab = (this.#lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        return dlab ? this.#dll : (this.#rx.shift() ?? 0);
      case 1:
        return dlab ? this.#dlm : this.#ier;
      case 2:
        return 0xc1; // FIFOs enabled, no interrupt pending
      case 3:
        return this.#lcr;
      case 4:
        return this.#mcr;
      case 5:
        return this.lsr();
      case 6:
        return 0xb0; // DCD, DSR, CTS
      case 7:
        return this.#scr;
      default:
        return 0xff;
    }
  }

  #writeReg(offset: number, v: number): void {
    const dlab = (this.#lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        if (dlab) this.#dll = v;
        else {
          this.transmitted++;
          this.sink.write(v);
        }
        return;
      case 1:
        if (dlab) this.#dlm = v;
        else this.#ier = v & 0x0f;
        return;
      case 3:
        this.#lcr = v;
        return;
      case 4:
        this.#mcr = v & 0x1f;
        return;
      case 7:
        this.#scr = v;
        return;
      default:
        return; // FCR, LSR, MSR: writes ignored
    }
  }
}
