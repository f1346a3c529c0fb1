/**
 * Runs the first ```ts block under a README heading as a script against this
 * checkout's mod.ts and returns its output and the outputs its comments claim
 * (the `// …` comment on each console.log line).
 *
 * @module
 */
import assert from "node:assert/strict";

export interface ReadmeExampleRun {
  readonly code: string;
  readonly stdout: string;
  /** The text after `// ` on every console.log line, in order. */
  readonly expected: string[];
}

export async function runReadmeExample(heading: string): Promise<ReadmeExampleRun> {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf(heading));
  const code = section.match(/```ts\n([\s\S]*?)```/)?.[1];
  assert.ok(code, `no ts block under '${heading}'`);
  const modUrl = new URL("../../mod.ts", import.meta.url).href;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, code.replaceAll('"./mod.ts"', JSON.stringify(modUrl)));
    const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", file], env: { NO_COLOR: "1" } })
      .output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const stdout = new TextDecoder().decode(out.stdout);
    const expected = [...code.matchAll(/console\.log\(.*\/\/ (.+)$/gm)].map((m) => m[1]!.trim());
    return { code, stdout, expected };
  } finally {
    await Deno.remove(file);
  }
}
