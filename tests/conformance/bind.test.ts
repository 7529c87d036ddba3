/**
 * Binding a guest_memfd to a memslot: KVM_SET_USER_MEMORY_REGION{,2} with KVM_MEM_GUEST_MEMFD
 * (KERNEL-SPEC §2 E: check_memory_region_flags, __kvm_set_memory_region, kvm_check_memslot_overlap,
 * kvm_gmem_bind; set_memory_region_test SMR-1..12), once for every backend: the order of the checks
 * decides the errno, and a gmem slot is immutable.
 */
import assert from 'node:assert/strict';
import type { UserspaceMemoryRegion2, Vm, VmType } from '../../src/api.js';
import { CAP, VM_TYPE } from '../../src/uapi/constants.js';
import { type Backend, forEachBackend } from '../support/conformance.js';
import { gmemFile } from '../support/model.js';
import { expectErrno, expectOk, MEM_GUEST_MEMFD, MEM_LOG_DIRTY, MEM_READONLY, MiB, outcome, PS } from '../support/uapi.js';

const GPA = 0xc0000000n;
const SIZE = 2n * MiB;

function region(fd: number, over: Partial<UserspaceMemoryRegion2> = {}): UserspaceMemoryRegion2 {
  return { slot: 10, flags: MEM_GUEST_MEMFD, guestPhysAddr: GPA, memorySize: SIZE, userspaceAddr: 0n, guestMemfd: fd, guestMemfdOffset: 0n, ...over };
}

const del = (vm: Vm, slot: number) =>
  vm.setUserMemoryRegion2({ slot, flags: 0, guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n, guestMemfd: 0, guestMemfdOffset: 0n });

function vmTypes(b: Backend): VmType[] {
  const mask = b.kvm.checkExtension(CAP.KVM_CAP_VM_TYPES) || 1;
  return (['default', 'sw_protected'] as const).filter((t) => mask & (1 << VM_TYPE[t]));
}

/** The model's count of bindings of a guest_memfd (the kernel does not show it). */
function bindings(b: Backend, g: { fd: number }): number | undefined {
  return b.model ? gmemFile(g as never).bindingCount : undefined;
}

forEachBackend('E1/SMR-1: the v1 ioctl refuses KVM_MEM_GUEST_MEMFD and any flag but LOG_DIRTY_PAGES/READONLY', [], (b) => {
  for (const type of vmTypes(b)) {
    const vm = b.kvm.createVm(type);
    const mem = vm.mmapAnonymous(4n * SIZE);
    for (let i = 2; i < 32; i++) {
      expectErrno(
        () => vm.setUserMemoryRegion({ slot: 0, flags: (1 << i) >>> 0, guestPhysAddr: 0n, memorySize: SIZE, userspaceAddr: mem.addr }),
        'EINVAL',
        `${type} v1 flag bit ${i}`,
      );
    }
    expectOk(
      () => vm.setUserMemoryRegion({ slot: 0, flags: MEM_LOG_DIRTY, guestPhysAddr: 0n, memorySize: SIZE, userspaceAddr: mem.addr }),
      `${type} LOG_DIRTY`,
    );
    expectOk(
      () => vm.setUserMemoryRegion({ slot: 1, flags: MEM_READONLY, guestPhysAddr: 2n * SIZE, memorySize: SIZE, userspaceAddr: mem.addr + 2n * SIZE }),
      `${type} READONLY`,
    );
    vm.close();
  }
});

forEachBackend('E1: the v1 ioctl refuses GUEST_MEMFD even for a delete of an existing gmem slot; v2 deletes it', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
  vm.setUserMemoryRegion2(region(g.fd));
  expectErrno(() => vm.setUserMemoryRegion({ slot: 10, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n }), 'EINVAL');
  expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { memorySize: 0n })));
});

