/**
 * Test support for measure/: repository paths, the node:crypto hashes, the real firmware (sha256
 * checked before use: a mismatch fails the test), the reference tools' fixtures, and the synthetic
 * image of MEASUREMENT.md §5.6 rebuilt byte for byte.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeSha256, nodeSha384 } from '../../src/cli/measure.js';
import { guidBytes } from '../../src/measure/index.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIRMWARE = join(ROOT, '../shared/firmware');
export const sha384 = nodeSha384;
export const sha256 = nodeSha256;

export const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
export const sha384hex = (b: Uint8Array) => createHash('sha384').update(b).digest('hex');

/** shared/firmware/README.md */
export const FIRMWARE_SHA256 = {
  'OVMF.bookworm.fd': '7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773',
  'OVMF.amdsev.fd': '3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f',
  'OVMF.inteltdx.ms.fd': 'a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312',
} as const;
export type FirmwareName = keyof typeof FIRMWARE_SHA256;

const cache = new Map<string, Uint8Array>();
/** A firmware image from shared/firmware, after checking its sha256 (a mismatch is a failure, not a skip). */
export function firmware(name: FirmwareName): Uint8Array {
  let b = cache.get(name);
  if (!b) {
    b = new Uint8Array(readFileSync(join(FIRMWARE, name)));
    assert.equal(sha256hex(b), FIRMWARE_SHA256[name], `${name}: sha256 differs from shared/firmware/README.md`);
    cache.set(name, b);
  }
  return b;
}

/**
 * virtee/sev-snp-measure's test fixtures (Apache-2.0, tests/fixtures/ @8f2b337; MEASUREMENT.md §5.1).
 * Binary data from a fetched repository may live only under shared/, so they are looked up at
 * shared/fixtures/sev-snp-measure/, or in $GUESTMEM_SNP_FIXTURES. Absent, the tests that need them
 * skip loudly; GUESTMEM_REQUIRE_MEASURE_FIXTURES=1 turns that skip into a failure.
 */
export const SNP_FIXTURE_SHA256 = {
  'ovmf_AmdSev_suffix.bin': '8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c',
  'ovmf_OvmfX64_suffix.bin': 'b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da',
  'svsm.bin': '287fcee67b501b072e4953b5006059d088b454e9197bc318885385acb233d5d1',
  'svsm_ovmf.fd': '50d1bf8676c7fb2ff6b8e50cf8fc0491534de27c12d6345a2dcefef51cbac97e',
} as const;
export type SnpFixtureName = keyof typeof SNP_FIXTURE_SHA256;
export const SNP_FIXTURES = process.env.GUESTMEM_SNP_FIXTURES ?? join(ROOT, '../shared/fixtures/sev-snp-measure');

/** The fixture's bytes after its sha256 check, or a skip reason when it is not there. */
export function snpFixture(name: SnpFixtureName): Uint8Array | string {
  const p = join(SNP_FIXTURES, name);
  if (!existsSync(p)) {
    const why = `sev-snp-measure fixture ${name} not found in ${SNP_FIXTURES} (copy virtee/sev-snp-measure@8f2b337 tests/fixtures/ there, or set GUESTMEM_SNP_FIXTURES)`;
    if (process.env.GUESTMEM_REQUIRE_MEASURE_FIXTURES === '1') assert.fail(why);
    return why;
  }
  const b = new Uint8Array(readFileSync(p));
  assert.equal(sha256hex(b), SNP_FIXTURE_SHA256[name], `${name}: sha256 differs from MEASUREMENT.md §5.1`);
  return b;
}

// ---- MEASUREMENT.md §5.6: the synthetic 64 KiB firmware, ported literally from the recipe ----

export const SYNTH_SIZE = 0x10000;

