import assert from "node:assert/strict";
import { findStruct, layoutJson, layoutTable, parseArch } from "../src/abi/render.ts";

Deno.test("layoutTable() shows kvm_run's union members at 32 and the mmio tail padding", () => {
  const text = layoutTable(findStruct("struct kvm_run"), "x86_64", "little");
  assert.match(text, /^struct kvm_run \(x86_64, little-endian\): size 2352 \(0x930\), align 8/);
  assert.match(text, /\n\s+34\s+0x22\s+2\s+port {2}u16\n/);
  assert.match(text, /\n\s+53\s+0x35\s+3 {2}\(padding in mmio\)\n/);
});

Deno.test("layoutJson() lays u64 out with 4-byte alignment on i386", () => {
  const j = layoutJson(findStruct("kvm_userspace_memory_region"), "i386", "big") as {
    size: number;
    align: number;
    endian: string;
    fields: { path: string; offset: number }[];
  };
  assert.equal(j.size, 32);
  assert.equal(j.align, 4);
  assert.equal(j.endian, "big");
  assert.equal(j.fields.find((f) => f.path === "guest_phys_addr")?.offset, 8);
});

Deno.test("unknown struct and arch names are errors that list what is accepted", () => {
  assert.throws(() => findStruct("kvm_nope"), /unknown struct "kvm_nope": expected one of kvm_run, /);
  assert.throws(() => parseArch("mips"), /unknown arch "mips": expected one of x86_64, i386, arm64/);
});
