/**
 * A tiny WebAssembly binary writer for the block translator (translate.ts):
 * LEB128, the opcodes it uses, and one module layout (imports of the shared
 * memory and mutable globals, one exported function plus helpers).
 *
 * @module
 */

/** Value types. */
export const I32 = 0x7f, I64 = 0x7e;
export type ValType = typeof I32 | typeof I64;

/** The opcodes translate.ts emits. */
export const OP = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  return: 0x0f,
  call: 0x10,
  select: 0x1b,
  local_get: 0x20,
  local_set: 0x21,
  local_tee: 0x22,
  global_get: 0x23,
  global_set: 0x24,
  i32_load: 0x28,
  i64_load: 0x29,
  i32_load8_u: 0x2d,
  i32_load16_u: 0x2f,
  i32_store: 0x36,
  i64_store: 0x37,
  i32_const: 0x41,
  i64_const: 0x42,
  i32_eqz: 0x45,
  i32_eq: 0x46,
  i32_ne: 0x47,
  i32_lt_s: 0x48,
  i32_lt_u: 0x49,
  i32_gt_u: 0x4b,
  i32_ge_s: 0x4e,
  i64_eqz: 0x50,
  i64_eq: 0x51,
  i64_ne: 0x52,
  i64_lt_s: 0x53,
  i64_lt_u: 0x54,
  i64_le_s: 0x57,
  i64_le_u: 0x58,
  i32_add: 0x6a,
  i32_sub: 0x6b,
  i32_mul: 0x6c,
  i32_and: 0x71,
  i32_or: 0x72,
  i32_xor: 0x73,
  i32_shl: 0x74,
  i32_shr_u: 0x76,
  i64_popcnt: 0x7b,
  i64_add: 0x7c,
  i64_sub: 0x7d,
  i64_mul: 0x7e,
  i64_and: 0x83,
  i64_or: 0x84,
  i64_xor: 0x85,
  i64_shl: 0x86,
  i64_shr_s: 0x87,
  i64_shr_u: 0x88,
  i32_wrap_i64: 0xa7,
  i64_extend_i32_s: 0xac,
  i64_extend_i32_u: 0xad,
  i64_extend32_s: 0xc4,
} as const;

/** Block type "no result". */
export const VOID = 0x40;

/** A growable byte buffer with the LEB128 encoders. */
export class Bytes {
  #buf = new Uint8Array(256);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
    grown.set(this.#buf);
    this.#buf = grown;
  }
  byte(b: number): this {
    if (this.length === this.#buf.length) this.#room(1);
    this.#buf[this.length++] = b & 0xff;
    return this;
  }
  bytes(a: ArrayLike<number>): this {
    this.#room(a.length);
    if (a instanceof Uint8Array) this.#buf.set(a, this.length);
    else for (let i = 0; i < a.length; i++) this.#buf[this.length + i] = a[i]! & 0xff;
    this.length += a.length;
    return this;
  }
  /** Unsigned LEB128 of a non-negative safe integer. */
  u32(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) {
      throw new RangeError(`u32 LEB128 of ${v}: expected 0..2^32-1`);
    }
    do {
      const b = v % 128;
      v = Math.floor(v / 128);
      this.byte(v !== 0 ? b | 0x80 : b);
    } while (v !== 0);
    return this;
  }
  /** Signed LEB128 of any integer (i32 or i64 immediates: the value is taken as is). */
  sleb(v: bigint): this {
    if (v >= -0x80000000n && v <= 0x7fffffffn) return this.sleb32(Number(v));
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      const done = (v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }
  /** Signed LEB128 of an int32 (the common case, without BigInt). */
  sleb32(v: number): this {
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      const done = (v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }
  /** A length-prefixed copy of another buffer (sections, function bodies). */
  vec(b: Bytes): this {
    this.u32(b.length);
    return this.bytes(b.view());
  }
  view(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }

  // Instruction helpers.
  op(o: number): this {
    return this.byte(o);
  }
  i32c(v: number): this {
    return this.byte(OP.i32_const).sleb32(v | 0);
  }
  /** i64.const of a 64-bit pattern given unsigned or signed. */
  i64c(v: bigint): this {
    return this.byte(OP.i64_const).sleb(BigInt.asIntN(64, v));
  }
  get(l: number): this {
    return this.byte(OP.local_get).u32(l);
  }
  set(l: number): this {
    return this.byte(OP.local_set).u32(l);
  }
  tee(l: number): this {
    return this.byte(OP.local_tee).u32(l);
  }
  gget(g: number): this {
    return this.byte(OP.global_get).u32(g);
  }
  gset(g: number): this {
    return this.byte(OP.global_set).u32(g);
  }
  /** A memory access with alignment log2 `align` and constant offset. */
  mem(o: number, align: number, offset: number): this {
    return this.byte(o).u32(align).u32(offset);
  }
}

/** A function type. */
export interface FuncType {
  params: ValType[];
  results: ValType[];
}

/** One function of the module: its type, extra locals (in order after the params) and body. */
export interface Func {
  type: FuncType;
  locals: ValType[];
  /** The body's instructions, without the final `end`. */
  body: Bytes;
}

/** Imported mutable global (module "env"). */
export interface GlobalImport {
  name: string;
  type: ValType;
}

/** A function imported from "env" (indices: imports first, then the defined functions). */
export interface FuncImport {
  name: string;
  type: FuncType;
}

/**
 * A module importing env.memory (shared, 1..65535 pages) and the given mutable
 * globals (global indices in that order), defining `funcs` (function indices
 * in that order) and exporting funcs[exported] as "f".
 */
export function moduleBytes(
  globals: readonly GlobalImport[],
  funcs: readonly Func[],
  exported: number,
  funcImports: readonly FuncImport[] = [],
): Uint8Array {
  const out = new Bytes().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, body: Bytes) => out.byte(id).vec(body);
  const str = (b: Bytes, s: string) => {
    const e = new TextEncoder().encode(s);
    b.u32(e.length).bytes(e);
  };
  // Types: one per imported, then per defined function (duplicates are allowed).
  const sigs = [...funcImports.map((f) => f.type), ...funcs.map((f) => f.type)];
  const types = new Bytes().u32(sigs.length);
  for (const t of sigs) types.byte(0x60).u32(t.params.length).bytes(t.params).u32(t.results.length).bytes(t.results);
  section(1, types);
  const imports = new Bytes().u32(1 + globals.length + funcImports.length);
  str(imports, "env");
  str(imports, "memory");
  imports.byte(0x02).byte(0x03).u32(1).u32(65535);
  for (const g of globals) {
    str(imports, "env");
    str(imports, g.name);
    imports.byte(0x03).byte(g.type).byte(0x01);
  }
  funcImports.forEach((fi, i) => {
    str(imports, "env");
    str(imports, fi.name);
    imports.byte(0x00).u32(i);
  });
  section(2, imports);
  // Function indices: the imported functions first, then the defined ones.
  const fns = new Bytes().u32(funcs.length);
  funcs.forEach((_, i) => fns.u32(funcImports.length + i));
  section(3, fns);
  const exports = new Bytes().u32(1);
  str(exports, "f");
  exports.byte(0x00).u32(exported);
  section(7, exports);
  const code = new Bytes().u32(funcs.length);
  for (const f of funcs) {
    const body = new Bytes();
    // Locals, run-length grouped.
    const groups: [number, ValType][] = [];
    for (const t of f.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    body.u32(groups.length);
    for (const [n, t] of groups) body.u32(n).byte(t);
    body.bytes(f.body.view()).byte(OP.end);
    code.vec(body);
  }
  section(10, code);
  return out.view().slice();
}
