/**
 * The KVM backend's ioctl numbers (computed with _IO/_IOR/_IOW/_IOWR from the
 * layout tables) and its extra struct layouts against gcc on the installed
 * <linux/kvm.h>, <signal.h> and <time.h>. Skipped without gcc or the header.
 */
import assert from "node:assert/strict";
import { layOut } from "../src/abi/layout.ts";
import { BACKEND_STRUCTS, ioc, KVM_CAPS, KVM_IOCTLS } from "../src/backends/kvm/uapi.ts";

function haveGcc(): boolean {
  try {
    Deno.statSync("/usr/include/linux/kvm.h");
    return new Deno.Command("gcc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}
const GCC = haveGcc();
if (!GCC) console.warn("backend_kvm_uapi_test: gcc or /usr/include/linux/kvm.h missing: skipped");

/** Compile and run `printf` lines; returns name → value. */
function measure(lines: string[]): Map<string, bigint> {
  const dir = Deno.makeTempDirSync({ prefix: "kvmsim-uapi-" });
  try {
    const src =
      `#define _GNU_SOURCE\n#include <stdio.h>\n#include <stddef.h>\n#include <signal.h>\n#include <time.h>\n` +
      `#include <linux/kvm.h>\nint main(void){\n${lines.join("\n")}\nreturn 0;}\n`;
    Deno.writeTextFileSync(`${dir}/u.c`, src);
    const cc = new Deno.Command("gcc", { args: ["-o", `${dir}/u`, `${dir}/u.c`] }).outputSync();
    if (!cc.success) throw new Error(`gcc failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const out = new TextDecoder().decode(new Deno.Command(`${dir}/u`).outputSync().stdout);
    return new Map(
      out.trim().split("\n").map((l) => {
        const [k, v] = l.split(" ");
        return [k!, BigInt(v!)];
      }),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name: "KVM ioctl numbers and capability numbers equal <linux/kvm.h>",
  ignore: !GCC,
  fn() {
    const names = Object.keys(KVM_IOCTLS);
    const caps = Object.keys(KVM_CAPS);
    const got = measure([
      ...names.map((n) => `printf("${n} %llu\\n", (unsigned long long)${n});`),
      ...caps.map((n) => `printf("${n} %llu\\n", (unsigned long long)${n});`),
    ]);
    for (const n of names) assert.equal(KVM_IOCTLS[n as keyof typeof KVM_IOCTLS], got.get(n), n);
    for (const n of caps) assert.equal(BigInt(KVM_CAPS[n as keyof typeof KVM_CAPS]), got.get(n), n);
  },
});

Deno.test({
  name: "backend struct layouts (kvm_msrs, kvm_cpuid2, kvm_dirty_log, kvm_enable_cap, itimerspec, sigevent) equal gcc",
  ignore: !GCC,
  fn() {
    const lines: string[] = [];
    const want = new Map<string, bigint>();
    for (const def of BACKEND_STRUCTS) {
      const l = layOut(def);
      const c = `struct ${def.name}`;
      lines.push(`printf("${def.name}# %zu\\n", sizeof(${c}));`);
      want.set(`${def.name}#`, BigInt(l.size));
      for (const f of l.fields) {
        lines.push(`printf("${def.name}#${f.path} %zu\\n", offsetof(${c}, ${f.path}));`);
        want.set(`${def.name}#${f.path}`, BigInt(f.offset));
      }
    }
    const got = measure(lines);
    for (const [k, v] of want) assert.equal(v, got.get(k), k);
  },
});

Deno.test("ioc: _IOC packs direction, size, type and number; rejects oversize", () => {
  assert.equal(ioc(3, 0xae, 0x05, 8), 0xc008ae05n); // KVM_GET_SUPPORTED_CPUID
  assert.equal(ioc(0, 0xae, 0x80, 0), 0xae80n); // KVM_RUN
  assert.throws(() => ioc(1, 0xae, 1, 1 << 14), /expected 0\.\.16383/);
});
