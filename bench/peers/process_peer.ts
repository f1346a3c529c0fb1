/**
 * The measuring driver shared by the emulator peers that run as separate
 * processes (QEMU TCG, Bochs): one short calibration process sizes the
 * measuring process, whose marker intervals give the warm-up and timed
 * windows (bench/peers/chunked.ts). Every process is checked: exit through
 * the guest's exit sequence, every marker present and in order, and the
 * engine's own check (exit code, retired-instruction count).
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
import { PeerCheckError, type PeerSettings } from "./peer.ts";

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

/** Calibrate, then measure `warmup + runs` windows of `durationMs` in one process. */
export async function measureProcessLoop(
  engine: ProcessEngine,
  loop: ProcessLoop,
  s: Omit<PeerSettings, "paths">,
): Promise<ResultRow> {
  const dir = await Deno.makeTempDir({ prefix: `kvmsim-bench-${engine.name}-` });
  try {
    const cal = await runChecked(engine, loop, CALIBRATION_CHUNKS, dir, 60_000);
    const chunkMs = medianInterval(cal.markers.times);
    const windows = s.warmup + s.runs;
    let chunks = chunksFor(chunkMs, s.durationMs, windows);
    for (let attempt = 0;; attempt++) {
      const run = await runChecked(engine, loop, chunks, dir, Math.ceil(chunks * chunkMs * 4) + 30_000);
      const rates = windowRates(run.markers.times, unitsPerChunk(loop.body), s.durationMs, windows);
      if (rates.length === windows) return peerRow(loop.spec, summarize(rates.slice(s.warmup)));
      if (attempt === 1) {
        throw new PeerCheckError(
          engine.name,
          loop.spec.path,
          `${chunks} chunks gave ${rates.length} windows of ${s.durationMs} ms: expected ${windows}`,
        );
      }
      // Slower than calibrated (load burst): once more with twice the chunks.
      chunks *= 2;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The loops whose kvmsim counterpart is among `paths`. */
export function loopsFor(loops: readonly ProcessLoop[], paths: readonly { readonly path: string }[]): ProcessLoop[] {
  return loops.filter((l) => paths.some((p) => p.path === l.spec.compared_to));
}

/** Measure the selected loops, logging one line per row. */
export async function measureProcessLoops(
  engine: ProcessEngine,
  loops: readonly ProcessLoop[],
  settings: PeerSettings,
): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const loop of loopsFor(loops, settings.paths)) {
    const row = await measureProcessLoop(engine, loop, settings);
    settings.log?.(
      `  ${row.path} (${engine.name}): ${
        Math.round("exits_per_s" in row ? row.exits_per_s : row.instr_per_s)
      } ${row.unit}/s over ${row.runs} runs`,
    );
    rows.push(row);
  }
  return rows;
}
