/** The lab's pure parts, without QEMU or a kernel build: cpio, apt sources, config fragment, results. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseDeb822, parseOneLine, pickMirror } from '../../src/lab/apt.js';
import { defaultMemoryMiB, hostTscKhz, qemuArgs } from '../../src/lab/boot.js';
import { fold, formatKernelRun, type LabRecord } from '../../src/lab/collect.js';
import { CpioWriter, parseCpio } from '../../src/lab/cpio.js';
import { parseTap } from '../../src/lab/guest.js';
import { cacheDir, fragmentHash, KERNEL_IDS, LAB_PACKAGES, parseFragment, unmetFragment } from '../../src/lab/index.js';
import { placeScenarios, productionPackages } from '../../src/lab/pack.js';
import { which } from '../../src/lab/prereq.js';
import { deathReason, kernelVerdict, runChild } from '../../src/lab/supervise.js';
import { ROOT } from '../support/files.js';

const tmp = mkdtempSync(join(tmpdir(), 'guestmem-lab-'));

test('cpio: entries round-trip, parents are implied, archives concatenate', () => {
  const a = new CpioWriter().file('bin/x', 'hello', 0o755).symlink('bin/sh', 'busybox').charDevice('dev/console', 5, 1).finish();
  const b = new CpioWriter().file('init', '#!/bin/sh\n', 0o755).finish();
  assert.equal(a.length % 512, 0);
  const entries = parseCpio(Buffer.concat([a, b]));
  assert.deepEqual(
    entries.map((e) => [e.path, e.mode.toString(8)]),
    [
      ['bin', '40755'],
      ['bin/x', '100755'],
      ['bin/sh', '120777'],
      ['dev', '40755'],
      ['dev/console', '20600'],
      ['init', '100755'],
    ],
  );
  assert.equal(entries[1]?.data.toString(), 'hello');
  assert.equal(entries[2]?.data.toString(), 'busybox');
  assert.deepEqual(entries[4]?.rdev, [5, 1]);
  assert.throws(() => new CpioWriter().file('a', '').file('a', ''), /added twice/);
  assert.throws(() => new CpioWriter().file('../etc/passwd', ''), /bad path/);
});

test('cpio: cpio(1) reads what the writer wrote, when cpio is installed', (t) => {
  if (!which('cpio')) {
    t.skip('cpio(1) not installed (only this cross-check needs it)');
    return;
  }
  const f = join(tmp, 'x.cpio');
  const w = new CpioWriter(f);
  w.file('a/b.txt', 'x'.repeat(1001));
  w.symlink('a/c', 'b.txt');
  w.finish();
  const r = spawnSync('cpio', ['-t', '-v', '-F', f], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /a\/b\.txt/);
  assert.match(r.stdout, /1001/);
  assert.match(r.stdout, /a\/c -> b\.txt/);
});

test('apt sources: the Debian mirror is read from deb822 and one-line files', () => {
  const deb822 = parseDeb822(
    [
      'Types: deb',
      '# a comment',
      'URIs: http://mirror.example/debian/',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
      '',
      'Types: deb',
      'URIs: http://mirror.example/debian-security',
      'Suites: bookworm-security',
      'Components: main',
    ].join('\n'),
  );
  assert.equal(deb822.length, 2);
  assert.deepEqual(deb822[0]?.suites, ['bookworm', 'bookworm-updates']);
  const oneLine = parseOneLine(
    ['deb https://packages.example/apt cloud-sdk main', 'deb [arch=amd64 signed-by=/k.gpg] http://other.example/debian trixie main contrib # x'].join('\n'),
  );
  assert.equal(oneLine.length, 2);
  assert.equal(oneLine[1]?.signedBy, '/k.gpg');
  // Non-Debian suites and security mirrors are passed over.
  assert.deepEqual(
    pickMirror([...oneLine.slice(0, 1), ...deb822], () => false),
    { uri: 'http://mirror.example/debian', signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' },
  );
  assert.deepEqual(
    pickMirror(oneLine, () => false),
    { uri: 'http://other.example/debian', signedBy: '/k.gpg' },
  );
  assert.deepEqual(
    pickMirror(parseOneLine('deb http://d.example/debian sid main'), () => true),
    {
      uri: 'http://d.example/debian',
      signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
    },
  );
  assert.equal(
    pickMirror(parseDeb822('Types: deb\nURIs: http://x/debian\nSuites: trixie\nComponents: main\nEnabled: no\n'), () => true),
    undefined,
  );
});

test('config fragment: committed, parsed, hashed by content, and checked against .config', () => {
  const text = readFileSync(join(ROOT, 'lab/kernel.config'), 'utf8');
  const frag = parseFragment(text);
  assert.ok(frag.some((f) => f.name === 'CONFIG_KVM_SW_PROTECTED_VM' && f.value === 'y'));
  assert.ok(
    frag.some((f) => f.name === 'CONFIG_ADVISE_SYSCALLS' && f.value === 'y'),
    'Node needs madvise',
  );
  // comments and blank lines do not change the key; a value does
  assert.equal(fragmentHash(text), fragmentHash(`# comment\n\n${text}`));
  assert.notEqual(fragmentHash(text), fragmentHash(text.replace('CONFIG_SMP=n', 'CONFIG_SMP=y')));
  const dot = ['CONFIG_KVM=y', '# CONFIG_MODULES is not set', 'CONFIG_SMP=y'].join('\n');
  assert.deepEqual(
    unmetFragment(
      [
        { name: 'CONFIG_KVM', value: 'y' },
        { name: 'CONFIG_MODULES', value: 'n' },
        { name: 'CONFIG_SMP', value: 'n' },
        { name: 'CONFIG_KVM_PRIVATE_MEM', value: 'y' },
        { name: 'CONFIG_NET', value: 'n' },
      ],
      dot,
    ),
    ['CONFIG_SMP=n (got y)', 'CONFIG_KVM_PRIVATE_MEM=y (got absent)'],
  );
  assert.throws(() => parseFragment('KVM=y'), /not a config line/);
});

test('the committed lab files name no host and no machine path', () => {
  for (const f of ['lab/kernel.config', 'lab/init.sh', 'README.md']) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    assert.doesNotMatch(text, /https?:\/\/|\/work\/|\/root\/|\/home\//, f);
  }
  const init = readFileSync(join(ROOT, 'lab/init.sh'), 'utf8');
  for (const field of ['@@DATA@@', '@@LIBPATH@@', '@@DRIVER@@', '@@JOB@@']) assert.ok(init.includes(field), field);
  assert.match(init, /reboot -f/);
});

test('cache dir: GUESTMEM_LAB_CACHE, else XDG_CACHE_HOME, else ~/.cache', () => {
  assert.equal(cacheDir({ GUESTMEM_LAB_CACHE: '/c' }), '/c');
  assert.equal(cacheDir({ XDG_CACHE_HOME: '/x', HOME: '/h' }), '/x/guestmem-lab');
  assert.equal(cacheDir({ HOME: '/h' }), '/h/.cache/guestmem-lab');
  assert.deepEqual(KERNEL_IDS, ['6.12', '7.3']);
  for (const p of ['qemu-system-x86', 'busybox-static', 'flex', 'bison', 'libelf-dev', 'bc']) assert.ok(LAB_PACKAGES.includes(p), p);
});

test('pack: production node_modules only, koffi among them; scenarios keep repo-relative paths', () => {
  const pkgs = productionPackages(ROOT);
  assert.ok(pkgs.includes('node_modules/koffi'));
  assert.ok(pkgs.includes('node_modules/commander'));
  assert.ok(!pkgs.includes('node_modules/typescript'));
  assert.ok(!pkgs.some((p) => p.startsWith('node_modules/@biomejs')));
  const outside = join(tmp, 's.json');
  writeFileSync(outside, '{}');
  const placed = placeScenarios([join(ROOT, 'scenarios/examples/punch-hole-zeroes.json'), outside]);
  assert.deepEqual([...placed.values()], ['scenarios/examples/punch-hole-zeroes.json', 'lab-extra/1/s.json']);
});

test('qemu: TCG with -cpu max, console on the first port, data on stdout', () => {
  const a = qemuArgs({ bzImage: '/k', initrd: '/i', runDir: '/r' });
  const s = a.join(' ');
  assert.match(s, /-accel tcg -cpu max/);
  assert.match(s, /-no-reboot/);
  assert.match(s, /-serial file:\/r\/console\.log -serial stdio/);
  assert.match(s, /console=ttyS0 panic=-1/);
  // the guest kernel is told the TSC rate: a failed PIT calibration left tsc_khz 0 and KVM looping
  assert.match(s, /tsc_early_khz=[1-9]\d*/);
  const m = qemuArgs({ bzImage: '/k', initrd: '/i', runDir: '/r', machine: { qemu: '/q', dataDirs: ['/d'], cpu: 'EPYC', smp: 2 } }).join(' ');
  assert.match(m, /^-L \/d -accel tcg -cpu EPYC -smp 2/);
});

