/**
 * The hazard suite: every hazard under every design, against an outcome written here as a fact with
 * its source, never as the model computed it. Sources:
 * - v7: the series "KVM: mm: fd-based approach for supporting KVM guest private memory" (Chao Peng,
 *   6 Jul 2022, cover letter <20220706082016.2603916-1-chao.p.peng@linux.intel.com>), its patches
 *   NN/14 and the review, as ../shared/spec/V7-DESIGN.md (§ given) records them.
 * - guest_memfd: virt/kvm/guest_memfd.c (torvalds/linux @01f492e1817e; the functions named did not
 *   change for what is used here since 6.18) and KERNEL-SPEC.md (rule given).
 * - negotiated: the design's own stated rules, V7-DESIGN.md §1.5 (David Hildenbrand on 05/14, 5 and
 *   19 Aug 2022: "fail registering the notifier if anything is already mapped") plus the decisions
 *   src/designs/negotiated/index.ts states in its header (EBUSY; only mappings are checked, not
 *   contents or other bindings; otherwise v7 unchanged: KVM's registration imposes
 *   USER_INACCESSIBLE | UNMOVABLE | UNRECLAIMABLE, F_SEAL_AUTO_ALLOCATE stays).
 * - TDX hardware (what a TD-owned page does to non-TD accesses): not covered by the project's specs;
 *   the facts used are Intel's TDX module architecture (TDG.MEM.PAGE.ACCEPT zeroes the page; a non-TD
 *   read of a TD-owned line sees zeros, a non-TD write poisons it and the TD's next access is a machine
 *   check), with the one simplification src/designs/host/tdx.ts declares (a host write is a machine
 *   check at once). Those cells say so.
 * Then two designs that lack one of v7's rules, to show that the reclaim and migration rows would
 * report damage if the rule were missing.
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

type Shape = { kind: 'refused' | 'prevented'; by: string; op: string } | { kind: 'damage'; damages: string[] } | { kind: 'no damage' };
interface Fact {
  readonly outcome: Shape;
  /** where the outcome comes from */
  readonly source: string;
}

const refused = (by: string, op: string, source: string): Fact => ({ outcome: { kind: 'refused', by, op }, source });
const prevented = (by: string, op: string, source: string): Fact => ({ outcome: { kind: 'prevented', by, op }, source });
const damage = (damages: string[], source: string): Fact => ({ outcome: { kind: 'damage', damages }, source });

// ---- the rules the cells rest on, once each ----
const V7_ANY_SHMEM =
  'v7 04/14 shmem lookup_memfile_node returns a node for any shmem file, not only MFD_INACCESSIBLE ones; the flags are enforced only when mmap/read/write is called, so an already-mapped plain memfd is registered and its mappings stay (V7-DESIGN §1.3, §1.8 row "Existing mmaps at bind time")';
const V7_GET_PFN_SAME_PAGE = "v7 04/14 shmem_get_pfn: shmem_getpage(SGP_WRITE), i.e. KVM maps the file's own page-cache page (V7-DESIGN §1.3)";
const V7_NOT_EXCLUSIVE =
  'v7 03/14 memfile_register_notifier: "Several notifiers (several VMs, or several slots) can be registered on one file: the list is not exclusive"; same pfn behind two GFNs is documented UB, "No enforcement" (V7-DESIGN §1.2, §1.3, §1.8 row "Binding to one VM")';
const V7_KVM_FLAGS =
  'v7 13/14: KVM registers every private slot with MEMFILE_F_USER_INACCESSIBLE | MEMFILE_F_UNMOVABLE | MEMFILE_F_UNRECLAIMABLE (V7-DESIGN §1.3), and 04/14 checks the node flags at call time';
const NEG_MAPPED =
  'negotiated: "fail registering the notifier if anything is already mapped" (David Hildenbrand, V7-DESIGN §1.5), refused with EBUSY (the design\'s stated errno)';
const NEG_ONLY_MAPPINGS =
  "negotiated: only mappings are checked at bind, not the file's contents or its other bindings (the design's stated rule); otherwise v7";
