/**
 * The machine a benchmark ran on (the `machine` object of latest.json).
 *
 * @module
 */

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly deno: string;
  readonly v8: string;
  readonly os: string;
  /** /proc/loadavg's 1-minute load when the run started (other processes skew results on 2 cores). */
  readonly loadavg_1m: number | null;
  /** Machine-speed yardstick: iterations/s of a one-block WASM count-down loop (see {@link wasmLoopRate}). */
  readonly wasm_loop_iter_per_s: number;
}

/**
 * A hand-assembled module: `loop(n: i32) -> i32` counts n down to 0 in one
 * wasm loop (local.get, i32.const, i32.sub, local.tee, br_if: the shape of
 * `dec ecx; jnz`). Its rate compares machines: on a given machine the guest
 * rates can be read as cycles relative to this loop.
 */
const LOOP_WASM = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x06,
  0x01,
  0x60,
  0x01,
  0x7f,
  0x01,
  0x7f, // type: (i32) -> i32
  0x03,
  0x02,
  0x01,
  0x00, // function 0 has type 0
  0x07,
  0x08,
  0x01,
  0x04,
  0x6c,
  0x6f,
  0x6f,
  0x70,
  0x00,
  0x00, // export "loop" = func 0
  0x0a,
  0x12,
  0x01,
  0x10,
  0x00, // code section (18 bytes): one body of 16 bytes, no locals
  0x03,
  0x40, // loop (void)
  0x20,
  0x00,
  0x41,
  0x01,
  0x6b,
  0x22,
  0x00, // local.get 0; i32.const 1; i32.sub; local.tee 0
  0x0d,
  0x00, // br_if 0
  0x0b, // end loop
  0x20,
  0x00,
  0x0b, // local.get 0; end
]);

/** Iterations per second of the WASM count-down loop (median of 5 runs of 2^26 iterations after a warm-up). */
export function wasmLoopRate(): number {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(LOOP_WASM));
  const loop = inst.exports.loop as (n: number) => number;
  const n = 1 << 26;
  loop(n);
  const rates: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const left = loop(n);
    const ms = performance.now() - t0;
    if (left !== 0) throw new Error(`calibration loop returned ${left}: expected 0`);
    rates.push((n * 1000) / ms);
  }
  rates.sort((a, b) => a - b);
  return rates[2]!;
}

function loadavg(): number | null {
  try {
    const v = Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The CPU model from /proc/cpuinfo ("unknown" where it cannot be read). */
export function cpuModel(cpuinfo: string | undefined): string {
  const m = cpuinfo?.match(/^model name\s*:\s*(.+)$/m);
  return m ? m[1]!.trim() : "unknown";
}

export function machineInfo(): MachineInfo {
  let cpuinfo: string | undefined;
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    cpuinfo = undefined;
  }
  return {
    cpu: cpuModel(cpuinfo),
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os} ${Deno.osRelease()} ${Deno.build.arch}`,
    loadavg_1m: loadavg(),
    wasm_loop_iter_per_s: wasmLoopRate(),
  };
}
