/** `kvmsim bench [options]`: the exit-throughput benchmark (bench/main.ts; `kvmsim bench --help`). */
import { Command } from "commander";

export function benchCommand(): Command<[string[]]> {
  return new Command("bench")
    .description("exit-throughput benchmark with peers in the same run (options: kvmsim bench --help)")
    .argument("[options...]", "bench options: --filter REGEX --duration S --runs N --peers LIST --json")
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args) => {
      const { main } = await import("../../bench/main.ts");
      const code = await main(args);
      if (code !== 0) Deno.exit(code);
    });
}
