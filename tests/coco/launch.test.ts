/**
 * One truth (issue 5 part 4): the VMM launch flow (src/vmm/launch.ts) loads each real OVMF build
 * of ../shared/firmware into an SNP and a TDX VM of the model through the launch uAPI, and the
 * digest the model's measurement log folds to equals src/measure/'s for the same image, which in
 * turn equals the reference tools' (sev-snp-measure; td-shim and Fraunhofer for TDX per-page;
 * the same values tests/measure/firmware.test.ts pins). The firmware's sha256 is checked against
 * shared/firmware/README.md first: a mismatch fails.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { HostFault } from '../../src/api.js';
import { nodeSha256, nodeSha384 } from '../../src/cli/measure.js';
import {
  MeasureError,
  type SnpOptions,
  sevKernelHashes,
  snpLaunchDigest,
  snpLaunchPlan,
  snpMeasuredPages,
  tdxLaunchPlan,
  tdxMeasureOps,
  tdxMrtd,
  toHex,
} from '../../src/measure/index.js';
import { checkInvariants, createModelKvm, launchDigest, launchLog } from '../../src/model/index.js';
import { launchSnp, launchTdx, type SnpLaunchOptions } from '../../src/vmm/launch.js';
import { FIRMWARE, synthInitrd, synthKernel } from '../measure/support.js';

/** shared/firmware/README.md: | file | from | bytes | sha256 | */
function readmePins(): Map<string, { bytes: number; sha256: string }> {
  const pins = new Map<string, { bytes: number; sha256: string }>();
  for (const line of readFileSync(join(FIRMWARE, 'README.md'), 'utf8').split('\n')) {
    const m = /^\|\s*(\S+\.fd)\s*\|.*\|\s*(\d+)\s*\|\s*([0-9a-f]{64})\s*\|\s*$/.exec(line);
    if (m) pins.set(m[1] as string, { bytes: Number(m[2]), sha256: m[3] as string });
  }
  return pins;
}

const PINS = readmePins();
const cache = new Map<string, Uint8Array>();
function firmware(name: string): Uint8Array {
  let b = cache.get(name);
  if (!b) {
    const pin = PINS.get(name);
    assert.ok(pin, `${name} is not listed in shared/firmware/README.md`);
    b = new Uint8Array(readFileSync(join(FIRMWARE, name)));
    assert.equal(b.length, pin.bytes, `${name}: size differs from README.md`);
    assert.equal(createHash('sha256').update(b).digest('hex'), pin.sha256, `${name}: sha256 differs from shared/firmware/README.md`);
    cache.set(name, b);
  }
  return b;
}

const KIc = sevKernelHashes({ kernel: synthKernel(), initrd: synthInitrd(), append: 'console=ttyS0' }, nodeSha256);

type SnpCase = [label: string, opts: SnpOptions & SnpLaunchOptions];
const SNP_CASES: SnpCase[] = [
  ['1 vCPU EPYC-v4', { vcpus: 1, vcpuType: 'EPYC-v4' }],
  ['4 vCPU EPYC-Milan 0x21', { vcpus: 4, vcpuType: 'EPYC-Milan', guestFeatures: 0x21n }],
  ['8 vCPU EPYC-Turin 0x21', { vcpus: 8, vcpuType: 'EPYC-Turin', guestFeatures: 0x21n }],
  ['1 vCPU EPYC-v4 K,I,c', { vcpus: 1, vcpuType: 'EPYC-v4', kernelHashes: KIc }],
];

