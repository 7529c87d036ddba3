/**
 * KERNEL-SPEC §2.B: file operations on a gmem fd (kvm_gmem_fops = {mmap, open, release, fallocate};
 * kvm_gmem_iops.setattr = -EINVAL). Everything else is answered by the VFS.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bindGmem, expectErrno, expectOk, GMEM_MMAP, gmemFile, KEEP, KEEP_PUNCH, PS, setup } from './helpers.js';

const T = 4n * PS;

test('B1: read/write give EINVAL, pread/pwrite give ESPIPE (GM-4)', () => {
  for (const kernel of ['6.8', '6.18']) {
    const { kvm, vm } = setup(kernel);
    const g = vm.createGuestMemfd({ size: T, flags: 0n });
    const f = kvm.files;
    expectErrno(() => f.read(g.fd, 64), 'EINVAL', kernel);
    expectErrno(() => f.write(g.fd, new Uint8Array(64)), 'EINVAL', kernel);
    expectErrno(() => f.pread(g.fd, 64, 0n), 'ESPIPE', kernel);
    expectErrno(() => f.pwrite(g.fd, new Uint8Array(64), 0n), 'ESPIPE', kernel);
  }
});

test('B1: read/write fail the same way on an allocated MMAP|INIT_SHARED guest_memfd that holds data', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: 3n });
  g.mmap(0n, T, 3).write(0n, new Uint8Array([1, 2, 3]));
  expectErrno(() => kvm.files.read(g.fd, 3), 'EINVAL');
  expectErrno(() => kvm.files.pread(g.fd, 3, PS), 'ESPIPE');
  expectErrno(() => kvm.files.pwrite(g.fd, new Uint8Array(1), PS), 'ESPIPE');
});

test('B2: lseek gives ESPIPE for every whence SEEK_SET..SEEK_HOLE and any offset', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  for (let whence = 0; whence <= 4; whence++) {
    for (const off of [0n, PS, -1n, T]) expectErrno(() => kvm.files.lseek(g.fd, off, whence), 'ESPIPE', `whence ${whence} off ${off}`);
  }
});

test('B3: ftruncate gives EINVAL for any size, the current size included: guest_memfd cannot be resized', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  for (const size of [0n, PS, T, 2n * T, 1n << 40n]) expectErrno(() => kvm.files.ftruncate(g.fd, size), 'EINVAL', `size ${size}`);
  assert.equal(g.size(), T);
  assert.equal(kvm.files.fstat(g.fd).size, T);
});

test('B3: guest_memfd cannot be resized in 6.8 either', () => {
  const { kvm, vm } = setup('6.8');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  expectErrno(() => kvm.files.ftruncate(g.fd, T), 'EINVAL');
  expectErrno(() => kvm.files.ftruncate(g.fd, 0n), 'EINVAL');
  assert.equal(g.size(), T);
});

test('B6: dup() gives a second fd to the same file: same inode, same bindings', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  const d = kvm.files.dup(g.fd);
  assert.notEqual(d, g.fd);
  assert.equal(kvm.files.fstat(d).ino, kvm.files.fstat(g.fd).ino);
  assert.equal(kvm.proc.fdt.lookup(d), gmemFile(g));
  // a binding made through one fd is the binding seen through the other (E7.5 through a dup'd fd)
  bindGmem(vm, 1, 0n, PS, g, 0n);
  expectErrno(
    () => vm.setUserMemoryRegion2({ slot: 2, flags: 4, guestPhysAddr: 16n * PS, memorySize: PS, userspaceAddr: 0n, guestMemfd: d, guestMemfdOffset: 0n }),
    'EINVAL',
  );
  expectOk(() =>
    vm.setUserMemoryRegion2({ slot: 2, flags: 4, guestPhysAddr: 16n * PS, memorySize: PS, userspaceAddr: 0n, guestMemfd: d, guestMemfdOffset: PS }),
  );
});

test('B6: fallocate through the dup and mmap through the original see the same page cache', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: GMEM_MMAP | 2n });
  const d = kvm.files.dup(g.fd);
  const m = g.mmap(0n, T, 3);
  m.write(PS, new Uint8Array([0xaa]));
  kvm.files.fallocate(d, KEEP_PUNCH, PS, PS);
  assert.equal(m.read(PS, 1)[0], 0);
  kvm.files.fallocate(d, KEEP, 0n, T);
});

test('B: syscalls on a closed guest_memfd fd give EBADF', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  const fd = g.fd;
  g.close();
  expectErrno(() => kvm.files.read(fd, 1), 'EBADF');
  expectErrno(() => kvm.files.fstat(fd), 'EBADF');
  expectErrno(() => kvm.files.fallocate(fd, KEEP, 0n, PS), 'EBADF');
  expectErrno(() => kvm.files.mmap(fd, 0n, PS, 3, 1), 'EBADF');
  expectErrno(() => kvm.files.close(fd), 'EBADF');
});

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
