/**
 * The bounded CI campaign: the model (under the profile probed from this kernel) against the live
 * kernel, a fixed seed, a few hundred sequences. Any divergence fails with the shrunk
 * counterexample in the message; replaying it is `guestmem diff --replay FILE`.
 */
import assert from 'node:assert/strict';
import { kvmBackend } from '../src/backends/kvm.js';
import { runCampaign } from '../src/diff/index.js';
import { countOpenFds, openKvm } from '../src/kvm/index.js';
import { createModelKvm } from '../src/model/index.js';
import { kvmTest } from './support/kvm-gate.js';

kvmTest('300 random sequences: the model agrees with /dev/kvm step by step (seed 20261124)', async (t) => {
  const profile = (await kvmBackend()).hostProfile();
  const fds = countOpenFds();
  const r = runCampaign({
    // the kernel says where host accesses fault; memory is built the way this kernel allows
    reference: { name: 'kvm', open: () => openKvm('/dev/kvm', { hostAccess: 'kernel-checked' }) },
    candidate: { name: 'model', open: () => createModelKvm({ kernel: profile }) },
    runs: 300,
    seed: 20261124,
    steps: 30,
    guestMemfd: profile.guestMemfd,
  });
  t.diagnostic(`${r.sequences} sequences, ${r.steps} steps, ${Math.round((r.steps * 1000) / r.ms)} steps/s, ${r.uncompared} guest runs not compared`);
  assert.equal(r.divergence, undefined, r.divergence && `${r.divergence.message}\n${r.divergence.steps.map((s) => JSON.stringify(s)).join('\n')}`);
  assert.equal(r.sequences, 300);
  assert.ok(r.steps > 3000, `only ${r.steps} steps ran`);
  assert.equal(countOpenFds(), fds, 'the campaign left fds open');
});
