/**
 * File syscalls on a guest_memfd and on other fds through FileOps (KERNEL-SPEC §2 B, GM-4): the
 * gmem file has no read/write/llseek and cannot be resized; errnos are the kernel's.
 */
import assert from 'node:assert/strict';
import { SEEK_CUR, SEEK_END, SEEK_SET } from '../../src/uapi/constants.js';
import { kvmTest, kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import { expectErrno, GMEM_SHARED, PS, withKvm } from './helpers.js';

kvmTestIf('B1/GM-4: read/write are EINVAL, pread/pwrite are ESPIPE', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: 4n * PS, flags: GMEM_SHARED });
    const f = kvm.files;
    expectErrno(() => f.read(g.fd, 64), 'EINVAL');
    expectErrno(() => f.write(g.fd, new Uint8Array(64)), 'EINVAL');
    expectErrno(() => f.pread(g.fd, 64, 0n), 'ESPIPE');
    expectErrno(() => f.pwrite(g.fd, new Uint8Array(64), 0n), 'ESPIPE');
  }),
);

kvmTestIf('B2: lseek with any whence is ESPIPE', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: PS, flags: 0n });
    for (const whence of [SEEK_SET, SEEK_CUR, SEEK_END]) expectErrno(() => kvm.files.lseek(g.fd, 0n, whence), 'ESPIPE');
  }),
);

kvmTestIf('B3: ftruncate to any size, the current one included, is EINVAL', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: 2n * PS, flags: 0n });
    for (const size of [0n, PS, 2n * PS, 4n * PS]) expectErrno(() => kvm.files.ftruncate(g.fd, size), 'EINVAL');
    assert.equal(g.size(), 2n * PS);
  }),
);

kvmTestIf('B6: dup gives a second fd on the same file', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: PS, flags: 0n });
    const d = kvm.files.dup(g.fd);
    assert.notEqual(d, g.fd);
    assert.equal(kvm.files.fstat(d).ino, kvm.files.fstat(g.fd).ino);
    kvm.files.close(d);
    expectErrno(() => kvm.files.fstat(d), 'EBADF');
  }),
);

kvmTest('FileOps on a number that is not open: EBADF from every call', () =>
  withKvm((kvm) => {
    const f = kvm.files;
    const fd = 9999;
    expectErrno(() => f.read(fd, 1), 'EBADF');
    expectErrno(() => f.write(fd, new Uint8Array(1)), 'EBADF');
    expectErrno(() => f.pread(fd, 1, 0n), 'EBADF');
    expectErrno(() => f.pwrite(fd, new Uint8Array(1), 0n), 'EBADF');
    expectErrno(() => f.lseek(fd, 0n, SEEK_SET), 'EBADF');
    expectErrno(() => f.ftruncate(fd, 0n), 'EBADF');
    expectErrno(() => f.fstat(fd), 'EBADF');
    expectErrno(() => f.dup(fd), 'EBADF');
    expectErrno(() => f.close(fd), 'EBADF');
    expectErrno(() => f.fallocate(fd, 1, 0n, PS), 'EBADF');
    expectErrno(() => f.mmap(fd, 0n, PS, 3, 1), 'EBADF');
  }),
);

kvmTest('FileOps on a memfd behave like an ordinary file (read, write, seek, truncate)', () =>
  withKvm((kvm) => {
    const f = kvm.files;
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
  }),
);
