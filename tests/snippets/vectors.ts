/**
 * Snippets derived from tests/x86_alu_vectors.json: register inputs and the
 * registers and RFLAGS a native x86-64 CPU produced for one instruction
 * (tests/oracle/native_flags.sh; the JSON names the CPU), with the mask of
 * the flags the SDM defines for that case. Each case becomes a snippet in
 * long mode; 8/16/32-bit cases also run in protected mode (as a memory
 * destination where the form allows it: the memory gets what the register
 * got) and in real mode (where 32-bit operands take a 66 prefix); 64-bit
 * cases also run with a memory destination in long mode. Cases are picked
 * greedily for distinct carry-in / result-flag / count signatures, so zero,
 * sign, carry, overflow and count edge cases are all covered.
 *
 * A #DE case ends in the exception stub: OUT of vector 0 to ENV.exceptionPort,
 * then HLT; the stub only writes AL and DX, so the rest of RAX/RDX shows that
 * the faulting DIV/IDIV changed nothing.
 *
 * @module
 */
import data from "../x86_alu_vectors.json" with { type: "json" };
import { ENV } from "./run.ts";
import { exceptionExits, le, type Regs, type Snippet, type SnippetMode } from "./types.ts";

type Out = string[] | "DE";
type Case = [string, string, string, string, string, string, Out];
interface Group {
  name: string;
  asm: string;
  bytes: string;
  cases: Case[];
}
const GROUPS = (data as unknown as { cpu: string; vectors: Group[] }).vectors;
export const VECTOR_CPU = (data as { cpu: string }).cpu;

export interface VectorPlan {
  /** Groups whose name matches. */
  match: RegExp;
  /** Cases in long mode (register form). */
  long: number;
  /** Cases in the second variant (protected mode, or long mode with a memory destination for 64-bit). */
  second: number;
  /** Cases in real mode. */
  real: number;
  /** Whether the first operand may become a memory destination. */
  memForm?: boolean;
}

const MEM = 0x8000;
const REG_WIDTH: Record<string, number> = {
  al: 8,
  bl: 8,
  ax: 16,
  bx: 16,
  eax: 32,
  ebx: 32,
  rax: 64,
  rbx: 64,
};
const SIZE_KW: Record<number, string> = { 8: "byte", 16: "word", 32: "dword", 64: "qword" };
const FULL_REG: Record<string, "rax" | "rbx"> = {
  al: "rax",
  ax: "rax",
  eax: "rax",
  rax: "rax",
  bl: "rbx",
  bx: "rbx",
  ebx: "rbx",
  rbx: "rbx",
};

const big = (h: string) => BigInt("0x" + h);

/** Operand width of a group: 64 when it names a 64-bit register, else from the name's digits (default 32). */
function widthOf(g: Group): number {
  if (/\br[a-d]x\b/.test(g.asm) || /^(cdqe|cqo|movsxd)\b/.test(g.asm)) return 64;
  const m = /(\d+)$/.exec(g.name);
  return m && [8, 16, 32].includes(Number(m[1])) ? Number(m[1]) : 32;
}

function countClass(cl: bigint, w: number): string {
  const c = Number(cl & 0xffn);
  const masked = c & (w === 64 ? 63 : 31);
  return c === 0
    ? "0"
    : c === 1
    ? "1"
    : masked === 0
    ? "masked0"
    : c !== masked
    ? "masked"
    : c > w
    ? ">w"
    : c === w
    ? "=w"
    : "<w";
}

/** Up to `n` cases, greedily for new signatures, starting at `offset` so variants pick different cases. */
function pick(g: Group, n: number, offset: number, usesCount: boolean, w: number): number[] {
  const idx = g.cases.map((_, i) => (i + offset) % g.cases.length);
  const chosen: number[] = [];
  const seen = new Set<string>();
  for (const i of idx) {
    if (chosen.length >= n) break;
    const [, , rcx, , fl, mask, out] = g.cases[i]!;
    const outFl = out === "DE" ? "DE" : (big(out[4]!) & big(mask)).toString(16);
    const sig = `${big(fl) & 0x8d5n}|${outFl}|${usesCount ? countClass(big(rcx), w) : ""}`;
    if (seen.has(sig)) continue;
    seen.add(sig);
    chosen.push(i);
  }
  for (const i of idx) {
    if (chosen.length >= n) break;
    if (!chosen.includes(i)) chosen.push(i);
  }
  return chosen.sort((a, b) => a - b);
}

