/**
 * A small exit log for the scenarios: record every exit as the JSON record
 * `kvmsim exec --json` prints, then print them grouped (a serial port polled
 * for every character would otherwise be one line per byte).
 *
 * @module
 */
import type { VcpuExit } from "../../mod.ts";
import { type ExitJson, exitLine, exitToJson } from "../../src/cli/exit_json.ts";

export class ExitLog {
  readonly records: ExitJson[] = [];

  /** Pass as `runUntil({onExit})`: records each exit after it was handled. */
  readonly onExit = (exit: VcpuExit): void => {
    if (exit.reason !== "intr") this.records.push(exitToJson(exit));
  };

  /**
   * Lines: exits in order of first appearance; IO exits to the same port and
   * direction are grouped as `N × io …` (without data), others appear as they are.
   */
  lines(): string[] {
    const groups = new Map<string, { count: number; line: string }>();
    for (const e of this.records) {
      const key = e.reason === "io" ? `io ${e.direction} port ${e.port} size ${e.size} count ${e.count}` : exitLine(e);
      const g = groups.get(key);
      if (g) {
        g.count++;
        g.line = key;
      } else groups.set(key, { count: 1, line: exitLine(e) });
    }
    const w = Math.max(1, ...[...groups.values()].map((g) => String(g.count).length));
    return [...groups.values()].map((g) => `${String(g.count).padStart(w)} × ${g.line}`);
  }
}
