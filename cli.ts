/**
 * The kvmsim command line: `deno run -A cli.ts <command>` or `npx kvmsim <command>`.
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { exitsCommand, layoutCommand } from "./src/cli/layout.ts";
import { failAndExit, UsageError } from "./src/cli/errors.ts";
import { execCommand } from "./src/cli/exec.ts";
import { diffCommand } from "./src/cli/diff.ts";
import { runCommand } from "./src/cli/run.ts";
import { scenariosCommand } from "./src/cli/scenarios.ts";
import { benchCommand } from "./src/cli/bench.ts";

export function buildCli(): Command {
  const program = new Command("kvmsim")
    .description("a simulated /dev/kvm: run x86 guests, inspect the KVM ABI")
    .version("0.1.0");
  program.addCommand(layoutCommand());
  program.addCommand(exitsCommand());
  program.addCommand(runCommand());
  program.addCommand(execCommand());
  program.addCommand(diffCommand());
  program.addCommand(scenariosCommand());
  program.addCommand(benchCommand());
  for (const c of program.commands) c.exitOverride();
  program.exitOverride();
  return program;
}

if (import.meta.main) {
  try {
    await buildCli().parseAsync(Deno.args, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; commander already printed its message for the rest.
      Deno.exit(e.exitCode === 0 ? 0 : 2);
    }
    failAndExit(e instanceof Error ? e : new UsageError(String(e)));
  }
}
