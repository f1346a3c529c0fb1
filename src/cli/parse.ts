/**
 * Parsers for command-line values: numbers, sizes, hex byte strings and
 * `NAME=VALUE` assignments. Every failure is a {@link UsageError} naming the
 * option, the bad value and what was expected.
 *
 * @module
 */
import { UsageError } from "./errors.ts";

const DEC = /^[0-9]+$/;
const HEX = /^0x[0-9a-f]+$/i;
const BIN = /^0b[01]+$/i;

/** An unsigned integer: decimal, `0x` hex or `0b` binary, `_` allowed between digits. */
export function parseBigUint(what: string, text: string): bigint {
  const t = text.trim().replaceAll("_", "");
  if (DEC.test(t) || HEX.test(t) || BIN.test(t)) return BigInt(t);
  throw new UsageError(`${what}: "${text}" is not a number (expected decimal, 0x hex or 0b binary)`);
}

/** An unsigned integer below `2^bits`; with `negative`, a leading `-` gives the two's complement (e.g. `-1`). */
export function parseUint(what: string, text: string, bits: number, negative = false): bigint {
  const neg = negative && text.trim().startsWith("-");
  const mag = parseBigUint(what, neg ? text.trim().slice(1) : text);
  const limit = 1n << BigInt(bits);
  if (neg ? mag > limit / 2n : mag >= limit) {
    throw new UsageError(
      `${what}: ${text} does not fit ${bits} bits (expected 0..0x${(limit - 1n).toString(16)}${
        negative ? ` or -0x${(limit / 2n).toString(16)}..-1` : ""
      })`,
    );
  }
  return neg ? BigInt.asUintN(bits, -mag) : mag;
}

/** A non-negative safe integer in `[min, max]`. */
export function parseCount(what: string, text: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = parseBigUint(what, text);
  if (v < BigInt(min) || v > BigInt(max)) {
    throw new UsageError(`${what}: ${text} is out of range (expected ${min}..${max})`);
  }
  return Number(v);
}

const SIZE_UNITS: Readonly<Record<string, number>> = { "": 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 };

/** A byte size: a number with an optional K, M or G suffix (binary units; `KiB`/`MB` spellings accepted). */
export function parseSize(what: string, text: string): number {
  const m = /^(0x[0-9a-f_]+|[0-9][0-9_]*)\s*([kmg]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `${what}: "${text}" is not a size (expected a number with an optional K, M or G suffix, e.g. 16M)`,
    );
  }
  const v = BigInt(m[1]!.replaceAll("_", "")) * BigInt(SIZE_UNITS[m[2]!.toLowerCase()]!);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UsageError(`${what}: "${text}" is too large`);
  return Number(v);
}

/** Hex bytes (`b041e6e9f4`, whitespace between bytes allowed) → bytes. */
export function parseHexBytes(what: string, text: string): Uint8Array {
  const t = text.replace(/\s+/g, "");
  if (t.length === 0) throw new UsageError(`${what}: empty (expected hex bytes, e.g. b041e6e9f4)`);
  const bad = /[^0-9a-f]/i.exec(t);
  if (bad) {
    throw new UsageError(
      `${what}: "${
        bad[0]
      }" at position ${bad.index} is not a hex digit (expected hex bytes like b041e6e9f4, no 0x prefix)`,
    );
  }
  if (t.length % 2 !== 0) {
    throw new UsageError(`${what}: odd number of hex digits (${t.length}): expected two digits per byte`);
  }
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Split `NAME=VALUE` (the option name is used in the error). */
export function splitAssignment(option: string, text: string): [string, string] {
  const i = text.indexOf("=");
  if (i <= 0 || i === text.length - 1) throw new UsageError(`${option} ${text}: expected NAME=VALUE`);
  return [text.slice(0, i).trim(), text.slice(i + 1).trim()];
}