forEachBackend(
  'E2: KVM_MEM_GUEST_MEMFD is valid on every VM type from 6.18; before, only on VMs with private memory (checked before the fd: EINVAL, not EBADF)',
  ['guest_memfd'],
  (b) => {
    for (const type of vmTypes(b)) {
      const vm = b.kvm.createVm(type);
      const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
      const want = type === 'default' && !b.kernelIn('>=6.18') ? 'EINVAL' : 'ok';
      expectErrno(() => vm.setUserMemoryRegion2(region(g.fd)), want, type);
      if (want === 'EINVAL') expectErrno(() => vm.setUserMemoryRegion2(region(9999, { slot: 0 })), 'EINVAL', `${type}: the flag check before the fd lookup`);
      vm.close();
    }
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3', 'next'] },
);

forEachBackend(
  'E2/SMR-2..4: v2 flag bits 3..31, LOG_DIRTY|GUEST_MEMFD and READONLY|GUEST_MEMFD are EINVAL, before the bind (a bad fd changes nothing)',
  ['guest_memfd'],
  (b) => {
    assert.equal(b.kvm.checkExtension(CAP.KVM_CAP_USER_MEMORY2), 1);
    const vm = b.bindableVm();
    const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
    for (let i = 3; i < 32; i++) expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { flags: (1 << i) >>> 0 })), 'EINVAL', `bit ${i}`);
    for (const extra of [MEM_LOG_DIRTY, MEM_READONLY]) {
      expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { flags: extra | MEM_GUEST_MEMFD })), 'EINVAL', `flag ${extra}`);
      expectErrno(() => vm.setUserMemoryRegion2(region(9999, { flags: extra | MEM_GUEST_MEMFD })), 'EINVAL', `flag ${extra}, bad fd`);
    }
    if (b.model) assert.equal(bindings(b, g), 0, 'no binding was made');
    // SMR-2's bit 2 with guest_memfd = 0: fd 0 is not a gmem (E7.2)
    expectErrno(() => vm.setUserMemoryRegion2(region(0)), 'EINVAL');
    // on every VM, whether or not it may bind a guest_memfd
    const plain = b.kvm.createVm('default');
    for (let i = 2; i < 32; i++) expectErrno(() => plain.setUserMemoryRegion2(region(0, { flags: (1 << i) >>> 0 })), 'EINVAL', `default VM bit ${i}`);
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('E7.1: a guest_memfd number that is not open (9999, -1, 0xffffffff, a closed gmem) is EBADF', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
  const closed = g.fd;
  g.close();
  for (const fd of [9999, -1, 0xffffffff, closed]) expectErrno(() => vm.setUserMemoryRegion2(region(fd)), 'EBADF', `fd ${fd}`);
});

forEachBackend(
  "E7.2/E7.3/SMR-5/6: a file that is not a gmem (stdin, memfd, VM fd, vCPU fd, /dev/kvm) or another VM's gmem (even after that VM is closed) is EINVAL; its own VM binds it",
  ['guest_memfd'],
  (b) => {
    const kvm = b.kvm;
    const vm = b.bindableVm();
    const other = b.bindableVm();
    const foreign = other.createGuestMemfd({ size: SIZE, flags: 0n });
    const memfd = kvm.files.memfdCreate('not-gmem');
    kvm.files.ftruncate(memfd, SIZE);
    const vcpu = vm.createVcpu(0);
    for (const [what, fd] of [
      ['stdin', 0],
      ['memfd', memfd],
      ['VM fd', vm.fd],
      ['vCPU fd', vcpu.fd],
      ['/dev/kvm', kvm.fd],
      ["another VM's gmem", foreign.fd],
    ] as const) {
      expectErrno(() => vm.setUserMemoryRegion2(region(fd)), 'EINVAL', what);
    }
    expectOk(() => other.setUserMemoryRegion2(region(foreign.fd)), 'SMR-6: its own VM binds it');
    other.close();
    expectErrno(() => vm.setUserMemoryRegion2(region(foreign.fd, { slot: 11, guestPhysAddr: 2n * GPA })), 'EINVAL', "another (closed) VM's gmem");
  },
);

forEachBackend('E7.4/SMR-7: an unaligned offset, offset >= 2^63, offset == i_size or offset+size > i_size is EINVAL', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
  for (let off = 1n; off < PS; off++) expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: off })), 'EINVAL', `offset ${off}`);
  expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: PS + 1n })), 'EINVAL', `offset ${PS + 1n}`);
  expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: SIZE })), 'EINVAL', 'offset == i_size');
  expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: PS })), 'EINVAL', 'offset + size > i_size');
  expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: 0n, memorySize: SIZE + PS })), 'EINVAL', 'size > i_size');
  expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: 1n << 63n })), 'EINVAL', 'offset >= 2^63');
  expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { guestMemfdOffset: SIZE - PS, memorySize: PS })), 'the last page');
  expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 11, guestPhysAddr: 2n * GPA, memorySize: SIZE - PS })), 'offset 0');
});

