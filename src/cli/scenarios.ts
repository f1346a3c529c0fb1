/**
 * The built-in scenarios (scenarios/*.ts) and `kvmsim scenarios`.
 *
 * @module
 */
import { Command } from "commander";
import { scenario as demo } from "../../scenarios/demo.ts";
import { scenario as realMode } from "../../scenarios/real_mode.ts";
import { scenario as pagingFault } from "../../scenarios/paging_fault.ts";
import { scenario as dirtyLog } from "../../scenarios/dirty_log.ts";
import type { Scenario } from "./scenario.ts";

/** Built-in scenarios, in the order `kvmsim scenarios` lists them. */
export const BUILTIN_SCENARIOS: readonly Scenario[] = [demo, realMode, pagingFault, dirtyLog];

/** The built-in scenario called `name`, or undefined. */
export function findBuiltinScenario(name: string): Scenario | undefined {
  return BUILTIN_SCENARIOS.find((s) => s.name === name);
}

export function scenariosCommand(): Command {
  return new Command("scenarios")
    .description("list the built-in scenarios (run one with `kvmsim run <name>`)")
    .option("--json", "print JSON")
    .action((opts) => {
      if (opts.json) {
        console.log(
          JSON.stringify(BUILTIN_SCENARIOS.map((s) => ({ name: s.name, description: s.description })), null, 2),
        );
        return;
      }
      const w = Math.max(...BUILTIN_SCENARIOS.map((s) => s.name.length));
      for (const s of BUILTIN_SCENARIOS) console.log(`${s.name.padEnd(w)}  ${s.description}`);
    });
}
