/**
 * Every scenario file in the repository, run on the model under the profile it names, with the
 * invariant checker after every step. A scenario may be skipped only for a requirement the model
 * cannot meet, and that is said in the test output.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, test } from 'node:test';
import { kvmBackend } from '../src/backends/kvm.js';
import { DESIGNS } from '../src/designs/registry.js';
import { modelBackend, parseScenario, runScenario } from '../src/scenario/index.js';
import { ROOT, SCENARIOS, scenarioFiles } from './support/files.js';
import { kvmGate } from './support/kvm-gate.js';

// Scenarios written for the 'host' profile need the live kernel's capabilities; where /dev/kvm is
// usable the model takes them from the probe, otherwise those scenarios are skipped with the reason.
const host = kvmGate().ok ? (await kvmBackend()).hostProfile() : undefined;
const backend = modelBackend({ designs: DESIGNS, ...(host && { host }) });

describe('scenarios on the model', () => {
  for (const file of scenarioFiles(SCENARIOS)) {
    const rel = relative(ROOT, file);
    test(rel, (t) => {
      const sc = parseScenario(readFileSync(file, 'utf8'), rel);
      const r = runScenario(sc, rel, backend);
      if (r.status === 'skipped') {
        t.skip(`skipped on the model: ${r.reason}`);
        return;
      }
      assert.equal(r.status, 'passed', `${r.reason}\n${r.steps.map((s) => `  [${s.index}] ${s.op}: ${s.got}${s.reason ? ` <- ${s.reason}` : ''}`).join('\n')}`);
    });
  }
});