test("TSC rate for the guest kernel: the host's cpu MHz, else 2 GHz", () => {
  assert.equal(hostTscKhz('processor\t: 0\ncpu MHz\t\t: 2600.000\n'), 2_600_000);
  assert.equal(hostTscKhz('cpu MHz\t: 2399.998\n'), 2_399_998);
  assert.equal(hostTscKhz('no such line\n'), 2_000_000);
});

test('collect: records fold into a verdict with the reasons', () => {
  const timings = { kernelCached: true, packSeconds: 0.1, wallSeconds: 3 };
  const base = { kernel: '6.12', sourceVersion: '6.12.117-1', backend: 'model', runDir: '/r', timings };
  const probe = {
    t: 'probe',
    device: '/dev/kvm',
    open: { ok: 3 },
    swProtectedVm: true,
    system: { MEMORY_ATTRIBUTES: 8, VM_TYPES: 3 },
    vmTypes: ['default', 'sw_protected'],
  };
  const good: LabRecord[] = [
    { t: 'hello', release: '6.12.117' },
    probe,
    { t: 'scenario', command: 'run', name: 'a', file: 'a.json', status: 'passed', backend: 'model', kernel: '6.18', stepCount: 3 },
    {
      t: 'command',
      label: 'run',
      argv: ['run', '--backend', 'model', '--json', 'a.json'],
      status: 0,
      signal: null,
      seconds: 1,
      summary: { passed: 1, failed: 0, skipped: 0 },
    },
    { t: 'kernel-log', warnings: [] },
    { t: 'done', seconds: 2 },
    { t: 'exit', rc: 0 },
  ];
  const ok = fold(good, base);
  assert.equal(ok.ok, true, ok.problems.join('; '));
  assert.equal(ok.release, '6.12.117');
  assert.match(formatKernelRun(ok), /^PASS {2}kernel 6\.12 \(6\.12\.117-1, uname 6\.12\.117\)/);
  assert.match(formatKernelRun(ok), /SW_PROTECTED VM created; VM_TYPES=0x3 \(default, sw_protected\); MEMORY_ATTRIBUTES=0x8/);

  const bad = fold(
    [
      good[0]!,
      { ...probe, swProtectedVm: false, vms: { sw_protected: { type: 1, created: { errno: 'EINVAL' } } } },
      {
        t: 'scenario',
        command: 'run',
        name: 'b',
        file: 'b.json',
        status: 'failed',
        reason: 'step 2',
        backend: 'model',
        kernel: '6.18',
        stepCount: 3,
        steps: [],
      },
      { t: 'command', label: 'run', argv: ['run'], status: 1, signal: null, seconds: 1, summary: { passed: 0, failed: 1, skipped: 0 } },
      { t: 'kernel-log', warnings: ['WARNING: CPU: 0 PID: 1 at arch/x86/kvm/mmu/mmu.c:1'] },
    ],
    base,
  );
  assert.equal(bad.ok, false);
  const text = bad.problems.join('\n');
  assert.match(text, /stopped before it finished/);
  assert.match(text, /no SW_PROTECTED VM: KVM_CREATE_VM\(1\) -> EINVAL/);
  assert.match(text, /exited with 1 \(1 failed\)/);
  assert.match(text, /1 warning/);
  assert.match(formatKernelRun(bad), /FAILED {2}b {2}\(b\.json, model 6\.18\): step 2/);
  assert.match(fold([], base).problems[0] ?? '', /never started/);

  // the kvm tests' TAP run: one that passed nothing, or exited non-zero without a failed test, or
  // skipped guest_memfd cases for its absence, left guest_memfd unchecked in a kernel built with it
  const tapRun = (status: number, summary: { passed: number; failed: number; skipped: number }): LabRecord => ({
    t: 'command',
    label: 'kvm-tests',
    argv: ['--test', '--test-reporter=tap', 'dist/tests/kvm/', 'dist/tests/conformance/'],
    status,
    signal: null,
    seconds: 1,
    summary,
  });
  const withTap = (extra: LabRecord[]) => fold([...good.slice(0, -3), ...extra, ...good.slice(-3)], base).problems.join('\n');
  assert.equal(withTap([tapRun(0, { passed: 5, failed: 0, skipped: 1 })]), '');
  assert.match(withTap([tapRun(1, { passed: 0, failed: 0, skipped: 0 })]), /passed no test/);
  assert.match(withTap([tapRun(1, { passed: 3, failed: 0, skipped: 0 })]), /exited with 1 but reported no failed test/);
  assert.match(
    withTap([
      tapRun(0, { passed: 3, failed: 0, skipped: 1 }),
      { t: 'test', command: 'kvm-tests', name: 'C1 [kvm]', status: 'skipped', reason: 'kernel 6.12.118 lacks it: KVM_CAP_GUEST_MEMFD is 0' },
    ]),
    /1 kvm test\(s\) skipped because KVM_CAP_GUEST_MEMFD is 0/,
  );

  // A command the driver had to kill reports that, with the error in its stderr; skips are grouped.
  const hung = fold(
    [
      good[0]!,
      probe,
      {
        t: 'scenario',
        command: 'run',
        name: 'c',
        file: 'c.json',
        status: 'skipped',
        reason: 'requires memory_attributes',
        backend: 'kvm',
        kernel: '6.12',
        stepCount: 1,
      },
      {
        t: 'scenario',
        command: 'run',
        name: 'd',
        file: 'd.json',
        status: 'skipped',
        reason: 'requires memory_attributes',
        backend: 'kvm',
        kernel: '6.12',
        stepCount: 1,
      },
      {
        t: 'command',
        label: 'run',
        argv: ['run', '--backend', 'kvm'],
        status: null,
        signal: 'SIGKILL',
        seconds: 25,
        timedOut: true,
        stderr: 'file:///app/x.js:1\nRangeError: more than 511 reads\n    at f (x.js:1:1)\n\nNode.js v20',
      },
      { t: 'done', seconds: 26 },
      { t: 'exit', rc: 1 },
    ],
    base,
  );
  assert.equal(hung.ok, false);
  assert.match(hung.problems.join('\n'), /guestmem run --backend kvm hung and was killed after 25 s/);
  assert.match(hung.problems.join('\n'), /its stderr: RangeError: more than 511 reads$/m);
  assert.match(formatKernelRun(hung), /SKIPPED 2 scenarios: requires memory_attributes/);
});

