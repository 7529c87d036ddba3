/**
 * KERNEL-SPEC §2.E: KVM_SET_USER_MEMORY_REGION{,2} with KVM_MEM_GUEST_MEMFD (kvm_vm_ioctl,
 * __kvm_set_memory_region, check_memory_region_flags, kvm_check_memslot_overlap, kvm_gmem_bind),
 * and the set_memory_region_test checks SMR-1..SMR-12.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UserspaceMemoryRegion2, Vm } from '../../src/api.js';
import {
  bindGmem,
  deleteSlot,
  expectErrno,
  expectOk,
  GMEM_MMAP,
  gmemFile,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY,
  MEM_READONLY,
  MiB,
  PS,
  region,
  setup,
  TiB,
  U64_MAX,
} from './helpers.js';

const MR_SIZE = 0x200000n;
const MR_GPA = 0xc0000000n;
const MR_SLOT = 10;

function set2(vm: Vm, r: Partial<UserspaceMemoryRegion2> & { slot: number }): string {
  try {
    vm.setUserMemoryRegion2(region(r));
    return 'ok';
  } catch (e) {
    return (e as { errno: string }).errno;
  }
}

function _set1(vm: Vm, slot: number, flags: number, guestPhysAddr: bigint, memorySize: bigint, userspaceAddr = 0n): string {
  try {
    vm.setUserMemoryRegion({ slot, flags, guestPhysAddr, memorySize, userspaceAddr });
    return 'ok';
  } catch (e) {
    return (e as { errno: string }).errno;
  }
}

test('E2: the flag check runs even for deletes (delete with GUEST_MEMFD|LOG_DIRTY gives EINVAL, the slot stays)', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 3, 0n, PS, g);
  assert.equal(set2(vm, { slot: 3, flags: MEM_GUEST_MEMFD | MEM_LOG_DIRTY }), 'EINVAL');
  assert.equal(set2(vm, { slot: 3, flags: 1 << 5 }), 'EINVAL');
  assert.equal(k.memslots.all().length, 1);
  assert.equal(set2(vm, { slot: 3, flags: MEM_GUEST_MEMFD }), 'ok');
  assert.equal(k.memslots.all().length, 0);
});

test('E3.1-3: unaligned memory_size, guest_phys_addr or userspace_addr give EINVAL', () => {
  const { vm } = setup('6.18');
  assert.equal(set2(vm, { slot: 0, memorySize: PS + 1n }), 'EINVAL');
  assert.equal(set2(vm, { slot: 0, memorySize: PS, guestPhysAddr: 0x800n }), 'EINVAL');
  assert.equal(set2(vm, { slot: 0, memorySize: PS, userspaceAddr: 0x7f0000000001n }), 'EINVAL');
  assert.equal(set2(vm, { slot: 0, memorySize: PS }), 'ok');
});

test('E3.4: gmem offset unaligned or offset+size wrapping gives EINVAL, before the fd is looked up', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 2n * MiB, flags: 0n });
  const base = { slot: 0, flags: MEM_GUEST_MEMFD, memorySize: PS, guestMemfd: g.fd };
  assert.equal(set2(vm, { ...base, guestMemfdOffset: 1n }), 'EINVAL');
  assert.equal(set2(vm, { ...base, guestMemfdOffset: U64_MAX - PS + 1n, memorySize: 2n * PS }), 'EINVAL');
  // with a closed fd the bind would be EBADF: the offset check comes first
  assert.equal(set2(vm, { ...base, guestMemfd: 9999, guestMemfdOffset: 1n }), 'EINVAL');
  assert.equal(set2(vm, { ...base, guestMemfd: 9999, guestMemfdOffset: 0n }), 'EBADF');
});

test('E3.4: the gmem offset check also runs for deletes with the flag set; without the flag the offset is ignored', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 1, 0n, PS, g);
  assert.equal(set2(vm, { slot: 1, flags: MEM_GUEST_MEMFD, guestMemfdOffset: 1n }), 'EINVAL');
  assert.equal(k.memslots.all().length, 1);
  assert.equal(set2(vm, { slot: 1, flags: 0, guestMemfdOffset: 1n }), 'ok');
  assert.equal(k.memslots.all().length, 0);
});

test('E3.5: slot ids >= 32764 and address-space ids >= 2 give EINVAL; 32763 is the last user slot', () => {
  const { vm } = setup('6.18');
  for (const id of [32764, 32765, 32766, 32767, 0xffff]) assert.equal(set2(vm, { slot: id, memorySize: PS }), 'EINVAL', `slot ${id}`);
  assert.equal(set2(vm, { slot: (2 << 16) | 0, memorySize: PS }), 'EINVAL');
  assert.equal(set2(vm, { slot: 32763, memorySize: PS }), 'ok');
  assert.equal(set2(vm, { slot: (1 << 16) | 5, memorySize: PS }), 'ok');
});

test('E3.6-7: guest_phys_addr+memory_size wrapping, or more than KVM_MEM_MAX_NR_PAGES pages, give EINVAL', () => {
  const { vm } = setup('6.18');
  assert.equal(set2(vm, { slot: 0, guestPhysAddr: U64_MAX - PS + 1n, memorySize: 2n * PS }), 'EINVAL');
  assert.equal(set2(vm, { slot: 0, guestPhysAddr: 0n, memorySize: (1n << 31n) * PS }), 'EINVAL');
  assert.equal(set2(vm, { slot: 0, guestPhysAddr: 0n, memorySize: TiB }), 'ok');
});

test('E3 before E6: an invalid request overlapping another slot is EINVAL, not EEXIST', () => {
  const { vm } = setup('6.18');
  assert.equal(set2(vm, { slot: 0, memorySize: 4n * PS }), 'ok');
  assert.equal(set2(vm, { slot: 1, memorySize: PS + 1n }), 'EINVAL');
  assert.equal(set2(vm, { slot: 1, memorySize: PS, userspaceAddr: 1n }), 'EINVAL');
  assert.equal(set2(vm, { slot: 1, memorySize: PS }), 'EEXIST');
});

test('E4: delete still checks alignment of gpa (the general checks come first)', () => {
  const { vm, k } = setup('6.18');
  assert.equal(set2(vm, { slot: 1, memorySize: PS }), 'ok');
  assert.equal(set2(vm, { slot: 1, guestPhysAddr: 1n }), 'EINVAL');
  assert.equal(k.memslots.all().length, 1);
});

test('E5: 6.8 accepted clearing GUEST_MEMFD on an existing gmem slot (KVM_MR_FLAGS_ONLY; the bug the fix closed)', () => {
  const { vm, k } = setup('6.8', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, PS, g);
  assert.equal(set2(vm, { slot: 1, flags: 0, guestPhysAddr: 0x100000n, memorySize: PS }), 'ok');
  assert.equal(k.memslots.all()[0]?.flags, 0);
});

test('E5: an ordinary slot: changing userspace_addr or size, or toggling READONLY, gives EINVAL; identical is 0; move and LOG_DIRTY work', () => {
  const { vm, k } = setup('6.18');
  const host = vm.mmapAnonymous(4n * PS);
  const r = { slot: 1, guestPhysAddr: 0x100000n, memorySize: 2n * PS, userspaceAddr: host.addr };
  assert.equal(set2(vm, r), 'ok');
  assert.equal(set2(vm, { ...r, userspaceAddr: host.addr + PS }), 'EINVAL');
  assert.equal(set2(vm, { ...r, memorySize: 4n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...r, flags: MEM_READONLY }), 'EINVAL');
  assert.equal(set2(vm, r), 'ok');
  assert.equal(set2(vm, { ...r, flags: MEM_LOG_DIRTY }), 'ok');
  assert.equal(set2(vm, { ...r, flags: MEM_LOG_DIRTY, guestPhysAddr: 0x300000n }), 'ok');
  assert.equal(k.memslots.all()[0]?.baseGfn, 0x300);
});

test('E6: moving an ordinary slot onto another gives EEXIST', () => {
  const { vm } = setup('6.18');
  assert.equal(set2(vm, { slot: 1, guestPhysAddr: 0x100000n, memorySize: 2n * PS }), 'ok');
  assert.equal(set2(vm, { slot: 2, guestPhysAddr: 0x200000n, memorySize: 2n * PS }), 'ok');
  assert.equal(set2(vm, { slot: 2, guestPhysAddr: 0x101000n, memorySize: 2n * PS }), 'EEXIST');
});

test('E7.6: 6.18: a slot bound to an MMAP guest_memfd is GMEM_ONLY; others are not', () => {
  const { vm, k } = setup('6.18');
  const a = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP });
  const b = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 1, 0n, PS, a);
  bindGmem(vm, 2, PS, PS, b);
  const byId = (id: number) => k.memslots.all().find((s) => s.id === id);
  assert.equal(byId(1)?.gmemOnly, true);
  assert.equal(byId(2)?.gmemOnly, false);
  assert.equal(byId(1)?.gmem?.file, gmemFile(a));
  assert.equal(byId(2)?.gmem?.pgoff, 0);
});

test('E7.7: binding takes no reference on the gmem file', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const f = gmemFile(g);
  const refs = f.refCount;
  bindGmem(vm, 1, 0n, 2n * PS, g);
  bindGmem(vm, 2, 2n * PS, 2n * PS, g, 2n * PS);
  assert.equal(f.refCount, refs);
  g.close();
  assert.equal(f.isReleased, true);
});

test('E7.8: a failed bind leaves no slot and no binding', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  assert.equal(set2(vm, { slot: 1, flags: MEM_GUEST_MEMFD, memorySize: 8n * PS, guestMemfd: g.fd }), 'EINVAL');
  assert.equal(k.memslots.all().length, 0);
  assert.equal(gmemFile(g).bindingCount, 0);
  // and the GPA range is free
  assert.equal(set2(vm, { slot: 2, memorySize: PS }), 'ok');
});

test('E8: unbind on delete; after the file was closed, delete still works and does nothing to the file', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 1, 0n, 4n * PS, g);
  deleteSlot(vm, 1);
  assert.equal(gmemFile(g).bindingCount, 0);
  bindGmem(vm, 1, 0n, 4n * PS, g);
  const f = gmemFile(g);
  g.close();
  assert.equal(k.memslots.all()[0]?.gmem?.file, null);
  deleteSlot(vm, 1);
  assert.equal(k.memslots.all().length, 0);
  assert.equal(f.bindingCount, 0);
});

test('E9: several slots may bind disjoint ranges of one file; a slot larger than the rest of the file gives EINVAL', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 8n * PS, flags: 0n });
  expectOk(() => bindGmem(vm, 1, 0x100000n, 2n * PS, g, 0n));
  expectOk(() => bindGmem(vm, 2, 0x200000n, 2n * PS, g, 4n * PS));
  expectOk(() => bindGmem(vm, 3, 0x300000n, 2n * PS, g, 2n * PS));
  assert.equal(gmemFile(g).bindingCount, 3);
  expectErrno(() => bindGmem(vm, 4, 0x400000n, 3n * PS, g, 6n * PS), 'EINVAL');
  expectOk(() => bindGmem(vm, 4, 0x400000n, 2n * PS, g, 6n * PS));
});

for (const [kernel, fileOverlap] of [
  ['6.18', 'EINVAL'],
  ['next', 'EEXIST'],
] as const) {
  test(`E6/E7.5: test_add_overlapping_private_memory_regions on ${kernel} (SMR-8..SMR-12)`, () => {
    const { vm } = setup(kernel, 'sw_protected');
    const g = vm.createGuestMemfd({ size: 5n * MR_SIZE, flags: 0n });
    const r = (slot: number, gpa: bigint, off: bigint) =>
      set2(vm, { slot, flags: MEM_GUEST_MEMFD, guestPhysAddr: gpa, memorySize: 2n * MR_SIZE, guestMemfd: g.fd, guestMemfdOffset: off });
    assert.equal(r(MR_SLOT, MR_GPA, 0n), 'ok', 'SMR-8 slot 10');
    assert.equal(r(MR_SLOT + 1, 2n * MR_GPA, 2n * MR_SIZE), 'ok', 'SMR-8 slot 11');
    assert.equal(set2(vm, { slot: MR_SLOT, guestMemfd: -1 }), 'ok', 'SMR-8 delete');
    assert.equal(r(MR_SLOT, MR_GPA, MR_SIZE), fileOverlap, 'SMR-9 front half of slot 11');
    assert.equal(r(MR_SLOT, MR_GPA, 3n * MR_SIZE), fileOverlap, 'SMR-10 back half');
    assert.equal(r(MR_SLOT, 2n * MR_GPA - MR_SIZE, 0n), 'EEXIST', 'SMR-11 GPA front');
    assert.equal(r(MR_SLOT, 2n * MR_GPA + MR_SIZE, 0n), 'EEXIST', 'SMR-12 GPA back');
  });
}

test('kvm_arch_nr_memslot_as_ids (lab): a VM with private memory has one address space; KVM_CAP_MULTI_ADDRESS_SPACE on its fd says 1', () => {
  const MULTI_ADDRESS_SPACE = 118;
  for (const [type, n] of [
    ['default', 2],
    ['sw_protected', 1],
  ] as const) {
    const { vm, kvm } = setup('7.3', type);
    assert.equal(kvm.checkExtension(MULTI_ADDRESS_SPACE), 2, '/dev/kvm answers KVM_MAX_NR_ADDRESS_SPACES');
    assert.equal(vm.checkExtension(MULTI_ADDRESS_SPACE), n, type);
    const host = vm.mmapAnonymous(PS);
    const r = region({ slot: 0x10000, guestPhysAddr: 0n, memorySize: PS, userspaceAddr: host.addr });
    if (n === 1) expectErrno(() => vm.setUserMemoryRegion2(r), 'EINVAL', type);
    else expectOk(() => vm.setUserMemoryRegion2(r), type);
  }
});