const GM_FAULT_SIGBUS =
  'guest_memfd.c kvm_gmem_fault_user_mapping: `if (!(GMEM_I(inode)->flags & GUEST_MEMFD_FLAG_INIT_SHARED)) return VM_FAULT_SIGBUS`; INIT_SHARED is not offered to a VM with private memory (kvm_arch_supports_gmem_init_shared = !kvm_arch_has_private_mem, KERNEL-SPEC §1.4, D5)';
const GM_OTHER_VM = 'guest_memfd.c kvm_gmem_bind: `f = file->private_data; if (f->kvm != kvm) goto err;` with r = -EINVAL (KERNEL-SPEC E7.3)';
const TDX_ACCEPT_ZEROES = 'TDX: a page AUGed after launch is zeroed by TDG.MEM.PAGE.ACCEPT (Intel TDX module architecture; not in the project specs)';
const TDX_MEASURED =
  'the TD measurement covers what went through the launch ioctls (KVM_TDX_INIT_MEM_REGION), not the file: Andy Lutomirski 17 Feb 2022 <2ca78dcb-61d9-4c9d-baa9-955b6f4298bb@www.fastmail.com> (V7-DESIGN §1.4, §1.5)';

// ---- in-place conversion (applied in next-20260923) and direct-map removal (v12): IN-PLACE-CONVERSION.md ----
const IP = 'IN-PLACE-CONVERSION.md';
const IP_SAME = `the in-place design keeps upstream guest_memfd's rule here (${IP} §1.3.5-1.3.7: the series changes attributes, faults and conversion, not this)`;
const IP_FAULT_PRIVATE = `guest_memfd.c (applied) kvm_gmem_fault_user_mapping: a private index is ERR_PTR(-EACCES) -> vmf_error -> SIGBUS, for reads and writes, in every process (${IP} §1.3.5)`;
const IP_UNMAP = `__kvm_gmem_set_attributes: to-private runs unmap_mapping_pages(mapping, start, nr, false) over every process mapping the file before the refcount check (${IP} §1.3.3 4a; forked_accesses asserts the child's SIGBUS)`;
const IP_PINNED = `kvm_gmem_is_safe_for_conversion: folio_maybe_dma_pinned() -> -EAGAIN with error_offset at the folio, nothing stored (${IP} §1.3.3 4b-c; elevated_refcount)`;
const IP_GUP = `GUP faults the page in through kvm_gmem_fault_user_mapping, which refuses a private index (SIGBUS); a failed fault is -EFAULT from pin_user_pages (${IP} §1.3.5; mm/gup.c)`;
const IP_NO_FOLIO = `the attribute of an index without a folio is stored all the same (before_allocation_shared: the host then gets SIGBUS) (${IP} §1.4 test 4)`;
const IP_NDM = `GUEST_MEMFD_FLAG_NO_DIRECT_MAP (v12 p10): kvm_gmem_folio_zap_direct_map on first fault; a direct-map read of a zapped folio cannot succeed (the model answers the nofault accessors' EFAULT) (${IP} §2.4)`;
const GM_SEPARATE_SHARED =
  'upstream guest_memfd (6.18, profile): shared memory is a separate host mapping at userspace_addr that conversion never touches; private memory is only in the guest_memfd (KERNEL-SPEC, src/model/fault.ts)';
const GM_DIRECT_MAP =
  'every guest_memfd or shmem folio stays in the kernel direct map upstream (no NO_DIRECT_MAP before the v12 series); a sw_protected VM has no hardware encryption';

