/**
 * KERNEL-SPEC §2.C: fallocate on a guest_memfd: vfs_fallocate (C0), then kvm_gmem_fallocate
 * (C1 KEEP_SIZE required, C2 only PUNCH_HOLE may join it, C3 alignment, C4 allocate within i_size,
 * C5 punch without a size check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getProfile } from '../../src/model/index.js';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_NO_HIDE_STALE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_ZERO_RANGE,
} from '../../src/uapi/constants.js';
import { INVALID_PUNCH_HOLE } from '../support/selftest-tables.js';
import { allBytes, bindGmem, expectErrno, expectOk, fill, hlt, inodeOf, KEEP, KEEP_PUNCH, PS, PUNCH, read, runProgram, setup, TiB, write } from './helpers.js';

const T = 4n * PS;

function fresh(kernel = '6.18', flags = 0n, size = T) {
  const s = setup(kernel);
  return { ...s, g: s.vm.createGuestMemfd({ size, flags }) };
}

test('C0: offset < 0 or len <= 0 gives EINVAL (vfs_fallocate), before any mode check', () => {
  const { g } = fresh();
  expectErrno(() => g.fallocate(KEEP, 0n, 0n), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP, -PS, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP, 0n, -PS), 'EINVAL');
  // mode 0 would be EOPNOTSUPP (C1) and PUNCH alone EOPNOTSUPP (C0 mode): the range check comes first
  expectErrno(() => g.fallocate(0, 0n, 0n), 'EINVAL');
  expectErrno(() => g.fallocate(PUNCH, -PS, PS), 'EINVAL');
  expectErrno(() => g.fallocate(0xff, 0n, 0n), 'EINVAL');
});

test('C0: offset and len are loff_t: the u64 bit pattern of -4096 is negative, so EINVAL (not EFBIG)', () => {
  const { g } = fresh();
  // LIVE: off=-4096 -> EINVAL. The kvm backend passes offset/len as int64 "bit pattern preserved".
  expectErrno(() => g.fallocate(KEEP, 0xfffffffffffff000n, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 0n, 0xfffffffffffff000n), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 1n << 63n, PS), 'EINVAL');
});

test('C0: PUNCH_HOLE without KEEP_SIZE gives EOPNOTSUPP, even with an unaligned range', () => {
  const { g } = fresh();
  expectErrno(() => g.fallocate(PUNCH, 0n, PS), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(PUNCH, 1n, 1n), 'EOPNOTSUPP');
});

test('C0: ZERO_RANGE, COLLAPSE_RANGE, INSERT_RANGE and UNSHARE_RANGE give EOPNOTSUPP', () => {
  const { g } = fresh();
  for (const mode of [FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE]) {
    expectErrno(() => g.fallocate(mode, 0n, PS), 'EOPNOTSUPP', `mode 0x${mode.toString(16)}`);
  }
  expectErrno(() => g.fallocate(FALLOC_FL_ZERO_RANGE | KEEP, 0n, PS), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(FALLOC_FL_UNSHARE_RANGE | KEEP, 0n, PS), 'EOPNOTSUPP');
});

test('C0: offset + len past s_maxbytes gives EFBIG, before the guest_memfd checks', () => {
  const { g } = fresh();
  // LIVE: (PS, 0x7ffffffffffff000) punch -> EFBIG
  expectErrno(() => g.fallocate(KEEP_PUNCH, PS, 0x7ffffffffffff000n), 'EFBIG');
  // allocate would be EINVAL for i_size (C4), mode 0 EOPNOTSUPP (C1), unaligned EINVAL (C3): EFBIG wins
  expectErrno(() => g.fallocate(KEEP, PS, 0x7ffffffffffff000n), 'EFBIG');
  expectErrno(() => g.fallocate(0, PS, 0x7ffffffffffff000n), 'EFBIG');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 1n, 0x7fffffffffffffffn), 'EFBIG');
  // the sum wrapping past 2^63 (negative as loff_t) is EFBIG too
  expectErrno(() => g.fallocate(KEEP_PUNCH, 0x7ffffffffffff000n, 2n * PS), 'EFBIG');
  // exactly MAX_LFS_FILESIZE is not past it: the unaligned len then fails C3
  expectErrno(() => g.fallocate(KEEP_PUNCH, 0n, 0x7fffffffffffffffn), 'EINVAL');
});

test('C1: without KEEP_SIZE gives EOPNOTSUPP (mode 0 included), checked before alignment', () => {
  const { g } = fresh();
  expectErrno(() => g.fallocate(0, 0n, PS), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(0, 1n, 1n), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(0, T, PS), 'EOPNOTSUPP');
});

test('C2: any mode bit besides KEEP_SIZE|PUNCH_HOLE gives EOPNOTSUPP, checked before alignment', () => {
  const { g } = fresh();
  expectErrno(() => g.fallocate(KEEP_PUNCH | FALLOC_FL_NO_HIDE_STALE, 0n, PS), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(KEEP_PUNCH | FALLOC_FL_NO_HIDE_STALE, 1n, 1n), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(KEEP | FALLOC_FL_ZERO_RANGE, 1n, 1n), 'EOPNOTSUPP');
  for (let bit = 7; bit < 31; bit++) expectErrno(() => g.fallocate(KEEP | (1 << bit), 0n, PS), 'EOPNOTSUPP', `bit ${bit}`);
});

test('C3: unaligned offset or len -> EINVAL, for allocate and punch (GM-12 table)', () => {
  const { g } = fresh();
  const table = INVALID_PUNCH_HOLE;
  for (const [off, len] of table) {
    expectErrno(() => g.fallocate(KEEP_PUNCH, off, len), 'EINVAL', `punch (${off}, ${len})`);
    expectErrno(() => g.fallocate(KEEP, off, len), 'EINVAL', `allocate (${off}, ${len})`);
  }
  assert.equal(inodeOf(g).pages.size, 0);
});

test('C3: punch of an unaligned range past i_size is still EINVAL (alignment before the punch, which has no size check)', () => {
  const { g } = fresh();
  expectErrno(() => g.fallocate(KEEP_PUNCH, T + 1n, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 2n * T, PS + 1n), 'EINVAL');
});

test('C4: allocate at, past or straddling i_size gives EINVAL; within succeeds', () => {
  const { g } = fresh();
  expectErrno(() => g.fallocate(KEEP, T, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP, T + PS, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP, T - PS, 2n * PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP, 0n, T + PS), 'EINVAL');
  expectOk(() => g.fallocate(KEEP, 0n, T));
  expectOk(() => g.fallocate(KEEP, T - PS, PS));
});

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

test('C4: allocated pages read as zero when first exposed; allocate keeps data already there', () => {
  const { g } = fresh('6.18', 3n);
  const m = g.mmap(0n, T, 3);
  g.fallocate(KEEP, 0n, T);
  assert.ok(allBytes(m.read(0n, Number(T)), 0));
  m.write(PS, fill(0x5a, 16));
  g.fallocate(KEEP, 0n, T);
  assert.ok(allBytes(m.read(PS, 16), 0x5a));
});

test('C5: punch at, past, or straddling i_size succeeds (no size check)', () => {
  const { g } = fresh();
  expectOk(() => g.fallocate(KEEP_PUNCH, T, PS));
  expectOk(() => g.fallocate(KEEP_PUNCH, T + PS, PS));
  expectOk(() => g.fallocate(KEEP_PUNCH, T - PS, 100n * PS));
  expectOk(() => g.fallocate(KEEP_PUNCH, 0n, 0x7ffffffffffff000n));
});

test('C5: punch frees the pages of the range only; host mmap reads zero afterwards, the rest keeps its data', () => {
  const { g } = fresh('6.18', 3n);
  const m = g.mmap(0n, T, 3);
  m.write(0n, fill(0xaa, Number(T)));
  assert.equal(inodeOf(g).pages.size, 4);
  g.fallocate(KEEP_PUNCH, PS, PS);
  assert.equal(inodeOf(g).pages.has(1), false);
  assert.equal(inodeOf(g).pages.size, 3);
  assert.ok(allBytes(m.read(0n, Number(PS)), 0xaa));
  assert.ok(allBytes(m.read(PS, Number(PS)), 0));
  assert.ok(allBytes(m.read(2n * PS, Number(2n * PS)), 0xaa));
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

test('C: the fallocate sequence of GM-11, in order', () => {
  for (const kernel of ['6.8', '6.18']) {
    const { g } = fresh(kernel);
    const steps: [string, number, bigint, bigint, string][] = [
      ['a', KEEP, 0n, T, 'ok'],
      ['b', KEEP_PUNCH, PS - 1n, PS, 'EINVAL'],
      ['c', KEEP, T, PS, 'EINVAL'],
      ['d', KEEP, T + PS, PS, 'EINVAL'],
      ['e', KEEP_PUNCH, T, PS, 'ok'],
      ['f', KEEP_PUNCH, T + PS, PS, 'ok'],
      ['g', KEEP_PUNCH, PS, PS - 1n, 'EINVAL'],
      ['h', KEEP_PUNCH, PS, PS, 'ok'],
      ['i', KEEP, PS, PS, 'ok'],
    ];
    for (const [id, mode, off, len, want] of steps) expectErrno(() => g.fallocate(mode, off, len), want, `${kernel} GM-11(${id})`);
  }
});

test('C6: punch always returns 0, whether or not anything was allocated', () => {
  const { g } = fresh();
  expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T));
  expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T));
});

test('C7: fallocate works after the VM fd is closed (PMC-6)', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  bindGmem(vm, 1, 0n, T, g);
  vm.close();
  assert.equal(k.destroyed, false);
  expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T));
  expectOk(() => g.fallocate(KEEP, 0n, T));
  g.close();
  assert.equal(k.destroyed, true);
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
