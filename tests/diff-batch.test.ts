/**
 * Campaigns in two halves (src/diff/batch.ts), what `guestmem diff --lab` is made of: sequences
 * generated against the model, shipped as plain steps, replayed in lockstep elsewhere, divergences
 * shrunk by replay. A batch is held against the planted bugs (src/diff/mutants.ts), each of which
 * breaks one kernel rule: the batch must report a divergence at the step where the rule applies,
 * with the reference answering what the kernel's rule says (KERNEL-SPEC.md, rule given). The
 * correct model against itself is run on the same batches only as the control.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  FIRST_STEP,
  generateBatch,
  MUTANTS,
  mutantKvm,
  parseBatch,
  replaySteps,
  runBatch,
  type SequenceBatch,
  type SequenceResult,
  type Side,
} from '../src/diff/index.js';
import { createModelKvm, getProfile } from '../src/model/index.js';
import { ScenarioError, Session, type Step } from '../src/scenario/index.js';

const profile = getProfile('7.3');
const correct: Side = { name: 'model', open: () => createModelKvm({ kernel: profile }) };
type Mutant = (typeof MUTANTS)[number];
/** The one place that builds a planted-bug model (the mutant API of src/diff/mutants.ts). */
const mutant = (m: Mutant): Side => ({ name: m.bug, open: () => mutantKvm(m.bug, profile) });
const planted = (bug: Mutant['bug']): Mutant => {
  const m = MUTANTS.find((x) => x.bug === bug);
  assert.ok(m, `no planted bug ${bug}`);
  return m;
};
const gen = (seed: number, runs = 40) => generateBatch({ side: correct, kernel: '7.3', runs, seed, steps: 30, vmType: 'sw_protected', attributes: true });

test('a batch is fixed by its seed, survives JSON, and uses the private-memory commands', () => {
  const a = gen(11);
  const b = gen(11);
  assert.deepEqual(a, b, 'same seed, same sequences');
  assert.notDeepEqual(gen(12).sequences, a.sequences);
  assert.equal(a.sequences.length, 40);
  const back = parseBatch(JSON.stringify(a), 'batch.json');
  assert.deepEqual(back.sequences.length, a.sequences.length);
  const ops = new Set(a.sequences.flat().map((s) => s.op));
  for (const op of ['set_memory_attributes', 'enable_cap', 'run', 'create_guest_memfd', 'set_user_memory_region2', 'fallocate'])
    assert.ok(ops.has(op as never), `no ${op} in 40 sequences`);
  const programs = a.sequences.flat().flatMap((s) => (s.op === 'run' ? (s.program ?? []) : []));
  assert.ok(
    programs.some((o) => typeof o === 'object' && 'map_gpa_range' in o),
    'hypercall conversions are generated',
  );
});

/** Every sequence's result, and the totals. */
function run(batch: SequenceBatch, candidate: Side, opts: Parameters<typeof runBatch>[4] = {}) {
  const results: SequenceResult[] = [];
  const total = runBatch(batch, correct, candidate, (r) => results.push(r), opts);
  return { total, results, diverged: results.filter((r) => r.divergence) };
}

/** The create_guest_memfd step that made the fd a step names, earlier in the same sequence. */
function creatorOf(seq: readonly Step[], at: number, fd: unknown): Step | undefined {
  return seq.slice(0, at).findLast((s) => s.op === 'create_guest_memfd' && s.as === fd);
}

function hasMmapFlag(s: Step): boolean {
  const flags = s.op === 'create_guest_memfd' ? (s.flags ?? 0) : 0;
  return Array.isArray(flags) ? flags.includes('mmap') : (BigInt(flags) & 1n) !== 0n;
}

