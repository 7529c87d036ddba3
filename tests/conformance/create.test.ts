/**
 * KVM_CREATE_GUEST_MEMFD (KERNEL-SPEC §2.A: kvm_gmem_create / __kvm_gmem_create, guest_memfd.c;
 * selftests GM-1..3, GM-10), once for every backend: flag and size validation, ignored reserved
 * words, the properties of the new file, and a kernel built without guest_memfd.
 */
import assert from 'node:assert/strict';
import type { Kvm, Vm, VmType } from '../../src/api.js';
import { getProfile } from '../../src/model/index.js';
import { CAP, VM_TYPE } from '../../src/uapi/constants.js';
import { withKvm } from '../kvm/helpers.js';
import { type Backend, forEachBackend } from '../support/conformance.js';
import { inodeOf } from '../support/model.js';
import { expectErrno, expectOk, GMEM_INIT_SHARED, GMEM_MMAP, GMEM_SHARED, KEEP, MAP_SHARED, MiB, outcome, PS, RW, TiB } from '../support/uapi.js';

/** The VM types of this kernel among default and sw_protected (KVM_CAP_VM_TYPES). */
function vmTypes(kvm: Kvm): VmType[] {
  const mask = kvm.checkExtension(CAP.KVM_CAP_VM_TYPES) || 1;
  return (['default', 'sw_protected'] as const).filter((t) => mask & (1 << VM_TYPE[t]));
}

/** KVM_CAP_GUEST_MEMFD_FLAGS of a VM of `type`: MMAP and INIT_SHARED since 6.18, but INIT_SHARED only on VMs without private memory. */
function expectedFlags(b: Backend, type: VmType): bigint {
  if (!b.kernelIn('>=6.18')) return 0n;
  return type === 'default' ? GMEM_SHARED : GMEM_MMAP;
}

forEachBackend(
  'A1/GM-1: a single flag bit succeeds iff KVM_CAP_GUEST_MEMFD_FLAGS has it, else EINVAL; the cap is MMAP|INIT_SHARED from 6.18 (MMAP only with private memory)',
  ['guest_memfd'],
  (b) => {
    for (const type of vmTypes(b.kvm)) {
      const vm = b.kvm.createVm(type);
      const supported = BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
      assert.equal(supported, expectedFlags(b, type), `${type}: KVM_CAP_GUEST_MEMFD_FLAGS`);
      for (let bit = 0n; bit < 64n; bit++) {
        const flags = 1n << bit;
        expectErrno(() => vm.createGuestMemfd({ size: PS, flags }).close(), flags & supported ? 'ok' : 'EINVAL', `${type} flag bit ${bit}`);
      }
      expectErrno(
        () => vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED }).close(),
        supported === GMEM_SHARED ? 'ok' : 'EINVAL',
        `${type} MMAP|INIT_SHARED`,
      );
      expectOk(() => vm.createGuestMemfd({ size: PS, flags: 0n }).close(), `${type} flags 0`);
      vm.close();
    }
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('A1/A3: flags are checked before size: a bad flag fails with a good size, a good flag does not rescue a bad size', ['guest_memfd'], (b) => {
  // Both checks return EINVAL, so the order shows only as "the flag check fires on a valid size" and
  // "a valid flag does not rescue a bad size".
  const vm = b.kvm.createVm();
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 4n }), 'EINVAL');
  expectErrno(() => vm.createGuestMemfd({ size: 0n, flags: 4n }), 'EINVAL');
  expectErrno(() => vm.createGuestMemfd({ size: 1n, flags: BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) & GMEM_MMAP }), 'EINVAL');
});

forEachBackend('A2: INIT_SHARED without MMAP is accepted, but mmap of it is ENODEV', ['guest_memfd', 'guest_memfd_flags:init_shared'], (b) => {
  const g = b.kvm.createVm().createGuestMemfd({ size: PS, flags: GMEM_INIT_SHARED });
  assert.ok(g.fd > 2);
  expectErrno(() => g.mmap(0n, PS, RW, MAP_SHARED), 'ENODEV');
});

