/**
 * The hash functions measure/ needs, injected by the caller (STYLE-AND-STACK B8): the CLI passes
 * node:crypto, a browser bundle passes @noble/hashes. measure/ itself never imports one, so it runs
 * anywhere. SNP launch digests and TDX MRTD use SHA-384; SEV/SEV-ES digests and the kernel-hashes
 * table use SHA-256.
 *
 * @example
 *   // node
 *   const sha384: Sha384Factory = Object.assign(() => createHash('sha384'), { oneShot: (b: Uint8Array) => hash('sha384', b, 'buffer') });
 *   // browser (@noble/hashes 2.x)
 *   const sha384: Sha384Factory = Object.assign(() => nobleSha384.create(), { oneShot: nobleSha384 });
 */
import { MeasureError } from './errors.js';

/**
 * One streaming hash computation: update() any number of times, then digest() once. update() must
 * consume the bytes before it returns (measure/ reuses its buffers), as node:crypto and noble do.
 */
export interface Hasher {
  update(data: Uint8Array): void;
  digest(): Uint8Array;
}

/**
 * Creates a fresh Hasher. The optional `oneShot` is a faster path for hashing one buffer (per-page
 * hashes dominate SNP; node:crypto's hash() saves about 1 µs per call over createHash()).
 */
export interface HashFactory {
  (): Hasher;
  readonly oneShot?: (data: Uint8Array) => Uint8Array;
}
export type Sha384Factory = HashFactory;
export type Sha256Factory = HashFactory;

export const SHA384_LEN = 48;
export const SHA256_LEN = 32;

/** Hash one buffer, checking the digest length so a wrong factory fails loudly, not with a wrong digest. */
export function hashOnce(f: HashFactory, data: Uint8Array, len: number): Uint8Array {
  let d: Uint8Array;
  if (f.oneShot) d = f.oneShot(data);
  else {
    const h = f();
    h.update(data);
    d = h.digest();
  }
  checkLen(d, len);
  return d;
}

export function checkLen(d: Uint8Array, len: number): void {
  if (d.length !== len) throw new MeasureError('BAD_OPTION', `hash function returned ${d.length} bytes, expected ${len} (wrong factory?)`);
}
