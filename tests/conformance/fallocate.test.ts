/**
 * fallocate on a guest_memfd (KERNEL-SPEC §2.C, selftests GM-11, GM-12), once for every backend:
 * vfs_fallocate's checks first (C0), then kvm_gmem_fallocate (C1 KEEP_SIZE required, C2 only
 * PUNCH_HOLE may join it, C3 alignment, C4 allocate within i_size, C5 punch without a size check).
 */
import assert from 'node:assert/strict';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_NO_HIDE_STALE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_ZERO_RANGE,
} from '../../src/uapi/constants.js';
import type { Backend } from '../support/conformance.js';
import { forEachBackend } from '../support/conformance.js';
import { inodeOf } from '../support/model.js';
import { INVALID_PUNCH_HOLE } from '../support/selftest-tables.js';
import { allBytes, expectErrno, expectOk, fill, GMEM_SHARED, KEEP, KEEP_PUNCH, MAP_SHARED, PS, PUNCH, RW } from '../support/uapi.js';

const T = 4n * PS;
const SHARED_GMEM = ['guest_memfd', 'guest_memfd_flags:mmap', 'guest_memfd_flags:init_shared'];

const fresh = (b: Backend, flags = 0n) => b.kvm.createVm().createGuestMemfd({ size: T, flags });

forEachBackend(
  'GM-11: the selftest sequence (allocate within, fail past i_size, punch anywhere), in order',
  ['guest_memfd'],
  (b) => {
    const g = fresh(b);
    expectOk(() => g.fallocate(KEEP, 0n, T), '(a)');
    expectErrno(() => g.fallocate(KEEP_PUNCH, PS - 1n, PS), 'EINVAL', '(b)');
    expectErrno(() => g.fallocate(KEEP, T, PS), 'EINVAL', '(c)');
    expectErrno(() => g.fallocate(KEEP, T + PS, PS), 'EINVAL', '(d)');
    expectOk(() => g.fallocate(KEEP_PUNCH, T, PS), '(e)');
    expectOk(() => g.fallocate(KEEP_PUNCH, T + PS, PS), '(f)');
    expectErrno(() => g.fallocate(KEEP_PUNCH, PS, PS - 1n), 'EINVAL', '(g)');
    expectOk(() => g.fallocate(KEEP_PUNCH, PS, PS), '(h)');
    expectOk(() => g.fallocate(KEEP, PS, PS), '(i)');
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('C0: offset < 0 or len <= 0 is EINVAL (vfs_fallocate), before any mode check; offset and len are loff_t', ['guest_memfd'], (b) => {
  const g = fresh(b);
  expectErrno(() => g.fallocate(KEEP, 0n, 0n), 'EINVAL', 'len 0');
  expectErrno(() => g.fallocate(KEEP, -PS, PS), 'EINVAL', 'offset -4096');
  expectErrno(() => g.fallocate(KEEP, 0n, -PS), 'EINVAL', 'len -4096');
  // mode 0 would be EOPNOTSUPP (C1) and PUNCH alone EOPNOTSUPP (C0 mode): the range check comes first
  expectErrno(() => g.fallocate(0, 0n, 0n), 'EINVAL');
  expectErrno(() => g.fallocate(PUNCH, -PS, PS), 'EINVAL');
  expectErrno(() => g.fallocate(0xff, 0n, 0n), 'EINVAL');
  // the u64 bit pattern of -4096 is negative as loff_t: EINVAL, not EFBIG
  expectErrno(() => g.fallocate(KEEP, 0xfffffffffffff000n, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 0n, 0xfffffffffffff000n), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 1n << 63n, PS), 'EINVAL');
});

forEachBackend('C0: PUNCH_HOLE without KEEP_SIZE, ZERO/COLLAPSE/INSERT/UNSHARE_RANGE are EOPNOTSUPP, even with an unaligned range', ['guest_memfd'], (b) => {
  const g = fresh(b);
  expectErrno(() => g.fallocate(PUNCH, 0n, PS), 'EOPNOTSUPP', 'punch without keep_size');
  expectErrno(() => g.fallocate(PUNCH, 1n, 1n), 'EOPNOTSUPP', 'unaligned punch without keep_size');
  for (const mode of [FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE]) {
    expectErrno(() => g.fallocate(mode, 0n, PS), 'EOPNOTSUPP', `mode 0x${mode.toString(16)}`);
  }
  expectErrno(() => g.fallocate(FALLOC_FL_ZERO_RANGE | KEEP, 0n, PS), 'EOPNOTSUPP');
  expectErrno(() => g.fallocate(FALLOC_FL_UNSHARE_RANGE | KEEP, 0n, PS), 'EOPNOTSUPP');
});

forEachBackend('C0: offset + len past s_maxbytes is EFBIG, before the guest_memfd checks', ['guest_memfd'], (b) => {
  const g = fresh(b);
  expectErrno(() => g.fallocate(KEEP_PUNCH, PS, 0x7ffffffffffff000n), 'EFBIG', 'offset+len past s_maxbytes');
  // allocate would be EINVAL for i_size (C4), mode 0 EOPNOTSUPP (C1), unaligned EINVAL (C3): EFBIG wins
  expectErrno(() => g.fallocate(KEEP, PS, 0x7ffffffffffff000n), 'EFBIG');
  expectErrno(() => g.fallocate(0, PS, 0x7ffffffffffff000n), 'EFBIG');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 1n, 0x7fffffffffffffffn), 'EFBIG');
  // the sum wrapping past 2^63 (negative as loff_t) is EFBIG too
  expectErrno(() => g.fallocate(KEEP_PUNCH, 0x7ffffffffffff000n, 2n * PS), 'EFBIG');
  // exactly MAX_LFS_FILESIZE is not past it: the unaligned len then fails C3
  expectErrno(() => g.fallocate(KEEP_PUNCH, 0n, 0x7fffffffffffffffn), 'EINVAL');
});

