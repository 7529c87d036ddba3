/**
 * The memfd side of v7: memfd_create flags (05/14), F_SEAL_AUTO_ALLOCATE (01/14), and what shmem
 * refuses on an inaccessible file (04/14). Each test names the patch its rule comes from.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  F_ADD_SEALS,
  F_GET_SEALS,
  F_SEAL_AUTO_ALLOCATE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_WRITE,
  MFD_ALLOW_SEALING,
  MFD_HUGETLB,
  MFD_INACCESSIBLE,
  MFD_NAME_MAX_LEN,
} from '../../src/designs/v7/constants.js';
import { ShmemFile } from '../../src/designs/v7/shmem.js';
import { errnoOf, KEEP, MiB2, PS, PUNCH, privateFd, setupV7 } from './helpers.js';

test('05/14: MFD_INACCESSIBLE with MFD_ALLOW_SEALING is EINVAL; with MFD_HUGETLB EOPNOTSUPP (no memfile backing store)', () => {
  const { kvm } = setupV7();
  assert.equal(
    errnoOf(() => kvm.memfdCreateFlags('x', MFD_INACCESSIBLE | MFD_ALLOW_SEALING)),
    'EINVAL',
  );
  assert.equal(
    errnoOf(() => kvm.memfdCreateFlags('x', MFD_INACCESSIBLE | MFD_HUGETLB)),
    'EOPNOTSUPP',
  );
  assert.equal(
    errnoOf(() => kvm.memfdCreateFlags('x', 0x10)),
    'EINVAL',
  );
  assert.equal(
    errnoOf(() => kvm.memfdCreateFlags('x'.repeat(MFD_NAME_MAX_LEN + 1), 0)),
    'EINVAL',
  );
  assert.equal(
    errnoOf(() => kvm.memfdCreateFlags('x'.repeat(MFD_NAME_MAX_LEN), 0)),
    'ok',
  );
});

test('05/14, 14/14: an MFD_INACCESSIBLE memfd is born F_SEAL_SEAL and USER_INACCESSIBLE', () => {
  const { kvm } = setupV7();
  const fd = kvm.memfdCreateFlags('p', MFD_INACCESSIBLE);
  assert.equal(kvm.fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
  assert.equal(
    errnoOf(() => kvm.fcntl(fd, F_ADD_SEALS, F_SEAL_AUTO_ALLOCATE)),
    'EPERM',
  );
  const f = kvm.proc.fdt.get(fd, 'test');
  assert.ok(f instanceof ShmemFile);
  assert.equal(f.memfileNode.flags, 1);
});

test('04/14: read, write and mmap of an inaccessible memfd are EPERM; sized once, page aligned', () => {
  const { kvm } = setupV7();
  const fd = kvm.memfdCreateFlags('p', MFD_INACCESSIBLE);
  const f = kvm.files;
  assert.equal(
    errnoOf(() => f.read(fd, 1)),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.write(fd, new Uint8Array(1))),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.mmap(fd, 0n, PS, 1, 1)),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.ftruncate(fd, PS + 1n)),
    'EINVAL',
  );
  f.ftruncate(fd, MiB2);
  assert.equal(
    errnoOf(() => f.ftruncate(fd, MiB2)),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.ftruncate(fd, 2n * MiB2)),
    'EPERM',
  );
  // the alignment rule is in shmem_fallocate's punch branch only
  assert.equal(
    errnoOf(() => f.fallocate(fd, KEEP | PUNCH, 0x800n, PS)),
    'EINVAL',
  );
  f.fallocate(fd, 0, 0x800n, PS);
  assert.equal(f.fstat(fd).blocks, 16n);
  // a read that starts past i_size's page returns nothing instead of EPERM (the check follows the EOF test)
  assert.equal(f.pread(fd, 8, 3n * MiB2).length, 0);
});

test('01/14: F_SEAL_AUTO_ALLOCATE: write() into a hole is ENOENT, or a short count after written bytes', () => {
  const { kvm } = setupV7();
  const fd = kvm.memfdCreateFlags('s', MFD_ALLOW_SEALING);
  const f = kvm.files;
  f.ftruncate(fd, 2n * PS);
  f.fallocate(fd, 0, 0n, PS);
  kvm.fcntl(fd, F_ADD_SEALS, F_SEAL_AUTO_ALLOCATE);
  assert.equal(kvm.fcntl(fd, F_GET_SEALS), F_SEAL_AUTO_ALLOCATE);
  // 8 bytes straddling page 0 (allocated) and page 1 (a hole): the first 4 go in
  assert.equal(f.pwrite(fd, new Uint8Array(8).fill(1), PS - 4n), 4);
  assert.equal(
    errnoOf(() => f.pwrite(fd, new Uint8Array(1), PS)),
    'ENOENT',
  );
  // a store or a load through a mapping to the hole: SIGBUS (shmem_fault uses SGP_NOALLOC for both)
  const m = f.mmap(fd, 0n, 2n * PS, 3, 1);
  assert.equal(
    errnoOf(() => m.write(PS, new Uint8Array(1))),
    'SIGBUS',
  );
  assert.equal(
    errnoOf(() => m.read(PS, 1)),
    'SIGBUS',
  );
  // read() of the hole passes and allocates nothing
  assert.deepEqual([...f.pread(fd, 2, PS)], [0, 0]);
  assert.equal(f.fstat(fd).blocks, 8n);
  // fallocate is the one way to allocate
  f.fallocate(fd, KEEP, PS, PS);
  m.write(PS, new Uint8Array([7]));
  assert.deepEqual([...f.pread(fd, 1, PS)], [7]);
});

test('memfd_add_seals: order of checks, F_SEAL_WRITE with a shared writable mapping is EBUSY, GROW refuses growth', () => {
  const { kvm } = setupV7();
  const fd = kvm.memfdCreateFlags('s', MFD_ALLOW_SEALING);
  const f = kvm.files;
  f.ftruncate(fd, PS);
  assert.equal(
    errnoOf(() => kvm.fcntl(fd, F_ADD_SEALS, 0x40)),
    'EINVAL',
  );
  assert.equal(
    errnoOf(() => kvm.fcntl(0, F_GET_SEALS)),
    'EINVAL',
  );
  const m = f.mmap(fd, 0n, PS, 3, 1);
  assert.equal(
    errnoOf(() => kvm.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)),
    'EBUSY',
  );
  m.unmap();
  kvm.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW);
  assert.equal(
    errnoOf(() => f.write(fd, new Uint8Array(1))),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.mmap(fd, 0n, PS, 3, 1)),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.ftruncate(fd, 2n * PS)),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => f.fallocate(fd, KEEP | PUNCH, 0n, PS)),
    'EPERM',
  );
});

test('04/14: the file keeps the flags KVM registered with: a bound plain memfd becomes inaccessible, old mappings stay', () => {
  const s = setupV7();
  const fd = privateFd(s.kvm, MiB2, false);
  const m = s.kvm.files.mmap(fd, 0n, PS, 3, 1);
  m.write(0n, new Uint8Array([0xaa]));
  s.vm.setUserMemoryRegionExt({ slot: 0, flags: 4, guestPhysAddr: 0n, memorySize: MiB2, userspaceAddr: s.shared.addr, privateFd: fd, privateOffset: 0n });
  assert.equal(
    errnoOf(() => s.kvm.files.mmap(fd, 0n, PS, 1, 1)),
    'EPERM',
  );
  assert.equal(
    errnoOf(() => s.kvm.files.pread(fd, 1, 0n)),
    'EPERM',
  );
  assert.deepEqual([...m.read(0n, 1)], [0xaa]);
  // deleting the slot unregisters the notifier; nothing resets the node's flags
  s.vm.setUserMemoryRegionExt({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n, privateFd: 0, privateOffset: 0n });
  assert.equal(
    errnoOf(() => s.kvm.files.pread(fd, 1, 0n)),
    'EPERM',
  );
  const f = s.kvm.proc.fdt.get(fd, 'test') as ShmemFile;
  assert.equal(f.memfileNode.notifiers.size, 0);
  assert.equal(f.unevictable, true);
});
