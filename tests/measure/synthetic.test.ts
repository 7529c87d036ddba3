/**
 * MEASUREMENT.md §5.6: the synthetic 64 KiB firmware rebuilt in the test, every expected value of its
 * table (sev-snp-measure @8f2b337 for SNP/SEV; td-shim @125eeab and Fraunhofer @084313f for MRTD),
 * and the intermediate values of §5.6, §1.6 and §2.1 that pin a mismatch to one field.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildVmsa,
  fromHex,
  SNP_PAGE_TYPE,
  SnpGuestContext,
  type SnpOptions,
  sevEsLaunchDigest,
  sevKernelHashes,
  sevLaunchDigest,
  snpLaunchDigest,
  snpLaunchPlan,
  snpOvmfHash,
  TdxMrtdContext,
  tdxLaunchPlan,
  tdxMeasureOps,
  tdxMrExtendHeader,
  tdxMrtd,
  tdxPageAddRecord,
  toHex,
  VCPU_TYPES,
} from '../../src/measure/index.js';
import { SYNTH_SHA256, sha256, sha256hex, sha384, sha384hex, synthImage, synthInitrd, synthKernel } from './support.js';

const img = synthImage();
const K = synthKernel();
const I = synthInitrd();
const kernelKI = sevKernelHashes({ kernel: K, initrd: I, append: 'console=ttyS0' }, sha256);

test('the synthetic image, K and I are byte-identical to the recipe', () => {
  assert.equal(sha256hex(img), SYNTH_SHA256);
  assert.equal(sha256hex(K), 'b7f7ba5ce5463b3c84a283f779d7a652cbf99122de5923ba51627607ff1497d5');
  assert.equal(sha256hex(I), '230ed06df482a77672cd93b6d4024053b380b8563d3a939aa5d25574772ee479');
});

const snpRows: [string, SnpOptions, string][] = [
  [
    'SNP 1 vCPU EPYC-v4 feat 0x1',
    { vcpus: 1, vcpuType: 'EPYC-v4' },
    '9ae1f38d384fb2a2523eb0948dbb8a1c905c8c17c409eb7602487f7e937e7677e539d007d54464e7bd6166df6de2f712',
  ],
  [
    'SNP 1 vCPU EPYC-v4 feat 0x21',
    { vcpus: 1, vcpuType: 'EPYC-v4', guestFeatures: 0x21n },
    'a7289e2b6f2ef82e99233e5b459ff994e0643ae45ceece7cf1820e527318cd6591188542cb9817d4e22d8e6ccb3104cc',
  ],
  [
    'SNP 4 vCPU EPYC-v4 feat 0x1',
    { vcpus: 4, vcpuType: 'EPYC-v4' },
    '5a143f50680d29c8c630aa7bca798578a365ee36003b99a70baba60989d8b6592775a3dee4bf1ed64250c29df7b4513d',
  ],
  [
    'SNP 4 vCPU EPYC-Milan feat 0x21',
    { vcpus: 4, vcpuType: 'EPYC-Milan', guestFeatures: 0x21n },
    '8f198ae0d2ddf309cabd53fd1953b3682431399e2baea1a9ef149972cdf1f2d3da98f2d1e7c178f943cc0a108ec199a8',
  ],
  [
    'SNP 2 vCPU EPYC-Genoa feat 0x1',
    { vcpus: 2, vcpuType: 'EPYC-Genoa' },
    'ff7f49e06030b28fa8054d8dd84eee20b4a24e9a5b9ed6210938e2df12faf3933a93153ef293cc0198012d33eec13027',
  ],
  [
    'SNP 1 vCPU, kernel=/dev/null, initrd=/dev/null, append=""',
    { vcpus: 1, vcpuType: 'EPYC-v4', kernelHashes: sevKernelHashes({ kernel: new Uint8Array(0), initrd: new Uint8Array(0), append: '' }, sha256) },
    'dfe7d0751bd55bd435dd6eadf422f19a274e3e195800331c916c3cd0dbb8f5caad03921f6abf0edf5a8c507b984ef997',
  ],
  [
    'SNP 1 vCPU, K, I, "console=ttyS0"',
    { vcpus: 1, vcpuType: 'EPYC-v4', kernelHashes: kernelKI },
    'd49c0a5aa42b787048d04c6623974ed8ec23824632eec8f2260b4cec01aa681760e337bc27a4e95fa1b20c8232829afd',
  ],
  [
    'SNP 2 vCPU, K, I, "console=ttyS0"',
    { vcpus: 2, vcpuType: 'EPYC-v4', kernelHashes: kernelKI },
    'bb3f391a20e6b2f29c71eeddc122fec885096769c6035f1b8768bb38eade8f5d40ba7ac539adb748be694d77dff8c1be',
  ],
  [
    'SNP 2 vCPU EPYC-Milan 0x21, K, I, "console=ttyS0"',
    { vcpus: 2, vcpuType: 'EPYC-Milan', guestFeatures: 0x21n, kernelHashes: kernelKI },
    '386ded9432c0c6ab5292f274277a2d5b38f8b463f6321f686f487af39bd0926b589a794540fd8175956f2d5e09ae32c5',
  ],
  [
    'SNP 2 vCPU, K, no initrd, "console=ttyS0"',
    { vcpus: 2, vcpuType: 'EPYC-v4', kernelHashes: sevKernelHashes({ kernel: K, append: 'console=ttyS0' }, sha256) },
    '6242cd535b48314a1bd1d432df21635e234a10a81d5132b46eac1b1c35d91d7867ea12f34b4436884ba67dc1c6950a9a',
  ],
  ['SNP gce 1 vCPU 0x1', { vcpus: 1, vmmType: 'gce' }, '8c99a6ca02c43c7fca56fa7548d59624dc80b6e1523e244a05b866c1a7377f0e452cb4a2483c3a4c6bd129fa53be5262'],
  [
    'SNP ec2 1 vCPU EPYC-v4 0x1',
    { vcpus: 1, vcpuType: 'EPYC-v4', vmmType: 'ec2' },
    '9bc1341478af38cd92349871a6016a679e13ee6c7f2c83c93a52a1c006c23584f3ce7a8a206e0a564f9e76924c5180a5',
  ],
  [
    'SNP ec2 2 vCPU EPYC-v4 0x1',
    { vcpus: 2, vcpuType: 'EPYC-v4', vmmType: 'ec2' },
    '5ebfde3bba3ebe8edd7dcc49a1391d523a0ef6d58e8a8793c577fc24aa85add8b74741ba2ac7b13988cf65a93a23a3a6',
  ],
];

test('§5.6 snp:ovmf-hash', () => {
  assert.equal(toHex(snpOvmfHash(img, sha384)), '7060f5a08547c33e2dbe1c3fec19493929ab3a465af5fa901ae236c5744bbd2da0316f12b1f42d33008017a3143d1a48');
});

for (const [name, opts, want] of snpRows) {
  test(`§5.6 ${name}`, () => {
    assert.equal(toHex(snpLaunchDigest(img, opts, sha384)), want);
  });
}

test('§5.6 SEV-ES 1 vCPU EPYC-v4', () => {
  assert.equal(toHex(sevEsLaunchDigest(img, { vcpus: 1, vcpuType: 'EPYC-v4' }, sha256)), 'a357d687c02bba536c1fbecb0bece49f2c5e37bc922f59d6cf65f945fbb818fe');
});
test('§5.6 SEV-ES 2 vCPU EPYC-v4, K, I, "console=ttyS0"', () => {
  assert.equal(
    toHex(sevEsLaunchDigest(img, { vcpus: 2, vcpuType: 'EPYC-v4', kernelHashes: kernelKI }, sha256)),
    'e765157b2c409e73f110e5333b0b485d3cdc8a949c11859cd50f114ea0fe4171',
  );
});
test('§5.6 SEV, K, I, "console=ttyS0"; without a kernel SEV is the file sha256', () => {
  assert.equal(toHex(sevLaunchDigest(img, { kernelHashes: kernelKI }, sha256)), '7c364413e1b066dded6789884ad005a3010cae69e3401bab92cd45fc43d9fa92');
  assert.equal(toHex(sevLaunchDigest(img, {}, sha256)), SYNTH_SHA256);
});

const MRTD_PER_PAGE = '4ea7654b3d126be0e8b376210aeb0bd712bc5022a15c731e03fb4ac934e0c08a0ee334c013c4b92824c5f5e6c7edb4d4';
const MRTD_PER_SECTION = '1ead379fdb58f3c6e0ca75270e4582faa22e4dbc9ca2599b679e1194f082322605103e4a75d48e15610e7b07c3e46a37';
const MRTD_ALL_ADDS_FIRST = '23a563d5e4780ece9c050ed0a0f2d2d808a7f950825295fc3d2905ab98b4cc1f9c1e224d0bcdc947429f1246421e508b';

test('§5.6 TDX MRTD per-page (upstream KVM) is the default order', () => {
  assert.equal(toHex(tdxMrtd(img, { order: 'per-page' }, sha384)), MRTD_PER_PAGE);
  assert.equal(toHex(tdxMrtd(img, {}, sha384)), MRTD_PER_PAGE);
});
test('§5.6 TDX MRTD per-section (QEMU 8.x)', () => {
  assert.equal(toHex(tdxMrtd(img, { order: 'per-section' }, sha384)), MRTD_PER_SECTION);
});
test('§5.6 negative control: all PAGE.ADDs of every section, then all EXTENDs, is neither order', () => {
  const ops = tdxMeasureOps(tdxLaunchPlan(img), 'per-page');
  const m = new TdxMrtdContext(sha384);
  for (const op of ops) if (op.op === 'MEM.PAGE.ADD') m.pageAdd(op.gpa);
  for (const op of ops) if (op.op === 'MR.EXTEND') m.mrExtend(op.gpa, op.data);
  const d = toHex(m.digest());
  assert.equal(d, MRTD_ALL_ADDS_FIRST);
  assert.notEqual(d, MRTD_PER_PAGE);
  assert.notEqual(d, MRTD_PER_SECTION);
});

test('§5.6 intermediates: page 0 hash, PAGE_INFO[0], LD after page 0, the first ZERO step', () => {
  const infos: string[] = [];
  const plan = snpLaunchPlan(img, { vcpus: 1, vcpuType: 'EPYC-v4' });
  const g = new SnpGuestContext(sha384, undefined, (pi) => infos.push(toHex(pi)));
  const lds: string[] = [];
  assert.equal(sha384hex(img.subarray(0, 4096)), '510dca1fa14904fc7e12fbe13166381374d89a4b0eba1be2d3f3de0dd80755dcad912e02936abacc671305e311e485d5');
  for (let off = 0; off < img.length; off += 4096) {
    g.measure(SNP_PAGE_TYPE.NORMAL, 0xffff0000n + BigInt(off), img.subarray(off, off + 4096));
    lds.push(toHex(g.digest()));
  }
  assert.equal(
    infos[0],
    `${'00'.repeat(48)}510dca1fa14904fc7e12fbe13166381374d89a4b0eba1be2d3f3de0dd80755dcad912e02936abacc671305e311e485d5${'7000010000000000'}${'0000ffff00000000'}`,
  );
  assert.equal(lds[0], '69ca359778fb7601b22ad825f2aa3d6f97e07f59ab957315822550940021c93a2694930fd65ebc3e114cf0db1fb651a5');
  assert.equal(lds[15], '7060f5a08547c33e2dbe1c3fec19493929ab3a465af5fa901ae236c5744bbd2da0316f12b1f42d33008017a3143d1a48');
  // The plan's second update is the first SEV metadata section: ZERO pages from 0x800000.
  assert.deepEqual([plan[1]?.type, plan[1]?.gpa], [SNP_PAGE_TYPE.ZERO, 0x800000n]);
  g.measure(SNP_PAGE_TYPE.ZERO, 0x800000n);
  assert.equal(
    infos[16],
    `7060f5a08547c33e2dbe1c3fec19493929ab3a465af5fa901ae236c5744bbd2da0316f12b1f42d33008017a3143d1a48${'00'.repeat(48)}7000030000000000${'0000800000000000'}`,
  );
  assert.equal(toHex(g.digest()), '2d3f416eb5956e6a65e9495506e57a0aa37dd80e3d8e4b1ec6895bb3d0eae50eb0e6a228492b615bd7d07cd075f8905a');
});

test('§1.6 VMSA ground truth: BSP and AP pages byte for byte (EPYC-v4, features 0x1, QEMU)', () => {
  const bsp = buildVmsa({ eip: 0xfffffff0, sevFeatures: 1n, vcpuSig: VCPU_TYPES['EPYC-v4'] as number, vmm: 'qemu' });
  const ap = buildVmsa({ eip: 0x80b004, sevFeatures: 1n, vcpuSig: VCPU_TYPES['EPYC-v4'] as number, vmm: 'qemu' });
  assert.equal(sha384hex(bsp), '77920c4c629ff47e90c0e174fc1ad0eb6fa664f88cd4739488058a8c6cb1a77b3856f55378e9518d0da99452d51c553a');
  assert.equal(sha384hex(ap), '8413b852790765a310d95867a8b00bfca3a802b5a80830044b45e253fe96222657e11e53fcf63eb0e0afd722385bf7b4');
  // The listed non-zero runs; everything else zero. Runs include interior zero bytes as listed.
  const runs: [number, string][] = [
    [0x002, '9300ffff'],
    [0x011, 'f09b00ffff'],
    [0x01a, 'ffff'],
    [0x022, '9300ffff'],
    [0x032, '9300ffff'],
    [0x042, '9300ffff'],
    [0x052, '9300ffff'],
    [0x064, 'ffff'],
    [0x072, '8200ffff'],
    [0x084, 'ffff'],
    [0x092, '8b00ffff'],
    [0x0d1, '10'],
    [0x148, '40'],
    [0x158, '10'],
    [0x161, '04'],
    [0x168, 'f00fffff'],
    [0x170, '02'],
    [0x178, 'f0ff'],
    [0x268, '06040700060407'],
    [0x310, '120f80'],
    [0x3b0, '01'],
    [0x3e8, '01'],
    [0x408, '801f'],
    [0x410, '7f03'],
  ];
  const expect = new Uint8Array(4096);
  for (const [at, hex] of runs) expect.set(fromHex(hex), at);
  assert.deepEqual(bsp, expect);
  const diff = [...ap.keys()].filter((i) => ap[i] !== bsp[i]);
  // cs.base 0xffff0000 -> 0x00800000 changes bytes 0x1a and 0x1b (§1.6 names only 0x1a), rip 0xfff0 -> 0xb004.
  assert.deepEqual(diff, [0x01a, 0x01b, 0x178, 0x179]);
  assert.deepEqual([ap[0x01a], ap[0x01b], ap[0x178], ap[0x179]], [0x80, 0x00, 0x04, 0xb0]);
});

test('§2.1 TDX records: PAGE.ADD and MR.EXTEND layouts and the hash of one PAGE.ADD', () => {
  assert.equal(toHex(tdxPageAddRecord(0xffff8000n)), `4d454d2e504147452e41444400000000${'0080ffff00000000'}${'00'.repeat(104)}`);
  assert.equal(toHex(tdxMrExtendHeader(0xffff8000n)), `4d522e455854454e4400000000000000${'0080ffff00000000'}${'00'.repeat(104)}`);
  const m = new TdxMrtdContext(sha384);
  m.pageAdd(0xffff8000n);
  assert.equal(toHex(m.digest()), '11d0d2db696acd95bf703b1191e868a8577843421dda011e4b7080be311e782c640c7b3063e30fc8c1b21237775e0be6');
});
