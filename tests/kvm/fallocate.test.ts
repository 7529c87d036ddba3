/**
 * fallocate on a guest_memfd (KERNEL-SPEC §2 C, selftests GM-11, GM-12): the VFS checks first, then
 * kvm_gmem_fallocate's mode and alignment checks; allocation is bounded by i_size, punching is not.
 */
import assert from 'node:assert/strict';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_NO_HIDE_STALE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_ZERO_RANGE,
} from '../../src/uapi/constants.js';
import { kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import { INVALID_PUNCH_HOLE } from '../support/selftest-tables.js';
import { expectErrno, expectOk, GMEM_SHARED, KEEP, KEEP_PUNCH, MAP_SHARED, PS, PUNCH, RW, withKvm } from './helpers.js';

const T = 4n * PS;

kvmTestIf('GM-11: the selftest sequence (allocate within, fail past i_size, punch anywhere)', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    expectOk(() => g.fallocate(KEEP, 0n, T), '(a)');
    expectErrno(() => g.fallocate(KEEP_PUNCH, PS - 1n, PS), 'EINVAL', '(b)');
    expectErrno(() => g.fallocate(KEEP, T, PS), 'EINVAL', '(c)');
    expectErrno(() => g.fallocate(KEEP, T + PS, PS), 'EINVAL', '(d)');
    expectOk(() => g.fallocate(KEEP_PUNCH, T, PS), '(e)');
    expectOk(() => g.fallocate(KEEP_PUNCH, T + PS, PS), '(f)');
    expectErrno(() => g.fallocate(KEEP_PUNCH, PS, PS - 1n), 'EINVAL', '(g)');
    expectOk(() => g.fallocate(KEEP_PUNCH, PS, PS), '(h)');
    expectOk(() => g.fallocate(KEEP, PS, PS), '(i)');
  }),
);

kvmTestIf('GM-12/C3: every unaligned punch is EINVAL', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    const cases = INVALID_PUNCH_HOLE;
    for (const [off, len] of cases) expectErrno(() => g.fallocate(KEEP_PUNCH, off, len), 'EINVAL', `punch (${off}, ${len})`);
    expectErrno(() => g.fallocate(KEEP, 1n, PS), 'EINVAL', 'unaligned allocate');
  }),
);

kvmTestIf('C0: the VFS checks come first (len <= 0, negative offset, EFBIG, PUNCH without KEEP)', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    expectErrno(() => g.fallocate(KEEP, 0n, 0n), 'EINVAL', 'len 0');
    expectErrno(() => g.fallocate(KEEP, -PS, PS), 'EINVAL', 'offset -4096');
    expectErrno(() => g.fallocate(KEEP_PUNCH, PS, 0x7ffffffffffff000n), 'EFBIG', 'offset+len past s_maxbytes');
    expectErrno(() => g.fallocate(PUNCH, 0n, PS), 'EOPNOTSUPP', 'punch without keep_size');
    for (const mode of [FALLOC_FL_ZERO_RANGE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE]) {
      expectErrno(() => g.fallocate(mode, 0n, PS), 'EOPNOTSUPP', `mode 0x${mode.toString(16)}`);
    }
  }),
);

kvmTestIf('C1/C2: mode 0 and extra mode bits are EOPNOTSUPP', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    expectErrno(() => g.fallocate(0, 0n, PS), 'EOPNOTSUPP');
    expectErrno(() => g.fallocate(KEEP_PUNCH | FALLOC_FL_NO_HIDE_STALE, 0n, PS), 'EOPNOTSUPP');
  }),
);

kvmTestIf('C4/C5: allocate straddling i_size is EINVAL; punch at, past or across i_size is 0', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    expectErrno(() => g.fallocate(KEEP, T - PS, 2n * PS), 'EINVAL');
    expectOk(() => g.fallocate(KEEP_PUNCH, T, PS));
    expectOk(() => g.fallocate(KEEP_PUNCH, T - PS, 100n * PS));
    expectOk(() => g.fallocate(KEEP_PUNCH, 0n, 0x7ffffffffffff000n));
  }),
);

kvmTestIf('C5: a punched page reads back as zero through the mapping; allocate exposes zeroes', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
    const m = g.mmap(0n, T, RW, MAP_SHARED);
    m.write(0n, new Uint8Array(Number(T)).fill(0xaa));
    g.fallocate(KEEP_PUNCH, PS, PS);
    assert.ok(m.read(0n, Number(PS)).every((b) => b === 0xaa));
    assert.ok(m.read(PS, Number(PS)).every((b) => b === 0));
    assert.ok(m.read(2n * PS, Number(PS)).every((b) => b === 0xaa));
    g.fallocate(KEEP, 3n * PS, PS);
    g.fallocate(KEEP_PUNCH, 3n * PS, PS);
    g.fallocate(KEEP, 3n * PS, PS);
    assert.ok(m.read(3n * PS, Number(PS)).every((b) => b === 0));
  }),
);

kvmTestIf('C7: fallocate keeps working after the VM fd is closed', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    const g = vm.createGuestMemfd({ size: T, flags: 0n });
    vm.close();
    expectOk(() => g.fallocate(KEEP, 0n, T));
    expectOk(() => g.fallocate(KEEP_PUNCH, 0n, T));
  }),
);