forEachBackend(
  'C1/C2: without KEEP_SIZE (mode 0 included) or with any bit besides KEEP_SIZE|PUNCH_HOLE is EOPNOTSUPP, before alignment',
  ['guest_memfd'],
  (b) => {
    const g = fresh(b);
    expectErrno(() => g.fallocate(0, 0n, PS), 'EOPNOTSUPP');
    expectErrno(() => g.fallocate(0, 1n, 1n), 'EOPNOTSUPP');
    expectErrno(() => g.fallocate(0, T, PS), 'EOPNOTSUPP');
    expectErrno(() => g.fallocate(KEEP_PUNCH | FALLOC_FL_NO_HIDE_STALE, 0n, PS), 'EOPNOTSUPP');
    expectErrno(() => g.fallocate(KEEP_PUNCH | FALLOC_FL_NO_HIDE_STALE, 1n, 1n), 'EOPNOTSUPP');
    expectErrno(() => g.fallocate(KEEP | FALLOC_FL_ZERO_RANGE, 1n, 1n), 'EOPNOTSUPP');
    for (let bit = 7; bit < 31; bit++) expectErrno(() => g.fallocate(KEEP | (1 << bit), 0n, PS), 'EOPNOTSUPP', `bit ${bit}`);
  },
);

forEachBackend('GM-12/C3: every unaligned offset or len is EINVAL, for allocate and punch, even past i_size', ['guest_memfd'], (b) => {
  const g = fresh(b);
  for (const [off, len] of INVALID_PUNCH_HOLE) {
    expectErrno(() => g.fallocate(KEEP_PUNCH, off, len), 'EINVAL', `punch (${off}, ${len})`);
    expectErrno(() => g.fallocate(KEEP, off, len), 'EINVAL', `allocate (${off}, ${len})`);
  }
  expectErrno(() => g.fallocate(KEEP, 1n, PS), 'EINVAL', 'unaligned allocate');
  if (b.model) assert.equal(inodeOf(g).pages.size, 0);
  // alignment is checked before the punch, which has no size check
  expectErrno(() => g.fallocate(KEEP_PUNCH, T + 1n, PS), 'EINVAL');
  expectErrno(() => g.fallocate(KEEP_PUNCH, 2n * T, PS + 1n), 'EINVAL');
});

