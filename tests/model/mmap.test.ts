/**
 * KERNEL-SPEC §2.D: mmap of a guest_memfd (6.18+: kvm_gmem_mmap, kvm_gmem_fault_user_mapping), host
 * faults reported as HostFault, and the mempolicy of §2.D8.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostFault } from '../../src/api.js';
import { MADV, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MPOL, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE } from '../../src/uapi/constants.js';
import { allBytes, errnoOf, expectErrno, expectOk, fill, GMEM_INIT_SHARED, GMEM_MMAP, inodeOf, KEEP, KEEP_PUNCH, MiB, PS, setup } from './helpers.js';

const T = 4n * PS;
const RW = PROT_READ | PROT_WRITE;
const SHARED_FLAGS = GMEM_MMAP | GMEM_INIT_SHARED;

function gmem(kernel = '6.18', flags = SHARED_FLAGS, size = T) {
  const s = setup(kernel);
  return { ...s, g: s.vm.createGuestMemfd({ size, flags }) };
}

/** The HostFault a host access raises. */
function hostFault(fn: () => unknown): HostFault {
  try {
    fn();
  } catch (e) {
    if (e instanceof HostFault) return e;
    throw e;
  }
  assert.fail('expected a HostFault');
}

test('D1: 6.8 has no .mmap: mmap gives ENODEV, MAP_SHARED and MAP_PRIVATE alike (GM-5, 6.8 test_mmap)', () => {
  const { g } = gmem('6.8', 0n);
  expectErrno(() => g.mmap(0n, PS, RW, MAP_SHARED), 'ENODEV');
  expectErrno(() => g.mmap(0n, T, RW, MAP_SHARED), 'ENODEV');
  expectErrno(() => g.mmap(0n, PS, RW, MAP_PRIVATE), 'ENODEV');
});

test('D2: 6.18 without GUEST_MEMFD_FLAG_MMAP: every mmap gives ENODEV (GM-5)', () => {
  for (const type of ['default', 'sw_protected'] as const) {
    const { vm } = setup('6.18', type);
    const g = vm.createGuestMemfd({ size: T, flags: 0n });
    for (const flags of [MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE]) {
      for (const prot of [PROT_NONE, PROT_READ, RW]) expectErrno(() => g.mmap(0n, PS, prot, flags), 'ENODEV', `${type} flags ${flags} prot ${prot}`);
    }
  }
});

test('D2/D3: ENODEV (no MMAP flag) is checked before the MAP_SHARED requirement', () => {
  const { g } = gmem('6.18', GMEM_INIT_SHARED);
  expectErrno(() => g.mmap(0n, PS, RW, MAP_PRIVATE), 'ENODEV');
});

test('D3: with MMAP, MAP_PRIVATE gives EINVAL for any prot; MAP_SHARED and MAP_SHARED_VALIDATE succeed (GM-6)', () => {
  for (const flags of [GMEM_MMAP, SHARED_FLAGS]) {
    const { g } = gmem('6.18', flags);
    for (const prot of [PROT_NONE, PROT_READ, PROT_WRITE, RW]) expectErrno(() => g.mmap(0n, T, prot, MAP_PRIVATE), 'EINVAL', `flags ${flags} prot ${prot}`);
    expectOk(() => g.mmap(0n, T, RW, MAP_SHARED));
    expectOk(() => g.mmap(0n, T, RW, MAP_SHARED_VALIDATE));
  }
});

test('D3: sw_protected VM, MMAP-only guest_memfd: MAP_SHARED succeeds', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: T, flags: GMEM_MMAP });
  expectOk(() => g.mmap(0n, T, RW, MAP_SHARED));
});

test('D4: a mapping may be larger than the file or start past its end; the check is at fault time', () => {
  const { g } = gmem();
  const big = g.mmap(0n, 4n * T, RW);
  assert.equal(big.length, 4n * T);
  const past = g.mmap(2n * T, T, RW);
  const f = hostFault(() => past.read(0n, 1));
  assert.equal(f.signal, 'SIGBUS');
  assert.equal(f.offset, 0n);
});

test('D5: a fault at pgoff >= i_size is SIGBUS; memset over 4T stops at exactly T (GM-8 test_fault_overflow)', () => {
  const { g } = gmem();
  const m = g.mmap(0n, 4n * T, RW);
  const f = hostFault(() => m.write(0n, fill(0xaa, Number(4n * T))));
  assert.equal(f.signal, 'SIGBUS');
  assert.equal(f.offset, T);
  assert.equal(hostFault(() => m.read(T, 1)).signal, 'SIGBUS');
  assert.ok(allBytes(m.read(0n, Number(T)), 0xaa));
  assert.equal(inodeOf(g).pages.size, 4);
});