/** The outcome each design must get, each with its source. */
const EXPECTED: Record<string, Record<DesignName, Fact>> = {
  'mapped-at-bind': {
    v7: damage(
      ['data exposed to the host', 'guest memory modified by the host'],
      `${V7_ANY_SHMEM}; ${V7_GET_PFN_SAME_PAGE}; a sw_protected VM has no hardware between them`,
    ),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext', NEG_MAPPED),
    guest_memfd: refused('SIGBUS', 'host_read', GM_FAULT_SIGBUS),
    inplace: refused('SIGBUS', 'host_read', `${IP_FAULT_PRIVATE}; the file was created without INIT_SHARED, so every index starts private`),
  },
  'data-at-bind': {
    v7: damage(
      ['measurement excludes data', 'data dropped (the TD accepts the page zeroed)'],
      `a plain memfd can be written and then bound (${V7_ANY_SHMEM}); ${TDX_MEASURED}; ${TDX_ACCEPT_ZEROES}`,
    ),
    negotiated: damage(
      ['measurement excludes data', 'data dropped (the TD accepts the page zeroed)'],
      `${NEG_ONLY_MAPPINGS}; ${TDX_MEASURED}; ${TDX_ACCEPT_ZEROES}`,
    ),
    guest_memfd: prevented(
      'EINVAL',
      'write',
      'guest_memfd.c kvm_gmem_fops = { mmap, open, release, fallocate }: no write, so vfs_write is -EINVAL (KERNEL-SPEC B1)',
    ),
    inplace: prevented('EINVAL', 'write', IP_SAME),
  },
  'host-write-after-conversion': {
    v7: damage(
      ['host machine check (the VMM is killed)'],
      `${V7_ANY_SHMEM}; the store lands on a TD-owned page: on TDX a machine check (the model takes it at the store, the simplification src/designs/host/tdx.ts declares; hardware without the partial-write erratum poisons the line and the #MC comes at consumption)`,
    ),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext', NEG_MAPPED),
    guest_memfd: prevented('SIGBUS', 'host_write', `${GM_FAULT_SIGBUS}; a TDX VM has private memory`),
    inplace: prevented('SIGBUS', 'host_write', `${IP_FAULT_PRIVATE}; created without INIT_SHARED: private from the start`),
  },
  'fd-read-write': {
    v7: refused(
      'EPERM',
      'read',
      'v7 04/14 shmem_file_read_iter: -EPERM on an MFD_INACCESSIBLE file (V7-DESIGN §1.2 table "mmap / read / write on an inaccessible file")',
    ),
    negotiated: refused('EPERM', 'read', `${V7_KVM_FLAGS}: the bound plain memfd is USER_INACCESSIBLE from the bind on`),
    guest_memfd: refused('EINVAL', 'read', 'guest_memfd.c kvm_gmem_fops has no read: vfs_read is -EINVAL (KERNEL-SPEC B1)'),
    inplace: refused('EINVAL', 'read', IP_SAME),
  },
  'two-vms': {
    v7: damage(['data exposed to another VM', 'guest memory modified by another VM'], `${V7_NOT_EXCLUSIVE}; ${V7_GET_PFN_SAME_PAGE}`),
    negotiated: damage(['data exposed to another VM', 'guest memory modified by another VM'], `${NEG_ONLY_MAPPINGS}; ${V7_NOT_EXCLUSIVE}`),
    guest_memfd: refused('EINVAL', 'set_user_memory_region2', GM_OTHER_VM),
    inplace: refused('EINVAL', 'set_user_memory_region2', `${IP_SAME}; ${GM_OTHER_VM}`),
  },
  'mixed-technologies': {
    v7: damage(
      ['machine check in the TD (the other VM poisoned its page)'],
      `${V7_NOT_EXCLUSIVE}, and no VM type is declared (V7-DESIGN §1.8 row "Declaring the purpose"); TDX: the other VM's read of the TD-owned line sees zeros (no exposure), its write poisons it, the TD's next read is a machine check`,
    ),
    negotiated: damage(['machine check in the TD (the other VM poisoned its page)'], `${NEG_ONLY_MAPPINGS}; then as v7`),
    guest_memfd: refused('EINVAL', 'set_user_memory_region2', GM_OTHER_VM),
    inplace: refused('EINVAL', 'set_user_memory_region2', `${IP_SAME}; ${GM_OTHER_VM}`),
  },
  'truncate-while-bound': {
    v7: refused(
      'EPERM',
      'ftruncate',
      'v7 04/14: ftruncate of an inaccessible file is allowed only while its size is 0 (`oldsize != 0` -> -EPERM; V7-DESIGN §1.2)',
    ),
    negotiated: refused('EPERM', 'ftruncate', `${V7_KVM_FLAGS}: the bound, sized plain memfd is inaccessible, so the same -EPERM`),
    guest_memfd: refused('EINVAL', 'ftruncate', 'guest_memfd.c kvm_gmem_setattr: `return -EINVAL;` (KERNEL-SPEC B3)'),
    inplace: refused('EINVAL', 'ftruncate', IP_SAME),
  },
  'reclaim-private-page': {
    v7: refused('unevictable', 'mm_reclaim', 'v7 03/14 MEMFILE_F_UNRECLAIMABLE: mapping_set_unevictable() (V7-DESIGN §1.3), imposed by KVM at bind (13/14)'),
    negotiated: refused('unevictable', 'mm_reclaim', `${V7_KVM_FLAGS} (the negotiated design keeps KVM's flags)`),
    guest_memfd: refused(
      'unevictable',
      'mm_reclaim',
      'guest_memfd.c __kvm_gmem_create: mapping_set_inaccessible(); "Unmovable mappings are supposed to be marked unevictable as well." WARN_ON_ONCE(!mapping_unevictable())',
    ),
    inplace: refused('unevictable', 'mm_reclaim', IP_SAME),
  },
  'migrate-private-page': {
    v7: refused('EOPNOTSUPP', 'mm_migrate', 'v7 03/14 MEMFILE_F_UNMOVABLE: "migratepage -EOPNOTSUPP" (V7-DESIGN §1.3, §1.8 row "Page migration / reclaim")'),
    negotiated: refused('EOPNOTSUPP', 'mm_migrate', `${V7_KVM_FLAGS} (the negotiated design keeps KVM's flags)`),
    guest_memfd: refused(
      'EINVAL',
      'mm_migrate',
      'guest_memfd.c kvm_gmem_migrate_folio: `WARN_ON_ONCE(1); return -EINVAL;` (V7-DESIGN §1.7 "migrate_folio returns -EINVAL")',
    ),
    inplace: refused('EINVAL', 'mm_migrate', IP_SAME),
  },
  'implicit-allocation': {
    v7: refused(
      'SIGBUS',
      'host_write',
      'v7 01/14 F_SEAL_AUTO_ALLOCATE: page faults use SGP_NOALLOC, "an access that would need a new page fails instead of allocating" (V7-DESIGN §1.2): shmem_getpage_gfp(SGP_NOALLOC) on a hole is -ENOENT and vmf_error(-ENOENT) in shmem_fault is VM_FAULT_SIGBUS (02/14 test_seal_auto_allocate expects SIGBUS)',
    ),
    negotiated: refused('SIGBUS', 'host_write', 'negotiated keeps v7 01/14 F_SEAL_AUTO_ALLOCATE (it changes only the bind): as v7'),
    guest_memfd: damage(
      ['double allocation'],
      'the shared side is an ordinary memfd: its fault allocates; guest_memfd left double allocation to the VMM ("Userspace must discard", V7-DESIGN §1.8 row "Double allocation"); the private page came from kvm_gmem_get_pfn -> kvm_gmem_get_folio (FGP_CREAT)',
    ),
    inplace: refused('SIGBUS', 'host_write', `the shared page is the guest_memfd's own folio (no second copy); ${IP_UNMAP}; ${IP_FAULT_PRIVATE}`),
  },
  'host-mapping-at-conversion': {
    v7: damage(['data exposed to the host'], `${V7_ANY_SHMEM}; ${V7_GET_PFN_SAME_PAGE}`),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext', NEG_MAPPED),
    guest_memfd: { outcome: { kind: 'no damage' }, source: `${GM_SEPARATE_SHARED}: the mapping keeps the stale shared data, never the secret` },
    inplace: refused('SIGBUS', 'host_read', `${IP_UNMAP}; ${IP_FAULT_PRIVATE}`),
  },
  'pinned-at-conversion': {
    v7: damage(['guest memory modified by a device'], `${V7_ANY_SHMEM}; ${V7_GET_PFN_SAME_PAGE}: the pinned page is the guest's private page`),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext', NEG_MAPPED),
    guest_memfd: damage(
      ['device writes lost (they land in the discarded shared page)'],
      `${GM_SEPARATE_SHARED}; a pinned page survives the punch (the pin holds a reference), the guest reads its private page`,
    ),
    inplace: refused('EAGAIN', 'set_memory_attributes2', IP_PINNED),
  },
  'forked-child-mapping': {
    v7: damage(['data exposed to another process'], `${V7_ANY_SHMEM}; the child's inherited MAP_SHARED mapping reaches the same shmem page`),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext', NEG_MAPPED),
    guest_memfd: { outcome: { kind: 'no damage' }, source: `${GM_SEPARATE_SHARED}: the child maps the shared memfd, which never holds the secret` },
    inplace: refused('SIGBUS', 'host_read', `${IP_UNMAP}; ${IP_FAULT_PRIVATE}`),
  },
  'gup-pin-of-private': {
    v7: damage(['guest memory modified by a device'], `${V7_ANY_SHMEM}; ${V7_GET_PFN_SAME_PAGE}`),
    negotiated: refused('EBUSY', 'set_user_memory_region_ext', NEG_MAPPED),
    guest_memfd: damage(['device writes lost (the pin holds the shared page, the guest uses the private one)'], GM_SEPARATE_SHARED),
    inplace: refused('EFAULT', 'pin_user_pages', IP_GUP),
  },
  'no-folio-yet': {
    v7: refused(
      'SIGBUS',
      'host_write',
      'v7 01/14 F_SEAL_AUTO_ALLOCATE on the shared memfd: shmem_fault SGP_NOALLOC on a hole is SIGBUS (as in implicit-allocation)',
    ),
    negotiated: refused('SIGBUS', 'host_write', 'negotiated keeps v7 01/14 F_SEAL_AUTO_ALLOCATE: as v7'),
    guest_memfd: damage(['double allocation'], `${GM_SEPARATE_SHARED}; the shared memfd's fault allocates, and kvm_gmem_get_pfn allocates the private folio`),
    inplace: refused('SIGBUS', 'host_write', `${IP_NO_FOLIO}; ${IP_FAULT_PRIVATE}`),
  },
  'direct-map-read': {
    v7: damage(['guest memory readable through the direct map'], `${GM_DIRECT_MAP}; v7's private memory is a shmem page`),
    negotiated: damage(['guest memory readable through the direct map'], `${GM_DIRECT_MAP}; as v7`),
    guest_memfd: damage(['guest memory readable through the direct map'], GM_DIRECT_MAP),
    inplace: refused('EFAULT', 'direct_map_read', IP_NDM),
  },
};