test('collect: a stuck boot (the canary guest never exits) and a diff command that found divergences', () => {
  const timings = { kernelCached: true, packSeconds: 0.1, wallSeconds: 3 };
  const base = { kernel: '7.3', sourceVersion: '7.3.4-1', backend: 'kvm', runDir: '/r', timings };
  const probe = { t: 'probe', device: '/dev/kvm', open: { ok: 3 }, swProtectedVm: true };
  const stuck = fold(
    [
      { t: 'hello', release: '7.3.4' },
      probe,
      { t: 'canary', ok: false, stuck: true, results: { default: 'hlt', sw_protected: 'KVM_RUN: EINTR: no exit within 20000 ms' }, seconds: 20 },
      { t: 'done', seconds: 21 },
      { t: 'exit', rc: 1 },
    ],
    base,
  );
  assert.equal(stuck.ok, false);
  assert.match(
    stuck.problems.join('\n'),
    /a guest that only halts did not exit \(default: hlt; sw_protected: KVM_RUN: EINTR: no exit within 20000 ms\): nested guests on this boot are stuck/,
  );
  // a canary that failed some other way is reported as it is, not as a stuck boot
  const odd = fold(
    [
      { t: 'hello', release: '7.3.4' },
      { t: 'canary', ok: false, stuck: false, results: { default: 'shutdown' } },
    ],
    base,
  );
  assert.match(odd.problems.join('\n'), /did not exit \(default: shutdown\)$/m);
  stuck.retried = 'boot 1: a halting guest did not exit; booted again';
  assert.match(formatKernelRun(stuck), /RETRIED: boot 1: a halting guest did not exit/);

  // exit 1 from `guestmem diff --batch` means "ran to the end, found divergences": not a lab problem
  const diff = fold(
    [
      { t: 'hello', release: '7.3.4' },
      probe,
      { t: 'canary', ok: true, results: { default: 'hlt', sw_protected: 'hlt' }, seconds: 1 },
      { t: 'diff-sequence', index: 0, steps: 9, uncompared: 0, ms: 40 },
      { t: 'command', label: 'diff', argv: ['diff', '--batch', 'b.json'], status: 1, signal: null, seconds: 1, okStatuses: [0, 1] },
      { t: 'kernel-log', warnings: [] },
      { t: 'done', seconds: 2 },
      { t: 'exit', rc: 0 },
    ],
    base,
  );
  assert.equal(diff.ok, true, diff.problems.join('; '));
  const crashed = fold(
    [
      { t: 'hello', release: '7.3.4' },
      {
        t: 'command',
        label: 'diff',
        argv: ['diff', '--batch', 'b.json'],
        status: 2,
        signal: null,
        seconds: 1,
        okStatuses: [0, 1],
        stderr: 'guestmem: b.json: not JSON',
      },
      { t: 'done', seconds: 2 },
      { t: 'exit', rc: 1 },
    ],
    base,
  );
  assert.match(crashed.problems.join('\n'), /guestmem diff --batch b\.json exited with 2[\s\S]*its stderr: guestmem: b\.json: not JSON/);
});

