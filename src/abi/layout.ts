/**
 * Declarative C struct layouts: the one source of truth for every byte offset
 * that crosses the WASM boundary or the kernel ABI.
 *
 * A layout is written once as a {@link StructDef}; {@link layOut} computes
 * offsets, sizes and padding for a target ABI with the C rules (natural
 * alignment, `u64` aligned to 4 on i386, `ulong` pointer-sized, unions sized to
 * their largest member and rounded to their alignment). `scripts/gen_abi.ts`
 * turns the results into AssemblyScript constants; TypeScript reads the same
 * results at load time.
 *
 * @module
 */

/** Primitive C types used by the KVM uapi. */
export type Prim =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "u64"
  | "i64"
  | "ulong";

/** Target ABIs the tables can be laid out for. */
export type Arch = "x86_64" | "i386" | "arm64";
export const ARCHES: readonly Arch[] = ["x86_64", "i386", "arm64"];

/** One member of a struct or union. An empty name marks an anonymous member. */
export interface Member {
  readonly name: string;
  readonly type: Prim | StructDef;
  /** Array element count (`type name[count]`). */
  readonly count?: number;
  readonly doc?: string;
}

/** A C `struct` or `union`. */
export interface StructDef {
  readonly kind: "struct" | "union";
  readonly name: string;
  readonly members: readonly Member[];
  /** `__attribute__((packed))`: no padding, alignment 1. */
  readonly packed?: boolean;
  readonly doc?: string;
}

/** One laid-out leaf or aggregate field. */
export interface Field {
  /** Dotted path from the root, anonymous members skipped (`io.port`). */
  readonly path: string;
  readonly offset: number;
  /** Size of one element. */
  readonly size: number;
  readonly count: number;
  readonly type: Prim | "struct" | "union";
  readonly depth: number;
}

/** A run of padding bytes the compiler inserts. */
export interface Padding {
  readonly offset: number;
  readonly size: number;
  /** Path of the aggregate the padding belongs to ("" for the root). */
  readonly in: string;
}

export interface LaidOut {
  readonly name: string;
  readonly arch: Arch;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly Field[];
  readonly padding: readonly Padding[];
}

function primSize(p: Prim, arch: Arch): number {
  switch (p) {
    case "u8":
    case "i8":
      return 1;
    case "u16":
    case "i16":
      return 2;
    case "u32":
    case "i32":
      return 4;
    case "u64":
    case "i64":
      return 8;
    case "ulong":
      return arch === "i386" ? 4 : 8;
    default: {
      const never: never = p;
      throw new TypeError(`unknown primitive ${String(never)}`);
    }
  }
}

function primAlign(p: Prim, arch: Arch): number {
  const size = primSize(p, arch);
  return arch === "i386" ? Math.min(size, 4) : size;
}

interface Shape {
  size: number;
  align: number;
}

function shapeOf(t: Prim | StructDef, arch: Arch): Shape {
  if (typeof t === "string") {
    return { size: primSize(t, arch), align: primAlign(t, arch) };
  }
  return measure(t, arch, "", 0, 0, null, null);
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

function measure(
  def: StructDef,
  arch: Arch,
  prefix: string,
  base: number,
  depth: number,
  fields: Field[] | null,
  padding: Padding[] | null,
): Shape {
  let off = 0;
  let size = 0;
  let align = 1;
  for (const m of def.members) {
    const shape = shapeOf(m.type, arch);
    const mAlign = def.packed ? 1 : shape.align;
    align = Math.max(align, mAlign);
    const count = m.count ?? 1;
    const at = def.kind === "union" ? 0 : alignUp(off, mAlign);
    if (at > off && padding) {
      padding.push({ offset: base + off, size: at - off, in: prefix });
    }
    const path = m.name === "" ? prefix : prefix === "" ? m.name : `${prefix}.${m.name}`;
    if (fields && m.name !== "") {
      fields.push({
        path,
        offset: base + at,
        size: shape.size,
        count,
        type: typeof m.type === "string" ? m.type : m.type.kind,
        depth,
      });
    }
    if (typeof m.type !== "string" && fields) {
      // Lay out the first element's members (arrays of structs repeat it).
      measure(m.type, arch, path, base + at, depth + 1, fields, padding);
    }
    const end = at + shape.size * count;
    if (def.kind === "union") size = Math.max(size, end);
    else off = end;
  }
  if (def.kind === "struct") size = off;
  const total = alignUp(size, def.packed ? 1 : align);
  if (total > size && padding && def.kind === "struct") {
    padding.push({ offset: base + size, size: total - size, in: prefix });
  }
  return { size: total, align: def.packed ? 1 : align };
}

/** Lay a struct out for `arch`. */
export function layOut(def: StructDef, arch: Arch = "x86_64"): LaidOut {
  const fields: Field[] = [];
  const padding: Padding[] = [];
  const shape = measure(def, arch, "", 0, 0, fields, padding);
  return { name: def.name, arch, size: shape.size, align: shape.align, fields, padding };
}

/** Per layout, its fields by path (the first of equal paths, as a search in order finds). */
const BY_PATH = new WeakMap<LaidOut, Map<string, Field>>();

function pathIndex(l: LaidOut): Map<string, Field> {
  let m = BY_PATH.get(l);
  if (m === undefined) {
    m = new Map();
    for (const f of l.fields) if (!m.has(f.path)) m.set(f.path, f);
    BY_PATH.set(l, m);
  }
  return m;
}

/** Find a field by dotted path; throws a descriptive error when absent. */
export function field(l: LaidOut, path: string): Field {
  const f = pathIndex(l).get(path);
  if (!f) {
    throw new RangeError(`struct ${l.name} has no field "${path}" (fields: ${l.fields.map((x) => x.path).join(", ")})`);
  }
  return f;
}

/** Byte offset of a dotted path. */
export function offsetOf(l: LaidOut, path: string): number {
  return field(l, path).offset;
}
