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
  GMEM_INIT_SHARED,
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

function set1(vm: Vm, slot: number, flags: number, guestPhysAddr: bigint, memorySize: bigint, userspaceAddr = 0n): string {
  try {
    vm.setUserMemoryRegion({ slot, flags, guestPhysAddr, memorySize, userspaceAddr });
    return 'ok';
  } catch (e) {
    return (e as { errno: string }).errno;
  }
}

test('E1: v1 with any flag outside LOG_DIRTY_PAGES|READONLY gives EINVAL, GUEST_MEMFD included (SMR-1)', () => {
  for (const type of ['default', 'sw_protected'] as const) {
    const { vm } = setup('6.18', type);
    for (let i = 2; i < 32; i++) assert.equal(set1(vm, 0, (1 << i) >>> 0, 0n, 2n * MiB), 'EINVAL', `${type} bit ${i}`);
    assert.equal(set1(vm, 0, MEM_LOG_DIRTY, 0n, 2n * MiB), 'ok');
    assert.equal(set1(vm, 1, MEM_READONLY, 4n * MiB, 2n * MiB), 'ok');
  }
});

test('E1: v1 rejects GUEST_MEMFD even for a delete of an existing gmem slot', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 1, 0n, PS, g);
  assert.equal(set1(vm, 1, MEM_GUEST_MEMFD, 0n, 0n), 'EINVAL');
  assert.equal(set2(vm, { slot: 1, flags: MEM_GUEST_MEMFD }), 'ok');
});

test('E2: 6.18: KVM_MEM_GUEST_MEMFD is valid on every VM type; 6.8: only on VMs with private memory', () => {
  for (const [kernel, type, want] of [
    ['6.18', 'default', 'ok'],
    ['6.18', 'sw_protected', 'ok'],
    ['6.8', 'default', 'EINVAL'],
    ['6.8', 'sw_protected', 'ok'],
    ['next', 'default', 'ok'],
  ] as const) {
    const { vm } = setup(kernel, type);
    const g = vm.createGuestMemfd({ size: MR_SIZE, flags: 0n });
    assert.equal(set2(vm, { slot: MR_SLOT, flags: MEM_GUEST_MEMFD, guestPhysAddr: MR_GPA, memorySize: MR_SIZE, guestMemfd: g.fd }), want, `${kernel} ${type}`);
  }
});

test('E2 before E7: on 6.8 default VMs the flag check fires before the fd is looked up (EINVAL, not EBADF)', () => {
  const { vm } = setup('6.8');
  assert.equal(set2(vm, { slot: 0, flags: MEM_GUEST_MEMFD, memorySize: PS, guestMemfd: 9999 }), 'EINVAL');
});

test('E2: LOG_DIRTY_PAGES|GUEST_MEMFD and READONLY|GUEST_MEMFD give EINVAL (SMR-3, SMR-4), before the bind (bad fd)', () => {
  for (const type of ['default', 'sw_protected'] as const) {
    const { vm } = setup('6.18', type);
    const g = vm.createGuestMemfd({ size: 2n * MiB, flags: 0n });
    for (const extra of [MEM_LOG_DIRTY, MEM_READONLY]) {
      assert.equal(set2(vm, { slot: 0, flags: MEM_GUEST_MEMFD | extra, memorySize: 2n * MiB, guestMemfd: g.fd }), 'EINVAL', `${type} ${extra}`);
      assert.equal(set2(vm, { slot: 0, flags: MEM_GUEST_MEMFD | extra, memorySize: 2n * MiB, guestMemfd: 9999 }), 'EINVAL', `${type} ${extra} bad fd`);
    }
    assert.equal(gmemFile(g).bindingCount, 0);
  }
});

