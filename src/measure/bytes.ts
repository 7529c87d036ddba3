/**
 * Bounds-checked little-endian reads over an image, EFI GUIDs, and hex. Every read of firmware bytes
 * in measure/ goes through Reader, so a field past the end is a MeasureError('TRUNCATED') naming the
 * structure, never a RangeError or a silent undefined.
 */
import { MeasureError } from './errors.js';

export class Reader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number {
    return this.bytes.length;
  }
  /** Throws unless [off, off+len) lies inside the bytes. */
  need(off: number, len: number, what: string): void {
    if (!Number.isSafeInteger(off) || off < 0 || len < 0 || off + len > this.bytes.length) {
      throw new MeasureError(
        'TRUNCATED',
        `${what}: needs bytes [0x${hex0(off)}, 0x${hex0(off + len)}) but the image is 0x${this.bytes.length.toString(16)} bytes`,
      );
    }
  }
  u16(off: number, what: string): number {
    this.need(off, 2, what);
    return this.view.getUint16(off, true);
  }
  u32(off: number, what: string): number {
    this.need(off, 4, what);
    return this.view.getUint32(off, true);
  }
  u64(off: number, what: string): bigint {
    this.need(off, 8, what);
    return this.view.getBigUint64(off, true);
  }
  slice(off: number, len: number, what: string): Uint8Array {
    this.need(off, len, what);
    return this.bytes.subarray(off, off + len);
  }
  guid(off: number, what: string): string {
    return guidToString(this.slice(off, 16, what));
  }
}

function hex0(n: number): string {
  return Number.isFinite(n) ? Math.max(0, n).toString(16) : String(n);
}

/**
 * EFI GUIDs are stored mixed-endian: the first three fields little-endian, the last 8 bytes as
 * written (MEASUREMENT.md §1.4; Python's uuid.UUID(s).bytes_le).
 */
export function guidBytes(s: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(s);
  if (!m) throw new MeasureError('BAD_OPTION', `not a GUID: ${s}`);
  const b = fromHex(`${m[4]}${m[5]}`);
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  v.setUint32(0, Number.parseInt(m[1] as string, 16), true);
  v.setUint16(4, Number.parseInt(m[2] as string, 16), true);
  v.setUint16(6, Number.parseInt(m[3] as string, 16), true);
  out.set(b, 8);
  return out;
}

export function guidToString(b: Uint8Array): string {
  const v = new DataView(b.buffer, b.byteOffset, 16);
  const p = (n: number, w: number) => n.toString(16).padStart(w, '0');
  const tail = toHex(b.subarray(8, 16));
  return `${p(v.getUint32(0, true), 8)}-${p(v.getUint16(4, true), 4)}-${p(v.getUint16(6, true), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += HEX[x];
  return s;
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new MeasureError('BAD_OPTION', `not a hex string: ${s.length > 40 ? `${s.slice(0, 40)}…` : s}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export const PAGE = 4096;