/** The reference tools' digests for SNP_CASES and TDX per-page (tests/measure/firmware.test.ts). */
const REFERENCE: Record<string, { snp: (string | 'MISSING')[]; tdx: string }> = {
  'OVMF.bookworm.fd': {
    snp: [
      '11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3',
      '968824524f03c9ab191fbb02ac50d286a4aa1b5922ed74a422a806ce376a9e589d16c8dd8202c256834c0d4013e2584b',
      '51f1c8fdbce4c09df68ff643005155f030c2d5d96912f0da514a39a4eb5f60a13ee914c07746f4065d4464cbd7464389',
      'MISSING',
    ],
    tdx: '4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47',
  },
  'OVMF.amdsev.fd': {
    snp: [
      'd74bd3ea40b240c3228edc5177ce6193561ebff633dbd0be76d6c143b876d65102425c0e2e8a930857c48daa5eacda58',
      'e2c5e4bd7911c8cb65b5f355bc0c48e5d7634aefad6a6291526c32b4b86165a0bd5542c9b3d25983204eeaa70f6d59fa',
      'd54a5eba447da82b2e6032722267339eb2d3116bbaa9fe177ba5d8c63da1f8839dac939134b4b1edea12334fad73a232',
      '8167a4782f9bfa33726aebdc303be62bb4d720935c76815d124a246cd048c533eb4256ea1b270894ce5cdf63098608c0',
    ],
    tdx: '5f77220a7135b2be2087c3555b897a1c56ca84516fafc622a33fa498a46305a12597a18bb57bc50f714ffab9fe6f004d',
  },
  'OVMF.inteltdx.ms.fd': {
    snp: [
      'd5e76cb222de4e070fad3ff1653fe517d92c7a7d814cf59a6d6f2298a962fb8486475d4f1953079aa02451ab7de4c9de',
      '39a42a19846767b96f3e9cea86a5151a4534a9676437169c119fb1f550c4df970ec84679dbff40b99fbb985c5422d465',
      '84073e2685b9e7f5b5768fa32d59a617eb54cc58551a4b38e6c52cd58a9f8d533faad0e94f4377d41f42e7480efa7355',
      'MISSING',
    ],
    tdx: 'a7a1f751abc454f9cbab198ca8d2edb2821935df525c74182b5e776cb0929e8c59aefecce725b0d08a5e9d3d3183bd08',
  },
};

test('shared/firmware/README.md pins exactly the three firmware images', () => {
  assert.deepEqual([...PINS.keys()].sort(), Object.keys(REFERENCE).sort());
});

for (const name of Object.keys(REFERENCE)) {
  const ref = REFERENCE[name] as (typeof REFERENCE)[string];

  test(`${name}: sha256, then the SNP launch flow's digest equals measure/ and the reference tools`, async (t) => {
    const fw = firmware(name);
    for (const [i, [label, opts]] of SNP_CASES.entries()) {
      await t.test(label, () => {
        const want = ref.snp[i] as string;
        if (want === 'MISSING') {
          assert.throws(
            () => snpLaunchDigest(fw, opts, nodeSha384),
            (e) => e instanceof MeasureError && e.code === 'MISSING',
          );
          assert.throws(() => launchSnp(createModelKvm({ kernel: '6.18+snp' }), fw, opts, nodeSha384), /SNP_KERNEL_HASHES/);
          return;
        }
        const r = launchSnp(createModelKvm({ kernel: '6.18+snp' }), fw, opts, nodeSha384);
        const measured = toHex(snpLaunchDigest(fw, opts, nodeSha384));
        assert.ok(r.digest);
        assert.equal(toHex(r.digest), measured, 'model log == measure/');
        assert.equal(measured, want, 'measure/ == sev-snp-measure');
        t.diagnostic(`${name} snp ${label}: ${toHex(r.digest)}`);
      });
    }
  });

  test(`${name}: the model's SNP log is measure/'s plan page by page (type, GPA, contents), VMSAs last`, () => {
    const fw = firmware(name);
    const opts = { vcpus: 3, vcpuType: 'EPYC-Milan', guestFeatures: 0x21n };
    const r = launchSnp(createModelKvm({ kernel: '6.18+snp' }), fw, opts);
    const log = launchLog(r.vm);
    assert.equal(log.platform, 'snp');
    const want = [...snpMeasuredPages(snpLaunchPlan(fw, opts))];
    assert.equal(log.entries.length, want.length);
    log.entries.forEach((e, i) => {
      const w = want[i] as (typeof want)[number];
      assert.equal(e.type, w.type, `page ${i} type`);
      assert.equal(e.gpa, w.gpa, `page ${i} GPA`);
      if (w.page) assert.deepEqual(e.page, w.page, `page ${i} contents`);
    });
    assert.equal(r.calls[0]?.cmd, 'KVM_SEV_INIT2');
    assert.equal(r.calls.at(-1)?.cmd, 'KVM_SEV_SNP_LAUNCH_FINISH');
  });

  test(`${name}: sha256, then the TDX launch flow's MRTD equals measure/ (per-page) and the reference tools`, (t) => {
    const fw = firmware(name);
    const r = launchTdx(createModelKvm({ kernel: '6.18+tdx' }), fw, { vcpus: 2 }, nodeSha384);
    assert.ok(r.digest);
    const measured = toHex(tdxMrtd(fw, { order: 'per-page' }, nodeSha384));
    assert.equal(toHex(r.digest), measured, 'model log == measure/');
    assert.equal(measured, ref.tdx, 'measure/ == td-shim, Fraunhofer');
    assert.notEqual(toHex(r.digest), toHex(tdxMrtd(fw, { order: 'per-section' }, nodeSha384)), 'KVM measures per page, not per section');
    // the SEAMCALL log itself: every PAGE.ADD and MR.EXTEND, in measure/'s per-page order
    const log = launchLog(r.vm);
    assert.equal(log.platform, 'tdx');
    const want = tdxMeasureOps(tdxLaunchPlan(fw), 'per-page');
    assert.equal(log.entries.length, want.length);
    log.entries.forEach((e, i) => {
      const w = want[i] as (typeof want)[number];
      assert.equal(e.op, w.op, `record ${i}`);
      assert.equal(e.gpa, w.gpa, `record ${i} GPA`);
    });
    t.diagnostic(`${name} tdx MRTD: ${toHex(r.digest)}`);
  });
}

