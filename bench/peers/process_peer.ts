/**
 * The measuring driver shared by the emulator peers that run as separate
 * processes (QEMU TCG, Bochs): one short calibration process sizes the
 * measuring processes, one per timed window, so that bench/peers/pairing.ts
 * can put each window between two kvmsim samples; a window is marker
 * intervals after the process's first chunk (bench/peers/chunked.ts). Every
 * process is checked: exit through the guest's exit sequence, every marker
 * present and in order, and the engine's own check (exit code,
 * retired-instruction count).
 *
 * @module
 */
import { peerRow, type PeerRowSpec, type ResultRow } from "../report.ts";
import { summarize } from "../stats.ts";
import {
  type ChunkBody,
  chunkedProgram,
  chunksFor,
  medianInterval,
  type ProcessRun,
  romImage,
  runMarked,
  tailLines,
  unitsPerChunk,
  windowRates,
} from "./chunked.ts";
import { PeerCheckError, type PeerLoop, type PeerPlan, type PeerSampler, type PeerSettings } from "./peer.ts";

/** One loop of a process peer and the kvmsim path it is compared with. */
export interface ProcessLoop {
  readonly spec: PeerRowSpec & { readonly engine: "qemu" | "bochs" };
  readonly body: ChunkBody;
}

/** How to start one emulator on a ROM and judge how it ended. */
export interface ProcessEngine {
  readonly name: "qemu" | "bochs";
  /** Guest code after the last chunk: ends the emulator process. */
  readonly exitAsm: string;
  /** Files it needs beside the ROM (config) and the command line. */
  invocation(dir: string, romPath: string): {
    readonly cmd: string;
    readonly args: readonly string[];
    readonly input?: string;
    readonly env?: Record<string, string>;
  };
  /** Why a finished process did not end as the guest program says (undefined: it did). */
  checkEnd(run: ProcessRun, body: ChunkBody, chunks: number): string | undefined;
}

/** Chunks of the calibration process. */
export const CALIBRATION_CHUNKS = 6;

/** Run the ROM of `chunks` chunks once and check everything the process says. */
async function runChecked(
  engine: ProcessEngine,
  loop: ProcessLoop,
  chunks: number,
  dir: string,
  timeoutMs: number,
): Promise<ProcessRun> {
  const path = loop.spec.path;
  const romPath = `${dir}/rom.bin`;
  Deno.writeFileSync(romPath, romImage(chunkedProgram(loop.body, chunks, engine.exitAsm)));
  const inv = engine.invocation(dir, romPath);
  const run = await runMarked(inv.cmd, inv.args, {
    timeoutMs,
    ...(inv.input === undefined ? {} : { input: inv.input }),
    ...(inv.env === undefined ? {} : { env: inv.env }),
  });
  const where = () =>
    `(exit code ${run.code}; stderr: ${tailLines(run.stderr)}${
      run.markers.text.trim() === "" ? "" : `; stdout: ${tailLines(run.markers.text, 2)}`
    })`;
  if (run.timedOut) {
    throw new PeerCheckError(
      engine.name,
      path,
      `killed after ${timeoutMs} ms with ${run.markers.times.length}/${chunks} chunk markers ${where()}`,
    );
  }
  if (run.markers.bad !== undefined) throw new PeerCheckError(engine.name, path, `${run.markers.bad} ${where()}`);
  if (run.markers.times.length !== chunks) {
    throw new PeerCheckError(
      engine.name,
      path,
      `${run.markers.times.length} chunk markers on stdout: expected ${chunks} ${where()}`,
    );
  }
  const bad = engine.checkEnd(run, loop.body, chunks);
  if (bad !== undefined) throw new PeerCheckError(engine.name, path, bad);
  return run;
}

/**
 * Start loop `loop` on `engine`: the calibration process (which also puts
 * the emulator in the page cache) gives the chunk time; then every
 * `sample()` is one process of just enough chunks for one window of
 * `durationMs` after its first chunk (boot, translation: never timed), the
 * process checked to its end. No process runs between two samples.
 * `settings.warmup` adds no processes: a fresh process's warm-up is its
 * first chunk, and the calibration process ran before the first sample.
 */
export async function openProcessLoop(
  engine: ProcessEngine,
  loop: ProcessLoop,
  s: PeerSettings,
): Promise<PeerSampler> {
  const dir = await Deno.makeTempDir({ prefix: `kvmsim-bench-${engine.name}-` });
  let open = true;
  const close = async () => {
    if (open) await Deno.remove(dir, { recursive: true });
    open = false;
  };
  let chunkMs: number;
  try {
    const cal = await runChecked(engine, loop, CALIBRATION_CHUNKS, dir, 60_000);
    chunkMs = medianInterval(cal.markers.times);
  } catch (e) {
    await close();
    throw e;
  }
  const sample = async (): Promise<number> => {
    if (!open) throw new PeerCheckError(engine.name, loop.spec.path, "sample() after close()");
    let chunks = chunksFor(chunkMs, s.durationMs, 1);
    for (let attempt = 0;; attempt++) {
      const run = await runChecked(engine, loop, chunks, dir, Math.ceil(chunks * chunkMs * 4) + 30_000);
      const rates = windowRates(run.markers.times, unitsPerChunk(loop.body), s.durationMs, 1);
      // Follow the machine: the next process is sized from this one's chunks.
      chunkMs = medianInterval(run.markers.times);
      if (rates.length === 1) return rates[0]!;
      if (attempt === 1) {
        throw new PeerCheckError(
          engine.name,
          loop.spec.path,
          `${chunks} chunks gave no window of ${s.durationMs} ms after the first chunk`,
        );
      }
      // Slower than calibrated (load burst): once more with twice the chunks.
      chunks *= 2;
    }
  };
  return { sample, close };
}

/** The row of `loop` on its own (no kvmsim pairing): open, `runs` samples, close. */
export async function measureProcessLoop(
  engine: ProcessEngine,
  loop: ProcessLoop,
  s: PeerSettings,
): Promise<ResultRow> {
  const sampler = await openProcessLoop(engine, loop, s);
  try {
    const rates: number[] = [];
    for (let i = 0; i < s.runs; i++) rates.push(await sampler.sample());
    return peerRow(loop.spec, summarize(rates));
  } finally {
    await sampler.close();
  }
}

/** The loops whose kvmsim counterpart is among `paths`. */
export function loopsFor(loops: readonly ProcessLoop[], paths: readonly { readonly path: string }[]): ProcessLoop[] {
  return loops.filter((l) => paths.some((p) => p.path === l.spec.compared_to));
}

/**
 * The plan of a process peer for `paths`: its loops whose counterpart is
 * selected, and a note for every selected path in `notCompared` (keyed by
 * path id, or by family for the whole family → reason).
 */
export function processPlan(
  engine: ProcessEngine,
  loops: readonly ProcessLoop[],
  notCompared: Readonly<Record<string, string>>,
  paths: readonly { readonly path: string }[],
): PeerPlan {
  const notes = paths.flatMap((p) => {
    const why = notCompared[p.path] ?? notCompared[p.path.slice(0, p.path.indexOf("/"))];
    return why === undefined ? [] : [`${p.path} not run on ${engine.name}: ${why}`];
  });
  const planned: PeerLoop[] = loopsFor(loops, paths).map((l) => ({
    spec: l.spec,
    open: (s) => openProcessLoop(engine, l, s),
  }));
  return { loops: planned, notes };
}