test("supervise: the kernel's OOM report names the cause and the slab it held; a WARN is quoted; a hang says where", () => {
  // lines as a 6.12 kernel prints them (show_mem counts slab in pages)
  const oom = kernelVerdict([
    '[   40.1] node invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=1000',
    '[   40.2] active_anon:1021 inactive_anon:0 isolated_anon:0',
    '[   40.2]  slab_reclaimable:812 slab_unreclaimable:229376',
    '[   40.3] Out of memory: Killed process 93 (node) total-vm:1234kB, anon-rss:5678kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:1000',
  ]);
  assert.equal(oom.oom, true);
  assert.equal(oom.slabMiB, 896);
  assert.equal(
    deathReason('steps[0] (set_memory_attributes)', { status: null, signal: 'SIGKILL', stderr: '' }, oom),
    'out of memory in the lab kernel at steps[0] (set_memory_attributes): the OOM killer ended the run; the kernel held 896 MiB of slab (slab_unreclaimable)',
  );
  // a memory cgroup's OOM (lab/init.sh puts every run in one): its memory.stat, in bytes
  const memcg = kernelVerdict([
    '[   40.1] node invoked oom-killer: gfp_mask=0x400dc0(GFP_KERNEL_ACCOUNT|__GFP_ZERO), order=0, oom_score_adj=1000',
    '[   40.2] memory: usage 614400kB, limit 614400kB, failcnt 1201',
    '[   40.2] Memory cgroup stats for /runs:',
    'slab_unreclaimable 587202560',
    '[   40.3] Memory cgroup out of memory: Killed process 93 (node) total-vm:1234kB, anon-rss:5678kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:1000',
  ]);
  assert.deepEqual([memcg.oom, memcg.cgroup, memcg.slabMiB], [true, true, 560]);
  assert.equal(
    deathReason('steps[0] (set_memory_attributes)', { status: null, signal: 'SIGKILL', stderr: '' }, memcg),
    "out of memory in the lab kernel at steps[0] (set_memory_attributes): the memory cgroup's OOM killer ended the run; the kernel held 560 MiB of slab (slab_unreclaimable)",
  );
  const warn = kernelVerdict([
    '[ 1.0] ------------[ cut here ]------------',
    '[ 1.0] WARNING: CPU: 0 PID: 7 at arch/x86/kvm/mmu/mmu.c:123 kvm_mmu_foo+0x1/0x2',
  ]);
  assert.equal(warn.oom, false);
  assert.match(
    deathReason('steps[2] (run)', { status: null, signal: 'SIGSEGV', stderr: '' }, warn),
    /^the run was killed by SIGSEGV at steps\[2\] \(run\); the kernel said: .*WARNING: CPU: 0 PID: 7/,
  );
  assert.equal(
    deathReason(
      'steps[1] (set_memory_attributes)',
      { status: null, signal: 'SIGKILL', hung: { seconds: 150, where: 'in syscall 16 (ioctl)' }, stderr: '' },
      warn,
    ),
    'hung at steps[1] (set_memory_attributes): no progress for 150 s (the process was in syscall 16 (ioctl)); killed',
  );
});

