/**
 * Malformed images and bad options fail with MeasureError and a code that says which rule they broke
 * (MEASUREMENT.md §8 item 6, plus the parser's own rules), each built by corrupting one field of the
 * synthetic image. Also: the reference behaviours that are not errors (no footer table for SEV and
 * snp:ovmf-hash, zero-size sections).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  guidBytes,
  MeasureError,
  type MeasureErrorCode,
  OVMF_GUID,
  parseOvmf,
  SNP_PAGE_TYPE,
  type SnpOptions,
  sevEsLaunchDigest,
  sevKernelHashes,
  sevLaunchDigest,
  snpLaunchDigest,
  snpLaunchPlan,
  snpOvmfHash,
  type TdxOrder,
  tdxMrtd,
  toHex,
} from '../../src/measure/index.js';
import { firmware, SYNTH_AT, SYNTH_SHA256, SYNTH_SIZE, sha256, sha256hex, sha384, synthImage } from './support.js';

const base = synthImage();
const entryAt = (guid: string) => parseOvmf(base).table.get(guid)?.offset as number;
const TABLE_END = SYNTH_SIZE - 32 - 18;
const V4: SnpOptions = { vcpus: 2, vcpuType: 'EPYC-v4' };
const kernel = sevKernelHashes({ kernel: new Uint8Array(10) }, sha256);

/** A copy of the synthetic image with some little-endian fields overwritten. */
function patched(...edits: [at: number, value: number | bigint, width: 1 | 2 | 4 | 8][]): Uint8Array {
  const b = base.slice();
  const v = new DataView(b.buffer);
  for (const [at, x, w] of edits) {
    if (w === 1) v.setUint8(at, Number(x));
    else if (w === 2) v.setUint16(at, Number(x), true);
    else if (w === 4) v.setUint32(at, Number(x), true);
    else v.setBigUint64(at, BigInt(x), true);
  }
  return b;
}
const sevItem = (i: number, field: 0 | 1 | 2) => SYNTH_AT.ASEV + 16 + 12 * i + 4 * field;
/** field: 0 DataOffset, 1 RawDataSize, 2 MemoryAddress (u64), 3 MemoryDataSize (u64), 4 Type, 5 Attributes */
const tdvfField = (i: number, field: 0 | 1 | 2 | 3 | 4 | 5) => SYNTH_AT.TDVF + 16 + 32 * i + [0, 4, 8, 16, 24, 28][field]!;

const snp = (img: Uint8Array, o: SnpOptions = V4) => snpLaunchDigest(img, o, sha384);
const tdx = (img: Uint8Array, order: TdxOrder = 'per-page') => tdxMrtd(img, { order }, sha384);

