/** The guestmem command, run as a user would: exit codes, one-line errors, output shapes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MUTANTS } from '../src/diff/index.js';
import { CLI, ROOT } from './support/files.js';
import { kernelLacks, kvmTest, SHARED_GMEM } from './support/kvm-gate.js';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const tmp = mkdtempSync(join(tmpdir(), 'guestmem-cli-'));
const EXAMPLE = 'scenarios/examples/punch-hole-zeroes.json';

test('run: a passing scenario exits 0 with the closing summary', () => {
  const r = cli('run', EXAMPLE);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^PASS {2}punch hole zeroes guest memory/m);
  assert.match(r.out, /^1 passed, 0 failed, 0 skipped$/m);
});

test('run --json: an array of results with steps', () => {
  const r = cli('run', '--json', EXAMPLE);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { name: string; status: string; steps: { op: string; status: string }[] }[];
  assert.equal(j.length, 1);
  assert.equal(j[0]?.status, 'passed');
  assert.equal(j[0]?.steps.length, 8);
  assert.equal(j[0]?.steps[7]?.op, 'create_guest_memfd');
});

test('run: a failing step exits 1 and says which step and why', () => {
  const f = join(tmp, 'fail.json');
  writeFileSync(f, JSON.stringify({ name: 'wrong', steps: [{ op: 'create_guest_memfd', size: 4096, flags: ['mmap'], expect: { errno: 'EINVAL' } }] }));
  const r = cli('run', f, '--kernel', '6.18');
  assert.equal(r.code, 1);
  assert.match(r.out, /FAIL {2}wrong/);
  assert.match(r.out, /expected EINVAL, got success/);
  // Under 6.8, MMAP is an unknown flag: the same file passes.
  assert.equal(cli('run', f, '--kernel', '6.8').code, 0);
});

test('run: a malformed scenario is one line on stderr, exit 2, no stack', () => {
  const f = join(tmp, 'bad.json');
  writeFileSync(
    f,
    JSON.stringify({
      name: 'bad',
      steps: [
        { op: 'fstat', fd: 0 },
        { op: 'create_guest_memfd', size: 'lots' },
      ],
    }),
  );
  const r = cli('run', f);
  assert.equal(r.code, 2);
  assert.equal(r.err.trim().split('\n').length, 1, r.err);
  assert.match(r.err, /^guestmem: .*bad\.json: steps\[1\]\.size: expected an integer/);
  assert.doesNotMatch(r.err, /\n\s+at /);
});

test('run: a missing file and a bad flag are clear errors', () => {
  const r = cli('run', join(tmp, 'nope.json'));
  assert.equal(r.code, 2);
  assert.match(r.err, /nope\.json: cannot read: ENOENT/);
  const k = cli('run', EXAMPLE, '--kernel', '9.9');
  assert.equal(k.code, 2);
  assert.match(k.err, /argument '9\.9' is invalid/);
  assert.equal(cli('frobnicate').code, 2);
});

test('run --trace writes the results as JSON', () => {
  const out = join(tmp, 'trace.json');
  assert.equal(cli('run', EXAMPLE, '--trace', out).code, 0);
  const j = JSON.parse(readFileSync(out, 'utf8')) as { status: string }[];
  assert.equal(j[0]?.status, 'passed');
});

test('demo: conversions through KVM_HC_MAP_GPA_RANGE, with the page map', () => {
  const r = cli('demo');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /KVM_EXIT_HYPERCALL MAP_GPA_RANGE gpa 0x100000 npages 4 -> private/);
  assert.match(r.out, /page map {3}P P P P S S S S/);
  assert.match(r.out, /guest read 0x22, 0x11, 0x0/);
  assert.match(r.out, /2 conversions handled/);
});

test('caps: the model column lists every capability', () => {
  const r = cli('caps', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { model: { caps: Record<string, number> } };
  assert.equal(j.model.caps.KVM_CAP_GUEST_MEMFD_FLAGS, 3);
  assert.equal(j.model.caps.KVM_CAP_VM_TYPES, 3);
  assert.equal(j.model.caps.KVM_CAP_EXIT_HYPERCALL, 4096);
});

kvmTest('demo --backend kvm: host and guest share pages (guest_memfd where the kernel has it); a punched page reads zero', () => {
  const r = cli('demo', '--backend', 'kvm');
  assert.equal(r.code, 0, r.err);
  assert.doesNotMatch(r.err, /\n\s+at /);
  const lacks = kernelLacks(SHARED_GMEM);
  if (lacks) {
    // the kernel's own answer is printed, then the same steps on memfd memory
    assert.match(r.out, /this kernel cannot show guest_memfd memory/);
    assert.match(r.out, /KVM_CREATE_GUEST_MEMFD answers E[A-Z]+|KVM_CAP_GUEST_MEMFD_FLAGS is \d+/);
    assert.match(r.out, /memfd fd \d+/);
  } else assert.match(r.out, /a default VM on an MMAP\|INIT_SHARED guest_memfd/);
  assert.match(r.out, /guest reads it \(4 bytes\): exit hlt, guest read 0x41424344/);
  assert.match(r.out, /host reads page 1 \+ 0x20 through its mapping: 0x5a/);
  assert.match(r.out, /host reads page 0 \+ 0x10: 00000000/);
  assert.match(r.out, /guest reads page 0 \+ 0x10 again: exit hlt, guest read 0x0/);
});

kvmTest('run --backend kvm and caps on the live kernel', () => {
  const r = cli('run', '--backend', 'kvm', EXAMPLE);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /kvm host \d+\.\d+/);
  // the example needs an MMAP|INIT_SHARED guest_memfd: it runs where the kernel has one, and is
  // skipped with the capability named where it has not
  const lacks = kernelLacks(SHARED_GMEM);
  if (lacks) assert.match(r.out, /0 passed, 0 failed, 1 skipped/);
  else assert.match(r.out, /1 passed, 0 failed, 0 skipped/);
  if (lacks) assert.match(r.out, /KVM_CAP_GUEST_MEMFD/);
  const c = cli('caps', '--json');
  const j = JSON.parse(c.out) as { model: { caps: Record<string, number> }; kvm: { caps: Record<string, number>; guest?: { hypercallExit: boolean } } };
  assert.equal(typeof j.kvm.caps.KVM_CAP_GUEST_MEMFD, 'number');
  assert.equal(typeof j.kvm.guest?.hypercallExit, 'boolean');
  // --kernel host: the model answers KVM_CHECK_EXTENSION as the live kernel does, guest_memfd included
  const h = JSON.parse(cli('caps', '--kernel', 'host', '--json').out) as typeof j;
  for (const cap of ['KVM_CAP_GUEST_MEMFD', 'KVM_CAP_GUEST_MEMFD_FLAGS', 'KVM_CAP_VM_TYPES', 'KVM_CAP_MEMORY_ATTRIBUTES']) {
    assert.equal(h.model.caps[cap], h.kvm.caps[cap], cap);
  }
});

test('diff --batch: a bad batch file is one line on stderr, exit 2; --lab with an unknown kernel too', () => {
  const f = join(tmp, 'not-a-batch.json');
  writeFileSync(f, '{"format":"something else"}');
  const r = cli('diff', '--batch', f, '--reference', 'model');
  assert.equal(r.code, 2);
  assert.match(r.err, /^guestmem: .*not-a-batch\.json: not a guestmem diff batch/);
  assert.doesNotMatch(r.err, /\n\s+at /);
  for (const [args, want] of [
    [['--lab', '7.3', '--batch', f], /--lab and --batch exclude each other/],
    [['--self-test', '--lab', '7.3'], /--self-test and --lab exclude each other/],
    [['--batch', f, '--replay', f], /--batch replays its own sequences: drop --replay and --path/],
    [['--lab', '7.3', '--timeout', '0'], /--timeout.*expected a positive integer/],
  ] as const) {
    const c = cli('diff', ...args);
    assert.equal(c.code, 2, c.err);
    assert.match(c.err, want);
  }
  const l = cli('diff', '--lab', '5.4');
  assert.equal(l.code, 2);
  assert.match(l.err, /--lab: unknown lab kernel '5\.4' \(choose from 6\.12, 7\.3, or all\)/);
});

kvmTest('diff --batch on /dev/kvm: a JSON line per sequence, then the summary', async () => {
  const { generateBatch } = await import('../src/diff/index.js');
  const { kvmBackend } = await import('../src/backends/kvm.js');
  const { createModelKvm } = await import('../src/model/index.js');
  const profile = (await kvmBackend()).hostProfile();
  const batch = generateBatch({
    side: { name: 'model', open: () => createModelKvm({ kernel: profile }) },
    kernel: 'host',
    runs: 15,
    seed: 5,
    steps: 20,
    vmType: 'default',
    attributes: false,
  });
  const f = join(tmp, 'batch.json');
  writeFileSync(f, JSON.stringify(batch));
  const r = cli('diff', '--batch', f);
  assert.equal(r.code, 0, r.out + r.err);
  const lines = r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.filter((l) => l.t === 'diff-sequence').length, 15);
  const sum = lines.at(-1) as Record<string, unknown>;
  assert.equal(sum.t, 'diff-summary');
  assert.equal(sum.divergences, 0);
  assert.equal(sum.reference, 'kvm');
});

test('diff --self-test with default flags finds every planted bug, on any machine (model against model)', () => {
  const r = cli('diff', '--self-test');
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, new RegExp(`${MUTANTS.length} of ${MUTANTS.length} planted bugs found`));
  assert.doesNotMatch(r.out, /MISSED/);
});

test('diff --path that names no sequence is one line and exit 2, not a fast-check crash', () => {
  const r = cli('diff', '--reference', 'model', '--seed', '7', '--path', '0:1:0:0:0:0');
  assert.equal(r.code, 2, r.out + r.err);
  assert.match(r.err, /^guestmem: --path 0:1:0:0:0:0: not a sequence of seed 7/);
  assert.doesNotMatch(r.err, /\n\s+at /);
});

test('run warns when a step would make a real kernel allocate more than --memory-budget (the model spends nothing)', () => {
  const f = join(ROOT, 'tests/lab/fixtures/attributes-4tib.json');
  const r = cli('run', f);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.err,
    /guestmem: warning: .*attributes-4tib\.json: steps\[0\] \(set_memory_attributes\): a real kernel would allocate about 9\.0 GiB \(xarray entries for 1073741824 pages \(kvm_vm_set_mem_attributes\)\), over the budget of 1\.0 GiB/,
  );
  assert.equal(cli('run', '--memory-budget', '16384', f).err, '', 'under a 16 GiB budget: no warning');
  // a punch frees and a clear stores NULL: no warning for those
  const p = join(tmp, 'punch.json');
  writeFileSync(
    p,
    JSON.stringify({
      name: 'big punch',
      requires: ['guest_memfd'],
      steps: [
        { op: 'create_guest_memfd', size: '0x40000000000', as: 'g' },
        { op: 'fallocate', fd: 'g', mode: ['keep_size', 'punch_hole'], offset: 0, length: '0x40000000000' },
      ],
    }),
  );
  assert.equal(cli('run', p).err, '');
});

test('run --progress streams start, step and result lines as the scenarios run', () => {
  const prog = join(tmp, 'progress.jsonl');
  const r = cli('run', '--progress', prog, EXAMPLE);
  assert.equal(r.code, 0, r.err);
  const lines = readFileSync(prog, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { t: string; index?: number; result?: { status: string } });
  assert.equal(lines[0]?.t, 'start');
  assert.deepEqual(
    lines.filter((l) => l.t === 'step').map((l) => l.index),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.equal(lines.at(-1)?.t, 'result');
  assert.equal(lines.at(-1)?.result?.status, 'passed');
});
