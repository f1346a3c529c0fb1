/**
 * The fuzzer's sequence model: instructions with their flag contract (SDM
 * vol. 2 "Flags Affected": which of CF PF AF ZF SF OF an instruction reads,
 * defines, or leaves undefined), the units a sequence is made of (the
 * minimiser's granularity: one instruction; an atomic group such as a memory
 * operand's address setup plus the instruction using it; a short forward
 * `jcc` over 1–3 units; a counted `loop`), and what is done with a sequence:
 * `analyse` / `undefinedBeforeLines` (a sequence is valid only if no
 * instruction reads a flag that is undefined where it runs, so an undefined
 * flag never leaks into a register or memory; the flags undefined at the end,
 * or before a faulting instruction, are masked from the comparison),
 * `render` (assembler source, one line per instruction or label) and
 * `minimise`.
 *
 * @module
 */

export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;

/** One instruction and its flag contract. */
export interface Insn {
  text: string;
  /** Flags it reads (must be defined). */
  reads: number;
  /** Flags it may leave undefined (SDM "undefined"); conservative where the count is only known at run time. */
  undef: number;
  /** Flags it sets to a defined value. */
  def: number;
  /** The guest range a memory operand touches (explicit operand only; pushes/pops use the stack window). */
  mem?: { addr: number; bytes: number };
  /** A deliberate access outside RAM's data areas (outsideUnit): MMIO exits, #PF above 4 GiB, #GP non-canonical. */
  outside?: { kind: OutsideKind; addr: string };
}

/** What a deliberate access outside RAM's data areas targets (memory.ts). */
export type OutsideKind = "mmio" | "unmapped" | "noncanonical";

/** A unit a jcc body may hold. */
export type BodyUnit = { kind: "one"; insn: Insn } | { kind: "group"; insns: Insn[] };
export type Unit =
  | BodyUnit
  | { kind: "jcc"; cc: string; reads: number; label: string; body: BodyUnit[] }
  /** `mov ecx, count` / label / body / `loop(e|ne) label`: the body runs `count` times (LOOPE/LOOPNE: 1 to count). */
  | { kind: "loop"; op: "loop" | "loope" | "loopne"; reads: number; count: number; label: string; body: BodyUnit[] };

export const insn = (text: string, reads: number, def: number, undef: number): Insn => ({ text, reads, def, undef });
/** An instruction with no flag contract (reads, defines and leaves undefined nothing). */
export const plain = (text: string) => insn(text, 0, 0, 0);
/** An immediate as assembler text (`0x…` / `-0x…`). */
export const immText = (v: number | bigint) => (v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);
export const u64 = (v: bigint) => BigInt.asUintN(64, v);

/** Undefined-flag state after `i` (from `u`, the undefined flags before). */
const step = (u: number, i: Insn) => (u & ~i.def) | i.undef;

/** The instructions of a body unit. */
export const insnsOf = (u: BodyUnit): Insn[] => (u.kind === "one" ? [u.insn] : u.insns);

/**
 * The undefined flags before every line `render(units)` produces (labels and the final `hlt` included), or
 * undefined if some instruction reads a flag that is undefined where it runs. A jcc's label line gets the
 * union of both paths.
 */
export function undefinedBeforeLines(units: readonly Unit[]): number[] | undefined {
  let u = 0;
  const out: number[] = [];
  const run = (i: Insn) => {
    out.push(u);
    if (i.reads & u) return false;
    u = step(u, i);
    return true;
  };
  for (const unit of units) {
    switch (unit.kind) {
      case "one":
      case "group":
        if (!insnsOf(unit).every(run)) return undefined;
        break;
      case "jcc": {
        out.push(u);
        if (unit.reads & u) return undefined;
        const before = u;
        if (!unit.body.flatMap(insnsOf).every(run)) return undefined;
        u |= before; // taken or not: undefined on either path
        out.push(u);
        break;
      }
      case "loop": {
        // Every iteration from its own state; a line's state is the union over iterations.
        out.push(u); // mov ecx, count
        const body = unit.body.flatMap(insnsOf);
        const lines: number[] = new Array(body.length + 2).fill(0);
        let s = u, exits = 0;
        for (let k = 0; k < unit.count; k++) {
          lines[0]! |= s;
          for (let j = 0; j < body.length; j++) {
            lines[j + 1]! |= s;
            if (body[j]!.reads & s) return undefined;
            s = step(s, body[j]!);
          }
          lines[body.length + 1]! |= s;
          if (unit.reads & s) return undefined;
          exits |= s;
        }
        out.push(...lines);
        u = unit.op === "loop" ? s : exits;
        break;
      }
      default: {
        const never: never = unit;
        throw new Error(`unknown unit ${JSON.stringify(never)}`);
      }
    }
  }
  out.push(u);
  return out;
}

/** The flags undefined at the end, or undefined if some instruction reads a flag that is undefined where it runs. */
export function analyse(units: readonly Unit[]): number | undefined {
  return undefinedBeforeLines(units)?.at(-1);
}

/** Assembler source of `units`, ending in `hlt` (one line per instruction or label). */
export function render(units: readonly Unit[]): string {
  const lines: string[] = [];
  for (const u of units) {
    if (u.kind === "jcc") {
      lines.push(
        `j${u.cc} ${u.label}`,
        ...u.body.flatMap(insnsOf).map((i) => i.text),
        `${u.label}:`,
      );
    } else if (u.kind === "loop") {
      lines.push(
        `mov ecx, ${u.count}`,
        `${u.label}:`,
        ...u.body.flatMap(insnsOf).map((i) => i.text),
        `${u.op} ${u.label}`,
      );
    } else lines.push(...insnsOf(u).map((i) => i.text));
  }
  lines.push("hlt");
  return lines.join("\n");
}

/** Every instruction of `units` in order (jcc bodies included). */
export const allInsns = (units: readonly Unit[]): Insn[] =>
  units.flatMap((u) => (u.kind === "jcc" || u.kind === "loop" ? u.body.flatMap(insnsOf) : insnsOf(u)));

/**
 * Minimise: drop units (and units inside jcc/loop bodies, unwrap a jcc or loop into its body, run a loop
 * once, keeping the sequence valid) while `diverges` still holds; returns a 1-minimal sequence. Groups are atomic.
 */
export function minimise(units: readonly Unit[], diverges: (u: Unit[]) => boolean): Unit[] {
  let cur = [...units];
  let changed = true;
  while (changed) {
    changed = false;
    for (let i = 0; i < cur.length; i++) {
      const cands: Unit[][] = [cur.filter((_, j) => j !== i)];
      const u = cur[i]!;
      if (u.kind === "jcc" || u.kind === "loop") {
        cands.push([...cur.slice(0, i), ...u.body, ...cur.slice(i + 1)]);
        if (u.kind === "loop" && u.count > 1) cands.push([...cur.slice(0, i), { ...u, count: 1 }, ...cur.slice(i + 1)]);
        if (u.body.length > 1) {
          u.body.forEach((_, b) =>
            cands.push([...cur.slice(0, i), { ...u, body: u.body.filter((_, k) => k !== b) }, ...cur.slice(i + 1)])
          );
        }
      }
      const hit = cands.find((c) => analyse(c) !== undefined && diverges(c));
      if (hit) {
        cur = hit;
        changed = true;
        break;
      }
    }
  }
  return cur;
}