function u32s(...xs: number[]): Uint8Array {
  const b = new Uint8Array(4 * xs.length);
  const v = new DataView(b.buffer);
  xs.forEach((x, i) => {
    v.setUint32(4 * i, x, true);
  });
  return b;
}
function u16(x: number): Uint8Array {
  return new Uint8Array([x & 0xff, x >> 8]);
}
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
function tdvfSection(dataOffset: number, raw: number, addr: number, size: number, type: number, attr: number): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setUint32(0, dataOffset, true);
  v.setUint32(4, raw, true);
  v.setBigUint64(8, BigInt(addr), true);
  v.setBigUint64(16, BigInt(size), true);
  v.setUint32(24, type, true);
  v.setUint32(28, attr, true);
  return b;
}
const ascii = (s: string) => new TextEncoder().encode(s);

export const SYNTH_SEV_ITEMS: [number, number, number][] = [
  [0x800000, 0x9000, 1],
  [0x80a000, 0x3000, 1],
  [0x80d000, 0x1000, 2],
  [0x80e000, 0x1000, 3],
  [0x80f000, 0x1000, 4],
  [0x810000, 0x1000, 0x10],
  [0x811000, 0x2000, 1],
];
export const SYNTH_TDX_SECTIONS: [number, number, number, number, number, number][] = [
  [0x8000, 0x8000, 0xffff8000, 0x8000, 0, 1],
  [0x0000, 0x8000, 0xffff0000, 0x8000, 1, 0],
  [0, 0, 0x809000, 0x2000, 2, 0],
  [0, 0, 0x800000, 0x6000, 3, 0],
];
/** file offsets of the structures, for tests that corrupt them */
export const SYNTH_AT = { ASEV: 0xf000, TDVF_GUID: 0xf100, TDVF: 0xf110 } as const;

export function synthImage(): Uint8Array {
  const img = new Uint8Array(SYNTH_SIZE);
  for (let i = 0; i < SYNTH_SIZE; i++) img[i] = ((i * 31 + 7) ^ (i >> 8)) & 0xff;
  const sev = cat(ascii('ASEV'), u32s(16 + 12 * SYNTH_SEV_ITEMS.length, 1, SYNTH_SEV_ITEMS.length), ...SYNTH_SEV_ITEMS.map((t) => u32s(...t)));
  img.set(sev, SYNTH_AT.ASEV);
  const tdx = cat(
    guidBytes('e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae'),
    ascii('TDVF'),
    u32s(16 + 32 * SYNTH_TDX_SECTIONS.length, 1, SYNTH_TDX_SECTIONS.length),
    ...SYNTH_TDX_SECTIONS.map((s) => tdvfSection(...s)),
  );
  img.set(tdx, SYNTH_AT.TDVF_GUID);
  const entry = (g: string, d: Uint8Array) => cat(d, u16(d.length + 18), guidBytes(g));
  const entries = cat(
    entry('00f771de-1a7e-4fcb-890e-68c77e2fb44e', u32s(0x0080b004)),
    entry('7255371f-3a3b-4b04-927b-1da6efa8d454', u32s(0x810c00, 0x400)),
    entry('dc886566-984a-4798-a75e-5585a7bf67cc', u32s(SYNTH_SIZE - 0xf000)),
    entry('e47a6535-984a-4798-865e-4685a7bf8ec2', u32s(SYNTH_SIZE - 0xf110)),
  );
  const tbl = cat(entries, u16(entries.length + 18), guidBytes('96b582de-1fb2-45f7-baea-a366c55a082d'));
  img.set(tbl, SYNTH_SIZE - 32 - tbl.length);
  return img;
}
export const SYNTH_SHA256 = '939708ae1f1e772fac76ee0c033d04631b71cc09a4c7d19a65b4e7eb6c0e3e15';

/** §5.6 kernel K (1 MiB) and initrd I (300000 bytes). */
export function synthKernel(): Uint8Array {
  const b = new Uint8Array(1 << 20);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + 7) & 0xff;
  return b;
}
export function synthInitrd(): Uint8Array {
  const b = new Uint8Array(300000);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7) & 0xff;
  return b;
}

/** The footer-table location of the synthetic image (tests corrupt entries through it). */
export const SYNTH_TABLE_END = SYNTH_SIZE - 32 - 18;
