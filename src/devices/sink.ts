/**
 * Where device output goes: stdout (the default), a callback, or a buffer
 * that tests read back.
 *
 * @module
 */

/** Receives output bytes one at a time. */
export interface ByteSink {
  write(byte: number): void;
  /** Push buffered output out (called at the end of a run and on newline by line-buffered sinks). */
  flush?(): void;
}

/** Line-buffered stdout. */
export function stdoutSink(): ByteSink {
  const buf: number[] = [];
  const flush = () => {
    if (buf.length === 0) return;
    Deno.stdout.writeSync(Uint8Array.from(buf));
    buf.length = 0;
  };
  return {
    write(b) {
      buf.push(b);
      if (b === 0x0a || buf.length >= 4096) flush();
    },
    flush,
  };
}

/** Calls `fn` for every byte. */
export function callbackSink(fn: (byte: number) => void): ByteSink {
  return { write: fn };
}

/** A sink that keeps everything; `text()` decodes it as UTF-8. */
export class BufferSink implements ByteSink {
  readonly bytes: number[] = [];
  write(byte: number): void {
    this.bytes.push(byte);
  }
  text(): string {
    return new TextDecoder().decode(Uint8Array.from(this.bytes));
  }
  clear(): void {
    this.bytes.length = 0;
  }
}
