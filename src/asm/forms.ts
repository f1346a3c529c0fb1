import { FORM_ROWS } from "./table.ts";

export type Bits = 16 | 32 | 64;

/** One operand pattern of a concrete (size-expanded) form. */
export type Pat =
  | { k: "r" | "g" | "rm" | "acc"; size: number }
  | { k: "m"; size: number } // size 0 = any
  | { k: "mfar" | "far" | "sreg" | "cr" | "dr" | "imm" | "s8" | "rel8" | "relv" }
  | { k: "fixed"; name: string }
  | { k: "seg"; num: number }
  | { k: "lit"; v: bigint }
  | { k: "moffs"; size: number };

export type Field = "ib" | "iw" | "id" | "iq" | "iz" | "iv" | "cb" | "cv" | "pv" | "mo";

export interface Form {
  mnemonic: string;
  /** The row text, for diagnostics. */
  row: string;
  pats: Pat[];
  opcode: number[];
  plusReg: boolean;
  /** "r" = register operand in ModRM.reg; a digit = opcode extension; null = no ModRM. */
  modrm: "r" | number | null;
  fields: Field[];
  /** Operand size in bits (0 = byte-sized or size-less: no prefix). */
  osize: 0 | 16 | 32 | 64;
  /** Required address size (0 = the operands' / mode's). */
  asize: 0 | 16 | 32 | 64;
  d64: boolean;
  noos: boolean;
  dsz: boolean;
  dup: boolean;
  x90: boolean;
  /** The form has a `v` operand size (it was expanded per size). */
  sized: boolean;
}

const SEGS = ["es", "cs", "ss", "ds", "fs", "gs"];
const SIZE_LETTER: Record<string, 16 | 32 | 64> = { w: 16, d: 32, q: 64 };

interface Row {
  mnemonics: string[];
  ops: string[];
  enc: string[];
  text: string;
}

function parseRow(text: string): Row {
  const parts = text.split("|").map((s) => s.trim());
  if (parts.length !== 3) throw new Error(`bad form row "${text}"`);
  return {
    mnemonics: parts[0]!.split(/\s+/),
    ops: parts[1] === "" ? [] : parts[1]!.split(","),
    enc: parts[2]!.split(/\s+/),
    text,
  };
}

