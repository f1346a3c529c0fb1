/**
 * `kvmsim exec`: the JSON contract (exits, stop reasons, --in answers,
 * all-ones for unanswered reads, regs after --set, the three modes, --asm and
 * --file), the text report, and the input errors (exit code 2, one line on
 * stderr). Independent runs are started together.
 */
import assert from "node:assert/strict";
import { execJson, kvmsim, REG_NAMES } from "./cli_support.ts";

/** `code` hex, zero-padded to `at` bytes, then `data` hex. */
function codeWithData(code: string, at: number, data: string): string {
  const c = code.replace(/\s+/g, "");
  if (c.length > at * 2) throw new Error(`code is ${c.length / 2} bytes, longer than ${at}`);
  return c.padEnd(at * 2, "0") + data;
}

Deno.test("exec --json: exits, stop reasons and limits", async () => {
  const [hello, maxExits, maxInsns, shutdown, internal, step] = await Promise.all([
    execJson(["--code", "b041e6e9f4"]), // mov al,0x41; out 0xe9,al; hlt
    execJson(["--code", "e680ebfc", "--max-exits", "3"]), // l: out 0x80,al; jmp l
    execJson(["--code", "eb fe", "--max-insns", "100"]), // jmp $
    execJson(["--code", "0f0b"]), // ud2 with not-present IDT gates → triple fault
    execJson(["--code", "0f28c1f4"]), // movaps xmm0,xmm1: SSE is outside kvmsim's integer ISA
    execJson(["--code", "9090f4", "--single-step"]),
  ]);
  assert.deepEqual(hello.exits, [
    { reason: "io", direction: "out", port: "0xe9", size: 1, count: 1, data: "0x41" },
    { reason: "hlt" },
  ]);
  assert.equal(hello.stop, "hlt");
  assert.deepEqual(Object.keys(hello.regs), REG_NAMES);
  assert.equal(hello.regs.rax, "0x41");
  assert.equal(hello.regs.rip, "0x1005");
  assert.equal(hello.regs.rsp, "0x0", "all GPRs start at 0");
  assert.equal(typeof hello.instructions, "number");
  assert.ok(hello.instructions >= 2);
  assert.deepEqual(Object.keys(hello).sort(), ["exits", "instructions", "regs", "stop"]);

  assert.equal(maxExits.stop, "max-exits");
  assert.equal(maxExits.exits.length, 3);
  for (const e of maxExits.exits) {
    assert.deepEqual(e, { reason: "io", direction: "out", port: "0x80", size: 1, count: 1, data: "0x0" });
  }

  assert.equal(maxInsns.stop, "max-insns");
  assert.deepEqual(maxInsns.exits, []);
  assert.equal(maxInsns.instructions, 100);
  assert.equal(maxInsns.regs.rip, "0x1000");

  assert.equal(shutdown.stop, "shutdown");
  assert.deepEqual(shutdown.exits, [{ reason: "shutdown" }]);

  assert.equal(internal.stop, "internal_error");
  assert.equal(internal.exits.length, 1);
  assert.equal(internal.exits[0]!.suberror, 1);
  assert.equal(internal.exits[0]!.suberror_name, "KVM_INTERNAL_ERROR_EMULATION");
  assert.match(String(internal.exits[0]!.insn_bytes), /^0f28/);

  assert.equal(step.stop, "hlt");
  assert.deepEqual(step.exits.map((e) => [e.reason, e.exception, e.pc]), [["debug", 1, "0x1001"], [
    "debug",
    1,
    "0x1002",
  ], ["hlt", undefined, undefined]]);
});

Deno.test("exec --json: MSR exits (--msr answers, #GP otherwise) and KVM_HC_MAP_GPA_RANGE hypercall exits", async () => {
  const rdmsr = "b934120000 0f32 f4"; // mov ecx,0x1234; rdmsr; hlt
  const [answered, failed, hypercall] = await Promise.all([
    execJson(["--code", rdmsr, "--msr", "0x1234=0x1122334455667788"]),
    execJson(["--code", rdmsr]),
    execJson(["--code", "0f01d9f4", "--set", "rax=12", "--set", "rbx=0x200000", "--set", "rcx=2", "--set", "rdx=0"]), // vmmcall; hlt
  ]);
  const msrExit = {
    reason: "x86_rdmsr",
    msr_reason: 2,
    msr_reason_name: "KVM_MSR_EXIT_REASON_UNKNOWN",
    index: "0x1234",
  };
  assert.deepEqual(answered.exits, [{ ...msrExit, data: "0x1122334455667788", error: false }, { reason: "hlt" }]);
  assert.equal(answered.regs.rax, "0x55667788");
  assert.equal(answered.regs.rdx, "0x11223344");
  assert.deepEqual(
    failed.exits,
    [{ ...msrExit, data: "0x0", error: true }, { reason: "shutdown" }],
    "#GP with no IDT gate: triple fault",
  );
  assert.equal(failed.stop, "shutdown");
  assert.deepEqual(hypercall.exits[0], {
    reason: "hypercall",
    nr: "0xc",
    args: ["0x200000", "0x2", "0x0", "0x0", "0x0", "0x0"],
    flags: "0x1",
    long_mode: true,
    ret: "0xfffffffffffffc18",
  });
  assert.equal(hypercall.regs.rax, "0xfffffffffffffc18", "-KVM_ENOSYS in RAX");
});

