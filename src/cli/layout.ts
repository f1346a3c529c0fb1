/** `kvmsim layout <struct> [--arch] [--endian] [--json]` and `kvmsim exits`. */
import { Command } from "commander";
import { findStruct, layoutJson, layoutTable, parseArch } from "../abi/render.ts";
import { EXIT_REASONS } from "../abi/constants.ts";
import { UsageError } from "./errors.ts";

export function layoutCommand(): Command<[string]> {
  return new Command("layout")
    .description("offsets, sizes and padding of a KVM uapi or kvmsim-internal struct")
    .argument("<struct>", "struct name, e.g. kvm_run, kvm_regs, kvm_sregs, vcpu_state")
    .option("--arch <arch>", "x86_64 | i386 | arm64", "x86_64")
    .option("--endian <endian>", "little | big", "little")
    .option("--json", "print JSON")
    .action((name, opts) => {
      const def = findStruct(name);
      const arch = parseArch(opts.arch);
      if (opts.endian !== "little" && opts.endian !== "big") {
        throw new UsageError(`unknown endianness "${opts.endian}": expected little or big`);
      }
      console.log(
        opts.json ? JSON.stringify(layoutJson(def, arch, opts.endian), null, 2) : layoutTable(def, arch, opts.endian),
      );
    });
}

export function exitsCommand(): Command {
  return new Command("exits")
    .description("every KVM exit reason: number, name, simulated or not")
    .option("--json", "print JSON")
    .action((opts) => {
      if (opts.json) {
        console.log(
          JSON.stringify(EXIT_REASONS.map((e) => ({ nr: e.nr, name: e.name, simulated: e.simulated })), null, 2),
        );
        return;
      }
      console.log(`${"nr".padStart(3)}  ${"name".padEnd(26)} simulated`);
      for (const e of EXIT_REASONS) {
        console.log(`${String(e.nr).padStart(3)}  ${e.name.padEnd(26)} ${e.simulated ? "yes" : "no"}`);
      }
    });
}