test('E2: v2 flag bits 3..31 give EINVAL; bit 2 with guest_memfd = 0 (not a gmem) gives EINVAL (SMR-2)', () => {
  for (const kernel of ['6.8', '6.18']) {
    const { vm } = setup(kernel);
    for (let i = 2; i < 32; i++) {
      assert.equal(set2(vm, { slot: 0, flags: (1 << i) >>> 0, memorySize: 2n * MiB, guestMemfd: 0 }), 'EINVAL', `${kernel} bit ${i}`);
    }
    assert.equal(vm.checkExtension(231), 1);
  }
});

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

test('E3.3: userspace_addr = 0 is allowed for a gmem slot, MMAP or not (and E10: the slot keeps it)', () => {
  const { vm, k } = setup('6.18');
  const a = vm.createGuestMemfd({ size: PS, flags: 0n });
  const b = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  expectOk(() => bindGmem(vm, 1, 0n, PS, a, 0n, 0n));
  expectOk(() => bindGmem(vm, 2, PS, PS, b, 0n, 0n));
  const host = vm.mmapAnonymous(PS);
  const c = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 3, 2n * PS, PS, c, 0n, host.addr);
  assert.equal(k.memslots.all().find((s) => s.id === 3)?.userspaceAddr, host.addr);
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

test('E4: deleting a slot that does not exist gives EINVAL', () => {
  const { vm } = setup('6.18');
  assert.equal(set2(vm, { slot: 7 }), 'EINVAL');
  assert.equal(set2(vm, { slot: 7, flags: MEM_GUEST_MEMFD, guestMemfd: 9999 }), 'EINVAL');
});

test('E4: delete ignores gpa, userspace_addr and guest_memfd (a garbage fd), and frees the gmem range', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g);
  assert.equal(set2(vm, { slot: 1, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x5000000n, userspaceAddr: 0x7f0000000000n, guestMemfd: 9999 }), 'ok');
  assert.equal(k.memslots.all().length, 0);
  assert.equal(gmemFile(g).bindingCount, 0);
  // E8: the range and the GPA can be reused at once
  expectOk(() => bindGmem(vm, 2, 0x100000n, 4n * PS, g));
});

test('E4: delete still checks alignment of gpa (the general checks come first)', () => {
  const { vm, k } = setup('6.18');
  assert.equal(set2(vm, { slot: 1, memorySize: PS }), 'ok');
  assert.equal(set2(vm, { slot: 1, guestPhysAddr: 1n }), 'EINVAL');
  assert.equal(k.memslots.all().length, 1);
});

test('E5: a gmem memslot is immutable: re-issuing identical parameters or moving it gives EINVAL', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const r = { slot: 1, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x100000n, memorySize: 4n * PS, guestMemfd: g.fd };
  assert.equal(set2(vm, r), 'ok');
  assert.equal(set2(vm, r), 'EINVAL');
  assert.equal(set2(vm, { ...r, guestPhysAddr: 0x200000n }), 'EINVAL');
  // immutability is checked before the bind: a bad fd does not change the answer
  assert.equal(set2(vm, { ...r, guestMemfd: 9999 }), 'EINVAL');
  assert.equal(k.memslots.all()[0]?.baseGfn, 0x100);
});

test('E5 before E6: moving a gmem slot onto another slot is EINVAL (immutable), not EEXIST', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  assert.equal(set2(vm, { slot: 0, memorySize: PS, guestPhysAddr: 0x200000n }), 'ok');
  bindGmem(vm, 1, 0x100000n, PS, g);
  assert.equal(set2(vm, { slot: 1, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x200000n, memorySize: PS, guestMemfd: g.fd }), 'EINVAL');
});

test('E5: 6.18 (with the Dec-2025 fix): clearing GUEST_MEMFD on a gmem slot gives EINVAL, through v1 or v2', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, PS, g);
  assert.equal(set2(vm, { slot: 1, flags: 0, guestPhysAddr: 0x100000n, memorySize: PS }), 'EINVAL');
  assert.equal(set1(vm, 1, 0, 0x100000n, PS), 'EINVAL');
  assert.equal((k.memslots.all()[0]?.flags ?? 0) & MEM_GUEST_MEMFD, MEM_GUEST_MEMFD);
});