test("TAP: node:test's top-level tests, skips with their reasons, failures with their error", () => {
  const tap = [
    'TAP version 13',
    '# Subtest: A1: flags',
    'ok 1 - A1: flags',
    '  ---',
    '  duration_ms: 1.2',
    '  ...',
    '# Subtest: D2: mmap',
    'ok 2 - D2: mmap # SKIP kernel 6.12.118 lacks it: KVM_CAP_GUEST_MEMFD_FLAGS lacks mmap',
    '# Subtest: A6: link',
    'not ok 3 - A6: link',
    '  ---',
    '  duration_ms: 3.1',
    '  error: |-',
    '    Expected values to be strictly equal:',
    '  code: ERR_ASSERTION',
    '  ...',
    '1..3',
  ].join('\n');
  assert.deepEqual(parseTap(tap), [
    { name: 'A1: flags', status: 'passed' },
    { name: 'D2: mmap', status: 'skipped', reason: 'kernel 6.12.118 lacks it: KVM_CAP_GUEST_MEMFD_FLAGS lacks mmap' },
    { name: 'A6: link', status: 'failed', reason: 'error: |- Expected values to be strictly equal: code: ERR_ASSERTION ...' },
  ]);
});

test('VM memory: a quarter of the free memory, between 1 and 4 GiB', () => {
  assert.equal(defaultMemoryMiB(24 * 2 ** 30), 4096);
  assert.equal(defaultMemoryMiB(8 * 2 ** 30), 2048);
  assert.equal(defaultMemoryMiB(2 * 2 ** 30), 1024);
});

