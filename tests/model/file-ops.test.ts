/**
 * KERNEL-SPEC §2.B: file operations on a gmem fd (kvm_gmem_fops = {mmap, open, release, fallocate};
 * kvm_gmem_iops.setattr = -EINVAL). Everything else is answered by the VFS.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectErrno, PS, setup } from './helpers.js';

const T = 4n * PS;

test('B5: an ioctl on a gmem fd gives ENOTTY (kvm_gmem_fops has no unlocked_ioctl)', () => {
  const { kvm, vm } = setup('6.18');
  const vm2 = kvm.createVm('default');
  const vmFd = vm.fd;
  vm.close();
  // vm's old fd number now names a guest_memfd: VM ioctls issued on it reach the gmem file
  const g = vm2.createGuestMemfd({ size: T, flags: 0n });
  assert.equal(g.fd, vmFd);
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 0n }), 'ENOTTY');
  expectErrno(
    () => vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: PS, userspaceAddr: 0n, guestMemfd: 0, guestMemfdOffset: 0n }),
    'ENOTTY',
  );
  expectErrno(() => vm.checkExtension(234), 'ENOTTY');
});
