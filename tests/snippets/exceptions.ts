/**
 * Exceptions and their delivery: #DE (zero divisor, quotient overflow), #UD
 * (UD2, opcodes invalid in 64-bit mode, LOCK on a non-lockable instruction,
 * MOV CR1, XGETBV with CR4.OSXSAVE = 0), #BP, INT n, INTO, #GP (non-canonical
 * address, unknown MSR, a segment selector beyond the GDT limit or naming a
 * system descriptor, an instruction longer than 15 bytes), the saved
 * instruction pointer (faults: the faulting instruction; traps: the next
 * one), the 64-bit and 32-bit frames, error codes, real-mode delivery through
 * the IVT, and escalation to a triple fault (KVM_EXIT_SHUTDOWN).
 *
 * Two ways of observing: the environment's stubs (OUT of the vector to
 * ENV.exceptionPort, then HLT), or a handler the guest installs itself
 * (idt.ts) that pops the error code into RBX and leaves the saved RIP minus
 * the expected address in RDX (0 = right).
 *
 * Expectations: SDM vol. 3 ch. 6 (6.15 per-vector descriptions: fault/trap
 * class and error codes; 6.14.2 64-bit frame SS:RSP, RFLAGS, CS:RIP, error
 * code; 6.12.1 frames without privilege change), vol. 3 §20.1.4 (real-mode
 * IVT delivery: FLAGS, CS, IP pushed), vol. 2 DIV/IDIV/UD/INTO/XGETBV/
 * WRMSR/MOV CR, vol. 3 6.15 #DF and "triple fault → shutdown".
 *
 * Flags: not compared (except the pushed image where listed).
 */
import { ENV } from "./run.ts";
import { exceptionExits, type Snippet } from "./types.ts";
import { gate32, gate64, ivt } from "./idt.ts";

const P = ENV.exceptionPort;
const T = BigInt(ENV.stackTop);
const out: Snippet[] = [];

const viaStub = (name: string, mode: "long" | "protected", asm: string, vector: number, regs = {}): Snippet => ({
  name: `${name} [${mode}] → vector ${vector}`,
  mode,
  asm: `${asm}\nhlt`,
  regs,
  exits: exceptionExits(P, vector),
  expect: {},
});

