/**
 * GDT segment descriptors, the 64-bit TSS descriptor and IDT gates as bytes
 * (Intel SDM Vol. 3A §3.4.5 segment descriptors, §7.2.3 TSS descriptor in
 * 64-bit mode, §6.11 / §6.14.1 IDT gate descriptors).
 *
 * @module
 */
import type { KvmSegment } from "./regs.ts";

/** An 8-byte code/data descriptor for a `kvm_segment`. */
export function segmentDescriptor(s: KvmSegment): bigint {
  const base = BigInt.asUintN(32, s.base);
  const limit = BigInt(s.g ? s.limit >>> 12 : s.limit) & 0xfffffn;
  const access = BigInt((s.type & 0xf) | (s.s << 4) | ((s.dpl & 3) << 5) | (s.present << 7));
  const flags = BigInt((s.avl & 1) | ((s.l & 1) << 1) | ((s.db & 1) << 2) | ((s.g & 1) << 3));
  return (limit & 0xffffn) | ((base & 0xffffffn) << 16n) | (access << 40n) | ((limit >> 16n) << 48n) | (flags << 52n) |
    ((base >> 24n) << 56n);
}

/** A present system segment (`s` = 0: TSS, LDT) as a `kvm_segment`. */
export function systemSegment(base: bigint, limit: number, type: number, selector = 0, unusable = 0): KvmSegment {
  return { base, limit, selector, type, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable };
}

/** The 16-byte system descriptor of a 64-bit TSS/LDT (`type` 0x9 available / 0xb busy TSS, 0x2 LDT). */
export function systemDescriptor64(base: bigint, limit: number, type: number): [bigint, bigint] {
  const lo = segmentDescriptor(systemSegment(BigInt.asUintN(32, base), limit, type));
  return [lo, BigInt.asUintN(64, base) >> 32n];
}

/** A 16-byte long-mode interrupt gate (type 0xe) to `offset` in code selector `selector`. */
export function idtGate64(offset: bigint, selector: number, dpl = 0, type = 0xe): [bigint, bigint] {
  const o = BigInt.asUintN(64, offset);
  const lo = (o & 0xffffn) | (BigInt(selector) << 16n) | (BigInt(0x80 | ((dpl & 3) << 5) | type) << 40n) |
    (((o >> 16n) & 0xffffn) << 48n);
  return [lo, o >> 32n];
}

/** An 8-byte 32-bit interrupt gate (type 0xe). */
export function idtGate32(offset: number, selector: number, dpl = 0, type = 0xe): bigint {
  const o = BigInt(offset >>> 0);
  return (o & 0xffffn) | (BigInt(selector) << 16n) | (BigInt(0x80 | ((dpl & 3) << 5) | type) << 40n) |
    ((o >> 16n) << 48n);
}