Deno.test("exec --json: --in answers, all-ones for other IN and MMIO reads, MMIO writes, regs after --set", async () => {
  // in al,0x60; mov bl,al; in ax,0x61; mov cx,ax; mov edi,0xd0000000; mov edx,[rdi]; mov dword [rdi],0x12345678; hlt
  const code = "e460 88c3 66e561 6689c1 bf000000d0 8b17 c70778563412 f4";
  const [io, regs] = await Promise.all([
    execJson(["--code", code, "--in", "0x60=0x1c"]),
    execJson([
      "--code",
      "f4",
      "--set",
      "rax=0x1122334455667788",
      "--set",
      "R15=-1",
      "--set",
      "rflags=0x202",
      "--set",
      "rsp=4096",
    ]),
  ]);
  assert.deepEqual(io.exits, [
    { reason: "io", direction: "in", port: "0x60", size: 1, count: 1, data: "0x1c" },
    { reason: "io", direction: "in", port: "0x61", size: 2, count: 1, data: "0xffff" },
    { reason: "mmio", phys_addr: "0xd0000000", len: 4, is_write: false, data: "0xffffffff" },
    { reason: "mmio", phys_addr: "0xd0000000", len: 4, is_write: true, data: "0x12345678" },
    { reason: "hlt" },
  ]);
  assert.equal(io.stop, "hlt");
  assert.equal(io.regs.rbx, "0x1c");
  assert.equal(io.regs.rcx, "0xffff");
  assert.equal(io.regs.rdx, "0xffffffff");

  assert.equal(regs.regs.rax, "0x1122334455667788");
  assert.equal(regs.regs.r15, "0xffffffffffffffff");
  assert.equal(regs.regs.rflags, "0x202");
  assert.equal(regs.regs.rsp, "0x1000");
  assert.equal(regs.regs.rip, "0x1001");
});

Deno.test("exec --json: real, protected and long mode; --load; string IO", async () => {
  const outAx = ["--code", "e780f4", "--set", "rax=0x11223344"]; // out 0x80, (e)ax; hlt
  const [real, prot, long, realLoad, strio] = await Promise.all([
    execJson(["--mode", "real", ...outAx]),
    execJson(["--mode", "protected", ...outAx]),
    execJson(["--mode", "long", ...outAx]),
    // mov ax,cs; mov bx,ds; mov cx,ss; out 0x80,ax; hlt — at 0x7c00
    execJson(["--mode", "real", "--load", "0x7c00", "--code", "8cc8 8cdb 8cd1 e780 f4", "--set", "rax=0x5555"]),
    // mov esi,0x1020; mov ecx,3; mov dx,0x3f8; rep outsb; mov edi,0x1030; mov cl,2; mov dx,0x60; rep insw; hlt; "abc" at 0x1020
    execJson([
      "--mode",
      "protected",
      "--in",
      "0x60=0xbeef",
      "--code",
      codeWithData("be20100000 b903000000 66baf803 f36e bf30100000 b102 66ba6000 f3666d f4", 0x20, "616263"),
    ]),
  ]);
  assert.deepEqual(real.exits[0], { reason: "io", direction: "out", port: "0x80", size: 2, count: 1, data: "0x3344" });
  assert.deepEqual(prot.exits[0], {
    reason: "io",
    direction: "out",
    port: "0x80",
    size: 4,
    count: 1,
    data: "0x11223344",
  });
  assert.deepEqual(long.exits[0], {
    reason: "io",
    direction: "out",
    port: "0x80",
    size: 4,
    count: 1,
    data: "0x11223344",
  });
  for (const r of [real, prot, long]) assert.equal(r.stop, "hlt");

  assert.deepEqual(
    realLoad.exits[0],
    { reason: "io", direction: "out", port: "0x80", size: 2, count: 1, data: "0x0" },
    "CS is 0 in real mode",
  );
  assert.equal(realLoad.regs.rbx, "0x0", "DS is 0");
  assert.equal(realLoad.regs.rcx, "0x0", "SS is 0");
  assert.equal(realLoad.regs.rip, "0x7c09");

  // KVM's string IO: REP OUTS one element per exit (count 1), REP INS one read-ahead batch (count > 1).
  assert.deepEqual(strio.exits, [
    { reason: "io", direction: "out", port: "0x3f8", size: 1, count: 1, data: "0x61" },
    { reason: "io", direction: "out", port: "0x3f8", size: 1, count: 1, data: "0x62" },
    { reason: "io", direction: "out", port: "0x3f8", size: 1, count: 1, data: "0x63" },
    { reason: "io", direction: "in", port: "0x60", size: 2, count: 2, data: ["0xbeef", "0xbeef"] },
    { reason: "hlt" },
  ]);
  assert.equal(strio.regs.rsi, "0x1023");
  assert.equal(strio.regs.rdi, "0x1034");
  assert.equal(strio.regs.rcx, "0x0");
});