for (const mode of ["long", "protected"] as const) {
  out.push(
    viaStub("div ebx with EBX = 0: #DE", mode, "div ebx", 0, { rax: 5n }),
    viaStub("div bl with quotient ≥ 256: #DE", mode, "mov ax, 0x1000\nmov bl, 0x10\ndiv bl", 0),
    viaStub("idiv ecx: 0x80000000 / -1 overflows: #DE", mode, "mov eax, 0x80000000\ncdq\nmov ecx, -1\nidiv ecx", 0),
    viaStub("idiv cx: -32768 / -1 overflows: #DE", mode, "mov ax, 0x8000\ncwd\nmov cx, -1\nidiv cx", 0),
    viaStub("ud2: #UD", mode, "ud2", 6),
    viaStub("lock nop (not lockable): #UD", mode, "db 0xf0, 0x90", 6),
    viaStub("mov eax, cr1 (reserved CR): #UD", mode, "db 0x0f, 0x20, 0xc8", 6),
    viaStub("xgetbv with CR4.OSXSAVE = 0: #UD", mode, "xor ecx, ecx\nxgetbv", 6),
    viaStub("int3: #BP", mode, "int3", 3),
    viaStub("int 5", mode, "int 5", 5),
    viaStub("int 0x1f", mode, "int 0x1f", 31),
    viaStub("wrmsr of an unknown MSR: #GP", mode, "mov ecx, 0x12345\nxor eax, eax\nxor edx, edx\nwrmsr", 13),
    viaStub("rdmsr of an unknown MSR: #GP", mode, "mov ecx, 0xc0001234\nrdmsr", 13),
    viaStub("wrmsr EFER.SVME (no SVM): #GP", mode, "mov ecx, 0xc0000080\nrdmsr\nor eax, 0x1000\nwrmsr", 13),
    viaStub(
      "wrmsr APIC_BASE with x2APIC mode and the APIC disabled: #GP",
      mode,
      "mov ecx, 0x1b\nmov eax, 0xfee00400\nxor edx, edx\nwrmsr",
      13,
    ),
    viaStub(
      "wrmsr APIC_BASE with a bit above MAXPHYADDR: #GP",
      mode,
      "mov ecx, 0x1b\nmov eax, 0xfee00900\nmov edx, 0x40000\nwrmsr",
      13,
    ),
    viaStub("16 prefixes (instruction > 15 bytes): #GP", mode, "times 15 db 0x66\nnop", 13),
    viaStub("mov ds, selector beyond the GDT limit: #GP", mode, "mov ax, 0x33\nmov ds, ax", 13),
  );
}
out.push(
  viaStub("div rbx: RDX:RAX / RBX ≥ 2^64: #DE", "long", "mov rdx, 1\nmov rbx, 1\ndiv rbx", 0),
  viaStub("push es (invalid in 64-bit mode): #UD", "long", "db 0x06", 6),
  viaStub("into (invalid in 64-bit mode): #UD", "long", "db 0xce", 6),
  viaStub("non-canonical load: #GP(0)", "long", "mov rbx, 0x0000800000000000\nmov rax, [rbx]", 13),
  viaStub("non-canonical jmp target: #GP(0)", "long", "mov rbx, 0xffff7fffffffffff\njmp rbx", 13),
  viaStub("into with OF = 1: #OF", "protected", "into", 4, { rflags: 0x802n }),
  viaStub(
    "mov ds, null selector then a load through DS: #GP(0)",
    "protected",
    "xor eax, eax\nmov ds, ax\nmov eax, [0x8000]",
    13,
  ),
  viaStub("mov ss, null selector: #GP(0)", "protected", "xor eax, eax\nmov ss, ax", 13),
  viaStub("mov ds, the TSS selector (system descriptor): #GP", "protected", "mov ax, 0x20\nmov ds, ax", 13),
  viaStub(
    "store through a code segment (CS selector in DS): #GP(0)",
    "protected",
    "mov ax, 0x18\nmov ds, ax\nmov [0x8000], eax",
    13,
  ),
  {
    name: "into with OF = 0 does nothing [protected]",
    mode: "protected",
    asm: "into\nmov ebx, 1\nhlt",
    expect: { regs: { rbx: 1n } },
  },
  {
    name: "a code segment in DS is readable [protected]",
    mode: "protected",
    asm: "mov ax, 0x18\nmov ds, ax\nmov ebx, [0x8000]\nhlt",
    memory: [{ gpa: 0x8000, bytes: [0x78, 0x56, 0x34, 0x12] }],
    expect: { regs: { rbx: 0x12345678n } },
  },
  {
    name: "non-canonical RSP: #SS on the push, delivery fails again → #DF → triple fault: shutdown [long]",
    mode: "long",
    asm: "mov rsp, 0x0000800000000010\npush rax\nhlt",
    exits: [{ reason: "shutdown" }],
    expect: {},
  },
);