forEachBackend(
  'C4/C5/C6: allocate at, past or straddling i_size is EINVAL, within succeeds; punch at, past or across i_size is 0, allocated or not',
  ['guest_memfd'],
  (b) => {
    const g = fresh(b);
    expectErrno(() => g.fallocate(KEEP, T, PS), 'EINVAL');
    expectErrno(() => g.fallocate(KEEP, T + PS, PS), 'EINVAL');
    expectErrno(() => g.fallocate(KEEP, T - PS, 2n * PS), 'EINVAL');
    expectErrno(() => g.fallocate(KEEP, 0n, T + PS), 'EINVAL');
    if (b.model) assert.equal(inodeOf(g).isPresent(3), false, 'a failed allocate allocates nothing');
    expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T), 'punch of nothing allocated');
    expectOk(() => g.fallocate(KEEP, T - PS, PS));
    expectOk(() => g.fallocate(KEEP, 0n, T));
    expectOk(() => g.fallocate(KEEP, 0n, T), 'again');
    expectOk(() => g.fallocate(KEEP_PUNCH, T, PS));
    expectOk(() => g.fallocate(KEEP_PUNCH, T + PS, PS));
    expectOk(() => g.fallocate(KEEP_PUNCH, T - PS, 100n * PS));
    expectOk(() => g.fallocate(KEEP_PUNCH, 0n, 0x7ffffffffffff000n));
    expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T), 'punch again');
  },
);

forEachBackend(
  'C4/C5: a punched page reads back as zero through the mapping, the rest keeps its data; allocate exposes zeroes and keeps data',
  SHARED_GMEM,
  (b) => {
    const g = fresh(b, GMEM_SHARED);
    const m = g.mmap(0n, T, RW, MAP_SHARED);
    g.fallocate(KEEP, 0n, T);
    assert.ok(allBytes(m.read(0n, Number(T)), 0), 'allocated pages read as zero when first exposed');
    m.write(0n, fill(0xaa, T));
    if (b.model) assert.equal(inodeOf(g).pages.size, 4);
    g.fallocate(KEEP, 0n, T);
    assert.ok(allBytes(m.read(0n, Number(T)), 0xaa), 'allocate keeps data already there');
    g.fallocate(KEEP_PUNCH, PS, PS);
    if (b.model) assert.deepEqual([inodeOf(g).pages.has(1), inodeOf(g).pages.size], [false, 3], 'the punch freed that page only');
    assert.ok(allBytes(m.read(0n, Number(PS)), 0xaa));
    assert.ok(allBytes(m.read(PS, Number(PS)), 0));
    assert.ok(allBytes(m.read(2n * PS, Number(2n * PS)), 0xaa));
    g.fallocate(KEEP, 3n * PS, PS);
    g.fallocate(KEEP_PUNCH, 3n * PS, PS);
    g.fallocate(KEEP, 3n * PS, PS);
    assert.ok(allBytes(m.read(3n * PS, Number(PS)), 0));
  },
);

forEachBackend('C7: fallocate keeps working after the VM fd is closed, with a slot bound (PMC-6)', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const k = b.model?.vms.at(-1);
  const g = vm.createGuestMemfd({ size: T, flags: 0n });
  vm.setUserMemoryRegion2({ slot: 1, flags: 4, guestPhysAddr: 0n, memorySize: T, userspaceAddr: 0n, guestMemfd: g.fd, guestMemfdOffset: 0n });
  vm.close();
  if (k) assert.equal(k.destroyed, false, 'the file holds the VM');
  expectOk(() => g.fallocate(KEEP, 0n, T));
  expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T));
  expectOk(() => g.fallocate(KEEP, 0n, T));
  g.close();
  if (k) assert.equal(k.destroyed, true, 'the last reference is gone');
});
