/** Register names the assembler knows, by class. */
export type RegClass = "gp" | "sreg" | "cr" | "dr" | "rip";

export interface Reg {
  name: string;
  cls: RegClass;
  /** Width in bits (gp: 8/16/32/64; sreg 16; cr/dr: 0 = mode-sized; rip 64). */
  size: number;
  /** Encoding number 0..15. */
  num: number;
  /** spl/bpl/sil/dil: encodable only with a REX prefix. */
  needsRex: boolean;
  /** ah/ch/dh/bh: not encodable with a REX prefix. */
  high8: boolean;
  /** Exists only in 64-bit mode. */
  only64: boolean;
}

const REGS = new Map<string, Reg>();

function add(name: string, cls: RegClass, size: number, num: number, extra: Partial<Reg> = {}): void {
  REGS.set(name, { name, cls, size, num, needsRex: false, high8: false, only64: num >= 8 || size === 64, ...extra });
}

const LEGACY = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
LEGACY.forEach((r, i) => {
  add(r, "gp", 16, i);
  add("e" + r, "gp", 32, i);
  add("r" + r, "gp", 64, i);
});
["al", "cl", "dl", "bl"].forEach((r, i) => add(r, "gp", 8, i));
["ah", "ch", "dh", "bh"].forEach((r, i) => add(r, "gp", 8, i + 4, { high8: true }));
["spl", "bpl", "sil", "dil"].forEach((r, i) => add(r, "gp", 8, i + 4, { needsRex: true, only64: true }));
for (let i = 8; i < 16; i++) {
  add(`r${i}`, "gp", 64, i);
  add(`r${i}d`, "gp", 32, i);
  add(`r${i}w`, "gp", 16, i);
  add(`r${i}b`, "gp", 8, i);
  add(`r${i}l`, "gp", 8, i);
}
["es", "cs", "ss", "ds", "fs", "gs"].forEach((r, i) => add(r, "sreg", 16, i, { only64: false }));
for (const i of [0, 2, 3, 4, 8]) add(`cr${i}`, "cr", 0, i, { only64: i >= 8 });
for (let i = 0; i < 8; i++) add(`dr${i}`, "dr", 0, i, { only64: false });
add("rip", "rip", 64, 5, { only64: true });

export function lookupReg(name: string): Reg | undefined {
  return REGS.get(name.toLowerCase());
}

export function allRegs(): Reg[] {
  return [...REGS.values()];
}

/** Segment override prefix bytes, by segment register number. */
export const SEG_PREFIX = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65];

/** Levenshtein distance ≤ 1 (for "did you mean a register" diagnostics). */
export function nearRegister(name: string): boolean {
  const n = name.toLowerCase();
  if (/^r\d+[bwdl]?$/.test(n) || /^[cd]r\d+$/.test(n)) return true;
  for (const r of REGS.keys()) {
    if (r.length !== n.length || r.length < 2) continue;
    let diff = 0;
    for (let i = 0; i < r.length; i++) if (r[i] !== n[i]) diff++;
    if (diff === 1 && r.length >= 3) return true;
  }
  return false;
}
