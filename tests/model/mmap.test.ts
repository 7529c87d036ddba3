/**
 * KERNEL-SPEC §2.D: mmap of a guest_memfd (6.18+: kvm_gmem_mmap, kvm_gmem_fault_user_mapping), host
 * faults reported as HostFault, and the mempolicy of §2.D8.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MPOL, PROT_READ, PROT_WRITE } from '../../src/uapi/constants.js';
import { expectErrno, expectOk, fill, GMEM_INIT_SHARED, GMEM_MMAP, KEEP_PUNCH, PS, setup } from './helpers.js';

const T = 4n * PS;
const RW = PROT_READ | PROT_WRITE;
const SHARED_FLAGS = GMEM_MMAP | GMEM_INIT_SHARED;

function gmem(kernel = '6.18', flags = SHARED_FLAGS, size = T) {
  const s = setup(kernel);
  return { ...s, g: s.vm.createGuestMemfd({ size, flags }) };
}

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
