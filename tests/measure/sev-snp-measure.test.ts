/**
 * virtee/sev-snp-measure's own test vectors (tests/test_guest.py @8f2b337; MEASUREMENT.md §5.1), on
 * its fixtures: the last 4 KiB of edk2-stable202405 AmdSevX64 and OvmfPkgX64 OVMF.fd, and the
 * Coconut SVSM pair whose two digests were captured on real SNP hardware. The fixtures are data
 * from that repository, so they live outside this one (support.ts snpFixture()); each test skips
 * loudly without them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fromHex,
  MeasureError,
  type SnpOptions,
  sevEsLaunchDigest,
  sevKernelHashes,
  sevLaunchDigest,
  snpLaunchDigest,
  snpOvmfHash,
  svsmLaunchDigest,
  toHex,
} from '../../src/measure/index.js';
import { type SnpFixtureName, sha256, sha384, snpFixture } from './support.js';

/** kernel=/dev/null, initrd=/dev/null and the given append, as the tool's tests pass them */
const devNull = (append: string) => sevKernelHashes({ kernel: new Uint8Array(0), initrd: new Uint8Array(0), append }, sha256);
const SEED = fromHex('086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74');

function withFixtures(name: string, files: SnpFixtureName[], body: (...b: Uint8Array[]) => void): void {
  test(name, (t) => {
    const got = files.map((f) => snpFixture(f));
    const missing = got.find((g) => typeof g === 'string');
    if (typeof missing === 'string') {
      t.skip(missing);
      return;
    }
    body(...(got as Uint8Array[]));
  });
}

const AMD: SnpFixtureName = 'ovmf_AmdSev_suffix.bin';
const X64: SnpFixtureName = 'ovmf_OvmfX64_suffix.bin';
const v4 = { vcpuType: 'EPYC-v4' } as const;

const snp: [string, SnpFixtureName, SnpOptions, string][] = [
  [
    'snp_ovmf_hash_gen_default',
    AMD,
    { vcpus: 1, ...v4, kernelHashes: devNull(''), guestFeatures: 0x21n, ovmfHash: SEED },
    '329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198',
  ],
  [
    'snp_ovmf_hash_gen_feature_snp_only',
    AMD,
    { vcpus: 1, ...v4, kernelHashes: devNull(''), guestFeatures: 0x1n, ovmfHash: SEED },
    'ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5',
  ],
  [
    'snp_default',
    AMD,
    { vcpus: 1, ...v4, kernelHashes: devNull('console=ttyS0 loglevel=7'), guestFeatures: 0x21n },
    '803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977',
  ],
  [
    'snp_guest_feature_snp_only',
    AMD,
    { vcpus: 1, ...v4, kernelHashes: devNull('console=ttyS0 loglevel=7'), guestFeatures: 0x1n },
    '6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa',
  ],
  [
    'snp_ec2_default',
    AMD,
    { vcpus: 1, ...v4, kernelHashes: devNull(''), guestFeatures: 0x21n, vmmType: 'ec2' },
    '0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb',
  ],
  [
    'snp_ec2_feature_snp_only',
    AMD,
    { vcpus: 1, ...v4, kernelHashes: devNull(''), guestFeatures: 0x1n, vmmType: 'ec2' },
    '0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056',
  ],
  [
    'snp_gce_default',
    AMD,
    { vcpus: 1, kernelHashes: devNull(''), guestFeatures: 0x1n, vmmType: 'gce' },
    '5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e',
  ],
  [
    'snp_gce_with_multiple_vcpus_default',
    AMD,
    { vcpus: 4, kernelHashes: devNull(''), guestFeatures: 0x1n, vmmType: 'gce' },
    '5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d',
  ],
  [
    'snp_without_kernel_default',
    AMD,
    { vcpus: 1, ...v4, guestFeatures: 0x21n },
    'e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b',
  ],
  [
    'snp_without_kernel_feature_snp_only',
    AMD,
    { vcpus: 1, ...v4, guestFeatures: 0x1n },
    '19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d',
  ],
  [
    'snp_with_multiple_vcpus_default',
    AMD,
    { vcpus: 4, ...v4, kernelHashes: devNull(''), guestFeatures: 0x21n },
    '4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942',
  ],
  [
    'snp_with_multiple_vcpus_feature_snp_only',
    AMD,
    { vcpus: 4, ...v4, kernelHashes: devNull(''), guestFeatures: 0x1n },
    '5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5',
  ],
  [
    'snp_with_ovmfx64_without_default',
    X64,
    { vcpus: 1, ...v4, guestFeatures: 0x21n },
    '28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385',
  ],
  [
    'snp_with_ovmfx64_without_kernel_feature_snp_only',
    X64,
    { vcpus: 1, ...v4, guestFeatures: 0x1n },
    'da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005',
  ],
];

