/**
 * Every bad input to the guestmem command gets one clear line (issue 13): exit status 2, the file,
 * step, field or flag named, never a stack trace, nothing half done.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT } from './support/files.js';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Exit status 2 and exactly one line on stderr, matching `msg`, and no stack. */
function oneLine(r: { code: number | null; err: string }, msg: RegExp): void {
  assert.equal(r.code, 2, r.err);
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.err}`);
  assert.match(lines[0] ?? '', msg);
  assert.doesNotMatch(r.err, /\n\s+at |Error:/);
}

const tmp = mkdtempSync(join(tmpdir(), 'guestmem-cli-errors-'));
const EXAMPLE = 'scenarios/examples/punch-hole-zeroes.json';
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

test('demo --kernel host: the probed profile, or one line saying why not (bug 1)', () => {
  const r = cli('demo', '--kernel', 'host');
  assert.doesNotMatch(r.err, /\n\s+at |unknown kernel profile/);
  if (r.code === 0) assert.match(r.out, /kernel profile host/);
  else oneLine(r, /^guestmem: (demo --kernel host: .*sw_protected|--kernel host follows the live kernel)/);
});

test('run --trace into a missing directory is refused before anything runs (bug 2)', () => {
  const r = cli('run', '--trace', join(tmp, 'no/such/dir/t.json'), EXAMPLE);
  oneLine(r, /^guestmem: --trace .*t\.json: the directory .*no\/such\/dir does not exist$/);
  assert.equal(r.out, '', 'no scenario ran');
  oneLine(cli('run', '--trace', tmp, EXAMPLE), /--trace .*: is a directory/);
});

test('run --progress into a missing directory or onto a directory is refused before anything runs, as --trace is', () => {
  const r = cli('run', '--progress', join(tmp, 'no/such/dir/p.jsonl'), EXAMPLE);
  oneLine(r, /^guestmem: --progress .*p\.jsonl: the directory .*no\/such\/dir does not exist$/);
  assert.equal(r.out, '', 'no scenario ran');
  oneLine(cli('run', '--progress', tmp, EXAMPLE), /--progress .*: is a directory/);
});

test('flag errors are one line naming the command; --version prints the version (bug 8)', () => {
  oneLine(cli('run', '--frob', EXAMPLE), /^guestmem run: unknown option '--frob'$/);
  oneLine(cli('run', '--jsn', EXAMPLE), /^guestmem run: unknown option '--jsn' \(Did you mean --json\?\)$/);
  oneLine(cli('frobnicate'), /^guestmem: unknown command 'frobnicate'/);
  oneLine(cli('run', EXAMPLE, '--kernel', '9.9'), /^guestmem run: option '--kernel <profile>' argument '9\.9' is invalid\. Allowed choices are 6\.8, /);
  oneLine(cli('run'), /^guestmem run: missing required argument 'files'$/);
  const v = cli('--version');
  assert.equal(v.code, 0);
  assert.equal(v.out, `${PKG.version}\n`);
});

test('run DIR: scenario files found recursively; every bad file reported, the good ones run, exit 2', () => {
  const dir = join(tmp, 'suite');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'a.json'), readFileSync(join(ROOT, EXAMPLE)));
  writeFileSync(join(dir, 'sub', 'b.yaml'), 'name: b\nsteps:\n  - op: fstat\n    fd: 9999\n    expect: { errno: EBADF }\n');
  writeFileSync(join(dir, 'notes.txt'), 'not a scenario');
  const good = cli('run', dir);
  assert.equal(good.code, 0, good.err);
  assert.match(good.out, /^2 passed, 0 failed, 0 skipped$/m);
  writeFileSync(join(dir, 'c.json'), '{"name": "c", "steps": [{"op": "fstat", "fd": "nope"}]}');
  writeFileSync(join(dir, 'sub', 'd.json'), '\x00\x01binary');
  const r = cli('run', dir, join(tmp, 'missing.json'));
  assert.equal(r.code, 2);
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 3, r.err);
  assert.match(lines[0] ?? '', /c\.json: steps\[0\]\.fd: no object named 'nope'/);
  assert.match(lines[1] ?? '', /d\.json: not a scenario file: binary data/);
  assert.match(lines[2] ?? '', /missing\.json: cannot read: ENOENT/);
  assert.match(r.out, /^2 passed, 0 failed, 0 skipped$/m, 'the good files ran');
  oneLine(cli('run', join(tmp, 'suite', 'sub', 'd.json'), '--trace', join(tmp, 'x.json')), /d\.json: not a scenario/);
  assert.ok(existsSync(join(tmp, 'x.json')), 'the trace is written even when nothing ran');
});

test('run refuses a file that is not a regular file (a device is not read forever)', () => {
  oneLine(cli('run', '/dev/zero'), /^guestmem: \/dev\/zero: not a regular file$/);
  oneLine(cli('run', join(tmp, 'empty-dir-that-is-missing')), /cannot read: ENOENT/);
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  oneLine(cli('run', empty), /empty: no scenario files \(\*\.json, \*\.yaml, \*\.yml\) in this directory/);
});

test('a scenario with a typo fails at load, before any step ran (rc 2, not 1)', () => {
  const f = join(tmp, 'typo.json');
  writeFileSync(
    f,
    JSON.stringify({
      name: 't',
      steps: [
        { op: 'create_guest_memfd', size: 4096, as: 'g' },
        { op: 'fstat', fd: 'g', expect: { errno: 'EBADFF' } },
      ],
    }),
  );
  oneLine(cli('run', f), /typo\.json: steps\[1\]\.expect\.errno: unknown errno 'EBADFF' \(did you mean 'EBADF'\?\)/);
  const q = join(tmp, 'req.json');
  writeFileSync(q, JSON.stringify({ name: 'q', requires: ['guest_memfd_flag:mmap'], steps: [{ op: 'fstat', fd: 0 }] }));
  oneLine(cli('run', q), /^guestmem: .*req\.json: requires\[0\]: unknown requirement 'guest_memfd_flag:mmap' \(did you mean 'guest_memfd_flags:mmap'\?\)$/);
});

test('diff: flag combinations that mean nothing are refused', () => {
  const f = join(tmp, 'replay.json');
  writeFileSync(f, readFileSync(join(ROOT, EXAMPLE)));
  oneLine(cli('diff', '--steps', '0', '--reference', 'model'), /^guestmem: --steps must be at least 1$/);
  oneLine(cli('diff', '--runs', '0', '--reference', 'model'), /--runs must be at least 1/);
  oneLine(cli('diff', '--path', '0:1', '--reference', 'model'), /--path replays one sequence of a seed: give --seed too/);
  oneLine(cli('diff', '--self-test', '--replay', f), /--self-test runs its own sequences: drop --replay/);
  oneLine(cli('diff', '--lab', '7.3', '--seed', '1', '--path', '0:1'), /--lab runs its own sequences: drop --path/);
});
