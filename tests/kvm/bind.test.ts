/**
 * Binding a guest_memfd to a memslot (KERNEL-SPEC §2 E, set_memory_region_test SMR-1..12): the
 * order of the checks decides the errno, and a gmem slot is immutable.
 */
import assert from 'node:assert/strict';
import { release } from 'node:os';
import type { Kvm, UserspaceMemoryRegion2 } from '../../src/api.js';
import type { KvmVm } from '../../src/kvm/index.js';
import { CAP } from '../../src/uapi/constants.js';
import { kvmTest, kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import {
  bindableVm,
  expectErrno,
  expectOk,
  GMEM_SHARED,
  kernelIn,
  MAP_SHARED,
  MEM_GUEST_MEMFD,
  MEM_LOG_DIRTY,
  MEM_READONLY,
  MiB,
  outcome,
  PS,
  RW,
  withKvm,
} from './helpers.js';

const GPA = 0xc0000000n;
const SIZE = 2n * MiB;

function region(fd: number, over: Partial<UserspaceMemoryRegion2> = {}): UserspaceMemoryRegion2 {
  return { slot: 10, flags: MEM_GUEST_MEMFD, guestPhysAddr: GPA, memorySize: SIZE, userspaceAddr: 0n, guestMemfd: fd, guestMemfdOffset: 0n, ...over };
}

const del = (vm: KvmVm, slot: number) =>
  vm.setUserMemoryRegion2({ slot, flags: 0, guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n, guestMemfd: 0, guestMemfdOffset: 0n });

kvmTest('E1/SMR-1: the v1 ioctl refuses KVM_MEM_GUEST_MEMFD (and any flag but log_dirty/readonly)', () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    for (let i = 2; i < 32; i++) {
      expectErrno(
        () => vm.setUserMemoryRegion({ slot: 0, flags: (1 << i) >>> 0, guestPhysAddr: 0n, memorySize: SIZE, userspaceAddr: 0n }),
        'EINVAL',
        `v1 flag bit ${i}`,
      );
    }
  }),
);

kvmTestIf('E2/SMR-2..4: unsupported flags, LOG_DIRTY|GUEST_MEMFD and READONLY|GUEST_MEMFD are EINVAL', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = bindableVm(kvm);
    const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
    for (let i = 3; i < 32; i++) expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { flags: (1 << i) >>> 0 })), 'EINVAL', `bit ${i}`);
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { flags: MEM_LOG_DIRTY | MEM_GUEST_MEMFD })), 'EINVAL');
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { flags: MEM_READONLY | MEM_GUEST_MEMFD })), 'EINVAL');
    // SMR-2's bit 2 with guest_memfd = 0: fd 0 is not a gmem (E7.2)
    expectErrno(() => vm.setUserMemoryRegion2(region(0)), 'EINVAL');
  }),
);

kvmTestIf('E7.1: a guest_memfd number that is not open is EBADF', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = bindableVm(kvm);
    expectErrno(() => vm.setUserMemoryRegion2(region(9999)), 'EBADF');
    expectErrno(() => vm.setUserMemoryRegion2(region(-1)), 'EBADF');
  }),
);

kvmTestIf("E7.2/SMR-5: a file that is not a gmem (memfd, VM fd, /dev/kvm) or another VM's gmem is EINVAL", ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = bindableVm(kvm);
    const other = bindableVm(kvm);
    const foreign = other.createGuestMemfd({ size: SIZE, flags: 0n });
    const memfd = kvm.files.memfdCreate('not-gmem');
    kvm.files.ftruncate(memfd, SIZE);
    for (const [what, fd] of [
      ['memfd', memfd],
      ['VM fd', vm.fd],
      ['/dev/kvm', kvm.fd],
      ["another VM's gmem", foreign.fd],
    ] as const) {
      expectErrno(() => vm.setUserMemoryRegion2(region(fd)), 'EINVAL', what);
    }
    expectOk(() => other.setUserMemoryRegion2(region(foreign.fd)), 'SMR-6: its own VM binds it');
    other.close();
    expectErrno(() => vm.setUserMemoryRegion2(region(foreign.fd, { slot: 11, guestPhysAddr: 2n * GPA })), 'EINVAL', "another (closed) VM's gmem");
  }),
);

kvmTestIf('E7.4/SMR-7: unaligned offset, offset == i_size or offset+size > i_size are EINVAL', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = bindableVm(kvm);
    const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
    for (const off of [1n, 2n, PS - 1n, PS + 1n])
      expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: off })), 'EINVAL', `offset ${off}`);
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: SIZE })), 'EINVAL', 'offset == i_size');
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: PS })), 'EINVAL', 'offset + size > i_size');
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: 1n << 63n })), 'EINVAL', 'offset >= 2^63');
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd)));
  }),
);

