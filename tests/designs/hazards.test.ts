/**
 * The hazard suite: every hazard under every design, each outcome asserted as the run produced it
 * (kind, errno or signal, the call, the damages). Then two designs that lack one of v7's rules, to
 * show that the reclaim and migration rows would report damage if the rule were missing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadHazards } from '../../src/cli/designs.js';
import { type HazardOutcome, runHazard, runHazards } from '../../src/designs/hazards/run.js';
import { DESIGN_NAMES, type DesignName } from '../../src/designs/registry.js';
import type { MemfileBinding } from '../../src/designs/v7/binding.js';
import { MEMFILE_F_USER_INACCESSIBLE } from '../../src/designs/v7/constants.js';
import { V7Kvm } from '../../src/designs/v7/kvm.js';
import { V7Memslots } from '../../src/designs/v7/memslots.js';
import { V7KvmVm } from '../../src/designs/v7/vm.js';
import type { VmType } from '../../src/uapi/constants.js';
import { ROOT } from '../support/files.js';

const hazards = loadHazards(join(ROOT, 'designs/hazards'));
const byName = new Map(hazards.map((h) => [h.hazard.name, h]));

const refused = (by: string, op: string) => ({ kind: 'refused', by, op });
const prevented = (by: string, op: string) => ({ kind: 'prevented', by, op });
const damage = (...damages: string[]) => ({ kind: 'damage', damages });

/** The outcome each design gets, as the model computes it; a change here is a change of the table. */
const EXPECTED: Record<string, Record<DesignName, object>> = {
  'mapped-at-bind': {
    v7: damage('data exposed to the host', 'guest memory modified by the host'),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext'),
    guest_memfd: refused('SIGBUS', 'host_read'),
  },
  'data-at-bind': {
    v7: damage('measurement excludes data', 'data dropped (the TD accepts the page zeroed)'),
    negotiated: damage('measurement excludes data', 'data dropped (the TD accepts the page zeroed)'),
    guest_memfd: prevented('EINVAL', 'write'),
  },
  'host-write-after-conversion': {
    v7: damage('host machine check (the VMM is killed)'),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext'),
    guest_memfd: prevented('SIGBUS', 'host_write'),
  },
  'fd-read-write': {
    v7: refused('EPERM', 'read'),
    negotiated: refused('EPERM', 'read'),
    guest_memfd: refused('EINVAL', 'read'),
  },
  'two-vms': {
    v7: damage('data exposed to another VM', 'guest memory modified by another VM'),
    negotiated: damage('data exposed to another VM', 'guest memory modified by another VM'),
    guest_memfd: refused('EINVAL', 'set_user_memory_region2'),
  },
  'mixed-technologies': {
    v7: damage('machine check in the TD (the other VM poisoned its page)'),
    negotiated: damage('machine check in the TD (the other VM poisoned its page)'),
    guest_memfd: refused('EINVAL', 'set_user_memory_region2'),
  },
  'truncate-while-bound': {
    v7: refused('EPERM', 'ftruncate'),
    negotiated: refused('EPERM', 'ftruncate'),
    guest_memfd: refused('EINVAL', 'ftruncate'),
  },
  'reclaim-private-page': {
    v7: refused('unevictable', 'mm_reclaim'),
    negotiated: refused('unevictable', 'mm_reclaim'),
    guest_memfd: refused('unevictable', 'mm_reclaim'),
  },
  'migrate-private-page': {
    v7: refused('EOPNOTSUPP', 'mm_migrate'),
    negotiated: refused('EOPNOTSUPP', 'mm_migrate'),
    guest_memfd: refused('EINVAL', 'mm_migrate'),
  },
  'implicit-allocation': {
    v7: refused('SIGBUS', 'host_write'),
    negotiated: refused('SIGBUS', 'host_write'),
    guest_memfd: damage('double allocation'),
  },
};

function shape(o: HazardOutcome): object {
  if (o.kind === 'damage') return { kind: o.kind, damages: [...o.damages] };
  if (o.kind === 'no damage') return { kind: o.kind };
  return { kind: o.kind, by: o.by, op: o.op };
}

test('the suite has one hazard per concern the issue lists, and every one has an expected row', () => {
  assert.deepEqual([...byName.keys()].sort(), Object.keys(EXPECTED).sort());
  assert.ok(hazards.length >= 8);
});

describe('each hazard under each design', () => {
  const runs = runHazards(hazards);
  for (const run of runs) {
    test(`${run.hazard} under ${run.design}: ${run.label}`, () => {
      assert.deepEqual(shape(run.outcome), EXPECTED[run.hazard]?.[run.design]);
    });
  }
  test('every hazard ran under every design', () => {
    assert.equal(runs.length, hazards.length * DESIGN_NAMES.length);
  });
});

test('the outcome comes from the run: a refused call is recorded with the errno it got, at its index', () => {
  const h = byName.get('mapped-at-bind');
  assert.ok(h);
  const r = runHazard(h.hazard, 'negotiated', h.file);
  assert.equal(r.outcome.kind, 'refused');
  const last = r.steps.at(-1);
  assert.equal(last?.got, 'EBUSY');
  assert.equal(last?.op, 'set_user_memory_region_ext');
});

/** v7 with KVM registering only USER_INACCESSIBLE: what UNMOVABLE and UNRECLAIMABLE were for. */
class InaccessibleOnlyMemslots extends V7Memslots {
  protected override register(op: string, binding: MemfileBinding): void {
    binding.register(op, MEMFILE_F_USER_INACCESSIBLE);
  }
}
class InaccessibleOnlyVm extends V7KvmVm {
  protected override createMemslots(): V7Memslots {
    return new InaccessibleOnlyMemslots(this);
  }
}
class InaccessibleOnlyKvm extends V7Kvm {
  protected override newVm(type: VmType): V7KvmVm {
    return new InaccessibleOnlyVm(type, this.kernel, this.proc.mm);
  }
}

test('without MEMFILE_F_UNMOVABLE the migration hazard shows its damage: the guest keeps the freed frame', () => {
  const h = byName.get('migrate-private-page');
  assert.ok(h);
  const r = runHazard(h.hazard, 'v7', h.file, () => new InaccessibleOnlyKvm());
  assert.deepEqual(shape(r.outcome), damage('private page moved under KVM'));
});

test('without MEMFILE_F_UNRECLAIMABLE the reclaim hazard shows its damage: swapped out under KVM', () => {
  const h = byName.get('reclaim-private-page');
  assert.ok(h);
  const r = runHazard(h.hazard, 'v7', h.file, () => new InaccessibleOnlyKvm());
  assert.deepEqual(shape(r.outcome), damage('private page swapped out under KVM'));
});
