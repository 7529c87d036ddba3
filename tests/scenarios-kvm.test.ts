/**
 * Every scenario file on the real kernel: those this kernel can run must pass; the rest must be
 * skipped with the missing capability or the declared kernel range named. The same files pass on
 * the model (tests/scenarios.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { relative } from 'node:path';
import { kvmBackend } from '../src/backends/kvm.js';
import { countOpenFds, openKvm } from '../src/kvm/index.js';
import { inKernelRange, parseKernelRange, parseScenario, releaseVersion, runScenario, type ScenarioResult, unmetRequirement } from '../src/scenario/index.js';
import { ROOT, SCENARIOS, scenarioFiles } from './support/files.js';
import { kvmTest } from './support/kvm-gate.js';

kvmTest('every scenario on /dev/kvm: passes, or is skipped with the reason named', async (t) => {
  const backend = await kvmBackend();
  const fdsBefore = countOpenFds();
  const results: ScenarioResult[] = [];
  const files = scenarioFiles(SCENARIOS);
  for (const file of files) {
    const rel = relative(ROOT, file);
    results.push(runScenario(parseScenario(readFileSync(file, 'utf8'), rel), rel, backend));
  }
  const failed = results.filter((r) => r.status === 'failed');
  assert.deepEqual(
    failed.map((r) => `${r.file}: ${r.reason}`),
    [],
  );
  // A skip rests on a fact the kernel reports: a capability `requires` names, or the release
  // outside the range the scenario declares. Nothing else may skip a scenario here.
  for (const r of results.filter((x) => x.status === 'skipped')) {
    assert.match(r.reason ?? '', /^requires \S+: |^declared for kernels /, `${r.file} skipped without a kernel fact: ${r.reason}`);
  }
  const passed = results.filter((r) => r.status === 'passed').length;
  t.diagnostic(`${passed} passed on /dev/kvm (${release()}), ${results.length - passed} skipped with reasons`);
  // ...and every scenario the kernel's answers admit did run, checked again from those answers
  const kvm = openKvm();
  try {
    const v = releaseVersion(release());
    for (const [i, file] of files.entries()) {
      const sc = parseScenario(readFileSync(file, 'utf8'), file);
      if (sc.design !== undefined || sc.kernel?.includes('+')) continue;
      const inRange = sc.kernels === undefined || (v !== undefined && inKernelRange(v, parseKernelRange(sc.kernels)));
      const unmet = (sc.requires ?? []).map((q) => unmetRequirement(kvm, q, backend.numaNodes, backend.guest?.bind(backend))).find(Boolean);
      if (inRange && !unmet) assert.equal(results[i]?.status, 'passed', `${results[i]?.file} is admitted by this kernel but ${results[i]?.reason}`);
    }
  } finally {
    kvm.close();
  }
  assert.equal(countOpenFds(), fdsBefore, 'the scenario runs left fds open');
});