test('D5: without INIT_SHARED every host fault is SIGBUS at offset 0, even after fallocate (GM-9 test_fault_private)', () => {
  const { g } = gmem('6.18', GMEM_MMAP);
  const m = g.mmap(0n, T, RW);
  const w = hostFault(() => m.write(0n, fill(0xaa, Number(T))));
  assert.equal(w.signal, 'SIGBUS');
  assert.equal(w.offset, 0n);
  assert.equal(hostFault(() => m.read(0n, 1)).signal, 'SIGBUS');
  g.fallocate(KEEP, 0n, T);
  for (let i = 0n; i < 4n; i++)
    assert.equal(
      errnoOf(() => m.read(i * PS, 1)),
      'SIGBUS',
      `page ${i} after fallocate`,
    );
  assert.equal(inodeOf(g).pages.size, 0);
});

test('D5: with INIT_SHARED an untouched page faults in zeroed', () => {
  const { g } = gmem();
  const m = g.mmap(0n, T, RW);
  assert.ok(allBytes(m.read(0n, Number(T)), 0));
  assert.equal(inodeOf(g).pages.size, 4);
});

test('D6: data written through the mapping persists; a second mapping sees it; punch zeroes in every mapping (GM-7)', () => {
  const { g } = gmem();
  const m = g.mmap(0n, T, RW);
  m.write(0n, fill(0xaa, Number(T)));
  assert.ok(allBytes(m.read(0n, Number(T)), 0xaa));
  const m2 = g.mmap(0n, T, RW);
  assert.ok(allBytes(m2.read(0n, Number(T)), 0xaa));
  const tail = g.mmap(2n * PS, 2n * PS, PROT_READ);
  assert.ok(allBytes(tail.read(0n, Number(2n * PS)), 0xaa));
  g.fallocate(KEEP_PUNCH, 0n, PS);
  for (const mm of [m, m2]) {
    assert.ok(allBytes(mm.read(0n, Number(PS)), 0));
    assert.ok(allBytes(mm.read(PS, Number(T - PS)), 0xaa));
  }
  g.fallocate(KEEP_PUNCH, 2n * PS, PS);
  assert.ok(allBytes(tail.read(0n, Number(PS)), 0));
  assert.ok(allBytes(tail.read(PS, Number(PS)), 0xaa));
  m.write(0n, fill(0xaa, Number(PS)));
  assert.ok(allBytes(m2.read(0n, Number(PS)), 0xaa));
});

test('D6: MADV_DONTNEED keeps the data (it is page cache)', () => {
  const { g } = gmem();
  const m = g.mmap(0n, T, RW);
  m.write(0n, fill(0x42, Number(T)));
  m.madvise(0n, T, MADV.dontneed);
  assert.ok(allBytes(m.read(0n, Number(T)), 0x42));
});

test('D6: the mapping outlives the fd: data stays reachable after close(fd)', () => {
  const { g } = gmem();
  const m = g.mmap(0n, T, RW);
  m.write(0n, fill(7, 4));
  g.close();
  assert.ok(allBytes(m.read(0n, 4), 7));
});

test('D7: the mount is noexec: PROT_EXEC gives EPERM', () => {
  const { g } = gmem();
  expectErrno(() => g.mmap(0n, T, PROT_READ | PROT_EXEC), 'EPERM');
  expectErrno(() => g.mmap(0n, T, RW | PROT_EXEC, MAP_SHARED_VALIDATE), 'EPERM');
});

test('D7: check order (do_mmap): noexec EPERM comes before f_op->mmap, so before its EINVAL and ENODEV', () => {
  const { g } = gmem();
  expectErrno(() => g.mmap(0n, T, PROT_READ | PROT_EXEC, MAP_PRIVATE), 'EPERM');
  const { g: noMmap } = gmem('6.18', 0n);
  expectErrno(() => noMmap.mmap(0n, T, PROT_READ | PROT_EXEC, MAP_SHARED), 'EPERM');
});

test('D7: an unaligned mmap offset gives EINVAL (x86 sys_mmap checks it before the fd)', () => {
  const { kvm, g } = gmem();
  expectErrno(() => g.mmap(1n, PS, RW), 'EINVAL');
  expectErrno(() => g.mmap(PS - 1n, PS, RW), 'EINVAL');
  expectErrno(() => kvm.files.mmap(999, 1n, PS, RW, MAP_SHARED), 'EINVAL');
  expectErrno(() => kvm.files.mmap(999, 0n, PS, RW, MAP_SHARED), 'EBADF');
});

