/**
 * KERNEL-SPEC §2.C: fallocate on a guest_memfd: vfs_fallocate (C0), then kvm_gmem_fallocate
 * (C1 KEEP_SIZE required, C2 only PUNCH_HOLE may join it, C3 alignment, C4 allocate within i_size,
 * C5 punch without a size check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getProfile } from '../../src/model/index.js';
import { bindGmem, expectErrno, hlt, inodeOf, KEEP, KEEP_PUNCH, PS, read, runProgram, setup, TiB, write } from './helpers.js';

const T = 4n * PS;

function fresh(kernel = '6.18', flags = 0n, size = T) {
  const s = setup(kernel);
  return { ...s, g: s.vm.createGuestMemfd({ size, flags }) };
}

test('C4: a failed allocate allocates nothing; allocate marks folios present, again is a no-op', () => {
  const { g } = fresh();
  const inode = inodeOf(g);
  expectErrno(() => g.fallocate(KEEP, T - PS, 2n * PS), 'EINVAL');
  assert.equal(inode.isPresent(3), false);
  g.fallocate(KEEP, PS, 2n * PS);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => inode.isPresent(i)),
    [false, true, true, false],
  );
  g.fallocate(KEEP, PS, 2n * PS);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => inode.isPresent(i)),
    [false, true, true, false],
  );
});

test('C5: punch frees allocated-but-untouched folios too', () => {
  const { g } = fresh();
  g.fallocate(KEEP, 0n, T);
  g.fallocate(KEEP_PUNCH, 0n, 2n * PS);
  const inode = inodeOf(g);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => inode.isPresent(i)),
    [false, false, true, true],
  );
});

test('C5: after a punch the guest reads zero from the re-allocated private page', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  bindGmem(vm, 10, 0x10000000n, T, g);
  vm.setMemoryAttributes({ address: 0x10000000n, size: T, attributes: 8n, flags: 0n });
  const vcpu = vm.createVcpu(0);
  assert.equal(runProgram(vcpu, [write(0x10001000n, 0xdeadbeefn), read(0x10001000n), hlt]).reads[0], 0xdeadbeefn);
  g.fallocate(KEEP_PUNCH, PS, PS);
  assert.deepEqual(runProgram(vcpu, [read(0x10001000n), hlt]).reads, [0n]);
});

test('C costs: allocating and punching all of a 1 TiB guest_memfd materialises no pages', () => {
  const { g } = fresh('6.18', 0n, TiB);
  const inode = inodeOf(g);
  g.fallocate(KEEP, 0n, TiB);
  assert.equal(inode.pages.size, 0);
  assert.ok(inode.allocated.size <= 2, `allocated runs ${inode.allocated.size}`);
  assert.equal(inode.isPresent(Number(TiB / PS) - 1), true);
  g.fallocate(KEEP_PUNCH, 0n, TiB);
  assert.equal(inode.pages.size, 0);
  assert.equal(inode.allocated.size, 1);
  assert.equal(inode.isPresent(0), false);
});

test('C costs: punching 1 TiB of a 1 TiB guest_memfd bound to a 1 TiB memslot materialises nothing', () => {
  // a host with 46-bit MAXPHYADDR: a slot up to 2 TiB is below kvm_mmu_max_gfn()
  const { vm, k } = setup({ ...getProfile('6.18'), physAddrBits: 46 }, 'sw_protected');
  const g = vm.createGuestMemfd({ size: TiB, flags: 0n });
  // at GPA 1 TiB: clear of the reserved code slot at 0xffe00000
  bindGmem(vm, 1, TiB, TiB, g);
  vm.setMemoryAttributes({ address: TiB, size: TiB, attributes: 8n, flags: 0n });
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [write(2n * TiB - PS, 7n), hlt]);
  assert.equal(inodeOf(g).pages.size, 1);
  const seq = k.mmu.seq;
  g.fallocate(KEEP, 0n, TiB);
  g.fallocate(KEEP_PUNCH, 0n, TiB);
  assert.equal(inodeOf(g).pages.size, 0);
  assert.equal(k.mmu.sptes.has(Number((2n * TiB) / PS) - 1), false);
  assert.equal(k.mmu.seq, seq + 1);
});
