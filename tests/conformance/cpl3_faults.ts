/**
 * Page faults raised by ring-3 code (long mode, 4-level paging): the snippet
 * table's #PF snippets install their own IDT and edit CR3 (CPL 0 only), so
 * these cases put the fault in the wrapper's page tables instead (a 2 MiB PDE
 * beyond RAM made not-present, supervisor, read-only, NX or with a reserved
 * bit) and let the body touch it. Each case states the #PF the SDM defines
 * (vol. 3 §4.7: error code P = 1 protection / 0 not present, W/R, U/S = 1 for
 * a CPL 3 access, RSVD, I/D for a fetch with EFER.NXE = 1; CR2 = the linear
 * address that faulted — for an access crossing into the faulting page, the
 * first byte of that page; saved RIP = the faulting instruction, or the
 * target for a fetch fault).
 *
 * @module
 */
import type { Cpl3Options } from "./cpl3_wrapper.ts";
import type { Snippet } from "../snippets/types.ts";

/** A 2 MiB page above RAM (ENV.memSize = 4 MiB): only ever touched to fault. */
export const PF_PAGE = 0x600000;

export interface PageFaultCase {
  snippet: Snippet;
  pdes: NonNullable<Cpl3Options["pdes"]>;
  error: bigint;
  cr2: bigint;
  /** Saved RIP. */
  rip: bigint;
  /** Ring-3 RSP on the frame. */
  rsp: bigint;
}

const P = 1n, W = 2n, U = 4n, RSVD = 8n, ID = 0x10n;
const TOP = 0x300000n;
/** `mov rbx, imm32` (7 bytes at 0x1000) then the access at 0x1007. */
const ACCESS = 0x1007n;
const pf = (
  name: string,
  asm: string,
  pdes: PageFaultCase["pdes"],
  error: bigint,
  cr2: number,
  rip = ACCESS,
  rsp = TOP,
) => ({
  snippet: { name: `#PF at CPL 3: ${name} [long]`, mode: "long" as const, asm, expect: {} },
  pdes,
  error,
  cr2: BigInt(cr2),
  rip,
  rsp,
});
const A = PF_PAGE;

export const PAGE_FAULT_CASES: readonly PageFaultCase[] = [
  pf(
    "read of a not-present page: U",
    `mov rbx, ${A + 0x123}\nmov eax, [rbx]\nhlt`,
    [{ addr: A, and: ~P }],
    U,
    A + 0x123,
  ),
  pf(
    "write to a not-present page: W|U",
    `mov rbx, ${A + 0x123}\nmov [rbx], eax\nhlt`,
    [{ addr: A, and: ~P }],
    W | U,
    A + 0x123,
  ),
  pf("read of a supervisor page: P|U", `mov rbx, ${A + 8}\nmov al, [rbx]\nhlt`, [{ addr: A, and: ~U }], P | U, A + 8),
  pf(
    "write to a read-only page: P|W|U",
    `mov rbx, ${A + 16}\nmov [rbx], al\nhlt`,
    [{ addr: A, and: ~W }],
    P | W | U,
    A + 16,
  ),
  pf(
    "reserved bit 51 in the PDE: P|U|RSVD",
    `mov rbx, ${A}\nmov rax, [rbx]\nhlt`,
    [{ addr: A, or: 1n << 51n }],
    P | U | RSVD,
    A,
  ),
  pf(
    "jmp into an NX page: P|U|I/D, RIP = CR2 = the target",
    `mov rbx, ${A + 0x40}\njmp rbx\nhlt`,
    [{ addr: A, or: 1n << 63n }],
    P | U | ID,
    A + 0x40,
    BigInt(A + 0x40),
  ),
  pf(
    "call into a supervisor page: P|U|I/D, the return address already pushed",
    `mov rbx, ${A + 0x40}\ncall rbx\nhlt`,
    [{ addr: A, and: ~U }],
    P | U | ID,
    A + 0x40,
    BigInt(A + 0x40),
    TOP - 8n,
  ),
  pf(
    "a dword read crossing into a not-present page: CR2 = the first byte of that page",
    `mov rbx, ${A - 2}\nmov eax, [rbx]\nhlt`,
    [{ addr: A, and: ~P }],
    U,
    A,
  ),
];