test('E5: 6.8 accepted clearing GUEST_MEMFD on an existing gmem slot (KVM_MR_FLAGS_ONLY; the bug the fix closed)', () => {
  const { vm, k } = setup('6.8', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, PS, g);
  assert.equal(set2(vm, { slot: 1, flags: 0, guestPhysAddr: 0x100000n, memorySize: PS }), 'ok');
  assert.equal(k.memslots.all()[0]?.flags, 0);
});

test('E5: adding GUEST_MEMFD to an existing non-gmem slot gives EINVAL', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  assert.equal(set2(vm, { slot: 1, guestPhysAddr: 0x100000n, memorySize: PS }), 'ok');
  assert.equal(set2(vm, { slot: 1, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x100000n, memorySize: PS, guestMemfd: g.fd }), 'EINVAL');
  assert.equal(gmemFile(g).bindingCount, 0);
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

test('E6: a GPA overlap gives EEXIST, checked before kvm_gmem_bind (bad fd, foreign gmem, bound range)', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 8n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n);
  const other = kvm.createVm('default').createGuestMemfd({ size: 8n * PS, flags: 0n });
  const over = { flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x102000n, memorySize: 4n * PS };
  assert.equal(set2(vm, { slot: 2, ...over, guestMemfd: 9999 }), 'EEXIST');
  assert.equal(set2(vm, { slot: 2, ...over, guestMemfd: other.fd }), 'EEXIST');
  assert.equal(set2(vm, { slot: 2, ...over, guestMemfd: g.fd, guestMemfdOffset: 0n }), 'EEXIST');
  assert.equal(set2(vm, { slot: 2, ...over, guestMemfd: g.fd, guestMemfdOffset: 64n * PS }), 'EEXIST');
  // adjacent is fine
  assert.equal(set2(vm, { slot: 2, ...over, guestPhysAddr: 0x104000n, guestMemfd: g.fd, guestMemfdOffset: 4n * PS }), 'ok');
});

test('E6: moving an ordinary slot onto another gives EEXIST', () => {
  const { vm } = setup('6.18');
  assert.equal(set2(vm, { slot: 1, guestPhysAddr: 0x100000n, memorySize: 2n * PS }), 'ok');
  assert.equal(set2(vm, { slot: 2, guestPhysAddr: 0x200000n, memorySize: 2n * PS }), 'ok');
  assert.equal(set2(vm, { slot: 2, guestPhysAddr: 0x101000n, memorySize: 2n * PS }), 'EEXIST');
});

test('E7.1: an fd that is not open (9999, -1 as u32, a closed gmem fd) gives EBADF', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  const closed = g.fd;
  g.close();
  for (const fd of [9999, -1, 0xffffffff, closed]) {
    assert.equal(set2(vm, { slot: 0, flags: MEM_GUEST_MEMFD, memorySize: PS, guestMemfd: fd }), 'EBADF', `fd ${fd}`);
  }
});

test('E7.2: a file that is not a guest_memfd (stdin, /dev/kvm, the VM fd, a memfd, a vCPU) gives EINVAL (SMR-5)', () => {
  const { kvm, vm } = setup('6.18', 'sw_protected');
  const memfd = kvm.files.memfdCreate('not-gmem');
  const vcpu = vm.createVcpu(0);
  for (const fd of [0, kvm.fd, vm.fd, memfd, vcpu.fd]) {
    assert.equal(set2(vm, { slot: MR_SLOT, flags: MEM_GUEST_MEMFD, guestPhysAddr: MR_GPA, memorySize: MR_SIZE, guestMemfd: fd }), 'EINVAL', `fd ${fd}`);
  }
});

