/**
 * The differential tester, model against model: it must find every planted bug, shrink the
 * divergence to a replayable scenario, and stay silent when both sides agree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyDiffModel } from '../src/diff/commands.js';
import { counterexampleScenario, MUTANTS, mutantKvm, Pair, PathError, type PlantedBug, replay, runCampaign, type Side } from '../src/diff/index.js';
import { createModelKvm, getProfile } from '../src/model/index.js';
import { parseScenario, Session } from '../src/scenario/index.js';

const profile = getProfile('6.18');
const correct: Side = { name: 'model', open: () => createModelKvm({ kernel: profile }) };
const mutant = (bug: PlantedBug): Side => ({ name: bug, open: () => mutantKvm(bug, profile) });

test('identical models never diverge (300 sequences, default and sw_protected VMs)', () => {
  for (const vmType of ['default', 'sw_protected'] as const) {
    const r = runCampaign({ reference: correct, candidate: correct, runs: 150, seed: 7, steps: 30, vmType, attributes: vmType === 'sw_protected' });
    assert.equal(r.divergence, undefined, r.divergence?.message);
    assert.equal(r.sequences, 150);
    assert.ok(r.steps > 1500, `only ${r.steps} steps ran`);
  }
});

for (const m of MUTANTS) {
  test(`self-test finds the planted bug ${m.bug}`, () => {
    let found: { r: ReturnType<typeof runCampaign>; vmType: 'default' | 'sw_protected' } | undefined;
    for (const vmType of ['default', 'sw_protected'] as const) {
      const r = runCampaign({ reference: correct, candidate: mutant(m.bug), runs: 2000, seed: 1, steps: 30, vmType, attributes: vmType === 'sw_protected' });
      if (r.divergence) {
        found = { r, vmType };
        break;
      }
    }
    assert.ok(found?.r.divergence, `${m.bug} was not found`);
    // The shrunk counterexample is a scenario file that replays the divergence, and only on the mutant.
    const sc = parseScenario(JSON.stringify(counterexampleScenario(found.r, '6.18', found.vmType)), 'counterexample.json');
    assert.ok(sc.steps.length >= 1 && sc.steps.length <= 12, `${sc.steps.length} steps after shrinking`);
    assert.ok(replay(sc.steps, correct, mutant(m.bug), found.vmType), 'the counterexample replays');
    assert.equal(replay(sc.steps, correct, correct, found.vmType), undefined);
  });
}

test('the path of a shrunk divergence replays it (guestmem diff --seed N --path P); a path of no sequence is a PathError', () => {
  const o = { reference: correct, candidate: mutant('bind-without-overlap-check'), runs: 2000, seed: 1, steps: 30, vmType: 'default' as const };
  const r = runCampaign(o);
  assert.ok(r.divergence, 'the planted bug was found');
  // fast-check's run path and the commands' replay path, joined by '~'
  assert.match(r.divergence.path, /^[\d:]+~\S+$/);
  const again = runCampaign({ ...o, path: r.divergence.path });
  // the same shrunk sequence diverges the same way; only the names it made may be numbered anew
  const what = (m: string | undefined) => m?.split(' at ')[0];
  assert.equal(what(again.divergence?.message), what(r.divergence.message));
  assert.deepEqual(
    again.divergence?.steps.map((x) => x.op),
    r.divergence.steps.map((x) => x.op),
  );
  assert.throws(
    () => runCampaign({ ...o, path: '0:1:0:0:0:0' }),
    (e: unknown) => e instanceof PathError && /--path 0:1:0:0:0:0: not a sequence of seed 1/.test(e.message),
  );
});

test('a reference without guest_memfd: memory is built on memfds, and the campaign agrees with a model of such a kernel', () => {
  const noGmem = { ...profile, guestMemfd: false };
  const side: Side = { name: 'no-gmem', open: () => createModelKvm({ kernel: noGmem }) };
  const r = runCampaign({ reference: side, candidate: side, runs: 100, seed: 3, steps: 30, guestMemfd: false });
  assert.equal(r.divergence, undefined, r.divergence?.message);
  assert.ok(r.steps > 1000, `only ${r.steps} steps ran`);
  // a model that still had guest_memfd is told apart: KVM_CREATE_GUEST_MEMFD is ENOTTY on the reference
  const d = runCampaign({ reference: side, candidate: correct, runs: 100, seed: 3, steps: 30, guestMemfd: false });
  assert.match(d.divergence?.message ?? '', /create_guest_memfd outcome: reference ENOTTY, model/);
});

test("a slot set again at the slot's own userspace_addr on one side only is run on both and not compared (UNCOMPARED_SLOT_ADDRESS)", () => {
  const reference = new Session(createModelKvm({ kernel: '6.18' }));
  const candidate = new Session(createModelKvm({ kernel: '6.18' }));
  // the reference's address space already holds another mapping, so its next mapping lands
  // elsewhere: the layout difference a Node process and the model's process always have
  reference.step({ op: 'mmap_anonymous', length: 0x4000, as: 'elsewhere' });
  const pair = new Pair(reference, candidate);
  const m = emptyDiffModel();
  pair.apply({ op: 'mmap_anonymous', length: 0x4000, as: 'm' }, m);
  pair.apply({ op: 'set_user_memory_region2', slot: 1, flags: 0, guest_phys_addr: 0, memory_size: 0x4000, userspace_addr: 'm' }, m);
  const own = candidate.mappings().find(([n]) => n === 'm')?.[1].addr;
  assert.ok(own !== undefined);
  // the candidate's own address: a no-op there (kvm_set_memory_region: nothing to change), EINVAL on
  // the reference (a changed userspace_addr of an existing slot)
  const again = { op: 'set_user_memory_region2' as const, slot: 1, flags: 0, guest_phys_addr: 0, memory_size: 0x4000, userspace_addr: `0x${own.toString(16)}` };
  assert.equal(candidate.step(again).got, 'ok');
  assert.equal(reference.step(again).got, 'EINVAL');
  assert.doesNotThrow(() => pair.apply(again, m));
  assert.equal(pair.uncompared, 1);
  // the slot is gone on both sides after it (one side had kept it, the other had moved or refused),
  // so the next step is judged on the same memslots: a new slot at its GPA is ok on both
  pair.apply({ op: 'set_user_memory_region2', slot: 3, flags: 0, guest_phys_addr: 0, memory_size: 0x4000, userspace_addr: 'm' }, m);
  // a move the candidate takes (the address is its own) and the reference refuses: the slot is
  // deleted on both, so slot 0 over the old range is ok on both rather than EEXIST on one
  const own3 = candidate.mappings().find(([n]) => n === 'm')?.[1].addr as bigint;
  pair.apply({ op: 'set_user_memory_region2', slot: 3, flags: 0, guest_phys_addr: 0x8000, memory_size: 0x4000, userspace_addr: `0x${own3.toString(16)}` }, m);
  assert.equal(pair.uncompared, 2);
  assert.doesNotThrow(() => pair.apply({ op: 'set_user_memory_region2', slot: 0, flags: 0, guest_phys_addr: 0, memory_size: 0x4000, userspace_addr: 'm' }, m));
  reference.close();
  candidate.close();
});
