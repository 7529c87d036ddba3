/**
 * The bounded lab differential campaign: in each lab kernel, generated sequences with attributes,
 * private guest accesses, hypercall exits and conversions (software-protected VMs), and the plain
 * commands (default VMs), each replayed in lockstep against the model under the kernel's profile.
 * Any divergence fails with the shrunk counterexample in the message. Skips loudly without QEMU or
 * the kernel build tools; with GUESTMEM_REQUIRE_LAB=1 (CI) a would-be skip fails.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { formatLabDiff, labDiff } from '../../src/lab/diff.js';
import { KERNEL_IDS, LabError, missing } from '../../src/lab/index.js';
import { describeMissing } from '../../src/lab/prereq.js';
import { createProgress } from '../../src/lab/progress.js';

const REQUIRE = process.env.GUESTMEM_REQUIRE_LAB === '1';

function skipLoudly(t: TestContext, reason: string): void {
  const msg = `LAB DIFF TEST SKIPPED: ${reason}`;
  if (REQUIRE) assert.fail(`${msg} (GUESTMEM_REQUIRE_LAB=1 makes this a failure)`);
  process.stderr.write(`\n${'!'.repeat(msg.length + 8)}\n!!! ${msg} !!!\n${'!'.repeat(msg.length + 8)}\n\n`);
  t.diagnostic(msg);
  t.skip(msg);
}

const CAMPAIGNS = [
  { vmType: 'sw_protected', runs: 80 },
  { vmType: 'default', runs: 40 },
] as const;

for (const kernel of KERNEL_IDS) {
  for (const c of CAMPAIGNS) {
    test(`lab ${kernel}: ${c.runs} ${c.vmType} sequences agree with the model step by step (seed 20261124)`, { timeout: 45 * 60_000 }, async (t) => {
      const gone = missing(['build', 'pack', 'boot']);
      if (gone.length) {
        skipLoudly(t, describeMissing(gone));
        return;
      }
      let r: Awaited<ReturnType<typeof labDiff>>[number];
      try {
        [r] = (await labDiff([kernel], { runs: c.runs, seed: 20261124, steps: 30, vmType: c.vmType, progress: createProgress(process.stderr) })) as [typeof r];
      } catch (e) {
        if (e instanceof LabError && e.stage === 'fetch') {
          skipLoudly(t, `kernel ${kernel} source: ${e.message}`);
          return;
        }
        throw e;
      }
      // A guest that stalls under TCG on a loaded machine shows as a run whose reference answer is
      // EINTR at the KVM_RUN deadline; a real divergence repeats, a stall does not: one retry, said.
      const stalled = r.divergences.length > 0 && r.divergences.every((d) => /run outcome: reference EINTR/.test(d.divergence.message));
      if (stalled) {
        t.diagnostic(
          `RETRIED: kernel ${kernel}: ${r.divergences.length} sequence(s) stalled at the KVM_RUN deadline (${r.divergences[0]?.divergence.message})`,
        );
        [r] = (await labDiff([kernel], { runs: c.runs, seed: 20261124, steps: 30, vmType: c.vmType, progress: createProgress(process.stderr) })) as [typeof r];
      }
      const report = formatLabDiff(r);
      for (const line of report.split('\n')) t.diagnostic(line);
      const d = r.divergences[0];
      assert.equal(d, undefined, d && `${report}\nshrunk:\n${d.divergence.shrunk.map((s) => JSON.stringify(s)).join('\n')}`);
      assert.equal(r.complete, true, report);
      assert.equal(r.sequences, c.runs, report);
      assert.ok(r.steps > c.runs * 8, `only ${r.steps} steps ran\n${report}`);
    });
  }
}
