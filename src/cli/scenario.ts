/**
 * The shape of a scenario module (built-in ones live in scenarios/; `kvmsim
 * run ./my.ts` loads any module that exports `scenario` of this shape).
 *
 * ```ts
 * import type { Scenario } from "kvmsim/src/cli/scenario.ts";
 * export const scenario: Scenario = {
 *   name: "hello",
 *   description: "one OUT and a HLT",
 *   run(ctx) {
 *     const { vcpu } = createVmWithOneVcpu({ code: [0xb0, 0x41, 0xe6, 0xe9, 0xf4] });
 *     ctx.log(`first exit: ${vcpu.run().reason}`);
 *   },
 * };
 * ```
 *
 * @module
 */

/** What a scenario gets from `kvmsim run`. */
export interface ScenarioContext {
  /** Print one line of the scenario's report on stdout. */
  log(line: string): void;
}

/** A runnable example. `run` may be async; throwing fails the run (exit code 1). */
export interface Scenario {
  readonly name: string;
  /** One line, shown by `kvmsim scenarios`. */
  readonly description: string;
  run(ctx: ScenarioContext): void | Promise<void>;
}

/** Whether `x` has the Scenario shape (for modules loaded by path). */
export function scenarioShapeError(x: unknown): string | undefined {
  if (typeof x !== "object" || x === null) {
    return "does not export `scenario` (expected export const scenario = {name, description, run})";
  }
  const s = x as Record<string, unknown>;
  if (typeof s.name !== "string" || s.name === "") return "`scenario.name` is not a non-empty string";
  if (typeof s.description !== "string") return "`scenario.description` is not a string";
  if (typeof s.run !== "function") return "`scenario.run` is not a function";
  return undefined;
}
