/**
 * Guest-snippet tests: every snippet of every family table in tests/snippets/
 * runs on kvmsim through the public API (tests/snippets/run.ts); a mismatch
 * names the snippet, the field, the expected and the actual value. Snippets
 * listed in KNOWN_FAILURES (kvmsim bugs, each with its reason) must still
 * fail; one that passes fails the test so the list is kept current.
 */
import assert from "node:assert/strict";
import { checkSnippet, KNOWN_FAILURES, type Mismatch } from "./snippets/run.ts";
import { FAMILIES } from "./snippets/families.ts";

const show = (ms: Mismatch[]) => ms.map((m) => `  ${m.field}: expected ${m.expected}, actual ${m.actual}`).join("\n");

Deno.test("snippet tables: names are unique, KNOWN_FAILURES name existing snippets, every family has snippets", () => {
  const names = new Map<string, string>();
  const dups: string[] = [];
  for (const [family, list] of FAMILIES) {
    assert.ok(list.length > 0, `family ${family} has no snippets`);
    for (const s of list) {
      if (names.has(s.name)) dups.push(`${s.name} (${names.get(s.name)} and ${family})`);
      names.set(s.name, family);
    }
  }
  assert.deepEqual(dups, []);
  const unknown = [...KNOWN_FAILURES.keys()].filter((n) => !names.has(n));
  assert.deepEqual(unknown, [], "KNOWN_FAILURES entries without a snippet");
});

for (const [family, list] of FAMILIES) {
  Deno.test(`snippets: ${family} (${list.length})`, async (t) => {
    const failed: string[] = [];
    for (const s of list) {
      const ok = await t.step({
        name: s.name,
        fn: () => {
          const ms = checkSnippet(s);
          const known = KNOWN_FAILURES.get(s.name);
          if (known !== undefined) {
            assert.ok(ms.length > 0, `${s.name} passes now: remove it from KNOWN_FAILURES (${known})`);
            console.log(`known failure ${s.name}: ${known}\n${show(ms)}`);
            return;
          }
          assert.ok(ms.length === 0, `${family} / ${s.name}:\n${show(ms)}`);
        },
      });
      if (!ok) failed.push(s.name);
    }
    assert.deepEqual(failed, [], `${failed.length} of ${list.length} ${family} snippets failed`);
  });
}
