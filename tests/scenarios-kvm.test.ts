/**
 * Every scenario file on the real kernel: those this kernel can run must pass; the rest must be
 * skipped with the missing capability (or the other kernel's rule) named. The same files pass on
 * the model (tests/scenarios.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { kvmBackend } from '../src/cli/kvm-backend.js';
import { countOpenFds } from '../src/kvm/index.js';
import { parseScenario, runScenario, type ScenarioResult } from '../src/scenario/index.js';
import { ROOT, SCENARIOS, scenarioFiles } from './support/files.js';
import { kvmTest } from './support/kvm-gate.js';

kvmTest('every scenario on /dev/kvm: passes, or is skipped with the reason named', async (t) => {
  const backend = await kvmBackend();
  const fdsBefore = countOpenFds();
  const results: ScenarioResult[] = [];
  for (const file of scenarioFiles(SCENARIOS)) {
    const rel = relative(ROOT, file);
    results.push(runScenario(parseScenario(readFileSync(file, 'utf8'), rel), rel, backend));
  }
  const failed = results.filter((r) => r.status === 'failed');
  assert.deepEqual(
    failed.map((r) => `${r.file}: ${r.reason}`),
    [],
  );
  for (const r of results.filter((x) => x.status === 'skipped')) {
    assert.match(r.reason ?? '', /requires \S+: |written for kernel /, `${r.file} skipped without a named reason`);
  }
  const passed = results.filter((r) => r.status === 'passed').length;
  t.diagnostic(`${passed} passed on /dev/kvm, ${results.length - passed} skipped with reasons`);
  // This kernel (6.18, default VMs only) runs the guest_memfd file, mmap and binding checks.
  assert.ok(passed >= 25, `only ${passed} scenarios ran on the real kernel`);
  for (const id of ['GM-7', 'GM-8', 'GM-9', 'GM-11.6.18', 'SMR-5', 'SMR-9.6.18', 'SMR-11']) {
    assert.equal(results.find((r) => r.file.endsWith(`/${id}.json`))?.status, 'passed', `${id} must run here`);
  }
  assert.equal(countOpenFds(), fdsBefore, 'the scenario runs left fds open');
});