test('E7.3: a guest_memfd of another VM gives EINVAL, even after that VM fd is closed (SMR-5); its own VM may bind it (SMR-6)', () => {
  const { kvm, vm } = setup('6.18', 'sw_protected');
  const vm2 = kvm.createVm('sw_protected');
  const g2 = vm2.createGuestMemfd({ size: MR_SIZE, flags: 0n });
  const r = { slot: MR_SLOT, flags: MEM_GUEST_MEMFD, guestPhysAddr: MR_GPA, memorySize: MR_SIZE, guestMemfd: g2.fd };
  assert.equal(set2(vm, r), 'EINVAL');
  assert.equal(set2(vm2, r), 'ok');
  vm2.close();
  assert.equal(set2(vm, r), 'EINVAL');
});

test('E7.4: offset >= 2^63, offset == i_size, or offset+size > i_size give EINVAL', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const base = { slot: 0, flags: MEM_GUEST_MEMFD, memorySize: PS, guestMemfd: g.fd };
  assert.equal(set2(vm, { ...base, guestMemfdOffset: 1n << 63n }), 'EINVAL');
  assert.equal(set2(vm, { ...base, guestMemfdOffset: 4n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...base, guestMemfdOffset: 3n * PS, memorySize: 2n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...base, guestMemfdOffset: 0n, memorySize: 5n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...base, guestMemfdOffset: 3n * PS }), 'ok');
});

test('E7.4: every unaligned offset 1..PS-1 gives EINVAL, then offset 0 succeeds (SMR-7)', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: MR_SIZE, flags: 0n });
  const r = { slot: MR_SLOT, flags: MEM_GUEST_MEMFD, guestPhysAddr: MR_GPA, memorySize: MR_SIZE, guestMemfd: g.fd };
  for (let off = 1n; off < PS; off++) assert.equal(set2(vm, { ...r, guestMemfdOffset: off }), 'EINVAL', `offset ${off}`);
  assert.equal(set2(vm, { ...r, guestMemfdOffset: 0n }), 'ok');
});

test('E7.5: 6.18: a file range overlapping an existing binding of the same file gives EINVAL (front, back, exact)', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 4n * PS);
  const r = { slot: 2, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x200000n, memorySize: 4n * PS, guestMemfd: g.fd };
  assert.equal(set2(vm, { ...r, guestMemfdOffset: 2n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...r, guestMemfdOffset: 6n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...r, guestMemfdOffset: 4n * PS }), 'EINVAL');
  assert.equal(set2(vm, { ...r, guestMemfdOffset: 5n * PS, memorySize: PS }), 'EINVAL');
  assert.equal(set2(vm, { ...r, guestMemfdOffset: 0n }), 'ok', 'adjacent below');
  assert.equal(set2(vm, { ...r, slot: 3, guestPhysAddr: 0x300000n, guestMemfdOffset: 8n * PS }), 'ok', 'adjacent above');
});

test('E7.5: next: the same overlap gives EEXIST', () => {
  const { vm } = setup('next');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 4n * PS);
  const r = { slot: 2, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x200000n, memorySize: 4n * PS, guestMemfd: g.fd };
  for (const off of [2n, 4n, 6n]) assert.equal(set2(vm, { ...r, guestMemfdOffset: off * PS }), 'EEXIST', `offset ${off} pages`);
});

test('E7 order (next): the other-VM and size checks come before the overlap check (EINVAL, not EEXIST)', () => {
  const { kvm, vm } = setup('next');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n);
  // offset + size > i_size and overlapping the existing binding
  assert.equal(
    set2(vm, { slot: 2, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x200000n, memorySize: 4n * PS, guestMemfd: g.fd, guestMemfdOffset: 2n * PS }),
    'EINVAL',
  );
  // another VM binding the same (already bound) file range
  const vm2 = kvm.createVm('default');
  assert.equal(set2(vm2, { slot: 1, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x100000n, memorySize: 4n * PS, guestMemfd: g.fd }), 'EINVAL');
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