function shape(o: HazardOutcome): Shape {
  if (o.kind === 'damage') return { kind: o.kind, damages: [...o.damages] };
  if (o.kind === 'no damage') return { kind: o.kind };
  return { kind: o.kind, by: o.by, op: o.op };
}

test('the suite has one hazard per concern the issue lists, and every one has a sourced row for every design', () => {
  assert.deepEqual([...byName.keys()].sort(), Object.keys(EXPECTED).sort());
  for (const [h, row] of Object.entries(EXPECTED)) for (const d of DESIGN_NAMES) assert.ok(row[d]?.source, `${h} under ${d} has no source`);
  assert.ok(hazards.length >= 8);
});

describe('each hazard under each design, against its source', () => {
  const runs = runHazards(hazards);
  for (const run of runs) {
    const fact = EXPECTED[run.hazard]?.[run.design];
    test(`${run.hazard} under ${run.design}: ${run.label}`, () => {
      assert.ok(fact, 'no expected outcome');
      const steps = run.steps.map((s) => `  [${s.index}] ${s.op}: ${s.got}${s.note ? ` (${s.note})` : ''}`).join('\n');
      assert.deepEqual(shape(run.outcome), fact.outcome, `source: ${fact.source}\nsteps:\n${steps}`);
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

// V7-DESIGN §1.5/§1.8 (Andy Lutomirski, David Hildenbrand): without an MMU notifier on the private
// mapping, a moved or swapped page leaves KVM mapping the old frame; the flags were v7's answer.
test('without MEMFILE_F_UNMOVABLE the migration hazard shows its damage: the guest keeps the freed frame', () => {
  const h = byName.get('migrate-private-page');
  assert.ok(h);
  const r = runHazard(h.hazard, 'v7', h.file, () => new InaccessibleOnlyKvm());
  assert.deepEqual(shape(r.outcome), { kind: 'damage', damages: ['private page moved under KVM'] });
});

test('without MEMFILE_F_UNRECLAIMABLE the reclaim hazard shows its damage: swapped out under KVM', () => {
  const h = byName.get('reclaim-private-page');
  assert.ok(h);
  const r = runHazard(h.hazard, 'v7', h.file, () => new InaccessibleOnlyKvm());
  assert.deepEqual(shape(r.outcome), { kind: 'damage', damages: ['private page swapped out under KVM'] });
});