function parsePat(tok: string, v: number, row: string): Pat {
  let m: RegExpMatchArray | null;
  const size = (s: string) => (s === "v" ? v : Number(s));
  if ((m = tok.match(/^(rm|r|g|m|moffs)(8|16|32|64|v)$/))) {
    const k = m[1]!;
    const s = size(m[2]!);
    if (k === "moffs") return { k: "moffs", size: s };
    if (k === "m") return { k: "m", size: s };
    return { k: k as "r" | "g" | "rm", size: s };
  }
  if (tok === "av") return { k: "acc", size: v };
  if (tok === "m") return { k: "m", size: 0 };
  if (["al", "ax", "eax", "rax", "cl", "dx"].includes(tok)) return { k: "fixed", name: tok };
  if (SEGS.includes(tok)) return { k: "seg", num: SEGS.indexOf(tok) };
  if ((m = tok.match(/^#(\d+)$/))) return { k: "lit", v: BigInt(m[1]!) };
  if (["mfar", "far", "sreg", "cr", "dr", "imm", "s8", "rel8", "relv"].includes(tok)) {
    return { k: tok as "imm" };
  }
  throw new Error(`bad operand pattern "${tok}" in row "${row}"`);
}

/** Size in bits a pattern gives the operand, for picking the operand size of an unexpanded form. */
function patSize(p: Pat): number {
  switch (p.k) {
    case "r":
    case "g":
    case "rm":
    case "m":
    case "acc":
      return p.size;
    case "fixed":
      return { al: 8, cl: 8, ax: 16, dx: 0, eax: 32, rax: 64 }[p.name] ?? 0;
    default:
      return 0;
  }
}

function expand(row: Row, bits: Bits): Form[] {
  const flags = new Set(row.enc.filter((t) => /^(d64|no64|x64|noos|dsz|dup|x90|S=[wdq]+)$/.test(t)));
  if (flags.has("no64") && bits === 64) return [];
  if (flags.has("x64") && bits !== 64) return [];
  const sized = row.ops.some((o) => /v$/.test(o) || o === "s8") ||
    row.enc.some((t) => ["iz", "iv", "cv", "pv"].includes(t));
  let sizes: (16 | 32 | 64)[] = [0 as 16];
  if (sized) {
    const d64 = flags.has("d64");
    sizes = bits === 64 ? (d64 ? [16, 64] : [16, 32, 64]) : [16, 32];
    const restrict = [...flags].find((f) => f.startsWith("S="));
    if (restrict) {
      const allowed = restrict.slice(2).split("").map((c) => SIZE_LETTER[c]!);
      sizes = sizes.filter((s) => allowed.includes(s));
    }
  }
  const forms: Form[] = [];
  for (const v of sizes) {
    const pats = row.ops.map((o) => parsePat(o, v, row.text));
    const opcode: number[] = [];
    let plusReg = false;
    let modrm: Form["modrm"] = null;
    const fields: Field[] = [];
    let osize: Form["osize"] = sized ? v : 0;
    let asize: Form["asize"] = 0;
    for (const t of row.enc) {
      let m: RegExpMatchArray | null;
      if ((m = t.match(/^([0-9A-F]{2})(\+r)?$/))) {
        opcode.push(parseInt(m[1]!, 16));
        if (m[2]) plusReg = true;
      } else if (t === "/r") modrm = "r";
      else if ((m = t.match(/^\/([0-7])$/))) modrm = Number(m[1]);
      else if (["ib", "iw", "id", "iq", "iz", "iv", "cb", "cv", "pv", "mo"].includes(t)) fields.push(t as Field);
      else if ((m = t.match(/^o(16|32|64)$/))) osize = Number(m[1]) as 16;
      else if ((m = t.match(/^a(16|32|64)$/))) asize = Number(m[1]) as 16;
      else if (!flags.has(t)) throw new Error(`bad encoding token "${t}" in row "${row.text}"`);
    }
    if (!sized && osize === 0) {
      const s = pats.map(patSize).find((s) => s >= 16);
      if (s) osize = s as 16;
    }
    if (flags.has("noos")) osize = 0;
    for (const mnemonic of row.mnemonics) {
      forms.push({
        mnemonic,
        row: row.text,
        pats,
        opcode,
        plusReg,
        modrm,
        fields,
        osize,
        asize,
        d64: flags.has("d64"),
        noos: flags.has("noos"),
        dsz: flags.has("dsz"),
        dup: flags.has("dup"),
        x90: flags.has("x90"),
        sized,
      });
    }
  }
  return forms;
}

const ROWS = FORM_ROWS.map(parseRow);
const CACHE = new Map<Bits, Map<string, Form[]>>();

/** All concrete forms valid in a mode, by mnemonic (lower case). */
export function formsFor(bits: Bits): Map<string, Form[]> {
  let map = CACHE.get(bits);
  if (map) return map;
  map = new Map();
  for (const row of ROWS) {
    for (const f of expand(row, bits)) {
      const list = map.get(f.mnemonic) ?? [];
      list.push(f);
      map.set(f.mnemonic, list);
    }
  }
  CACHE.set(bits, map);
  return map;
}

/** Every mnemonic in the table, in any mode. */
export function allMnemonics(): Set<string> {
  return new Set(ROWS.flatMap((r) => r.mnemonics));
}

/** The table rows, parsed (for corpus generation). */
export function tableRows(): readonly { mnemonics: string[]; ops: string[]; enc: string[]; text: string }[] {
  return ROWS;
}