test('D7: MADV_HUGEPAGE gives 0 and MADV_COLLAPSE gives EINVAL; then DONTNEED and a read still work (GM-15)', () => {
  const { g } = gmem('6.18', SHARED_FLAGS, 2n * MiB);
  const m = g.mmap(0n, 2n * MiB, RW);
  for (let off = 0n; off < 2n * MiB; off += PS) m.read(off, 1);
  expectOk(() => m.madvise(0n, 2n * MiB, MADV.hugepage));
  expectErrno(() => m.madvise(0n, 2n * MiB, MADV.collapse), 'EINVAL');
  expectOk(() => m.madvise(0n, 2n * MiB, MADV.dontneed));
  expectOk(() => m.read(0n, 1));
});

test('D7: MADV_REMOVE gives 0 and punches the file range (a KEEP|PUNCH fallocate)', () => {
  const { g } = gmem();
  const m = g.mmap(0n, T, RW);
  m.write(0n, fill(0x11, Number(T)));
  expectOk(() => m.madvise(PS, PS, MADV.remove));
  assert.equal(inodeOf(g).pages.has(1), false);
  assert.ok(allBytes(m.read(PS, Number(PS)), 0));
  assert.ok(allBytes(m.read(0n, Number(PS)), 0x11));
});

test("D8: after 6.18 (next) mbind/get_mempolicy go to the file's shared policy (GM-13 test_mbind)", () => {
  const { g } = gmem('next');
  const m = g.mmap(0n, T, RW);
  m.mbind(0n, 2n * PS, MPOL.interleave, 1n);
  assert.deepEqual(m.getMempolicy(0n), { mode: MPOL.interleave, nodemask: 1n });
  m.mbind(2n * PS, 2n * PS, MPOL.bind, 1n);
  assert.deepEqual(m.getMempolicy(2n * PS), { mode: MPOL.bind, nodemask: 1n });
  m.mbind(0n, T, MPOL.default, 0n);
  assert.deepEqual(m.getMempolicy(0n), { mode: MPOL.default, nodemask: 0n });
  expectErrno(() => m.mbind(0n, PS, 999, 1n), 'EINVAL');
  // the policy lives on the inode: a second mapping sees it
  m.mbind(0n, PS, MPOL.bind, 2n);
  assert.deepEqual(g.mmap(0n, T, RW).getMempolicy(0n), { mode: MPOL.bind, nodemask: 2n });
});

test('D8: after 6.18 (next) allocation honours mbind() ranges by file index (GM-14 test_numa_allocation)', () => {
  const { g } = gmem('next');
  const m = g.mmap(0n, T, RW);
  m.write(0n, fill(0xaa, Number(PS)));
  m.mbind(0n, PS, MPOL.bind, 1n);
  g.fallocate(KEEP_PUNCH, 0n, PS);
  m.mbind(0n, 2n * PS, MPOL.bind, 2n);
  m.mbind(2n * PS, 2n * PS, MPOL.bind, 1n);
  m.write(0n, fill(0xaa, Number(T)));
  assert.deepEqual(m.pageNodes(0n, 4), [1, 1, 0, 0]);
  g.fallocate(KEEP_PUNCH, 0n, T);
  m.mbind(0n, 2n * PS, MPOL.bind, 1n);
  m.mbind(2n * PS, 2n * PS, MPOL.bind, 2n);
  m.write(0n, fill(0xaa, Number(T)));
  assert.deepEqual(m.pageNodes(0n, 4), [0, 0, 1, 1]);
});

test('D8: on 6.18 mbind/get_mempolicy succeed on the VMA (generic policy), 999 is EINVAL, allocation ignores it', () => {
  const { g } = gmem('6.18');
  const m = g.mmap(0n, T, RW);
  expectOk(() => m.mbind(0n, 2n * PS, MPOL.interleave, 1n));
  assert.deepEqual(m.getMempolicy(0n), { mode: MPOL.interleave, nodemask: 1n });
  expectErrno(() => m.mbind(0n, PS, 999, 1n), 'EINVAL');
  m.mbind(0n, T, MPOL.bind, 2n);
  m.write(0n, fill(1, Number(T)));
  assert.deepEqual(m.pageNodes(0n, 4), [0, 0, 0, 0]);
});
