/**
 * Paging: #PF error codes (P, W/R, I/D, RSVD) and CR2 for not-present,
 * read-only (CR0.WP = 1 at CPL 0), NX-fetch and reserved-bit faults on 4 KiB
 * pages; a read-only 2 MiB page; the accessed and dirty bits the CPU sets in
 * the PTE; INVLPG making a changed PTE visible; 32-bit (non-PAE) paging in
 * protected mode.
 *
 * The guest replaces PD[0] of the environment's identity map (2 MiB page at
 * 0) with a 4 KiB page table it fills itself (PT at 0x20000, identity, P|RW),
 * edits one PTE, reloads CR3, and installs a #PF handler (idt.ts) that pops
 * the error code into RBX, reads CR2 into RCX and leaves saved RIP − the
 * faulting instruction's address in RDX.
 *
 * Expectations: SDM vol. 3 §4.7 (error code bits: P 0, W/R 1, U/S 2, RSVD 3,
 * I/D 4; CR2 = the linear address), §4.8 (A set on any access, D on a write,
 * in the PTE that maps the page), §4.6 (WP), §4.10.4.1 (INVLPG), §4.3 (32-bit
 * paging), 6.15 (#PF is a fault).
 *
 * Flags: not compared.
 */
import { ENV } from "./run.ts";
import { le, type Snippet } from "./types.ts";
import { gate32, gate64, GUEST_IDT } from "./idt.ts";

const PD = ENV.reservedBase + 0x2000; // the environment's first page directory (2 MiB pages)
const PT = 0x20000;
const PAGE = 0x5000; // the page the snippets play with (index 5)
const PTE = PT + 8 * 5;

const build4k = [
  `mov edi, ${PT}`,
  "mov eax, 3",
  "mov ecx, 512",
  "fill: mov [rdi], rax",
  "add rax, 0x1000",
  "add rdi, 8",
  "loop fill",
  `mov rax, ${PT + 3}`,
  `mov [${PD}], rax`,
].join("\n");
const reload = "mov rax, cr3\nmov cr3, rax";
const handler = "h: pop rbx\nmov rcx, cr2\nmov rdx, [rsp]\nmov rsi, fault\nsub rdx, rsi\nhlt";

const pf = (
  name: string,
  pte: bigint,
  access: string,
  err: bigint,
  cr2: number,
  memory: { gpa: number; bytes: number[] }[] = [],
): Snippet => ({
  name,
  mode: "long",
  asm: `${gate64(14, "h")}\n${build4k}\nmov rax, ${pte}\nmov [${PTE}], rax\n${reload}\n${access}\nhlt\n${handler}`,
  memory,
  expect: { regs: { rbx: err, rcx: BigInt(cr2), rdx: 0n } },
});

