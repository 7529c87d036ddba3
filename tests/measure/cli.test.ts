/**
 * `guestmem measure` as a user runs it: sev-snp-measure's flags and output (lower-case hex digest on
 * stdout), --mode tdx, --json, and one-line errors with exit status 2. The command is mounted on a
 * bare commander program configured as src/cli/main.ts configures its own (errors exit 2).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, synthImage, synthInitrd, synthKernel } from './support.js';

const tmp = mkdtempSync(join(tmpdir(), 'guestmem-measure-'));
const FW = join(tmp, 'synth.fd');
const K = join(tmp, 'K');
const I = join(tmp, 'I');
writeFileSync(FW, synthImage());
writeFileSync(K, synthKernel());
writeFileSync(I, synthInitrd());
const bad = synthImage();
bad[0xf000] = 0x42; // "ASEV" -> "BSEV"
const BAD = join(tmp, 'bad.fd');
writeFileSync(BAD, bad);

const DRIVER = `
import { Command } from 'commander';
import { registerMeasure } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/cli/measure.js')).href)};
const program = new Command('guestmem').exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2));
registerMeasure(program);
await program.parseAsync(process.argv);
`;

function measure(...args: string[]) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', DRIVER, 'guestmem', 'measure', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000, // an endless read (of /dev/zero) fails the test instead of hanging it
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
function ok(args: string[], want: string): void {
  const r = measure(...args);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  assert.equal(r.out, `${want}\n`);
}
function bad2(args: string[], msg: RegExp): void {
  const r = measure(...args);
  assert.equal(r.code, 2, `exit status (stdout: ${r.out})`);
  assert.equal(r.out, '');
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.err}`);
  assert.match(lines[0] as string, msg);
}

test('snp: the digest in lower-case hex, as sev-snp-measure prints it', () => {
  ok(
    ['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', FW],
    '9ae1f38d384fb2a2523eb0948dbb8a1c905c8c17c409eb7602487f7e937e7677e539d007d54464e7bd6166df6de2f712',
  );
  ok(
    ['--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-Milan', '--guest-features', '0x21', '--ovmf', FW],
    '8f198ae0d2ddf309cabd53fd1953b3682431399e2baea1a9ef149972cdf1f2d3da98f2d1e7c178f943cc0a108ec199a8',
  );
  ok(
    ['--mode', 'snp', '--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--vmm-type', 'ec2', '--ovmf', FW],
    '5ebfde3bba3ebe8edd7dcc49a1391d523a0ef6d58e8a8793c577fc24aa85add8b74741ba2ac7b13988cf65a93a23a3a6',
  );
  ok(
    ['--mode', 'snp', '--vcpus', '1', '--vmm-type', 'gce', '--ovmf', FW],
    '8c99a6ca02c43c7fca56fa7548d59624dc80b6e1523e244a05b866c1a7377f0e452cb4a2483c3a4c6bd129fa53be5262',
  );
});

test('snp --kernel --initrd --append (measured direct boot), --vcpu-sig, --vcpu-family', () => {
  const d = 'd49c0a5aa42b787048d04c6623974ed8ec23824632eec8f2260b4cec01aa681760e337bc27a4e95fa1b20c8232829afd';
  ok(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', FW, '--kernel', K, '--initrd', I, '--append', 'console=ttyS0'], d);
  ok(['--mode', 'snp', '--vcpus', '1', '--vcpu-sig', '0x800f12', '--ovmf', FW, '--kernel', K, '--initrd', I, '--append', 'console=ttyS0'], d);
  ok(
    [
      '--mode',
      'snp',
      '--vcpus',
      '1',
      '--vcpu-family',
      '23',
      '--vcpu-model',
      '1',
      '--vcpu-stepping',
      '2',
      '--ovmf',
      FW,
      '--kernel',
      K,
      '--initrd',
      I,
      '--append',
      'console=ttyS0',
    ],
    d,
  );
});

test('snp:ovmf-hash, and --snp-ovmf-hash seeding snp', () => {
  const seed = '7060f5a08547c33e2dbe1c3fec19493929ab3a465af5fa901ae236c5744bbd2da0316f12b1f42d33008017a3143d1a48';
  ok(['--mode', 'snp:ovmf-hash', '--ovmf', FW], seed);
  ok(
    ['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--snp-ovmf-hash', seed, '--ovmf', FW],
    '9ae1f38d384fb2a2523eb0948dbb8a1c905c8c17c409eb7602487f7e937e7677e539d007d54464e7bd6166df6de2f712',
  );
});

test('seves and sev', () => {
  ok(['--mode', 'seves', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', FW], 'a357d687c02bba536c1fbecb0bece49f2c5e37bc922f59d6cf65f945fbb818fe');
  ok(
    ['--mode', 'sev', '--ovmf', FW, '--kernel', K, '--initrd', I, '--append', 'console=ttyS0'],
    '7c364413e1b066dded6789884ad005a3010cae69e3401bab92cd45fc43d9fa92',
  );
});

test('tdx: per-page by default, --tdx-order per-section', () => {
  ok(['--mode', 'tdx', '--ovmf', FW], '4ea7654b3d126be0e8b376210aeb0bd712bc5022a15c731e03fb4ac934e0c08a0ee334c013c4b92824c5f5e6c7edb4d4');
  ok(
    ['--mode', 'tdx', '--tdx-order', 'per-section', '--ovmf', FW],
    '1ead379fdb58f3c6e0ca75270e4582faa22e4dbc9ca2599b679e1194f082322605103e4a75d48e15610e7b07c3e46a37',
  );
});

test('--json, --output-format base64, -v', () => {
  const r = measure('--mode', 'tdx', '--ovmf', FW, '--json');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), {
    mode: 'tdx',
    digest: '4ea7654b3d126be0e8b376210aeb0bd712bc5022a15c731e03fb4ac934e0c08a0ee334c013c4b92824c5f5e6c7edb4d4',
    ovmf: FW,
    tdxOrder: 'per-page',
  });
  const j = JSON.parse(measure('--mode', 'snp', '--vcpus', '2', '--vcpu-type', 'EPYC-Genoa', '--ovmf', FW, '--json').out);
  assert.deepEqual([j.digest.slice(0, 8), j.vcpus, j.vcpuType, j.vmmType, j.guestFeatures], ['ff7f49e0', 2, 'EPYC-Genoa', 'qemu', '0x1']);
  ok(
    ['--mode', 'sev', '--ovmf', FW, '--output-format', 'base64'],
    Buffer.from('939708ae1f1e772fac76ee0c033d04631b71cc09a4c7d19a65b4e7eb6c0e3e15', 'hex').toString('base64'),
  );
  ok(['--mode', 'sev', '--ovmf', FW, '-v'], 'Calculated SEV guest measurement: 939708ae1f1e772fac76ee0c033d04631b71cc09a4c7d19a65b4e7eb6c0e3e15');
});

test('bad input: one line on stderr, exit status 2, never a stack', () => {
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', BAD], /^guestmem measure: SEV metadata signature is "BSEV", expected "ASEV"$/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', join(tmp, 'nope.fd')], /cannot read firmware .*nope\.fd: ENOENT/);
  bad2(['--mode', 'snp', '--vcpu-type', 'EPYC-v4', '--ovmf', FW], /missing --vcpus N in guest mode 'snp'/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--ovmf', FW], /missing --vcpu-type or --vcpu-sig or --vcpu-family/);
  bad2(['--mode', 'snp', '--vcpus', 'two', '--vcpu-type', 'EPYC-v4', '--ovmf', FW], /--vcpus <n>.*'two' is invalid/);
  bad2(['--mode', 'snp', '--vcpus', '0', '--vcpu-type', 'EPYC-v4', '--ovmf', FW], /vCPU count 0 is outside/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v9', '--ovmf', FW], /--vcpu-type <type>.*'EPYC-v9' is invalid/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--vmm-type', 'xen', '--ovmf', FW], /--vmm-type.*expected qemu, ec2 or gce/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--guest-features', 'lots', '--ovmf', FW], /--guest-features/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--initrd', I, '--ovmf', FW], /--kernel required when using --initrd/);
  bad2(['--mode', 'sev', '--snp-ovmf-hash', 'ab', '--ovmf', FW], /SNP OVMF hash only works with SNP/);
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--snp-ovmf-hash', 'xyz', '--ovmf', FW], /not a hex string/);
  bad2(['--mode', 'tdx', '--ovmf', K], /^guestmem measure: firmware has no OVMF footer table, so no TDX metadata$/);
  bad2(['--mode', 'snp:svsm', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', FW], /requires --svsm/);
  bad2(['--mode', 'frob', '--ovmf', FW], /--mode <mode>.*'frob' is invalid/);
});

test('--ovmf that is not a regular file, or too large for firmware, is refused before reading (issue 13)', () => {
  // /dev/zero used to be read until memory ran out
  bad2(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', '/dev/zero'], /^guestmem measure: firmware \/dev\/zero: not a regular file$/);
  bad2(['--mode', 'tdx', '--ovmf', tmp], /firmware .*: not a regular file/);
  const huge = join(tmp, 'huge.fd');
  writeFileSync(huge, '');
  truncateSync(huge, 65 << 20); // sparse: costs no disk
  bad2(['--mode', 'tdx', '--ovmf', huge], /firmware .*huge\.fd: 65 MiB is larger than a firmware can be \(at most 64 MiB\)/);
  bad2(['--mode', 'sev', '--ovmf', FW, '--kernel', '/dev/zero'], /kernel \/dev\/zero: not a regular file/);
});

test('flags that do not apply to the mode are refused, not ignored (issue 13)', () => {
  bad2(['--mode', 'tdx', '--vcpu-type', 'EPYC-v4', '--ovmf', FW], /^guestmem measure: --vcpu-type does not apply to --mode tdx$/);
  bad2(['--mode', 'tdx', '--kernel', K, '--ovmf', FW], /--kernel does not apply to --mode tdx/);
  bad2(['--mode', 'sev', '--vcpus', '2', '--ovmf', FW], /--vcpus does not apply to --mode sev/);
  bad2(
    ['--mode', 'seves', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--guest-features', '0x21', '--ovmf', FW],
    /--guest-features does not apply to --mode seves/,
  );
  bad2(['--mode', 'snp:ovmf-hash', '--vcpus', '1', '--vmm-type', 'ec2', '--ovmf', FW], /--vcpus, --vmm-type do not apply to --mode snp:ovmf-hash/);
});