function fails(f: () => unknown, code: MeasureErrorCode, message?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof MeasureError, `expected MeasureError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.length > 0 && !e.message.includes('\n'), 'one-line message');
    if (message) assert.match(e.message, message);
    return true;
  });
}

const cases: [string, () => unknown, MeasureErrorCode, RegExp?][] = [
  ['empty image', () => snp(new Uint8Array(0)), 'TRUNCATED'],
  ['image not a whole number of pages', () => tdx(new Uint8Array(SYNTH_SIZE + 1)), 'UNALIGNED'],
  ['no footer table: SNP needs the AP reset EIP (as sev-snp-measure)', () => snp(new Uint8Array(0x2000)), 'MISSING', /SEV-ES reset block/],
  ['no footer table: no TDX metadata', () => tdx(new Uint8Array(0x2000)), 'MISSING'],
  ['footer table longer than the image', () => snp(patched([TABLE_END, 0xffff, 2])), 'OUT_OF_RANGE'],
  ['footer table length below its own 18 bytes', () => snp(patched([TABLE_END, 17, 2])), 'TRUNCATED'],
  ['table entry length below 18', () => snp(patched([entryAt(OVMF_GUID.SEV_METADATA) + 4, 3, 2])), 'TRUNCATED'],
  ['table entry running past the table start', () => snp(patched([entryAt(OVMF_GUID.SEV_HASH_TABLE) + 8, 200, 2])), 'OUT_OF_RANGE'],
  [
    'the same GUID twice in the table',
    () => {
      const b = base.slice();
      b.set(guidBytes(OVMF_GUID.SEV_ES_RESET_BLOCK), entryAt(OVMF_GUID.SEV_HASH_TABLE) + 10);
      return snp(b);
    },
    'UNSUPPORTED',
  ],
  ['SEV metadata offset beyond the image', () => snp(patched([entryAt(OVMF_GUID.SEV_METADATA), 0x20000, 4])), 'OUT_OF_RANGE'],
  ['SEV metadata header cut off by the end of the image', () => snp(patched([entryAt(OVMF_GUID.SEV_METADATA), 8, 4])), 'TRUNCATED'],
  ['SEV metadata signature', () => snp(patched([SYNTH_AT.ASEV, 0x56455341 + 1, 4])), 'BAD_SIGNATURE', /ASEV/],
  ['SEV metadata version 2', () => snp(patched([SYNTH_AT.ASEV + 8, 2, 4])), 'BAD_SIGNATURE'],
  ['SEV metadata absurd section count', () => snp(patched([SYNTH_AT.ASEV + 12, 0xffffffff, 4])), 'ABSURD'],
  ['SEV metadata size not matching its count', () => snp(patched([SYNTH_AT.ASEV + 4, 16 + 12 * 7 + 12, 4])), 'ABSURD'],
  ['SEV section of unknown type', () => snp(patched([sevItem(0, 2), 9, 4])), 'UNSUPPORTED'],
  ['SEV section GPA not page aligned', () => snp(patched([sevItem(0, 0), 0x800010, 4])), 'UNALIGNED'],
  ['SEV section size not page aligned', () => snp(patched([sevItem(0, 1), 0x9001, 4])), 'UNALIGNED'],
  ['SEV section crossing 4 GiB', () => snp(patched([sevItem(0, 0), 0xfffff000, 4])), 'OUT_OF_RANGE'],
  ['SEV sections overlapping each other', () => snp(patched([sevItem(1, 0), 0x808000, 4])), 'OVERLAP'],
  ['SEV section overlapping the firmware', () => snp(patched([sevItem(6, 0), 0xffffe000, 4])), 'OVERLAP'],
  ['SECRETS page on a SEC_MEM range', () => snp(patched([sevItem(2, 0), 0x801000, 4])), 'OVERLAP'],
  [
    'kernel without an SNP_KERNEL_HASHES section (sev-snp-measure wording)',
    () => snp(patched([sevItem(5, 2), 1, 4]), { ...V4, kernelHashes: kernel }),
    'MISSING',
    /^Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section$/,
  ],
  [
    'kernel, but the hash-table GPA is outside the hashes page',
    () => snp(patched([entryAt(OVMF_GUID.SEV_HASH_TABLE), 0x900c00, 4]), { ...V4, kernelHashes: kernel }),
    'OUT_OF_RANGE',
  ],
  [
    'kernel, but the hash table would not fit in its page',
    () => snp(patched([entryAt(OVMF_GUID.SEV_HASH_TABLE), 0x810fc0, 4]), { ...V4, kernelHashes: kernel }),
    'OUT_OF_RANGE',
  ],
  ['SEV kernel without a hash table', () => sevLaunchDigest(patched([entryAt(OVMF_GUID.SEV_HASH_TABLE), 0, 4]), { kernelHashes: kernel }, sha256), 'MISSING'],
  [
    'SEV-ES kernel without a hash table',
    () => sevEsLaunchDigest(patched([entryAt(OVMF_GUID.SEV_HASH_TABLE), 0, 4]), { ...V4, kernelHashes: kernel }, sha256),
    'MISSING',
  ],
  ['TDVF offset beyond the image', () => tdx(patched([entryAt(OVMF_GUID.TDX_METADATA), 0x20000, 4])), 'OUT_OF_RANGE'],
  ['TDVF GUID missing before the descriptor', () => tdx(patched([SYNTH_AT.TDVF_GUID, 0, 4])), 'BAD_GUID'],
  ['TDVF signature', () => tdx(patched([SYNTH_AT.TDVF, 0, 4])), 'BAD_SIGNATURE'],
  ['TDVF version', () => tdx(patched([SYNTH_AT.TDVF + 8, 0, 4])), 'BAD_SIGNATURE'],
  ['TDVF with one section (QEMU wants BFV and TD_HOB at least)', () => tdx(patched([SYNTH_AT.TDVF + 12, 1, 4], [SYNTH_AT.TDVF + 4, 48, 4])), 'ABSURD'],
  ['TDVF absurd section count', () => tdx(patched([SYNTH_AT.TDVF + 12, 0x10000000, 4])), 'ABSURD'],
  ['TDVF length not matching its count', () => tdx(patched([SYNTH_AT.TDVF + 4, 16 + 32 * 3, 4])), 'ABSURD'],
  ['TDVF section type 5 (td-shim payload)', () => tdx(patched([tdvfField(3, 4), 5, 4])), 'UNSUPPORTED'],
  ['TDVF PAGE.AUG attribute', () => tdx(patched([tdvfField(3, 5), 2, 4])), 'UNSUPPORTED'],
  ['TDVF MR_EXTEND on a TEMP_MEM section', () => tdx(patched([tdvfField(3, 5), 1, 4])), 'UNSUPPORTED'],
  ['TDVF MemoryAddress not page aligned', () => tdx(patched([tdvfField(2, 2), 0x809800, 8])), 'UNALIGNED'],
  ['TDVF MemoryDataSize not page aligned', () => tdx(patched([tdvfField(2, 3), 0x2001, 8])), 'UNALIGNED'],
  ['TDVF RawDataSize above MemoryDataSize', () => tdx(patched([tdvfField(0, 1), 0x9000, 4])), 'ABSURD'],
  ['TDVF BFV data outside the image (cf. OVMF_CODE_4M.fd)', () => tdx(patched([tdvfField(0, 0), 0xa000, 4])), 'OUT_OF_RANGE'],
  ['TDVF TD_HOB carrying raw data', () => tdx(patched([tdvfField(2, 1), 0x1000, 4])), 'ABSURD'],
  ['TDVF sections overlapping', () => tdx(patched([tdvfField(3, 2), 0x808000, 8])), 'OVERLAP'],
  ['TDVF section beyond the 52-bit GPA space', () => tdx(patched([tdvfField(3, 2), 1n << 52n, 8])), 'OUT_OF_RANGE'],
  ['TDVF sections adding up to an absurd page count', () => tdx(patched([tdvfField(3, 3), 1n << 40n, 8])), 'ABSURD'],
  ['0 vCPUs', () => snp(base, { vcpus: 0, vcpuType: 'EPYC-v4' }), 'BAD_OPTION'],
  ['5000 vCPUs', () => snp(base, { vcpus: 5000, vcpuType: 'EPYC-v4' }), 'BAD_OPTION'],
  ['fractional vCPUs', () => sevEsLaunchDigest(base, { vcpus: 1.5, vcpuType: 'EPYC-v4' }, sha256), 'BAD_OPTION'],
  ['unknown vCPU type', () => snp(base, { vcpus: 1, vcpuType: 'EPYC-v9' }), 'BAD_OPTION', /EPYC-v9/],
  ['QEMU VMSA without a CPU model', () => snp(base, { vcpus: 1 }), 'BAD_OPTION'],
  ['guest features above u64', () => snp(base, { vcpus: 1, vcpuType: 'EPYC-v4', guestFeatures: 1n << 64n }), 'BAD_OPTION'],
  ['OVMF hash seed of the wrong length', () => snp(base, { ...V4, ovmfHash: new Uint8Array(32) }), 'BAD_OPTION'],
  ['unknown TDX order', () => tdx(base, 'two-pass' as TdxOrder), 'BAD_OPTION'],
  ['unknown VMM type', () => snp(base, { ...V4, vmmType: 'xen' as 'qemu' }), 'BAD_OPTION'],
];

for (const [name, f, code, re] of cases) test(`${code}: ${name}`, () => fails(f, code, re));

test('no footer table is not an error for SEV (file sha256) or snp:ovmf-hash', () => {
  const b = new Uint8Array(0x2000).fill(0x5a);
  assert.equal(toHex(sevLaunchDigest(b, {}, sha256)), sha256hex(b));
  assert.equal(snpOvmfHash(b, sha384).length, 48);
  assert.equal(toHex(sevLaunchDigest(base, {}, sha256)), SYNTH_SHA256);
});

test('zero-size SEC_MEM / SVSM_CAA / unmeasured KERNEL_HASHES sections measure no pages; SECRETS and CPUID always one', () => {
  const b = patched([sevItem(0, 1), 0, 4], [sevItem(4, 1), 0, 4], [sevItem(5, 1), 0, 4], [sevItem(2, 1), 0, 4], [sevItem(3, 1), 0x3000, 4]);
  const plan = snpLaunchPlan(b, { vcpus: 1, vcpuType: 'EPYC-v4' });
  const at = (gpa: bigint) => plan.filter((u) => u.gpa === gpa).map((u) => [u.type, u.length]);
  assert.deepEqual(at(0x800000n), []);
  assert.deepEqual(at(0x80f000n), []);
  assert.deepEqual(at(0x810000n), []);
  assert.deepEqual(at(0x80d000n), [[SNP_PAGE_TYPE.SECRETS, 4096]]);
  assert.deepEqual(at(0x80e000n), [[SNP_PAGE_TYPE.CPUID, 4096]]);
});

test('the last 3.5 MiB of a real unified image (like OVMF_CODE_4M.fd): TDX fails, SNP still measures', () => {
  const code = firmware('OVMF.amdsev.fd').subarray(0x80000);
  fails(() => tdx(code), 'OUT_OF_RANGE', /outside/);
  assert.equal(snp(code).length, 48);
});

test('MeasureError serialises for worker and HTTP boundaries', () => {
  const e = new MeasureError('OVERLAP', 'x');
  assert.deepEqual(JSON.parse(JSON.stringify(e)), { name: 'MeasureError', code: 'OVERLAP', message: 'x' });
});
