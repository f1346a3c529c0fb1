/**
 * Little-endian helpers for device payload views (1, 2, 4 or 8 bytes).
 *
 * @module
 */

/** The little-endian value of `data` (up to 8 bytes) as a bigint. */
export function leBig(data: Uint8Array): bigint {
  let v = 0n;
  for (let i = data.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]!);
  return v;
}

/** The little-endian value of `data` (up to 6 bytes exactly; 8-byte values lose precision above 2^53). */
export function leNum(data: Uint8Array): number {
  let v = 0;
  for (let i = data.length - 1; i >= 0; i--) v = v * 256 + data[i]!;
  return v;
}

/** Store `v` little-endian into all of `data`. */
export function putLe(data: Uint8Array, v: number | bigint): void {
  if (typeof v === "number" && data.length <= 4) {
    for (let i = 0; i < data.length; i++) data[i] = (v >>> (8 * i)) & 0xff;
    return;
  }
  let x = BigInt.asUintN(64, BigInt(v));
  for (let i = 0; i < data.length; i++) {
    data[i] = Number(x & 0xffn);
    x >>= 8n;
  }
}