const NX = 1n << 63n;
export const snippets: Snippet[] = [
  pf(
    "#PF read of a not-present page: error 0, CR2 = address",
    BigInt(PAGE),
    `fault: mov eax, [${PAGE + 0x123}]`,
    0n,
    PAGE + 0x123,
  ),
  pf(
    "#PF write to a not-present page: error W (2)",
    BigInt(PAGE),
    `fault: mov dword [${PAGE + 0xffc}], 1`,
    2n,
    PAGE + 0xffc,
  ),
  pf(
    "#PF write to a read-only page (CR0.WP = 1): error P|W (3)",
    BigInt(PAGE | 1),
    `fault: mov byte [${PAGE + 7}], 1`,
    3n,
    PAGE + 7,
  ),
  pf(
    "read of a read-only page is allowed; the write faults: P|W",
    BigInt(PAGE | 1),
    `mov ebx, [${PAGE}]\nfault: add [${PAGE}], ebx`,
    3n,
    PAGE,
  ),
  pf(
    "#PF reserved bit (bit 51) in a present PTE: error P|RSVD (9)",
    BigInt(PAGE | 3) | (1n << 51n),
    `fault: mov eax, [${PAGE}]`,
    9n,
    PAGE,
  ),
  pf(
    "#PF reserved bit on a write: error P|W|RSVD (0xb)",
    BigInt(PAGE | 3) | (1n << 51n),
    `fault: mov [${PAGE}], eax`,
    0xbn,
    PAGE,
  ),
  pf(
    "a 4-byte read crossing into a not-present page: CR2 = first byte of that page",
    BigInt(PAGE),
    `fault: mov eax, [${PAGE - 2}]`,
    0n,
    PAGE,
  ),
  pf(
    "rep stosb into a not-present page faults at its first byte",
    BigInt(PAGE),
    `mov edi, ${PAGE - 4}\nmov ecx, 16\nfault: rep stosb`,
    2n,
    PAGE,
  ),
  {
    name: "fetch after jmp into an NX page fails; RIP at the target (not the jmp)",
    mode: "long",
    asm: `${gate64(14, "h")}\n${build4k}\nmov rax, ${
      BigInt(PAGE | 3) | NX
    }\nmov [${PTE}], rax\n${reload}\nmov rax, ${PAGE}\njmp rax\nhlt\nh: pop rbx\nmov rdx, [rsp]\nhlt`,
    expect: { regs: { rbx: 0x11n, rdx: BigInt(PAGE) } },
  },
  {
    name: "fetch from a not-present page via call: error I/D (0x10), saved RIP = target, CR2 = target",
    mode: "long",
    asm: `${gate64(14, "h")}\n${build4k}\nmov qword [${PTE}], ${PAGE}\n${reload}\nmov rax, ${
      PAGE + 0x10
    }\ncall rax\nhlt\nh: pop rbx\nmov rcx, cr2\nmov rdx, [rsp]\nhlt`,
    expect: { regs: { rbx: 0x10n, rcx: BigInt(PAGE + 0x10), rdx: BigInt(PAGE + 0x10) } },
  },
  {
    name: "A set on a read, A|D on a write, in the PTE",
    mode: "long",
    asm: `${build4k}\nmov qword [${PTE}], ${PAGE | 3}\nmov qword [${PTE + 8}], ${
      (PAGE + 0x1000) | 3
    }\n${reload}\nmov eax, [${PAGE}]\nmov dword [${PAGE + 0x1000}], 1\nhlt`,
    expect: { memory: [{ gpa: PTE, bytes: [...le(PAGE | 0x23, 8), ...le((PAGE + 0x1000) | 0x63, 8)] }] },
  },
  {
    name: "INVLPG makes a remapped PTE visible",
    mode: "long",
    asm: `${build4k}\n${reload}\nmov eax, [${PAGE}]\nmov qword [${PTE}], ${
      0x6000 | 3
    }\ninvlpg [${PAGE}]\nmov ebx, [${PAGE}]\nhlt`,
    memory: [{ gpa: PAGE, bytes: le(0x55555555, 4) }, { gpa: 0x6000, bytes: le(0x66666666, 4) }],
    expect: { regs: { rax: 0x55555555n, rbx: 0x66666666n } },
  },
  {
    name: "MOV CR3 makes a remapped PTE visible",
    mode: "long",
    asm: `${build4k}\n${reload}\nmov ecx, [${PAGE}]\nmov qword [${PTE}], ${
      0x6000 | 3
    }\n${reload}\nmov ebx, [${PAGE}]\nhlt`,
    memory: [{ gpa: PAGE, bytes: le(0x55555555, 4) }, { gpa: 0x6000, bytes: le(0x66666666, 4) }],
    expect: { regs: { rcx: 0x55555555n, rbx: 0x66666666n } },
  },
  {
    name: "aliasing: two virtual pages on one frame see each other's stores",
    mode: "long",
    asm: `${build4k}\nmov qword [${PTE}], ${
      0x7000 | 3
    }\n${reload}\nmov dword [${PAGE}], 0x12345678\nmov ebx, [0x7000]\nhlt`,
    expect: { regs: { rbx: 0x12345678n } },
  },
  {
    name: "#PF write to a read-only 2 MiB page: error P|W, CR2",
    mode: "long",
    asm: `${gate64(14, "h")}\nmov rsp, 0x10000\nmov rax, [${PD + 8}]\nand eax, 0xfffffffd\nmov [${
      PD + 8
    }], rax\n${reload}\nmov ebx, [0x200010]\nfault: mov [0x200010], ebx\nhlt\n${handler}`,
    expect: { regs: { rbx: 3n, rcx: 0x200010n, rdx: 0n } },
  },
  {
    name: "32-bit paging: #PF on a not-present 4 KiB page, error 0, CR2 [protected]",
    mode: "protected",
    asm: [
      gate32(14, "h"),
      // Page directory at 0x21000: PDE 0 → PT at 0x22000 (identity 0–4 MiB, page 5 not present).
      "mov edi, 0x22000\nmov eax, 3\nmov ecx, 1024\nfill: mov [edi], eax\nadd eax, 0x1000\nadd edi, 4\nloop fill",
      `mov dword [${0x22000 + 4 * 5}], ${PAGE}`,
      "mov dword [0x21000], 0x22003",
      "mov eax, 0x21000\nmov cr3, eax",
      "mov eax, cr0\nor eax, 0x80000000\nmov cr0, eax",
      `fault: mov eax, [${PAGE + 0x44}]`,
      "hlt",
      "h: pop ebx\nmov ecx, cr2\nmov edx, [esp]\nsub edx, fault\nhlt",
    ].join("\n"),
    expect: { regs: { rbx: 0n, rcx: BigInt(PAGE + 0x44), rdx: 0n } },
  },
  {
    name: "32-bit paging: a remapped page reads the other frame [protected]",
    mode: "protected",
    asm: [
      "mov edi, 0x22000\nmov eax, 3\nmov ecx, 1024\nfill: mov [edi], eax\nadd eax, 0x1000\nadd edi, 4\nloop fill",
      `mov dword [${0x22000 + 4 * 5}], 0x6003`,
      "mov dword [0x21000], 0x22003",
      "mov eax, 0x21000\nmov cr3, eax",
      "mov eax, cr0\nor eax, 0x80000000\nmov cr0, eax",
      `mov ebx, [${PAGE}]`,
      "hlt",
    ].join("\n"),
    memory: [{ gpa: PAGE, bytes: le(0x55555555, 4) }, { gpa: 0x6000, bytes: le(0x66666666, 4) }],
    expect: { regs: { rbx: 0x66666666n } },
  },
];
void GUEST_IDT;
