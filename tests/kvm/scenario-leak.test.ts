/**
 * Issue 3's ownership check: the whole scenario suite, 200 times on /dev/kvm, leaves the process's
 * open fd count and mapping count where they were.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kvmTest } from '../support/kvm-gate.js';

kvmTest('the scenario suite 200 times on /dev/kvm: fd and mapping counts unchanged', (t) => {
  const child = fileURLToPath(new URL('./scenario-leak-child.js', import.meta.url));
  const r = spawnSync(process.execPath, ['--expose-gc', '--min-semi-space-size=4', '--max-semi-space-size=4', child, '200'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, `workload failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as {
    rounds: number;
    tally: { passed: number; failed: number; skipped: number };
    fds: [number, number];
    fdsAdded: string[];
    maps: [number, number];
    named: [number, number];
    traced: number;
    left: string[];
    owned: [unknown, unknown];
  };
  t.diagnostic(
    `${out.rounds} rounds: ${JSON.stringify(out.tally)}; fds ${out.fds.join(' -> ')}; ${out.traced} backend mappings made, ${out.left.length} left; guest_memfd/memfd mappings ${out.named.join(' -> ')}; /proc/self/maps ${out.maps.join(' -> ')} lines (V8 and malloc included)`,
  );
  assert.equal(out.tally.failed, 0);
  assert.ok(out.tally.passed >= 200 * 25, `only ${out.tally.passed} scenario runs passed`);
  assert.deepEqual(out.fdsAdded, [], 'fds left open');
  assert.equal(out.fds[1], out.fds[0]);
  assert.deepEqual(out.owned[1], out.owned[0], 'the backend still owns objects');
  // Every mapping the backend made is gone; the process's own heap may grow or shrink meanwhile.
  assert.ok(out.traced > 1000, `only ${out.traced} mappings traced`);
  assert.deepEqual(out.left, [], 'backend mappings still mapped');
  assert.equal(out.named[1], out.named[0], 'guest_memfd or memfd mappings left');
});
