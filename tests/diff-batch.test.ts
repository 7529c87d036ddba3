/**
 * Campaigns in two halves (src/diff/batch.ts), what `guestmem diff --lab` is made of: sequences
 * generated against the model, shipped as plain steps, replayed in lockstep elsewhere, divergences
 * shrunk by replay. Held here model against model and against the planted bugs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateBatch, mutantKvm, type PlantedBug, parseBatch, replaySteps, runBatch, type SequenceResult, type Side } from '../src/diff/index.js';
import { createModelKvm, getProfile } from '../src/model/index.js';
import { ScenarioError } from '../src/scenario/index.js';

const profile = getProfile('7.3');
const correct: Side = { name: 'model', open: () => createModelKvm({ kernel: profile }) };
const mutant = (bug: PlantedBug): Side => ({ name: bug, open: () => mutantKvm(bug, profile) });
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

test('identical models: a batch replays with no divergence', () => {
  const results: SequenceResult[] = [];
  const total = runBatch(gen(3), correct, correct, (r) => results.push(r));
  assert.equal(total.divergences, 0);
  assert.equal(results.length, 40);
  assert.deepEqual(
    results.map((r) => r.index),
    [...Array(40).keys()],
  );
  assert.ok(total.steps > 400, `only ${total.steps} steps`);
});

test('a planted bug diverges; the shrunk sequence is shorter, diverges the same way, and only on the mutant', () => {
  const bug: PlantedBug = 'punch-without-invalidation';
  let found: SequenceResult | undefined;
  let batch = gen(1);
  for (let seed = 1; seed < 40 && !found; seed++) {
    batch = gen(seed, 60);
    runBatch(batch, correct, mutant(bug), (r) => {
      if (r.divergence && !found) found = r;
    });
  }
  assert.ok(found?.divergence, `${bug} was not found`);
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
  const total = runBatch(back, correct, correct, (r) => seen.push(r), {
    skip: (m) => (m.requires?.some((r) => r.startsWith('numa_nodes')) ? 'one NUMA node here' : undefined),
  });
  assert.equal(total.divergences, 0);
  assert.ok(total.skipped >= 2, 'GM-13/14 need two NUMA nodes');
  const pf4 = seen.find((r) => r.name === 'scenarios/kernel-selftests/PF-4.json');
  assert.ok(pf4 && !pf4.skipped && pf4.steps > 10, 'PF-4 replayed on a default VM');
  assert.ok(seen.find((r) => r.name?.endsWith('GM-13.json'))?.skipped === 'one NUMA node here');
});
