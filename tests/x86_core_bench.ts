/**
 * Raw interpreter speed of the core on a `dec ecx; jnz` loop through the real run()
 * (not a test: `deno run -A tests/x86_core_bench.ts [iterations] [budget]`).
 * KVMSIM_CORE_WASM=path runs another build of the core. Prints the median of 5 runs.
 */
import { CoreVm } from "./x86_core_harness.ts";

const n = Number(Deno.args[0] ?? 50_000_000);
const budget = Number(Deno.args[1] ?? 1_000_000);
const le = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
const loops = {
  // mov ecx, n; l: dec ecx; jnz l; hlt
  long: [0xb9, ...le(n), 0xff, 0xc9, 0x75, 0xfc, 0xf4],
  // 32-bit protected mode: mov ecx, n; l: dec ecx (49); jnz l; hlt
  prot: [0xb9, ...le(n), 0x49, 0x75, 0xfd, 0xf4],
} as const;
for (const [mode, bytes] of Object.entries(loops)) {
  const rates: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const c = new CoreVm(mode as "long" | "prot").load([...bytes]);
    const t0 = performance.now();
    const o = c.run(budget, 1 << 20);
    const dt = (performance.now() - t0) / 1000;
    if (o.kind !== "hlt" || c.reg("rcx") !== 0n) throw new Error(`${mode}: loop did not finish (${o.kind})`);
    rates.push((2 * n + 2) / dt);
  }
  rates.sort((a, b) => a - b);
  console.log(
    `${mode}: dec ecx/jnz ${(rates[2]! / 1e6).toFixed(1)} M instructions/s (median of 5; min ${
      (rates[0]! / 1e6).toFixed(1)
    }, max ${(rates[4]! / 1e6).toFixed(1)})`,
  );
}