Deno.test("exec: --asm (assembled in the mode's bits at --load) and --file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvmsim_cli_" });
  try {
    await Deno.writeTextFile(
      `${dir}/long.s`,
      "bits 64\n  mov rax, target\n  mov rbx, 0x1122334455667788\n  jmp rax\n  hlt\ntarget:\n  out 0x80, al\n  hlt\n",
    );
    await Deno.writeTextFile(`${dir}/real.s`, "  mov si, msg\n  lodsb\n  out 0x80, al\n  hlt\nmsg: db 'Z'\n");
    await Deno.writeFile(`${dir}/guest.bin`, new Uint8Array([0xb0, 0x7f, 0xe6, 0x81, 0xf4]));
    const [long, real, file, text] = await Promise.all([
      execJson(["--asm", `${dir}/long.s`, "--load", "0x200000"]),
      execJson(["--mode", "real", "--asm", `${dir}/real.s`, "--load", "0x600"]),
      execJson(["--file", `${dir}/guest.bin`]),
      kvmsim(["exec", "--file", `${dir}/guest.bin`]),
    ]);
    assert.equal(long.regs.rbx, "0x1122334455667788");
    assert.deepEqual(long.exits.map((e) => e.reason), ["io", "hlt"]);
    const target = BigInt(long.regs.rip!) - 3n; // out 0x80,al (2 bytes) + hlt (1) after the label
    assert.ok(target > 0x200000n && target < 0x200040n, `label assembled at origin --load (rip ${long.regs.rip})`);
    assert.equal(long.regs.rax, `0x${target.toString(16)}`);
    assert.equal(long.exits[0]!.data, `0x${(target & 0xffn).toString(16)}`);
    assert.deepEqual(real.exits[0], { reason: "io", direction: "out", port: "0x80", size: 1, count: 1, data: "0x5a" });
    assert.deepEqual(file.exits, [{ reason: "io", direction: "out", port: "0x81", size: 1, count: 1, data: "0x7f" }, {
      reason: "hlt",
    }]);

    assert.equal(text.code, 0);
    assert.match(
      text.stdout,
      /^exits \(2\):\n\s+1\s+io out port 0x81 size 1 count 1 data 0x7f\n\s+2\s+hlt\nstop: hlt\nregs:\n/,
    );
    assert.match(text.stdout, /rax\s+0x7f/);
    assert.match(text.stdout, /instructions: \d+\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec: bad input is one line on stderr and exit code 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvmsim_cli_" });
  await Deno.writeTextFile(`${dir}/bad.s`, "bits 64\n  nop\n  mov rax, [rbx+\n");
  const cases: [string[], RegExp][] = [
    [["--code", "b0zz"], /--code: "z" at position 2 is not a hex digit/],
    [["--code", "b04"], /--code: odd number of hex digits \(3\)/],
    [["--code", "f4", "--set", "eax=1"], /unknown register "eax" \(expected one of rax, rbx/],
    [["--code", "f4", "--set", "rax=1", "--set", "RAX=2"], /register rax is set twice/],
    [["--code", "f4", "--set", "rax=12g"], /--set rax: "12g" is not a number/],
    [["--mode", "v86", "--code", "f4"], /unknown mode "v86": expected real, protected or long/],
    [["--code", "f4", "--file", "x.bin"], /exactly one of --code, --file or --asm \(got --code and --file\)/],
    [[], /no guest code: give exactly one of --code HEX, --file PATH or --asm PATH/],
    [["--code", "f4", "--mem", "12Q"], /--mem: "12Q" is not a size/],
    [["--code", "f4", "--mem", "1M"], /--mem 1M: expected a multiple of 4K from 2048K/],
    [["--file", `${dir}/missing.bin`], /--file .*missing\.bin: cannot read/],
    [["--asm", `${dir}/bad.s`], /bad\.s:3:\d+: expected an expression/],
    [["--code", "f4", "--in", "0x60=1", "--in", "96=2"], /port 0x60 is given twice/],
    [["--code", "f4", "--in", "0x10000=1"], /--in port: 0x10000 does not fit 16 bits/],
    [["--code", "f4", "--load", "0xfff000"], /--load 0xfff000: 1 bytes of code at 0xfff000 end beyond 0xf00000/],
  ];
  try {
    const results = await Promise.all(cases.map(([args]) => kvmsim(["exec", ...args])));
    results.forEach((r, i) => {
      const [args, re] = cases[i]!;
      assert.equal(r.code, 2, `exec ${args.join(" ")}: exit code (stderr: ${r.stderr})`);
      assert.equal(r.stdout, "", `exec ${args.join(" ")}: nothing on stdout`);
      assert.match(r.stderr, /^kvmsim: [^\n]+\n$/, `exec ${args.join(" ")}: one line on stderr`);
      assert.match(r.stderr, re, `exec ${args.join(" ")}`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
