/**
 * scenarios/v7/ on the model with the designs registry, invariants checked after every step; and
 * how a backend without the registry treats a scenario's "design" field (it skips, never fails).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { DESIGNS } from '../../src/designs/registry.js';
import { type Backend, modelBackend, parseScenario, runScenario } from '../../src/scenario/index.js';
import { ROOT, SCENARIOS, scenarioFiles } from '../support/files.js';

const files = scenarioFiles(join(SCENARIOS, 'v7'));

describe('scenarios/v7 on the designs', () => {
  const backend = modelBackend({ designs: DESIGNS });
  for (const file of files) {
    const rel = relative(ROOT, file);
    test(rel, () => {
      const sc = parseScenario(readFileSync(file, 'utf8'), rel);
      assert.ok(sc.design, 'a v7 scenario names its design');
      const r = runScenario(sc, rel, backend);
      assert.equal(r.status, 'passed', `${r.reason}\n${r.steps.map((s) => `  [${s.index}] ${s.op}: ${s.got}${s.reason ? ` <- ${s.reason}` : ''}`).join('\n')}`);
    });
  }
  test('there are v7 scenarios for every part of the series', () => {
    assert.ok(files.length >= 8);
  });
});

test('without the registry the model backend skips a v7 scenario and says why', () => {
  const file = join(SCENARIOS, 'v7/mfd-inaccessible.json');
  const r = runScenario(parseScenario(readFileSync(file, 'utf8'), file), file, modelBackend());
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /^requires design:v7: the designs registry/);
});

test('a backend with no designs at all (the real kernel) skips v7 scenarios and runs design guest_memfd ones', () => {
  const model = modelBackend();
  const bare: Backend = { name: 'kvm', numaNodes: 1, open: (k) => model.open(k) };
  const file = join(SCENARIOS, 'v7/enc-region.json');
  const r = runScenario(parseScenario(readFileSync(file, 'utf8'), file), file, bare);
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /^requires design:v7: a model variant/);
  const gm = parseScenario(
    JSON.stringify({ name: 'gm', design: 'guest_memfd', vm: { type: 'sw_protected' }, steps: [{ op: 'create_guest_memfd', size: 4096 }] }),
    'gm.json',
  );
  assert.equal(runScenario(gm, 'gm.json', bare).status, 'passed');
});

test('v7 and negotiated have their own kernel: a scenario naming another kernel is skipped', () => {
  const sc = parseScenario(JSON.stringify({ name: 'k', design: 'v7', kernel: '6.18', steps: [{ op: 'memfd_create', as: 'm' }] }), 'k.json');
  const r = runScenario(sc, 'k.json', modelBackend({ designs: DESIGNS }));
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /own kernel/);
});

test('design ops on a backend whose objects lack them are scenario errors, not invented errnos', () => {
  const sc = parseScenario(
    JSON.stringify({ name: 'x', vm: { type: 'sw_protected' }, steps: [{ op: 'memory_encrypt_reg_region', addr: 0, size: 4096 }] }),
    'x.json',
  );
  const r = runScenario(sc, 'x.json', modelBackend());
  assert.equal(r.status, 'failed');
  assert.match(r.reason ?? '', /memoryEncryptRegRegion/);
  // the _ext struct on an upstream kernel is the v1 ioctl with bit 2 set: EINVAL, as the kernel says
  const ext = parseScenario(
    JSON.stringify({
      name: 'e',
      vm: { type: 'sw_protected' },
      steps: [
        { op: 'mmap_anonymous', length: 4096, as: 's' },
        {
          op: 'set_user_memory_region_ext',
          slot: 0,
          flags: ['private'],
          guest_phys_addr: 0,
          memory_size: 4096,
          userspace_addr: 's',
          expect: { errno: 'EINVAL' },
        },
      ],
    }),
    'e.json',
  );
  assert.equal(runScenario(ext, 'e.json', modelBackend()).status, 'passed');
});