const low32 = (v: bigint) => v & 0xffffffffn;

function snippetOf(g: Group, ci: number, mode: SnippetMode, mem: boolean): Snippet {
  const [rax, rbx, rcx, rdx, fl, maskHex, out] = g.cases[ci]!;
  const narrow = mode !== "long";
  const fix = (h: string) => (narrow ? low32(big(h)) : big(h));
  const inRegs = { rax: fix(rax), rbx: fix(rbx), rcx: fix(rcx), rdx: fix(rdx) };
  const flagsIn = big(fl) & ~0x200n; // IF stays as the environment has it
  const regs: Regs = { ...inRegs, rflags: flagsIn };
  let asm = g.asm;
  const memory: { gpa: number; bytes: number[] }[] = [];
  let memReg: "rax" | "rbx" | undefined;
  let w = 0;
  if (mem) {
    const m = /^(\w+) (\w+)(.*)$/.exec(g.asm)!;
    const reg = m[2]!;
    w = REG_WIDTH[reg]!;
    memReg = FULL_REG[reg]!;
    asm = `${m[1]} ${SIZE_KW[w]} [${MEM}]${m[3]}`;
    memory.push({ gpa: MEM, bytes: le(inRegs[memReg], w / 8) });
  }
  const name = `${g.asm} [${mode}${mem ? ", mem" : ""}] #${ci}`;
  if (out === "DE") {
    const port = BigInt(ENV.exceptionPort);
    return {
      name,
      mode,
      asm: `${asm}\nhlt`,
      regs,
      exits: exceptionExits(ENV.exceptionPort, 0),
      expect: {
        regs: { rax: inRegs.rax & ~0xffn, rbx: inRegs.rbx, rcx: inRegs.rcx, rdx: (inRegs.rdx & ~0xffffn) | port },
      },
    };
  }
  const exp: Regs = {
    rax: fix(out[0]!),
    rbx: fix(out[1]!),
    rcx: fix(out[2]!),
    rdx: fix(out[3]!),
    rflags: big(out[4]!),
  };
  const expMemory = [];
  if (memReg) {
    expMemory.push({ gpa: MEM, bytes: le(exp[memReg]!, w / 8) });
    exp[memReg] = inRegs[memReg];
  }
  return {
    name,
    mode,
    asm: `${asm}\nhlt`,
    regs,
    ...(memory.length ? { memory } : {}),
    expect: { regs: exp, flagsMask: big(maskHex), ...(expMemory.length ? { memory: expMemory } : {}) },
    cpl3: true,
  };
}

/** The snippets for every group matching `plan.match`. */
export function vectorSnippets(plan: VectorPlan): Snippet[] {
  const out: Snippet[] = [];
  for (const g of GROUPS.filter((g) => plan.match.test(g.name))) {
    const w = widthOf(g);
    const usesCount = /\bcl\b/.test(g.asm);
    const first = /^\w+ (\w+)/.exec(g.asm)?.[1] ?? "";
    const canMem = plan.memForm === true && first in REG_WIDTH;
    for (const ci of pick(g, plan.long, 0, usesCount, w)) out.push(snippetOf(g, ci, "long", false));
    const second = pick(g, plan.second, Math.floor(g.cases.length / 3), usesCount, w);
    if (w <= 32) {
      for (const ci of second) {
        const s = snippetOf(g, ci, "protected", canMem);
        if (!(s.exits && s.exits.length > 1 && canMem)) out.push(s);
      }
      for (const ci of pick(g, plan.real, Math.floor((2 * g.cases.length) / 3), usesCount, w)) {
        if (g.cases[ci]![6] !== "DE") out.push(snippetOf(g, ci, "real", false));
      }
    } else if (canMem) {
      for (const ci of second) out.push(snippetOf(g, ci, "long", true));
    }
  }
  return out;
}
