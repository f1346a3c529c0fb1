/**
 * The v86 counterpart of raw/alu-mem (bench/paths.ts): the same 16
 * instructions per iteration in real mode (32-bit operands and addressing),
 * with the two 64-bit-only registers replaced — ebp accumulates what r8d
 * does, and r9d's value is stored to the dword after the array — and a
 * 32-bit push/pop on the 16-bit stack. After every sampling window the
 * guest's registers and memory are compared with the closed forms of
 * {@link aluMemExpected} at v86's instruction counter (exact: it counts
 * every retired instruction, the reset vector's far jump excluded).
 *
 * @module
 */
import { ALU_MEM_ARRAY, ALU_MEM_K, aluMemExpected, type AluMemState } from "../paths.ts";

/** Instructions before `top:` in {@link V86_ALU_MEM_ASM}. */
export const V86_ALU_MEM_PROLOGUE = 8;
/** Initial SP (SS = 0). */
export const V86_ALU_MEM_SP = 0x7000;

/** Real-mode code for a BIOS at F000:0000 (data and stack in low RAM, DS = SS = 0). */
export const V86_ALU_MEM_ASM = `
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, ${V86_ALU_MEM_SP}
  mov ebx, ${ALU_MEM_ARRAY}
  xor esi, esi
  xor edi, edi
  xor ebp, ebp
top:
  mov eax, esi
  and eax, 7
  add [ebx+eax*4], esi
  mov ecx, [ebx+eax*4]
  add edi, ecx
  imul edx, esi, ${ALU_MEM_K}
  add ebp, edx
  xor edx, esi
  shr edx, 3
  mov [ebx+32], edx
  push ecx
  pop edx
  cmp edx, ecx
  jne bad
  inc esi
  jmp top
bad:
  hlt
`;

/** The parts of v86's CPU object the check reads. */
export interface V86CpuView {
  /** eax, ecx, edx, ebx, esp, ebp, esi, edi. */
  readonly reg32: Int32Array;
  readonly mem8: Uint8Array;
}

/** What the v86 guest holds, in {@link AluMemState} terms (rspDelta: SP relative to its start, -4 after the 32-bit push). */
export function v86AluMemState(cpu: V86CpuView): AluMemState {
  const u32 = (at: number) =>
    (cpu.mem8[at]! | (cpu.mem8[at + 1]! << 8) | (cpu.mem8[at + 2]! << 16) | (cpu.mem8[at + 3]! << 24)) >>> 0;
  return {
    a: Array.from({ length: 8 }, (_, k) => u32(ALU_MEM_ARRAY + 4 * k)),
    esi: cpu.reg32[6]! >>> 0,
    edi: cpu.reg32[7]! >>> 0,
    r8d: cpu.reg32[5]! >>> 0,
    r9d: u32(ALU_MEM_ARRAY + 32),
    stack: u32(V86_ALU_MEM_SP - 4),
    rspDelta: (cpu.reg32[4]! & 0xffff) - V86_ALU_MEM_SP,
  };
}

/** Compare the v86 guest with the closed forms after `retired` instructions; the differences, or undefined. */
export function v86AluMemCheck(cpu: V86CpuView, retired: number): string | undefined {
  const want = aluMemExpected(retired, V86_ALU_MEM_PROLOGUE);
  const got = v86AluMemState(cpu);
  // The 64-bit loop's push moves RSP by 8; this one's 32-bit push moves SP by 4.
  const wantSp = want.rspDelta === 0 ? 0 : -4;
  const bad: string[] = [];
  for (const key of ["esi", "edi", "r8d", "r9d", "stack"] as const) {
    if (got[key] !== want[key]) bad.push(`${key === "r8d" ? "ebp" : key} ${got[key]} (expected ${want[key]})`);
  }
  if (got.rspDelta !== wantSp) bad.push(`sp delta ${got.rspDelta} (expected ${wantSp})`);
  got.a.forEach((v, k) => v !== want.a[k] && bad.push(`a[${k}] ${v} (expected ${want.a[k]})`));
  return bad.length === 0 ? undefined : `after ${retired} instructions: ${bad.join(", ")}`;
}
