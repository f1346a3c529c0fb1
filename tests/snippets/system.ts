/**
 * System instructions at CPL 0: MOV from/to CR0, CR2, CR3, CR4, CR8 and DR0–DR3,
 * SMSW, SGDT/SIDT (the environment's tables), LGDT/LIDT round trips, RDMSR/
 * WRMSR of in-kernel MSRs (EFER, STAR, LSTAR, KERNEL_GS_BASE, TSC_AUX),
 * SWAPGS, CLI/STI, CLTS, INVLPG, WBINVD, NOP/PAUSE forms.
 *
 * Expectations: the SDM (vol. 2 MOV CR/DR, SGDT: 64-bit mode stores a 2-byte
 * limit and an 8-byte base, 32-bit mode 2 + 4 bytes; SWAPGS exchanges GS.base
 * with IA32_KERNEL_GS_BASE) and the environment's documented register state
 * (run.ts ENV; createVmWithOneVcpu: long mode CR0 = PE|ET|NE|WP|PG,
 * CR4 = PAE, EFER = LME|LMA|NXE, CR3 = the PML4 at the reserved base, GDT at
 * +0x6000 limit 47, IDT at +0x7000; protected mode CR0 = PE|ET; real mode
 * CR0 = 0x60000010).
 *
 * Flags: CLI/STI change IF only; CLTS none; the others change no flag.
 */
import { ENV } from "./run.ts";
import { IF, le, type Snippet } from "./types.ts";

