/**
 * CLI error convention: bad input is one line on stderr and exit code 2.
 *
 * @module
 */

/** Bad user input (value named, expectation stated). Exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Print `kvmsim: <message>` and exit 2 for input errors, 1 for anything else. */
export function failAndExit(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(`kvmsim: ${msg.split("\n")[0]}`);
  const input = e instanceof UsageError || e instanceof RangeError || e instanceof TypeError ||
    (e instanceof Error && /^(UsageError|AsmError|.*InputError)$/.test(e.name));
  Deno.exit(input ? 2 : 1);
}