test('the launch flows run on the platform profiles only: a host without the hardware has no such VM type', () => {
  const fw = firmware('OVMF.bookworm.fd');
  assert.throws(() => launchSnp(createModelKvm({ kernel: '6.18' }), fw, { vcpus: 1, vcpuType: 'EPYC-v4' }), /EINVAL/);
  assert.throws(() => launchTdx(createModelKvm({ kernel: '6.12+snp' }), fw, { vcpus: 1 }), /EINVAL/);
  assert.throws(() => launchTdx(createModelKvm({ kernel: '6.12' }), fw, { vcpus: 1 }), /EINVAL/);
});

test('after a launch the model is consistent, the host cannot write firmware pages (RMP), and touching TD memory poisons it', () => {
  const fw = firmware('OVMF.bookworm.fd');
  const kvm = createModelKvm({ kernel: '6.18+snp' });
  const r = launchSnp(kvm, fw, { vcpus: 2, vcpuType: 'EPYC-v4' }, nodeSha384);
  assert.deepEqual(checkInvariants(kvm), []);
  const [flash] = r.memory;
  assert.ok(flash && kvm.hostKernel);
  assert.throws(
    () => kvm.hostKernel.directMapWrite(flash.gmem.fd, 0n, new Uint8Array([0])),
    (e) => e instanceof HostFault && e.signal === 'SIGBUS',
  );
  assert.notDeepEqual(kvm.hostKernel.directMapRead(flash.gmem.fd, 0n, 16), fw.subarray(0, 16), 'the host reads ciphertext');
  // the launch is over: the firmware refuses further updates
  assert.throws(() => r.vm.memoryEncryptOp?.({ id: 'KVM_SEV_SNP_LAUNCH_UPDATE', gfnStart: 0x800n, uaddr: 0n, len: 4096n, type: 3 }), /EIO/);

  const tkvm = createModelKvm({ kernel: '6.18+tdx' });
  const t = launchTdx(tkvm, fw, { vcpus: 1 }, nodeSha384);
  assert.deepEqual(checkInvariants(tkvm), []);
  const [tflash] = t.memory;
  assert.ok(tflash && tkvm.hostKernel);
  assert.throws(
    () => tkvm.hostKernel.directMapRead(tflash.gmem.fd, 0x20000n, 8),
    (e) => e instanceof HostFault && e.signal === 'MCE',
  );
  assert.deepEqual(checkInvariants(tkvm), []);
  assert.equal(toHex(launchDigest(t.vm, nodeSha384)), toHex(t.digest as Uint8Array), 'the MRTD does not change afterwards');
});