const R = ENV.reservedBase;
const M = 0x8000;
export const snippets: Snippet[] = [
  { name: "mov rax, cr0 [long]", mode: "long", asm: "mov rax, cr0\nhlt", expect: { regs: { rax: 0x80010031n } } },
  {
    name: "mov rax, cr3 / cr4 [long]",
    mode: "long",
    asm: "mov rax, cr3\nmov rbx, cr4\nhlt",
    expect: { regs: { rax: BigInt(R), rbx: 0x20n } },
  },
  { name: "mov eax, cr0 [protected]", mode: "protected", asm: "mov eax, cr0\nhlt", expect: { regs: { rax: 0x11n } } },
  { name: "mov eax, cr0 [real]", mode: "real", asm: "mov eax, cr0\nhlt", expect: { regs: { rax: 0x60000010n } } },
  {
    name: "mov cr2 write/read [long]",
    mode: "long",
    asm: "mov rax, 0xffff800012345678\nmov cr2, rax\nmov rbx, cr2\nhlt",
    expect: { regs: { rbx: 0xffff800012345678n } },
  },
  {
    name: "mov cr8 write/read (TPR) [long]",
    mode: "long",
    asm: "mov eax, 9\nmov cr8, rax\nmov rbx, cr8\nhlt",
    expect: { regs: { rbx: 9n } },
  },
  {
    name: "mov cr3 reload keeps the mapping [long]",
    mode: "long",
    asm: "mov rax, cr3\nmov cr3, rax\nmov ebx, [0x8000]\nhlt",
    memory: [{ gpa: M, bytes: le(0xabcdef01, 4) }],
    expect: { regs: { rbx: 0xabcdef01n } },
  },
  {
    name: "mov cr4: set and clear OSFXSR [long]",
    mode: "long",
    asm:
      "mov rax, cr4\nor eax, 0x200\nmov cr4, rax\nmov rbx, cr4\nand eax, 0xfffffdff\nmov cr4, rax\nmov rcx, cr4\nhlt",
    expect: { regs: { rbx: 0x220n, rcx: 0x20n } },
  },
  {
    name: "mov dr0..dr3 write/read [long]",
    mode: "long",
    asm: "mov rax, 0x1000\nmov dr0, rax\nmov rax, 0x2000\nmov dr3, rax\nmov rbx, dr0\nmov rcx, dr3\nhlt",
    expect: { regs: { rbx: 0x1000n, rcx: 0x2000n } },
  },
  {
    name: "smsw ax [long]",
    mode: "long",
    asm: "smsw ax\nhlt",
    regs: { rax: 0xffff0000n },
    expect: { regs: { rax: 0xffff0031n } },
  },
  { name: "smsw ax [real]", mode: "real", asm: "smsw ax\nhlt", expect: { regs: { rax: 0x0010n } } },
  {
    name: "sgdt / sidt: 2-byte limit, 8-byte base [long]",
    mode: "long",
    asm: `sgdt [${M}]\nsidt [${M + 16}]\nhlt`,
    expect: {
      memory: [
        { gpa: M, bytes: [...le(47, 2), ...le(R + 0x6000, 8)] },
        { gpa: M + 16, bytes: [...le(4095, 2), ...le(R + 0x7000, 8)] },
      ],
    },
  },
  {
    name: "sgdt / sidt: 2-byte limit, 4-byte base [protected]",
    mode: "protected",
    asm: `sgdt [${M}]\nsidt [${M + 16}]\nhlt`,
    expect: {
      memory: [{ gpa: M, bytes: [...le(47, 2), ...le(R + 0x6000, 4)] }, {
        gpa: M + 16,
        bytes: [...le(2047, 2), ...le(R + 0x7000, 4)],
      }],
    },
  },
  {
    name: "lidt / sidt round trip [long]",
    mode: "long",
    asm: `lidt [${M}]\nsidt [${M + 16}]\nhlt`,
    memory: [{ gpa: M, bytes: [...le(0x1ff, 2), ...le(0x123456789000n, 8)] }],
    expect: { memory: [{ gpa: M + 16, bytes: [...le(0x1ff, 2), ...le(0x123456789000n, 8)] }] },
  },
  {
    name: "lgdt / sgdt round trip, CS still usable [protected]",
    mode: "protected",
    asm: `sgdt [${M}]\nlgdt [${M}]\nsgdt [${M + 16}]\nmov ebx, 1\nhlt`,
    expect: { regs: { rbx: 1n }, memory: [{ gpa: M + 16, bytes: [...le(47, 2), ...le(R + 0x6000, 4)] }] },
  },
  {
    name: "rdmsr EFER = LME|LMA|NXE [long]",
    mode: "long",
    asm: "mov ecx, 0xc0000080\nrdmsr\nhlt",
    regs: { rdx: 0xffffffffffffffffn },
    expect: { regs: { rax: 0xd00n, rdx: 0n } },
  },
  ...[[0xc0000081, "STAR", 0x0023001000080000n], [0xc0000082, "LSTAR", 0xffffffff81000000n], [
    0xc0000102,
    "KERNEL_GS_BASE",
    0x00007f0000001000n,
  ]].map(
    ([msr, name, v]): Snippet => ({
      name: `wrmsr / rdmsr ${name} round trip [long]`,
      mode: "long",
      asm: `mov ecx, ${msr}\nmov eax, ${Number(BigInt(v as bigint) & 0xffffffffn)}\nmov edx, ${
        Number(BigInt(v as bigint) >> 32n)
      }\nwrmsr\nxor eax, eax\nxor edx, edx\nrdmsr\nhlt`,
      expect: { regs: { rax: BigInt(v as bigint) & 0xffffffffn, rdx: BigInt(v as bigint) >> 32n } },
    }),
  ),
  ...[[0x175, "SYSENTER_ESP"], [0x176, "SYSENTER_EIP"]].flatMap(([msr, name]): Snippet[] => [{
    // KVM makes the value canonical instead of raising #GP (AMD ignores the upper half), at the host's
    // virtual-address width: 48 bits here (on an LA57 host KVM uses 57: KVM_DIVERGENCES).
    name: `wrmsr ${name} non-canonical: read back sign-extended from bit 47 [long]`,
    mode: "long",
    asm: `mov ecx, ${msr}\nmov eax, 0x1234\nmov edx, 0x8000\nwrmsr\nxor eax, eax\nxor edx, edx\nrdmsr\nhlt`,
    expect: { regs: { rax: 0x1234n, rdx: 0xffff8000n } },
  }, {
    // Bit 63 alone: non-canonical at 48 and at 57 bits, and made canonical alike at both (bits 56 and 47 are 0).
    name: `wrmsr ${name} with bit 63 set: made canonical with bits 63:48 clear [long]`,
    mode: "long",
    asm: `mov ecx, ${msr}\nmov eax, 0x1234\nmov edx, 0x80000000\nwrmsr\nxor eax, eax\nor edx, -1\nrdmsr\nhlt`,
    expect: { regs: { rax: 0x1234n, rdx: 0n } },
  }]),
  {
    name: "swapgs exchanges GS.base and KERNEL_GS_BASE [long]",
    mode: "long",
    asm:
      "mov ecx, 0xc0000102\nmov eax, 0x5000\nxor edx, edx\nwrmsr\nswapgs\nmov ecx, 0xc0000101\nrdmsr\nmov ebx, eax\nmov ecx, 0xc0000102\nrdmsr\nhlt",
    expect: { regs: { rbx: 0x5000n, rax: 0n } },
  },
  {
    name: "GS base applies to gs: loads after wrmsr GS_BASE [long]",
    mode: "long",
    asm: "mov ecx, 0xc0000101\nmov eax, 0x8000\nxor edx, edx\nwrmsr\nmov rbx, [gs:0x10]\nhlt",
    memory: [{ gpa: M + 0x10, bytes: le(0x1122334455667788n, 8) }],
    expect: { regs: { rbx: 0x1122334455667788n } },
  },
  {
    name: "sti sets IF, cli clears it [long]",
    mode: "long",
    asm: "sti\npushfq\npop rax\ncli\nhlt",
    expect: { regs: { rax: 0x202n, rflags: 0x2n }, flagsMask: IF },
  },
  {
    name: "sti [protected]",
    mode: "protected",
    asm: "sti\nnop\nhlt",
    expect: { regs: { rflags: 0x202n }, flagsMask: IF },
  },
  {
    name: "clts clears CR0.TS [long]",
    mode: "long",
    asm: "mov rax, cr0\nor eax, 8\nmov cr0, rax\nmov rbx, cr0\nclts\nmov rcx, cr0\nhlt",
    expect: { regs: { rbx: 0x80010039n, rcx: 0x80010031n } },
  },
  {
    name: "invlpg, wbinvd, pause, multi-byte nop run through [long]",
    mode: "long",
    asm: `invlpg [${M}]\nwbinvd\npause\nnop dword [rax + rax]\nmov ebx, 1\nhlt`,
    expect: { regs: { rbx: 1n } },
  },
];