forEachBackend('A3/GM-3: size <= 0 (as loff_t) or unaligned is EINVAL, for every supported flag set', ['guest_memfd'], (b) => {
  const vm = b.kvm.createVm();
  const bad = [0n, 1n, 2048n, PS - 1n, PS + 1n, 0xfffffffffffff000n, 1n << 63n, (1n << 64n) - 1n, 0x8000000000001000n];
  for (const size of bad) expectErrno(() => vm.createGuestMemfd({ size, flags: 0n }), 'EINVAL', `size 0x${size.toString(16)}`);
  const supported = BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
  for (const flags of [0n, GMEM_MMAP, GMEM_SHARED].filter((f) => (f & supported) === f)) {
    for (let size = 1n; size < PS; size++) expectErrno(() => vm.createGuestMemfd({ size, flags }), 'EINVAL', `size ${size} flags ${flags}`);
  }
});

forEachBackend(
  'A3: there is no upper bound: 1<<62 and 0x7ffffffffffff000 succeed (memory is allocated lazily)',
  ['guest_memfd'],
  (b) => {
    const vm = b.kvm.createVm();
    for (const size of [PS, 1n << 62n, 0x7ffffffffffff000n]) {
      const g = vm.createGuestMemfd({ size, flags: 0n });
      assert.equal(g.size(), size);
      if (b.model) assert.equal(inodeOf(g).pages.size, 0, 'nothing is allocated');
      g.close();
    }
    const supported = BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
    if (supported === GMEM_SHARED) expectOk(() => vm.createGuestMemfd({ size: 0x7ffffffffffff000n, flags: GMEM_SHARED }).close(), 'MMAP|INIT_SHARED');
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('A4: reserved[] words are not checked', ['guest_memfd'], (b) => {
  const g = b.kvm.createVm().createGuestMemfd({ size: PS, flags: 0n, reserved: [1n, 2n, 3n, 4n, 5n, (1n << 64n) - 1n] });
  assert.equal(g.size(), PS);
});

forEachBackend(
  'A5: any VM type may create a guest_memfd (no VM-type check in kvm_gmem_create)',
  ['guest_memfd'],
  (b) => {
    for (const type of vmTypes(b.kvm)) {
      const vm = b.kvm.createVm(type);
      expectOk(() => vm.createGuestMemfd({ size: 2n * MiB, flags: 0n }).close(), type);
      vm.close();
    }
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3', 'next'] },
);

forEachBackend(
  'A5: KVM_CAP_GUEST_MEMFD is 1 on /dev/kvm and on VMs with private memory; on a default VM 0 before 6.18 (!kvm || has_private_mem), 1 since',
  ['guest_memfd'],
  (b) => {
    assert.equal(b.kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1, '/dev/kvm');
    assert.equal(b.kvm.createVm('default').checkExtension(CAP.KVM_CAP_GUEST_MEMFD), b.kernelIn('>=6.18') ? 1 : 0, 'default VM');
    if (vmTypes(b.kvm).includes('sw_protected')) assert.equal(b.kvm.createVm('sw_protected').checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1, 'sw_protected VM');
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('A6/GM-2/GM-10: fstat: a fresh 0100600 inode per fd, st_nlink 1, st_size = size, st_blksize 4096', ['guest_memfd'], (b) => {
  const vm = b.kvm.createVm();
  const g1 = vm.createGuestMemfd({ size: PS, flags: 0n });
  const g2 = vm.createGuestMemfd({ size: 2n * PS, flags: 0n });
  const s1 = b.kvm.files.fstat(g1.fd);
  const s2 = b.kvm.files.fstat(g2.fd);
  assert.notEqual(g1.fd, g2.fd);
  assert.notEqual(s1.ino, s2.ino);
  assert.equal(s1.size, PS);
  assert.equal(s2.size, 2n * PS);
  assert.equal(s1.mode, 0o100600);
  assert.equal(s1.nlink, 1);
  assert.equal(s1.blksize, 4096n);
  assert.equal(b.kvm.files.fstat(g1.fd).size, PS, 're-fstat of the first is still PS');
});

forEachBackend(
  'A6: st_blocks is always 0, even after allocation and after host use',
  ['guest_memfd', 'guest_memfd_flags:mmap', 'guest_memfd_flags:init_shared'],
  (b) => {
    const g = b.kvm.createVm().createGuestMemfd({ size: 16n * PS, flags: GMEM_SHARED });
    g.fallocate(KEEP, 0n, 16n * PS);
    assert.equal(b.kvm.files.fstat(g.fd).blocks, 0n, 'st_blocks stays 0 after allocation');
    const m = g.mmap(0n, 16n * PS, RW, MAP_SHARED);
    m.write(0n, new Uint8Array(8 * 4096).fill(1));
    if (b.model) assert.ok(inodeOf(g).pages.size >= 8);
    assert.equal(b.kvm.files.fstat(g.fd).blocks, 0n, 'and after host writes');
  },
);

forEachBackend('A6: a 1 TiB guest_memfd reports st_size 1 TiB', ['guest_memfd'], (b) => {
  const g = b.kvm.createVm().createGuestMemfd({ size: TiB, flags: 0n });
  assert.equal(b.kvm.files.fstat(g.fd).size, TiB);
});

/** The profiles of the lab's and this host's kernels, built without guest_memfd (CONFIG_KVM_GUEST_MEMFD off). */
const WITHOUT_GMEM = ['6.8', '6.12', '6.18', '7.3'].map((base) => ({
  label: `${base} without guest_memfd`,
  profile: { ...getProfile(base), guestMemfd: false },
}));

// A kernel built without guest_memfd (seen live: 6.18.44-fc-v1300) answers as kvm_main.c does when
// the #ifdef CONFIG_KVM_GUEST_MEMFD cases are compiled out: kvm_vm_ioctl has no
// KVM_CREATE_GUEST_MEMFD case, so kvm_arch_vm_ioctl's default answers ENOTTY, whatever the
// arguments; check_memory_region_flags never accepts KVM_MEM_GUEST_MEMFD.
forEachBackend(
  'A0: without guest_memfd: KVM_CREATE_GUEST_MEMFD is ENOTTY, the caps are 0, a GUEST_MEMFD slot is EINVAL, plain slots work',
  [],
  (b) => {
    const k = b.kvm;
    assert.equal(k.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0);
    assert.equal(k.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS), 0, 'no flags without guest_memfd');
    const vm: Vm = k.createVm();
    assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0);
    expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 0n }), 'ENOTTY');
    expectErrno(() => vm.createGuestMemfd({ size: 1n, flags: 1n << 63n }), 'ENOTTY', 'not even the arguments are looked at');
    const map = k.mmapAnonymous(2n * MiB);
    const slot = (flags: number) => () =>
      vm.setUserMemoryRegion2({ slot: 0, flags, guestPhysAddr: 0n, memorySize: 2n * MiB, userspaceAddr: map.addr, guestMemfd: 0, guestMemfdOffset: 0n });
    assert.equal(outcome(slot(4)), 'EINVAL', 'a GUEST_MEMFD slot');
    assert.equal(outcome(slot(0)), 'ok', 'a plain slot');
  },
  {
    profiles: WITHOUT_GMEM,
    kvmUnless: () =>
      withKvm((k) => k.checkExtension(CAP.KVM_CAP_GUEST_MEMFD))
        ? 'this kernel has guest_memfd (KVM_CAP_GUEST_MEMFD 1): the case is about kernels built without it'
        : undefined,
  },
);
