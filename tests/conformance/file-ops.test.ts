/**
 * File syscalls on a guest_memfd and on other fds (KERNEL-SPEC §2.B, GM-4), once for every backend:
 * kvm_gmem_fops has only mmap, open, release and fallocate, and kvm_gmem_iops.setattr is -EINVAL,
 * so the VFS answers everything else.
 */
import assert from 'node:assert/strict';
import { SEEK_END, SEEK_SET } from '../../src/uapi/constants.js';
import { forEachBackend } from '../support/conformance.js';
import { gmemFile } from '../support/model.js';
import { expectErrno, expectOk, GMEM_SHARED, KEEP, KEEP_PUNCH, MAP_SHARED, MEM_GUEST_MEMFD, PS, RW } from '../support/uapi.js';

const T = 4n * PS;
const SHARED_GMEM = ['guest_memfd', 'guest_memfd_flags:mmap', 'guest_memfd_flags:init_shared'];

forEachBackend(
  'B1/GM-4: read/write are EINVAL, pread/pwrite are ESPIPE',
  ['guest_memfd'],
  (b) => {
    const g = b.kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    const f = b.kvm.files;
    expectErrno(() => f.read(g.fd, 64), 'EINVAL');
    expectErrno(() => f.write(g.fd, new Uint8Array(64)), 'EINVAL');
    expectErrno(() => f.pread(g.fd, 64, 0n), 'ESPIPE');
    expectErrno(() => f.pwrite(g.fd, new Uint8Array(64), 0n), 'ESPIPE');
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('B1: read/write fail the same way on an allocated MMAP|INIT_SHARED guest_memfd that holds data', SHARED_GMEM, (b) => {
  const g = b.kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
  g.mmap(0n, T, RW, MAP_SHARED).write(0n, new Uint8Array([1, 2, 3]));
  expectErrno(() => b.kvm.files.read(g.fd, 3), 'EINVAL');
  expectErrno(() => b.kvm.files.write(g.fd, new Uint8Array(64)), 'EINVAL');
  expectErrno(() => b.kvm.files.pread(g.fd, 3, PS), 'ESPIPE');
  expectErrno(() => b.kvm.files.pwrite(g.fd, new Uint8Array(1), PS), 'ESPIPE');
});

forEachBackend('B2: lseek is ESPIPE for every whence SEEK_SET..SEEK_HOLE and any offset', ['guest_memfd'], (b) => {
  const g = b.kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
  for (let whence = 0; whence <= 4; whence++) {
    for (const off of [0n, PS, -1n, T]) expectErrno(() => b.kvm.files.lseek(g.fd, off, whence), 'ESPIPE', `whence ${whence} off ${off}`);
  }
});

forEachBackend(
  'B3: ftruncate to any size, the current one included, is EINVAL: a guest_memfd cannot be resized',
  ['guest_memfd'],
  (b) => {
    const g = b.kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    for (const size of [0n, PS, T, 2n * T, 1n << 40n]) expectErrno(() => b.kvm.files.ftruncate(g.fd, size), 'EINVAL', `size ${size}`);
    assert.equal(g.size(), T);
    assert.equal(b.kvm.files.fstat(g.fd).size, T);
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('B6: dup gives a second fd on the same file: same inode, same bindings; closing it leaves the original', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  const d = b.kvm.files.dup(g.fd);
  assert.notEqual(d, g.fd);
  assert.equal(b.kvm.files.fstat(d).ino, b.kvm.files.fstat(g.fd).ino);
  if (b.model) assert.equal(b.model.proc.fdt.lookup(d), gmemFile(g));
  // a binding made through one fd is the binding seen through the other (E7.5 through a dup'd fd)
  const bind = (slot: number, gpa: bigint, fd: number, off: bigint) => () =>
    vm.setUserMemoryRegion2({ slot, flags: MEM_GUEST_MEMFD, guestPhysAddr: gpa, memorySize: PS, userspaceAddr: 0n, guestMemfd: fd, guestMemfdOffset: off });
  expectOk(bind(1, 0x100000n, g.fd, 0n));
  expectErrno(bind(2, 0x200000n, d, 0n), b.kernelIn('>=7.2 || >=6.12.118 <6.13') ? 'EEXIST' : 'EINVAL', 'the range is bound, seen through the dup');
  expectOk(bind(2, 0x200000n, d, PS), 'another range through the dup');
  b.kvm.files.close(d);
  expectErrno(() => b.kvm.files.fstat(d), 'EBADF');
  assert.equal(b.kvm.files.fstat(g.fd).size, T);
});

forEachBackend('B6: fallocate through a dup and mmap through the original see the same page cache', SHARED_GMEM, (b) => {
  const g = b.kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
  const d = b.kvm.files.dup(g.fd);
  const m = g.mmap(0n, T, RW, MAP_SHARED);
  m.write(PS, new Uint8Array([0xaa]));
  assert.equal(m.read(PS, 1)[0], 0xaa);
  b.kvm.files.fallocate(d, KEEP_PUNCH, PS, PS);
  assert.equal(m.read(PS, 1)[0], 0);
  expectOk(() => b.kvm.files.fallocate(d, KEEP, 0n, T));
});

forEachBackend('B: every syscall on a number that is not open, a closed guest_memfd among them, is EBADF', ['guest_memfd'], (b) => {
  const f = b.kvm.files;
  const g = b.kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
  const closed = g.fd;
  g.close();
  for (const fd of [9999, closed]) {
    expectErrno(() => f.read(fd, 1), 'EBADF', `${fd}`);
    expectErrno(() => f.write(fd, new Uint8Array(1)), 'EBADF');
    expectErrno(() => f.pread(fd, 1, 0n), 'EBADF');
    expectErrno(() => f.pwrite(fd, new Uint8Array(1), 0n), 'EBADF');
    expectErrno(() => f.lseek(fd, 0n, SEEK_SET), 'EBADF');
    expectErrno(() => f.ftruncate(fd, 0n), 'EBADF');
    expectErrno(() => f.fstat(fd), 'EBADF');
    expectErrno(() => f.dup(fd), 'EBADF');
    expectErrno(() => f.close(fd), 'EBADF');
    expectErrno(() => f.fallocate(fd, KEEP, 0n, PS), 'EBADF');
    expectErrno(() => f.mmap(fd, 0n, PS, RW, MAP_SHARED), 'EBADF');
  }
});

forEachBackend('FileOps on a memfd behave like an ordinary file (read, write, seek, truncate)', [], (b) => {
  const f = b.kvm.files;
  const fd = f.memfdCreate('guestmem-test');
  assert.equal(f.write(fd, Uint8Array.of(1, 2, 3, 4)), 4);
  assert.equal(f.lseek(fd, 1n, SEEK_SET), 1n);
  assert.deepEqual([...f.read(fd, 8)], [2, 3, 4]);
  assert.equal(f.pwrite(fd, Uint8Array.of(9), 0n), 1);
  assert.deepEqual([...f.pread(fd, 2, 0n)], [9, 2]);
  f.ftruncate(fd, 2n * PS);
  assert.equal(f.fstat(fd).size, 2n * PS);
  assert.equal(f.lseek(fd, 0n, SEEK_END), 2n * PS);
  f.close(fd);
  expectErrno(() => f.fstat(fd), 'EBADF');
});