kvmTestIf('E7.5/E6/SMR-8..12: file-range overlap is EINVAL through 7.1 (EEXIST from 7.2), GPA overlap is EEXIST (checked first)', ['guest_memfd'], () =>
  withKvm((kvm) => {
    // kvm_gmem_bind answered EINVAL for a file range already bound; 7ea987a90585 (7.2, and 6.12.118
    // through stable) moved the check to kvm_gmem_commit_memory_region(), which answers EEXIST
    const fileOverlap = kernelIn('>=7.2 || >=6.12.118 <6.13') ? 'EEXIST' : 'EINVAL';
    const vm = bindableVm(kvm);
    const g = vm.createGuestMemfd({ size: 5n * SIZE, flags: 0n });
    const big = 2n * SIZE;
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, guestPhysAddr: GPA, memorySize: big, guestMemfdOffset: 0n })));
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 11, guestPhysAddr: 0x180000000n, memorySize: big, guestMemfdOffset: big })));
    expectOk(() => del(vm, 10));
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: big, guestMemfdOffset: SIZE })), fileOverlap, 'SMR-9 front overlap');
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: big, guestMemfdOffset: 3n * SIZE })), fileOverlap, 'SMR-10 back overlap');
    const dup = kvm.files.dup(g.fd);
    expectErrno(() => vm.setUserMemoryRegion2(region(dup, { slot: 10, memorySize: big, guestMemfdOffset: big })), fileOverlap, 'exact overlap through a dup');
    expectErrno(
      () => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, guestPhysAddr: 2n * GPA - SIZE, memorySize: big, guestMemfdOffset: 0n })),
      'EEXIST',
      'SMR-11',
    );
    expectErrno(
      () => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, guestPhysAddr: 2n * GPA + SIZE, memorySize: big, guestMemfdOffset: 0n })),
      'EEXIST',
      'SMR-12',
    );
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: big, guestMemfdOffset: 0n })), 'adjacent ranges are fine');
  }),
);

kvmTestIf('E5/E4/E3: a gmem slot is immutable; delete ignores gpa and fd but checks flags and offset', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    const g = vm.createGuestMemfd({ size: SIZE, flags: GMEM_SHARED });
    const m = g.mmap(0n, SIZE, RW, MAP_SHARED);
    const r = region(g.fd, { userspaceAddr: m.addr });
    vm.setUserMemoryRegion2(r);
    expectErrno(() => vm.setUserMemoryRegion2(r), 'EINVAL', 're-issue with identical parameters');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, guestPhysAddr: GPA + SIZE }), 'EINVAL', 'move');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, flags: 0 }), 'EINVAL', 'clearing GUEST_MEMFD (6.18.y fix)');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, flags: MEM_GUEST_MEMFD | MEM_LOG_DIRTY }), 'EINVAL', 'delete validates flags');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, guestMemfdOffset: 1n }), 'EINVAL', 'delete validates the gmem offset');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, slot: 32766 }), 'EINVAL', 'slot id beyond KVM_USER_MEM_SLOTS');
    expectOk(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, guestPhysAddr: 0x1234000n, guestMemfd: 9999 }), 'delete');
    expectErrno(() => del(vm, 10), 'EINVAL', 'deleting a slot that does not exist');
    expectOk(() => vm.setUserMemoryRegion2(r), 'the file range can be bound again');
  }),
);

kvmTestIf('E10: userspace_addr 0 is accepted for a gmem slot', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = bindableVm(kvm);
    const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { userspaceAddr: 0n })));
    // the slot is there: another slot over its GPA range is EEXIST (checked before the file range)
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 11, userspaceAddr: 0n, guestMemfdOffset: 0n })), 'EEXIST', 'the GPA range is taken');
  }),
);

kvmTestIf('I2: closing a bound gmem succeeds; its number is then EBADF for new bindings', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = bindableVm(kvm);
    const g = vm.createGuestMemfd({ size: 2n * SIZE, flags: 0n });
    vm.setUserMemoryRegion2(region(g.fd));
    const fd = g.fd;
    g.close();
    expectErrno(() => vm.setUserMemoryRegion2(region(fd, { slot: 11, guestPhysAddr: 2n * GPA })), 'EBADF');
    expectOk(() => del(vm, 10), 'the slot can still be deleted');
  }),
);

// A kernel built without guest_memfd (seen live: 6.18.44-fc-v1300) answers as kvm_main.c does when
// the #ifdef CONFIG_KVM_GUEST_MEMFD cases are compiled out, and the model's 'host' profile agrees.
kvmTest('without guest_memfd: KVM_CREATE_GUEST_MEMFD is ENOTTY, a GUEST_MEMFD slot is EINVAL, plain slots work', async (t) => {
  const has = withKvm((kvm) => kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD));
  if (has) {
    t.skip(`kernel ${release()} has guest_memfd (KVM_CAP_GUEST_MEMFD ${has}): this test is for kernels built without it`);
    return;
  }
  const { kvmBackend } = await import('../../src/backends/kvm.js');
  const { createModelKvm } = await import('../../src/model/index.js');
  const profile = (await kvmBackend()).hostProfile();
  assert.equal(profile.guestMemfd, false, 'the host profile follows KVM_CAP_GUEST_MEMFD = 0');
  const model = createModelKvm({ kernel: profile });
  try {
    for (const kvm of [model, null]) {
      const check = (k: Kvm) => {
        const vm = k.createVm();
        const gmem = outcome(() => vm.createGuestMemfd({ size: PS, flags: 0n }));
        const map = k.mmapAnonymous(2n * MiB);
        const slot = (flags: number) =>
          outcome(() =>
            vm.setUserMemoryRegion2({ slot: 0, flags, guestPhysAddr: 0n, memorySize: 2n * MiB, userspaceAddr: map.addr, guestMemfd: 0, guestMemfdOffset: 0n }),
          );
        const r = { gmem, gmemSlot: slot(MEM_GUEST_MEMFD), plainSlot: slot(0), flagsCap: k.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS) };
        map.unmap();
        vm.close();
        return r;
      };
      const got = kvm ? check(kvm) : withKvm(check);
      assert.deepEqual(got, { gmem: 'ENOTTY', gmemSlot: 'EINVAL', plainSlot: 'ok', flagsCap: 0 }, kvm ? 'model (host profile)' : '/dev/kvm');
    }
  } finally {
    model.close();
  }
});