for (const [name, fixture, opts, want] of snp) {
  withFixtures(`sev-snp-measure ${name}`, [fixture], (fw) => {
    assert.equal(toHex(snpLaunchDigest(fw, opts, sha384)), want);
  });
}

withFixtures('sev-snp-measure snp:ovmf-hash of the AmdSev suffix is the seed the tool tests use', [AMD], (fw) => {
  assert.deepEqual(snpOvmfHash(fw, sha384), SEED);
});

withFixtures('sev-snp-measure snp_with_ovmfx64_and_kernel_should_fail', [X64], (fw) => {
  assert.throws(
    () => snpLaunchDigest(fw, { vcpus: 1, ...v4, kernelHashes: devNull(''), guestFeatures: 0x21n }, sha384),
    (e) => e instanceof MeasureError && e.code === 'MISSING' && e.message === "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section",
  );
});

withFixtures('sev-snp-measure seves', [AMD], (fw) => {
  assert.equal(
    toHex(sevEsLaunchDigest(fw, { vcpus: 1, ...v4, kernelHashes: devNull('') }, sha256)),
    '13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c',
  );
});
withFixtures('sev-snp-measure seves_with_multiple_vcpus', [AMD], (fw) => {
  assert.equal(
    toHex(sevEsLaunchDigest(fw, { vcpus: 4, ...v4, kernelHashes: devNull('') }, sha256)),
    '0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91',
  );
});
withFixtures('sev-snp-measure sev', [AMD], (fw) => {
  assert.equal(
    toHex(sevLaunchDigest(fw, { kernelHashes: devNull('console=ttyS0 loglevel=7') }, sha256)),
    '82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff',
  );
});
withFixtures('sev-snp-measure sev_with_kernel_without_initrd_and_append', [AMD], (fw) => {
  const h = sevKernelHashes({ kernel: new Uint8Array(0) }, sha256);
  assert.equal(toHex(sevLaunchDigest(fw, { kernelHashes: h }, sha256)), '77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898');
});
withFixtures('sev-snp-measure sev_with_ovmfx64_without_kernel (= sha256 of the file)', [X64], (fw) => {
  assert.equal(toHex(sevLaunchDigest(fw, {}, sha256)), 'b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da');
});

withFixtures('sev-snp-measure snp_svsm_4_vcpus (captured on SNP hardware)', ['svsm_ovmf.fd', 'svsm.bin'], (ovmf, svsm) => {
  const d = svsmLaunchDigest(ovmf, svsm, { vcpus: 4, ...v4, varsSize: 540672 }, sha384);
  assert.equal(toHex(d), '27d154c27b7b359c935e250ec6fee72aa0ae8c1225e3b0e1cf46a9567e938066d7d6f94bbdc4a857818bdb79277a44b2');
});
withFixtures('sev-snp-measure snp_svsm_2_vcpus (captured on SNP hardware)', ['svsm_ovmf.fd', 'svsm.bin'], (ovmf, svsm) => {
  const d = svsmLaunchDigest(ovmf, svsm, { vcpus: 2, ...v4, varsSize: 540672 }, sha384);
  assert.equal(toHex(d), '9b94745036aafddf4f7f8b00c7513abb5b7703178cb95aaa57928bd963d68d3bfcb715d6019b9167ee2517b11b0d9be7');
});
