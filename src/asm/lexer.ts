import { ColError } from "./errors.ts";

export type Token =
  | { t: "id"; v: string; col: number }
  | { t: "num"; v: bigint; col: number }
  | { t: "str"; v: Uint8Array; col: number }
  | { t: "punct"; v: string; col: number };

const PUNCT2 = ["<<", ">>"];
const PUNCT1 = "[](),:+-*/%&|^~$";
const ID_START = /[A-Za-z_.?@]/;
const ID_PART = /[A-Za-z0-9_.?@$]/;

function parseNumber(text: string, col: number): bigint {
  const s = text.replaceAll("_", "").toLowerCase();
  let m: RegExpMatchArray | null;
  if ((m = s.match(/^0x([0-9a-f]+)$/))) return BigInt("0x" + m[1]);
  if ((m = s.match(/^0b([01]+)$/))) return BigInt("0b" + m[1]);
  if ((m = s.match(/^0o([0-7]+)$/))) return BigInt("0o" + m[1]);
  if ((m = s.match(/^([0-9][0-9a-f]*)h$/))) return BigInt("0x" + m[1]);
  if (/^[0-9]+$/.test(s)) return BigInt(s);
  throw new ColError(col, `malformed number "${text}" (expected decimal, 0x hex, 0b binary or NNh)`);
}

const ESCAPES: Record<string, number> = {
  n: 10,
  t: 9,
  r: 13,
  "0": 0,
  "\\": 92,
  "'": 39,
  '"': 34,
  "`": 96,
  a: 7,
  b: 8,
  e: 27,
};

/** Splits one source line into tokens; stops at a `;` or `#` comment outside quotes. Columns are 1-based. */
export function tokenize(line: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    const col = i + 1;
    if (c === " " || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if (c === ";" || c === "#") break;
    if (c === "'" || c === '"' || c === "`") {
      const bytes: number[] = [];
      let j = i + 1;
      for (;;) {
        if (j >= line.length) throw new ColError(col, `unterminated string (expected closing ${c})`);
        const d = line[j]!;
        if (d === c) break;
        if (c === "`" && d === "\\") {
          const e = line[j + 1] ?? "";
          if (e === "x") {
            const hex = line.slice(j + 2, j + 4);
            if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new ColError(j + 1, `bad \\x escape (expected two hex digits)`);
            bytes.push(parseInt(hex, 16));
            j += 4;
            continue;
          }
          const v = ESCAPES[e];
          if (v === undefined) throw new ColError(j + 1, `unknown escape "\\${e}"`);
          bytes.push(v);
          j += 2;
          continue;
        }
        const code = d.codePointAt(0)!;
        if (code > 0x7f) bytes.push(...new TextEncoder().encode(String.fromCodePoint(code)));
        else bytes.push(code);
        j += code > 0xffff ? 2 : 1;
      }
      out.push({ t: "str", v: new Uint8Array(bytes), col });
      i = j + 1;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i;
      while (j < line.length && /[0-9A-Za-z_]/.test(line[j]!)) j++;
      out.push({ t: "num", v: parseNumber(line.slice(i, j), col), col });
      i = j;
      continue;
    }
    if (ID_START.test(c)) {
      let j = i + 1;
      while (j < line.length && ID_PART.test(line[j]!)) j++;
      out.push({ t: "id", v: line.slice(i, j), col });
      i = j;
      continue;
    }
    const two = line.slice(i, i + 2);
    if (PUNCT2.includes(two)) {
      out.push({ t: "punct", v: two, col });
      i += 2;
      continue;
    }
    if (c === "$" && line[i + 1] === "$") {
      out.push({ t: "punct", v: "$$", col });
      i += 2;
      continue;
    }
    if (PUNCT1.includes(c)) {
      out.push({ t: "punct", v: c, col });
      i++;
      continue;
    }
    throw new ColError(col, `unexpected character "${c}"`);
  }
  return out;
}
