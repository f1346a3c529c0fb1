/**
 * Renders a laid-out struct as a table or JSON (`kvmsim layout`).
 *
 * @module
 */
import { type Arch, ARCHES, type LaidOut, layOut, type StructDef } from "./layout.ts";
import { UAPI_STRUCTS } from "./kvm_structs.ts";
import { INTERNAL_STRUCTS } from "./vcpu_state.ts";

/** Every struct `kvmsim layout` can render, by C name. */
export const KNOWN_STRUCTS: readonly StructDef[] = [...UAPI_STRUCTS, ...INTERNAL_STRUCTS];

export type Endian = "little" | "big";

/** Look a struct up by name (`kvm_run` or `struct kvm_run`). */
export function findStruct(name: string): StructDef {
  const bare = name.replace(/^struct\s+/, "");
  const def = KNOWN_STRUCTS.find((s) => s.name === bare);
  if (!def) {
    throw new RangeError(`unknown struct "${name}": expected one of ${KNOWN_STRUCTS.map((s) => s.name).join(", ")}`);
  }
  return def;
}

/** Parse an `--arch` value. */
export function parseArch(value: string): Arch {
  const a = ARCHES.find((x) => x === value);
  if (!a) throw new RangeError(`unknown arch "${value}": expected one of ${ARCHES.join(", ")}`);
  return a;
}

interface Row {
  offset: number;
  size: number;
  kind: "field" | "padding";
  name: string;
  type: string;
}

function rows(l: LaidOut): Row[] {
  // Declaration order (unions stay readable); each padding run is shown right
  // before the first field of its aggregate that follows it.
  const pending = [...l.padding];
  const out: Row[] = [];
  const seen = new Set<string>();
  const flushPadding = (path: string | null, parent: string, before: number) => {
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i]!;
      const inside = p.in === parent && p.offset + p.size <= before;
      const left = p.in !== "" && seen.has(p.in) && (path === null || !path.startsWith(p.in + "."));
      if (path === null || inside || left) {
        out.push({
          offset: p.offset,
          size: p.size,
          kind: "padding",
          name: `(padding${p.in ? ` in ${p.in}` : ""})`,
          type: "",
        });
        pending.splice(i--, 1);
      }
    }
  };
  for (const f of l.fields) {
    const parent = f.path.includes(".") ? f.path.slice(0, f.path.lastIndexOf(".")) : "";
    flushPadding(f.path, parent, f.offset);
    seen.add(f.path);
    out.push({
      offset: f.offset,
      size: f.size * f.count,
      kind: "field",
      name: `${"  ".repeat(f.depth)}${f.path.split(".").pop()}${f.count > 1 ? `[${f.count}]` : ""}`,
      type: f.type,
    });
  }
  flushPadding(null, "", Infinity);
  return out;
}

/** JSON form: `{struct, arch, endian, size, align, fields: [{path, offset, size, count, type}], padding}`. */
export function layoutJson(def: StructDef, arch: Arch, endian: Endian): unknown {
  const l = layOut(def, arch);
  return {
    struct: l.name,
    arch,
    endian,
    size: l.size,
    align: l.align,
    fields: l.fields.map((f) => ({ path: f.path, offset: f.offset, size: f.size, count: f.count, type: f.type })),
    padding: l.padding,
  };
}

/** Text table with offsets in decimal and hex, sizes and padding. */
export function layoutTable(def: StructDef, arch: Arch, endian: Endian): string {
  const l = layOut(def, arch);
  const lines = [
    `struct ${l.name} (${arch}, ${endian}-endian): size ${l.size} (0x${l.size.toString(16)}), align ${l.align}`,
    `${"offset".padStart(6)} ${"hex".padStart(6)} ${"size".padStart(5)}  field`,
  ];
  for (const r of rows(l)) {
    const type = r.type && r.type !== "struct" && r.type !== "union" ? `  ${r.type}` : r.type ? `  (${r.type})` : "";
    lines.push(
      `${String(r.offset).padStart(6)} ${("0x" + r.offset.toString(16)).padStart(6)} ${
        String(r.size).padStart(5)
      }  ${r.name}${type}`,
    );
  }
  const pad = l.padding.reduce((s, p) => s + p.size, 0);
  lines.push(`padding: ${pad} byte(s) in ${l.padding.length} run(s)`);
  return lines.join("\n");
}
