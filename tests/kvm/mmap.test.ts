/**
 * mmap of a guest_memfd (KERNEL-SPEC §2 D, selftests GM-5..7, GM-15): which mappings the kernel
 * allows, and what the data does through them.
 */
import assert from 'node:assert/strict';
import { MADV, MAP_SHARED_VALIDATE, PROT_EXEC, PROT_READ } from '../../src/uapi/constants.js';
import { kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import { expectErrno, expectOk, GMEM_MMAP, GMEM_SHARED, MAP_PRIVATE, MAP_SHARED, MiB, PS, RW, withKvm } from './helpers.js';

const T = 4n * PS;

kvmTestIf('D2/GM-5: without GUEST_MEMFD_FLAG_MMAP every mmap is ENODEV', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: 0n });
    expectErrno(() => g.mmap(0n, PS, RW, MAP_SHARED), 'ENODEV');
    expectErrno(() => g.mmap(0n, T, RW, MAP_SHARED), 'ENODEV');
    expectErrno(() => g.mmap(0n, PS, RW, MAP_PRIVATE), 'ENODEV');
  }),
);

kvmTestIf('D3/GM-6: MAP_PRIVATE is EINVAL (any prot); MAP_SHARED and MAP_SHARED_VALIDATE work', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
    expectErrno(() => g.mmap(0n, T, RW, MAP_PRIVATE), 'EINVAL');
    expectErrno(() => g.mmap(0n, T, 0, MAP_PRIVATE), 'EINVAL');
    g.mmap(0n, T, RW, MAP_SHARED).unmap();
    g.mmap(0n, T, PROT_READ, MAP_SHARED_VALIDATE).unmap();
  }),
);

kvmTestIf('D4: a mapping may be larger than the file or start past its end', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
    expectOk(() => g.mmap(0n, 4n * T, RW, MAP_SHARED));
    expectOk(() => g.mmap(2n * T, T, RW, MAP_SHARED));
  }),
);

kvmTestIf('D7: PROT_EXEC is EPERM (noexec mount); an unaligned offset is EINVAL', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
    expectErrno(() => g.mmap(0n, T, RW | PROT_EXEC, MAP_SHARED), 'EPERM');
    expectErrno(() => g.mmap(1n, PS, RW, MAP_SHARED), 'EINVAL');
  }),
);

kvmTestIf('GM-7/D6: data persists in the file, a second mapping sees it, punch zeroes both', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_SHARED });
    const a = g.mmap(0n, T, RW, MAP_SHARED);
    a.write(0n, new Uint8Array(Number(T)).fill(0xaa));
    assert.ok(a.read(0n, Number(T)).every((b) => b === 0xaa));
    a.madvise(0n, T, MADV.dontneed);
    const b = g.mmap(0n, T, RW, MAP_SHARED);
    assert.ok(
      b.read(0n, Number(T)).every((x) => x === 0xaa),
      'page cache survives MADV_DONTNEED and is shared',
    );
    g.fallocate(3, 0n, PS);
    assert.ok(a.read(0n, Number(PS)).every((x) => x === 0));
    assert.ok(b.read(0n, Number(PS)).every((x) => x === 0));
    assert.ok(b.read(PS, Number(T - PS)).every((x) => x === 0xaa));
    a.write(0n, new Uint8Array(Number(PS)).fill(0xaa));
    assert.ok(b.read(0n, Number(T)).every((x) => x === 0xaa));
  }),
);

kvmTestIf('D7/GM-15: madvise on a gmem mapping (HUGEPAGE 0, COLLAPSE EINVAL, REMOVE punches)', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: 2n * MiB, flags: GMEM_SHARED });
    const m = g.mmap(0n, 2n * MiB, RW, MAP_SHARED);
    m.write(0n, new Uint8Array(Number(2n * PS)).fill(5));
    expectOk(() => m.madvise(0n, 2n * MiB, MADV.hugepage));
    expectErrno(() => m.madvise(0n, 2n * MiB, MADV.collapse), 'EINVAL');
    expectOk(() => m.madvise(0n, PS, MADV.remove));
    assert.equal(m.read(0n, 1)[0], 0);
    assert.equal(m.read(PS, 1)[0], 5);
    expectErrno(() => m.madvise(1n, PS, MADV.dontneed), 'EINVAL');
    expectErrno(() => m.madvise(0n, 4n * MiB, MADV.dontneed), 'ENOMEM', 'past the mapping: refused without touching anything else');
  }),
);

kvmTestIf('mmap of a gmem created with MMAP only succeeds (faults come later: see host-fault tests)', ['guest_memfd', 'guest_memfd_flags:mmap'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: T, flags: GMEM_MMAP });
    expectOk(() => g.mmap(0n, T, RW, MAP_SHARED));
  }),
);