forEachBackend(
  'E7.5/E6/SMR-8..12: file-range overlap is EINVAL through 7.1 (EEXIST from 7.2 and 6.12.118), GPA overlap is EEXIST (checked before the bind)',
  ['guest_memfd'],
  (b) => {
    // kvm_gmem_bind answered EINVAL for a file range already bound; 7ea987a90585 (7.2, and 6.12.118
    // through stable) moved the check to kvm_gmem_commit_memory_region(), which answers EEXIST
    const fileOverlap = b.kernelIn('>=7.2 || >=6.12.118 <6.13') ? 'EEXIST' : 'EINVAL';
    const vm = b.bindableVm();
    const g = vm.createGuestMemfd({ size: 5n * SIZE, flags: 0n });
    const big = 2n * SIZE;
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, guestPhysAddr: GPA, memorySize: big, guestMemfdOffset: 0n })));
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 11, guestPhysAddr: 0x180000000n, memorySize: big, guestMemfdOffset: big })));
    expectOk(() => del(vm, 10));
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: big, guestMemfdOffset: SIZE })), fileOverlap, 'SMR-9 front overlap');
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: big, guestMemfdOffset: 3n * SIZE })), fileOverlap, 'SMR-10 back overlap');
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: SIZE, guestMemfdOffset: big + SIZE })), fileOverlap, 'inside');
    const dup = b.kvm.files.dup(g.fd);
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
    // the GPA check comes before kvm_gmem_bind: a bad fd, a foreign gmem or a bound range are all EEXIST
    const foreign = b.bindableVm().createGuestMemfd({ size: big, flags: 0n });
    const over = { slot: 10, guestPhysAddr: 0x180000000n + SIZE, memorySize: big };
    expectErrno(() => vm.setUserMemoryRegion2(region(9999, over)), 'EEXIST', 'GPA overlap, bad fd');
    expectErrno(() => vm.setUserMemoryRegion2(region(foreign.fd, over)), 'EEXIST', "GPA overlap, another VM's gmem");
    expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { ...over, guestMemfdOffset: big })), 'EEXIST', 'GPA overlap, bound range');
    expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 10, memorySize: big, guestMemfdOffset: 0n })), 'adjacent ranges are fine');
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3', 'next'] },
);

forEachBackend(
  'E7 order: the size and other-VM checks come before the file-range overlap check (EINVAL, not EEXIST)',
  ['guest_memfd'],
  (b) => {
    const vm = b.bindableVm();
    const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
    vm.setUserMemoryRegion2(region(g.fd, { slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS }));
    expectErrno(
      () => vm.setUserMemoryRegion2(region(g.fd, { slot: 2, guestPhysAddr: 0x200000n, memorySize: 4n * PS, guestMemfdOffset: 2n * PS })),
      'EINVAL',
      'offset + size > i_size, overlapping the binding',
    );
    const vm2 = b.bindableVm();
    expectErrno(
      () => vm2.setUserMemoryRegion2(region(g.fd, { slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS })),
      'EINVAL',
      'another VM, the same range',
    );
  },
  { profiles: ['6.12', '6.18', '7.3', 'next'] },
);

