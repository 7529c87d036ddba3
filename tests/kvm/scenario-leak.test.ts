/**
 * Issue 3's ownership check: the whole scenario suite, 200 times on /dev/kvm, leaves the process's
 * open fd count and mapping count where they were.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kvmTest } from '../support/kvm-gate.js';

/** Rounds of the suite: 200 on a host; the lab, where Node runs ~19x slower, asks for fewer. */
const ROUNDS = Number(process.env.GUESTMEM_LEAK_ROUNDS ?? 200);

kvmTest(`the scenario suite ${ROUNDS} times on /dev/kvm: fd and mapping counts unchanged`, (t) => {
  const child = fileURLToPath(new URL('./scenario-leak-child.js', import.meta.url));
  const r = spawnSync(process.execPath, ['--expose-gc', '--min-semi-space-size=4', '--max-semi-space-size=4', child, String(ROUNDS)], {
    encoding: 'utf8',
    timeout: 1_200_000,
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
  // every round runs the same scenarios: whatever this kernel can run, it runs every time
  assert.ok(out.tally.passed > 0, 'no scenario ran on this kernel');
  assert.equal(out.tally.passed % out.rounds, 0, 'a scenario passed in some rounds only');
  assert.deepEqual(out.fdsAdded, [], 'fds left open');
  assert.equal(out.fds[1], out.fds[0]);
  assert.deepEqual(out.owned[1], out.owned[0], 'the backend still owns objects');
  // Every mapping the backend made is gone; the process's own heap may grow or shrink meanwhile.
  assert.ok(out.traced >= out.rounds, `only ${out.traced} mappings traced`);
  assert.deepEqual(out.left, [], 'backend mappings still mapped');
  assert.equal(out.named[1], out.named[0], 'guest_memfd or memfd mappings left');
});