// Own handlers: error code in RBX, saved RIP − expected in RDX, plus frame words.
out.push(
  {
    name: "#GP error code = selector index (mov ds, 0x33 → 0x30), RIP of the fault [long]",
    mode: "long",
    asm: `${
      gate64(13, "h")
    }\nmov ax, 0x33\nfault: mov ds, ax\nhlt\nh: pop rbx\nmov rdx, [rsp]\nmov rsi, fault\nsub rdx, rsi\nmov rcx, [rsp + 8]\nhlt`,
    expect: { regs: { rbx: 0x30n, rdx: 0n, rcx: 0x08n } },
  },
  {
    name: "#UD is a fault: saved RIP = the UD2; frame CS, RFLAGS, RSP, SS [long]",
    mode: "long",
    asm: `${
      gate64(6, "h")
    }\npush 0x8d7\npopfq\nfault: ud2\nhlt\nh: mov rdx, [rsp]\nmov rsi, fault\nsub rdx, rsi\nmov rcx, [rsp + 8]\nmov rbx, [rsp + 16]\nand ebx, 0xfff\nmov rdi, [rsp + 24]\nmov rbp, [rsp + 32]\nhlt`,
    expect: { regs: { rdx: 0n, rcx: 0x08n, rbx: 0x8d7n, rdi: T, rbp: 0x10n } },
  },
  {
    name: "int3 is a trap: saved RIP = the next instruction [long]",
    mode: "long",
    asm: `${gate64(3, "h")}\nint3\nnext: hlt\nh: mov rdx, [rsp]\nmov rsi, next\nsub rdx, rsi\nhlt`,
    expect: { regs: { rdx: 0n } },
  },
  {
    name: "int n then iretq returns after the INT with flags restored [long]",
    mode: "long",
    asm: `${gate64(0x40, "h")}\nstc\nint 0x40\nmov ecx, 7\nhlt\nh: mov ebx, 1\nclc\niretq`,
    expect: { regs: { rbx: 1n, rcx: 7n, rsp: T, rflags: 0x3n }, flagsMask: 0x1n },
  },
  {
    name: "#DE is a fault: saved RIP = the DIV, RAX/RDX unchanged [long]",
    mode: "long",
    asm: `${
      gate64(0, "h")
    }\nmov rax, 0x1234\nmov rdx, 0x5678\nfault: div rbx\nhlt\nh: mov rsi, fault\nsub rsi, [rsp]\nhlt`,
    expect: { regs: { rsi: 0n, rax: 0x1234n, rdx: 0x5678n } },
  },
  {
    name: "IDT limit 0: #UD → #GP → #DF → triple fault: shutdown [long]",
    mode: "long",
    asm: `mov word [0x30000], 0\nmov qword [0x30002], 0x30000\nlidt [0x30000]\nud2\nhlt`,
    exits: [{ reason: "shutdown" }],
    expect: {},
  },
  {
    name: "#GP error code for a system-descriptor selector (0x23 → 0x20), 32-bit frame [protected]",
    mode: "protected",
    asm: `${
      gate32(13, "h")
    }\nmov ax, 0x23\nfault: mov ds, ax\nhlt\nh: pop ebx\nmov edx, [esp]\nsub edx, fault\nmov ecx, [esp + 4]\nhlt`,
    expect: { regs: { rbx: 0x20n, rdx: 0n, rcx: 0x18n } },
  },
  {
    name: "#DE frame: EIP of the DIV, CS, EFLAGS; ESP dropped by 12 [protected]",
    mode: "protected",
    asm: `${
      gate32(0, "h")
    }\npush 0x8d7\npopfd\nfault: div ecx\nhlt\nh: mov edx, [esp]\nsub edx, fault\nmov ecx, [esp + 4]\nmov ebx, [esp + 8]\nand ebx, 0xfff\nmov edi, esp\nhlt`,
    expect: { regs: { rdx: 0n, rcx: 0x18n, rbx: 0x8d7n, rdi: T - 12n } },
  },
  {
    name: "int 0x80 then iretd [protected]",
    mode: "protected",
    asm: `${gate32(0x80, "h")}\nint 0x80\nmov ecx, 7\nhlt\nh: mov ebx, 1\niretd`,
    expect: { regs: { rbx: 1n, rcx: 7n, rsp: T } },
  },
  {
    name: "real mode #DE through the IVT: FLAGS, CS, IP of the DIV pushed",
    mode: "real",
    asm: `${
      ivt(0, "h")
    }\nmov sp, 0x8000\npush 0x0cd7\npopf\nmov ax, 5\nfault: div bl\nhlt\nh: pop dx\nsub dx, fault\npop cx\npop bx\nhlt`,
    regs: { rcx: 0x1234n },
    expect: { regs: { rdx: 0n, rcx: 0n, rbx: 0x0cd7n, rsp: 0x8000n, rax: 5n } },
  },
  {
    name: "real mode #UD through the IVT (vector 6), IF and TF cleared in the handler",
    mode: "real",
    asm: `${
      ivt(6, "h")
    }\nmov sp, 0x8000\nsti\nfault: ud2\nhlt\nh: pushf\npop ax\nmov bp, sp\nmov dx, [bp]\nsub dx, fault\nhlt`,
    expect: { regs: { rax: 0x0002n, rdx: 0n } },
  },
  {
    name: "real mode int 0x21 / iret returns after the INT with FLAGS restored",
    mode: "real",
    asm: `${ivt(0x21, "h")}\nmov sp, 0x8000\nstc\nint 0x21\nmov cx, 7\nhlt\nh: mov bx, 1\nclc\niret`,
    expect: { regs: { rbx: 1n, rcx: 7n, rsp: 0x8000n, rflags: 0x3n }, flagsMask: 0x1n },
  },
  {
    name: "real mode int3 is a trap: saved IP = the next instruction",
    mode: "real",
    asm: `${ivt(3, "h")}\nmov sp, 0x8000\nint3\nnext: hlt\nh: mov bp, sp\nmov dx, [bp]\nsub dx, next\nhlt`,
    expect: { regs: { rdx: 0n } },
  },
);

export const snippets: Snippet[] = out;