test('supervise: a child with no progress past the deadline is killed as a hang, with where it waited; its lines and exit come back', async () => {
  const hung = await runChild(['/bin/sh', '-c', 'echo started; exec sleep 30'], { cwd: '/', env: process.env, stepTimeoutMs: 800, progressed: () => false });
  assert.equal(hung.signal, 'SIGKILL');
  assert.ok(hung.hung, 'reported as a hang');
  assert.ok(hung.hung.seconds >= 0 && hung.hung.where.length > 0, hung.hung.where);
  const lines: string[] = [];
  const ok = await runChild(['/bin/sh', '-c', 'echo one; echo two; exit 3'], {
    cwd: '/',
    env: process.env,
    stepTimeoutMs: 5000,
    progressed: () => false,
    onStdoutLine: (l) => lines.push(l),
  });
  assert.deepEqual([ok.status, ok.hung, lines], [3, undefined, ['one', 'two']]);
  // the OOM policy: the child runs with oom_score_adj 1000 (exec keeps the pid)
  const adj: string[] = [];
  await runChild(['/bin/cat', '/proc/self/oom_score_adj'], {
    cwd: '/',
    env: process.env,
    stepTimeoutMs: 5000,
    progressed: () => false,
    onStdoutLine: (l) => adj.push(l),
  });
  assert.deepEqual(adj, ['1000']);
});
