/**
 * Struct encoding for ioctl arguments through the layout tables: a
 * {@link StructBuf} is a zeroed buffer the size of a laid-out struct (plus
 * optional trailing array elements) whose fields are read and written by
 * dotted path — no hand-written offsets.
 *
 * @module
 */
import { type Field, field, type LaidOut, layOut, type StructDef } from "../../abi/layout.ts";

const cache = new Map<StructDef, LaidOut>();
/** layOut(def) for x86-64, memoised per table. */
export function laid(def: StructDef): LaidOut {
  let l = cache.get(def);
  if (!l) cache.set(def, l = layOut(def));
  return l;
}

/** A byte buffer holding one struct (and `extra` trailing bytes for a flexible array). */
export class StructBuf {
  readonly u8: Uint8Array<ArrayBuffer>;
  readonly dv: DataView<ArrayBuffer>;
  readonly layout: LaidOut;

  constructor(def: StructDef, extra = 0) {
    this.layout = laid(def);
    this.u8 = new Uint8Array(this.layout.size + extra);
    this.dv = new DataView(this.u8.buffer);
  }

  #leaf(path: string, index: number, base: number): Field {
    const f = field(this.layout, path);
    if (f.type === "struct" || f.type === "union") {
      throw new TypeError(`${this.layout.name}.${path} is a ${f.type}: expected a scalar field`);
    }
    if (index < 0 || index >= f.count) {
      throw new RangeError(`${this.layout.name}.${path}[${index}]: expected an index below ${f.count}`);
    }
    if (base + f.offset + f.size * (index + 1) > this.u8.length) {
      throw new RangeError(`${this.layout.name}.${path} at ${base} lies beyond the ${this.u8.length}-byte buffer`);
    }
    return f;
  }

  /** Write a scalar field (`u64` as bigint or number) of the struct at byte `base` (0: the header). */
  set(path: string, value: number | bigint, opts: { index?: number; base?: number } = {}): void {
    const index = opts.index ?? 0, base = opts.base ?? 0;
    const f = this.#leaf(path, index, base);
    writeScalar(this.dv, base + f.offset + f.size * index, f.size, value);
  }

  /** Read a scalar field as bigint. */
  get(path: string, opts: { index?: number; base?: number } = {}): bigint {
    const index = opts.index ?? 0, base = opts.base ?? 0;
    const f = this.#leaf(path, index, base);
    return readScalar(this.dv, base + f.offset + f.size * index, f.size);
  }

  /** Read a scalar field as a number (fields up to 32 bits). */
  num(path: string, opts: { index?: number; base?: number } = {}): number {
    return Number(this.get(path, opts));
  }
}

/** Encode/decode an element struct (an array entry) at `at` in a buffer, by path. */
export class ElementCodec {
  readonly layout: LaidOut;
  constructor(def: StructDef) {
    this.layout = laid(def);
  }
  get size(): number {
    return this.layout.size;
  }
  set(dv: DataView, at: number, path: string, value: number | bigint): void {
    const f = field(this.layout, path);
    writeScalar(dv, at + f.offset, f.size, value);
  }
  get(dv: DataView, at: number, path: string): bigint {
    const f = field(this.layout, path);
    return readScalar(dv, at + f.offset, f.size);
  }
}

function writeScalar(dv: DataView, at: number, size: number, value: number | bigint): void {
  switch (size) {
    case 1:
      dv.setUint8(at, Number(value) & 0xff);
      return;
    case 2:
      dv.setUint16(at, Number(value) & 0xffff, true);
      return;
    case 4:
      dv.setUint32(at, Number(BigInt.asUintN(32, BigInt(value))), true);
      return;
    case 8:
      dv.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true);
      return;
    default:
      throw new RangeError(`scalar of ${size} bytes: expected 1, 2, 4 or 8`);
  }
}

function readScalar(dv: DataView, at: number, size: number): bigint {
  switch (size) {
    case 1:
      return BigInt(dv.getUint8(at));
    case 2:
      return BigInt(dv.getUint16(at, true));
    case 4:
      return BigInt(dv.getUint32(at, true));
    case 8:
      return dv.getBigUint64(at, true);
    default:
      throw new RangeError(`scalar of ${size} bytes: expected 1, 2, 4 or 8`);
  }
}
