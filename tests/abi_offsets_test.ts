/**
 * The layout tables against a C compiler's offsetof()/sizeof() over the
 * installed <linux/kvm.h>. Every field the installed header has is compared;
 * fields newer than the header (Debian 12 ships 6.1 uapi headers) are checked
 * against the spec sheet values instead.
 */
import assert from "node:assert/strict";
import { type LaidOut, layOut } from "../src/abi/layout.ts";
import { UAPI_STRUCTS } from "../src/abi/kvm_structs.ts";

const HEADER = "/usr/include/linux/kvm.h";

function haveCompiler(): boolean {
  try {
    Deno.statSync(HEADER);
    return new Deno.Command("gcc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Fields that C can name (array elements and padding members are named by their array). */
function cFields(l: LaidOut): { path: string; offset: number; size: number }[] {
  return l.fields.map((f) => ({ path: f.path, offset: f.offset, size: f.size * f.count }));
}

/** Compile offsetof/sizeof for every field; fields the header lacks are dropped and reported. */
function compileOffsets(structs: LaidOut[]): { measured: Map<string, [number, number]>; missing: string[] } {
  const dir = Deno.makeTempDirSync({ prefix: "kvmsim-abi-" });
  let wanted = structs.flatMap((l) => [`${l.name}#`, ...cFields(l).map((f) => `${l.name}#${f.path}`)]);
  const missing: string[] = [];
  for (let attempt = 0; attempt < 50; attempt++) {
    const lines = wanted.map((w) => {
      const [s, p] = w.split("#") as [string, string];
      return p === ""
        ? `printf("%s %zu %zu\\n", "${w}", (size_t)0, sizeof(struct ${s}));`
        : `printf("%s %zu %zu\\n", "${w}", offsetof(struct ${s}, ${p}), sizeof(((struct ${s} *)0)->${p}));`;
    });
    const src = `#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\nint main(void){\n${
      lines.join("\n")
    }\nreturn 0;}\n`;
    Deno.writeTextFileSync(`${dir}/abi.c`, src);
    const cc = new Deno.Command("gcc", { args: ["-o", `${dir}/abi`, `${dir}/abi.c`] }).outputSync();
    if (cc.success) {
      const out = new TextDecoder().decode(new Deno.Command(`${dir}/abi`).outputSync().stdout);
      const measured = new Map<string, [number, number]>();
      for (const line of out.trim().split("\n")) {
        const [k, o, s] = line.split(" ");
        measured.set(k!, [Number(o), Number(s)]);
      }
      Deno.removeSync(dir, { recursive: true });
      return { measured, missing };
    }
    // Drop the fields gcc says the header does not have, then retry.
    const err = new TextDecoder().decode(cc.stderr);
    const bad = new Set<number>();
    for (const m of err.matchAll(/abi\.c:(\d+):/g)) bad.add(Number(m[1]) - 5);
    if (bad.size === 0) throw new Error(`gcc failed:\n${err}`);
    missing.push(...wanted.filter((_, i) => bad.has(i)));
    wanted = wanted.filter((_, i) => !bad.has(i));
  }
  throw new Error("gave up dropping missing fields");
}

Deno.test({
  name: "layout tables match gcc offsetof() on <linux/kvm.h> (x86_64)",
  ignore: !haveCompiler(),
  fn() {
    const structs = UAPI_STRUCTS.map((s) => layOut(s, "x86_64"));
    const { measured, missing } = compileOffsets(structs);
    let compared = 0;
    for (const l of structs) {
      const size = measured.get(`${l.name}#`);
      assert.ok(size, `sizeof(struct ${l.name}) not measured`);
      assert.equal(l.size, size[1], `sizeof(struct ${l.name})`);
      for (const f of cFields(l)) {
        const got = measured.get(`${l.name}#${f.path}`);
        if (!got) continue;
        assert.deepEqual([f.offset, f.size], got, `struct ${l.name}: ${f.path} [offset, size]`);
        compared++;
      }
    }
    assert.ok(compared > 150, `only ${compared} fields compared`);
    // Only fields newer than Debian's 6.1 headers may be missing.
    const allowedMissing = /^kvm_run#(memory_fault|hypercall\.flags)/;
    const unexpected = missing.filter((m) => !allowedMissing.test(m));
    assert.deepEqual(unexpected, [], `fields the header lacks: ${unexpected.join(", ")}`);
  },
});

if (!haveCompiler()) {
  console.warn(
    "abi_offsets_test: gcc or /usr/include/linux/kvm.h missing (apt-get install gcc linux-libc-dev): skipped",
  );
}

Deno.test("kvm_run members newer than the installed header match the spec sheet", () => {
  // shared/spec/kvm_run_arm64.md §1.3 (bindgen assertions against Linux v6.15).
  const run = layOut(UAPI_STRUCTS[0]!, "x86_64");
  const at = (p: string) => run.fields.find((f) => f.path === p)?.offset;
  assert.equal(at("memory_fault.flags"), 32);
  assert.equal(at("memory_fault.gpa"), 40);
  assert.equal(at("memory_fault.size"), 48);
  assert.equal(at("hypercall.flags"), 96);
  assert.equal(at("hypercall.longmode"), 96);
  assert.equal(run.size, 2352);
  assert.equal(at("kvm_valid_regs"), 288);
  assert.equal(at("s"), 304);
});

Deno.test("kvm_run is laid out identically on arm64 and x86_64 (header and union)", () => {
  const x = layOut(UAPI_STRUCTS[0]!, "x86_64");
  const a = layOut(UAPI_STRUCTS[0]!, "arm64");
  assert.deepEqual(a.fields, x.fields);
  assert.equal(a.size, 2352);
});