test('a generated batch against mmap-without-mmap-flag: divergences exactly at mmaps of guest_memfds created without MMAP, where the kernel says ENODEV', () => {
  const m = planted('mmap-without-mmap-flag');
  const batch = gen(3);
  const { total, results, diverged } = run(batch, mutant(m), { shrinkBudget: 0 });
  assert.equal(results.length, 40);
  assert.ok(total.steps > 400, `only ${total.steps} steps`);
  assert.ok(total.divergences >= 1, `${m.rule}: no divergence in 40 sequences`);
  assert.equal(total.divergences, diverged.length);
  for (const r of diverged) {
    const d = r.divergence;
    assert.ok(d);
    const seq = batch.sequences[r.index] ?? [];
    const step = seq[d.at];
    assert.equal(step?.op, 'mmap', `sequence ${r.index}: diverged at ${JSON.stringify(step)}`);
    const made = step.op === 'mmap' ? creatorOf(seq, d.at, step.fd) : undefined;
    assert.ok(made?.op === 'create_guest_memfd', `sequence ${r.index}: the mmap'd fd is not a guest_memfd`);
    assert.ok(!hasMmapFlag(made), 'created without GUEST_MEMFD_FLAG_MMAP');
    // KERNEL-SPEC D2: kvm_gmem_mmap without GUEST_MEMFD_FLAG_MMAP is -ENODEV
    assert.equal(d.reference, 'ENODEV');
    assert.notEqual(d.candidate, 'ENODEV');
  }
  // and none is missed: where the reference answers a guest_memfd mmap with ENODEV, the sequence diverged
  for (const r of results.filter((x) => !x.divergence)) {
    const seq = batch.sequences[r.index] ?? [];
    const session = new Session(correct.open(), 'sw_protected');
    try {
      session.step(FIRST_STEP);
      seq.forEach((st, i) => {
        let got = '';
        try {
          got = session.step(st).got;
        } catch (e) {
          if (!(e instanceof ScenarioError)) throw e;
        }
        const made = st.op === 'mmap' ? creatorOf(seq, i, st.fd) : undefined;
        assert.ok(!(made && got === 'ENODEV'), `sequence ${r.index} step ${i}: the reference says ENODEV and the batch saw no divergence`);
      });
    } finally {
      session.close();
    }
  }
});

test('control: the same batch against the correct model replays with no divergence', () => {
  const { total, results } = run(gen(3), correct);
  assert.equal(total.divergences, 0);
  assert.deepEqual(
    results.map((r) => r.index),
    [...Array(40).keys()],
  );
});

test('a planted bug diverges; the shrunk sequence is shorter, diverges the same way, and only on the mutant', () => {
  const bug = planted('punch-without-invalidation');
  let found: SequenceResult | undefined;
  let batch = gen(1);
  for (let seed = 1; seed < 40 && !found; seed++) {
    batch = gen(seed, 60);
    runBatch(batch, correct, mutant(bug), (r) => {
      if (r.divergence && !found) found = r;
    });
  }
  assert.ok(found?.divergence, `${bug.bug} was not found`);
  const d = found.divergence;
  const original = batch.sequences[found.index] ?? [];
  assert.ok(d.shrunk.length <= d.at + 1 && d.shrunk.length <= original.length, `${d.shrunk.length} steps from ${original.length}`);
  assert.ok(d.replays >= 1);
  const again = replaySteps(d.shrunk, correct, mutant(bug), 'sw_protected');
  assert.equal(again.divergence?.what, d.what, 'the shrunk sequence still diverges the same way');
  assert.equal(again.at, d.shrunk.length - 1, 'and at its last step');
  assert.equal(replaySteps(d.shrunk, correct, correct, 'sw_protected').divergence, undefined);
});

test('a bad batch file is refused with the problem named', () => {
  const bad = (text: string, want: RegExp) =>
    assert.throws(
      () => parseBatch(text, 'b.json'),
      (e: unknown) => e instanceof ScenarioError && want.test(e.message),
    );
  bad('{', /b\.json: not JSON/);
  bad('{"format":"x"}', /not a guestmem diff batch/);
  const ok = { format: 'guestmem-diff-batch/1', seed: 1, kernel: '7.3', vmType: 'sw_protected', sequences: [[]] };
  bad(JSON.stringify({ ...ok, vmType: 'snp' }), /"vmType" must be default or sw_protected/);
  bad(JSON.stringify({ ...ok, sequences: {} }), /"sequences" must be an array/);
  bad(JSON.stringify({ ...ok, sequences: [[], [{ op: 'fallocate', fd: 'g' }]] }), /b\.json sequence 1: steps\[0\]/);
  assert.deepEqual(parseBatch(JSON.stringify(ok), 'b.json').sequences, [[]], 'an empty sequence is valid');
});

