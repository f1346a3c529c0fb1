/**
 * `kvmsim run <scenario>`: a built-in scenario by name, or a scenario module
 * by path (a .ts/.js file exporting `scenario` = {name, description, run}).
 *
 * @module
 */
import { Command } from "commander";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UsageError } from "./errors.ts";
import { type Scenario, scenarioShapeError } from "./scenario.ts";
import { BUILTIN_SCENARIOS, findBuiltinScenario } from "./scenarios.ts";

const looksLikePath = (s: string) => /[/\\]/.test(s) || /\.(ts|js|mts|mjs)$/.test(s);

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Resolve a scenario argument: a built-in name, else a module path. */
export async function loadScenario(arg: string): Promise<Scenario> {
  const builtin = findBuiltinScenario(arg);
  if (builtin) return builtin;
  const names = BUILTIN_SCENARIOS.map((s) => s.name).join(", ");
  if (!looksLikePath(arg) && !(await isFile(arg))) {
    throw new UsageError(`unknown scenario "${arg}": expected one of ${names}, or a path to a scenario module (.ts)`);
  }
  try {
    const st = await Deno.stat(arg);
    if (!st.isFile) throw new Error("not a file");
  } catch (e) {
    throw new UsageError(`scenario module ${arg}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(resolve(arg)).href);
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new UsageError(`scenario module ${arg}: cannot load (${msg})`);
  }
  const bad = scenarioShapeError(mod.scenario);
  if (bad) throw new UsageError(`scenario module ${arg}: ${bad}`);
  return mod.scenario as Scenario;
}

export function runCommand(): Command<[string]> {
  return new Command("run")
    .description("run a scenario: a built-in name (see `kvmsim scenarios`) or a path to a scenario module")
    .argument("<scenario>", "built-in scenario name, or path to a .ts module exporting `scenario`")
    .action(async (arg) => {
      const s = await loadScenario(arg);
      await s.run({ log: (line) => console.log(line) });
    });
}
