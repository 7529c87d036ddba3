/**
 * Kernel ranges (`kernels` in a scenario): the syntax, the comparisons on release strings as real
 * kernels print them, and the scenario files' own consistency (a file's model profile is inside the
 * range it declares, so the model and a real kernel of that release judge the same expectations).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { test } from 'node:test';
import { getProfile } from '../src/model/index.js';
import { inKernelRange, modelBackend, parseKernelRange, parseScenario, releaseVersion, runScenario } from '../src/scenario/index.js';
import { ROOT, SCENARIOS, scenarioFiles } from './support/files.js';

const within = (release: string, range: string) => inKernelRange(releaseVersion(release) as number[], parseKernelRange(range));

test('kernel ranges: comparators, hyphen ranges, alternatives, partial bounds', () => {
  const cases: [string, string, boolean][] = [
    ['6.18.44-fc-v1300', '>=6.18', true],
    ['6.12.118', '>=6.18', false],
    ['6.12.118', '<6.18', true],
    ['6.18.0', '<6.18', false],
    ['6.18.44', '<=6.18', true],
    ['6.19.1', '<=6.18', false],
    ['6.12.118', '6.12 - 6.18', true],
    ['6.18.9', '6.12 - 6.18', true],
    ['7.3.4', '6.12 - 6.18', false],
    ['6.8.0', '6.12 - 6.18', false],
    ['6.12.118', '>=6.12.117 <6.13', true],
    ['6.12.116', '>=6.12.117 <6.13', false],
    ['6.13.0', '>=6.12.117 <6.13', false],
    ['6.12.3', '6.12', true],
    ['6.1.3', '6.12', false],
    ['7.3.4', '6.12 || >=7.3', true],
    ['6.18.4', '6.12 || >=7.3', false],
    ['10.0', '>=7.3', true],
  ];
  for (const [rel, range, want] of cases) assert.equal(within(rel, range), want, `${rel} in '${range}'`);
});

test('kernel ranges: a malformed range is a load error naming it', () => {
  for (const bad of ['>=6', '6.x', '', '>=6.18 ||', '=>6.18', '6.12 -', 'latest']) {
    assert.throws(
      () => parseScenario(JSON.stringify({ name: 'n', kernels: bad, steps: [{ op: 'check_extension', cap: 1 }] }), 'bad.json'),
      /kernels: expected a kernel range like ">=6\.18"/,
      bad,
    );
  }
});

test('every scenario file: its own model profile lies inside the kernels it declares', () => {
  let declared = 0;
  for (const file of scenarioFiles(SCENARIOS)) {
    const sc = parseScenario(readFileSync(file, 'utf8'), file);
    if (sc.kernels === undefined || sc.kernel === undefined || sc.kernel === 'host' || sc.kernel === 'next') continue;
    declared++;
    const version = getProfile(sc.kernel).version;
    assert.ok(within(version, sc.kernels), `${relative(ROOT, file)}: profile ${sc.kernel} (${version}) is outside kernels '${sc.kernels}'`);
  }
  assert.ok(declared > 0, 'no scenario declares a range');
});

test('the model skips a scenario outside its declared kernels, naming the range and the profile', () => {
  const sc = parseScenario(
    JSON.stringify({
      name: 'flags on 6.18',
      kernel: '6.18',
      kernels: '>=6.18',
      steps: [{ op: 'check_extension', cap: 'KVM_CAP_GUEST_MEMFD_FLAGS', expect: { result: 3 } }],
    }),
    'x.json',
  );
  assert.equal(runScenario(sc, 'x.json', modelBackend()).status, 'passed');
  const r = runScenario(sc, 'x.json', modelBackend({ kernel: '6.12' }));
  assert.equal(r.status, 'skipped');
  assert.equal(r.reason, 'declared for kernels >=6.18; profile 6.12 follows 6.12.118');
});

test('every scenario that creates a guest_memfd requires guest_memfd, so a kernel without it skips rather than fails', () => {
  const missing: string[] = [];
  for (const file of scenarioFiles(SCENARIOS)) {
    const sc = parseScenario(readFileSync(file, 'utf8'), file);
    if (sc.design !== undefined) continue;
    const creates = sc.steps.some((s) => s.op === 'create_guest_memfd' && !(s.expect && 'errno' in s.expect));
    // guest_memfd_flags:* implies it too: KVM_CAP_GUEST_MEMFD_FLAGS is 0 without guest_memfd
    if (creates && !(sc.requires ?? []).some((r) => r === 'guest_memfd' || r.startsWith('guest_memfd_flags:'))) missing.push(relative(ROOT, file));
  }
  assert.deepEqual(missing, []);
});