test('scenario files as a batch: designs and SNP/TDX VMs are left out with the reason; requirements reach the skip hook', async () => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { parseScenario } = await import('../src/scenario/index.js');
  const { scenariosBatch } = await import('../src/diff/index.js');
  const { ROOT } = await import('./support/files.js');
  const files = ['scenarios/v7', 'scenarios/coco', 'scenarios/kernel-selftests'].flatMap((d) =>
    readdirSync(join(ROOT, d))
      .filter((f) => f.endsWith('.json'))
      .map((f) => `${d}/${f}`),
  );
  const parsed = files.map((name) => ({ name, scenario: parseScenario(readFileSync(join(ROOT, name), 'utf8'), name) }));
  const { batch, left } = scenariosBatch('7.3', parsed);
  assert.equal(batch.sequences.length + left.length, files.length);
  assert.ok(left.some((l) => l.name.startsWith('scenarios/v7/') && /design v7/.test(l.reason)));
  assert.ok(left.some((l) => /a (snp|tdx) VM/.test(l.reason)));
  assert.ok(!left.some((l) => l.name.includes('kernel-selftests')), 'every selftest scenario is replayed');
  assert.ok(
    batch.sequences.flat().every((s) => s.expect === undefined),
    'expectations are not part of a replay',
  );
  const back = parseBatch(JSON.stringify(batch), 'b.json');
  const seen: SequenceResult[] = [];
  // control (the mutants are held against these files below): the correct model against itself
  const total = runBatch(back, correct, correct, (r) => seen.push(r), {
    skip: (m) => (m.requires?.some((r) => r.startsWith('numa_nodes')) ? 'one NUMA node here' : undefined),
  });
  assert.equal(total.divergences, 0);
  assert.ok(total.skipped >= 2, 'GM-13/14 need two NUMA nodes');
  const pf4 = seen.find((r) => r.name === 'scenarios/kernel-selftests/PF-4.json');
  assert.ok(pf4 && !pf4.skipped && pf4.steps > 10, 'PF-4 replayed on a default VM');
  assert.ok(seen.find((r) => r.name?.endsWith('GM-13.json'))?.skipped === 'one NUMA node here');
});

describe('kernel-selftest scenarios as a batch against the planted bugs: the divergence is at the step the selftest expects the errno of the broken rule', async () => {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { parseScenario } = await import('../src/scenario/index.js');
  const { scenariosBatch } = await import('../src/diff/index.js');
  const { ROOT } = await import('./support/files.js');
  const load = (names: string[]) =>
    names.map((f) => {
      const name = `scenarios/kernel-selftests/${f}`;
      return { name, scenario: parseScenario(readFileSync(join(ROOT, name), 'utf8'), name) };
    });
  // the selftests' own expectations (KERNEL-SPEC §3) say where each rule is checked and what the kernel answers
  const cases = [
    // KERNEL-SPEC D2 (test_mmap_not_supported): mmap of a guest_memfd without MMAP is ENODEV
    { bug: planted('mmap-without-mmap-flag'), errno: 'ENODEV', hits: ['GM-5.json'], misses: ['GM-4.json', 'SMR-9.json'] },
    // KERNEL-SPEC E7.5 / UPSTREAM 7.2 7ea987a90585 (set_memory_region_test, binding overlap without GPA overlap): EEXIST
    { bug: planted('bind-without-overlap-check'), errno: 'EEXIST', hits: ['SMR-9.json', 'SMR-10.json'], misses: ['GM-5.json'] },
  ];
  for (const c of cases) {
    test(`${c.bug.bug}: ${c.bug.rule}`, () => {
      const files = load([...c.hits, ...c.misses]);
      const { batch } = scenariosBatch('7.3', files);
      const { diverged } = run(batch, mutant(c.bug));
      assert.deepEqual(
        diverged.map((r) => r.name),
        c.hits.map((h) => `scenarios/kernel-selftests/${h}`),
      );
      for (const r of diverged) {
        const file = files.find((f) => f.name === r.name);
        const expectedAt = file?.scenario.steps.findIndex((s) => s.expect?.errno === c.errno) ?? -1;
        assert.ok(expectedAt >= 0, `${r.name} expects ${c.errno} nowhere`);
        assert.equal(r.divergence?.at, expectedAt, `${r.name}: diverged at step ${r.divergence?.at}, the selftest checks the rule at step ${expectedAt}`);
        assert.equal(r.divergence?.reference, c.errno);
        assert.ok((r.divergence?.shrunk.length ?? 0) <= expectedAt + 1);
      }
      assert.equal(run(batch, correct).total.divergences, 0, 'control: the correct model against itself');
    });
  }

  // Shrinking a scenario-file sequence can drop the run step that loaded the guest program; the
  // later `run` is then a bad step (a ScenarioError), which shrinking skips, not a crash.
  test('punch-without-invalidation on PMC-5: the divergence is reported, not thrown while shrinking', () => {
    const { batch } = scenariosBatch('7.3', load(['PMC-5.json']));
    const { diverged } = run(batch, mutant(planted('punch-without-invalidation')));
    assert.equal(diverged.length, 1);
    assert.equal(diverged[0]?.divergence?.what, 'run outcome');
  });
});