forEachBackend(
  'E5/E4: a gmem slot is immutable (re-issue, move, clearing or adding GUEST_MEMFD); delete ignores gpa and fd but checks flags and offset',
  ['guest_memfd'],
  (b) => {
    const vm = b.bindableVm();
    const k = b.model?.vms.at(-1);
    const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
    const r = region(g.fd);
    vm.setUserMemoryRegion2(r);
    expectErrno(() => vm.setUserMemoryRegion2(r), 'EINVAL', 're-issue with identical parameters');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, guestPhysAddr: GPA + SIZE }), 'EINVAL', 'move');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, guestMemfd: 9999 }), 'EINVAL', 'immutability is checked before the bind');
    const plain = vm.mmapAnonymous(SIZE);
    vm.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0x100000000n, memorySize: SIZE, userspaceAddr: plain.addr });
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, guestPhysAddr: 0x100000000n }), 'EINVAL', 'a move onto another slot: immutable before EEXIST');
    // "KVM: Disallow toggling KVM_MEM_GUEST_MEMFD on an existing memslot" (Dec 2025, Cc stable): in
    // 6.19, 6.18.44 (seen live) and 6.12.117; before it, clearing the flag was a flags-only change
    if (b.kernelIn('>=6.18.44 || >=6.12.117 <6.13')) {
      expectErrno(() => vm.setUserMemoryRegion2({ ...r, flags: 0 }), 'EINVAL', 'clearing GUEST_MEMFD (v2)');
      expectErrno(
        () => vm.setUserMemoryRegion({ slot: 10, flags: 0, guestPhysAddr: GPA, memorySize: SIZE, userspaceAddr: 0n }),
        'EINVAL',
        'clearing GUEST_MEMFD (v1)',
      );
    }
    expectErrno(
      () => vm.setUserMemoryRegion2(region(g.fd, { slot: 1, guestPhysAddr: 0x100000000n, userspaceAddr: plain.addr })),
      'EINVAL',
      'adding GUEST_MEMFD to an ordinary slot',
    );
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, flags: MEM_GUEST_MEMFD | MEM_LOG_DIRTY }), 'EINVAL', 'delete validates flags');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, flags: 1 << 5 }), 'EINVAL', 'delete validates unknown flags');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, guestMemfdOffset: 1n }), 'EINVAL', 'delete validates the gmem offset');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, slot: 32766 }), 'EINVAL', 'slot id beyond KVM_USER_MEM_SLOTS');
    if (k) assert.equal(k.memslots.all().find((s) => s.id === 10)?.baseGfn, Number(GPA / PS), 'the failed calls left the slot where it was');
    if (b.model) assert.equal(bindings(b, g), 1, 'the failed calls left the binding');
    expectOk(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, guestPhysAddr: 0x1234000n, userspaceAddr: 0x7f0000000000n, guestMemfd: 9999 }), 'delete');
    if (b.model) assert.equal(bindings(b, g), 0, 'delete unbinds');
    expectErrno(() => del(vm, 10), 'EINVAL', 'deleting a slot that does not exist');
    expectErrno(() => vm.setUserMemoryRegion2({ ...r, memorySize: 0n, guestMemfd: 9999 }), 'EINVAL', 'deleting it again, with the flag and a bad fd');
    expectOk(() => vm.setUserMemoryRegion2(r), 'the file range and the GPA can be bound again');
  },
);

forEachBackend('E3.3/E10: userspace_addr 0 is accepted for a gmem slot, MMAP or not; a slot keeps the userspace_addr it was given', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const k = b.model?.vms.at(-1);
  const g = vm.createGuestMemfd({ size: SIZE, flags: 0n });
  expectOk(() => vm.setUserMemoryRegion2(region(g.fd, { userspaceAddr: 0n })));
  // the slot is there: another slot over its GPA range is EEXIST (checked before the file range)
  expectErrno(() => vm.setUserMemoryRegion2(region(g.fd, { slot: 11, userspaceAddr: 0n, guestMemfdOffset: 0n })), 'EEXIST', 'the GPA range is taken');
  const mmapFlags = BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
  if (mmapFlags) {
    const m = vm.createGuestMemfd({ size: SIZE, flags: mmapFlags });
    expectOk(() => vm.setUserMemoryRegion2(region(m.fd, { slot: 11, guestPhysAddr: 2n * GPA, userspaceAddr: 0n })), `flags ${mmapFlags}`);
  }
  const host = vm.mmapAnonymous(SIZE);
  const c = vm.createGuestMemfd({ size: SIZE, flags: 0n });
  expectOk(() => vm.setUserMemoryRegion2(region(c.fd, { slot: 12, guestPhysAddr: 3n * GPA, userspaceAddr: host.addr })));
  if (k) assert.equal(k.memslots.all().find((s) => s.id === 12)?.userspaceAddr, host.addr);
});

forEachBackend('I2: closing a bound gmem succeeds; its number is then EBADF for new bindings; the slot can still be deleted', ['guest_memfd'], (b) => {
  const vm = b.bindableVm();
  const g = vm.createGuestMemfd({ size: 2n * SIZE, flags: 0n });
  vm.setUserMemoryRegion2(region(g.fd));
  const fd = g.fd;
  assert.equal(
    outcome(() => g.close()),
    'ok',
  );
  expectErrno(() => vm.setUserMemoryRegion2(region(fd, { slot: 11, guestPhysAddr: 2n * GPA })), 'EBADF');
  expectErrno(() => vm.setUserMemoryRegion2(region(fd)), 'EINVAL', 'the slot is still there (immutable)');
  expectOk(() => del(vm, 10), 'the slot can still be deleted');
  expectErrno(() => del(vm, 10), 'EINVAL', 'and then it is gone');
});
