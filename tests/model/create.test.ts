/**
 * KERNEL-SPEC §2.A: KVM_CREATE_GUEST_MEMFD (kvm_gmem_create / __kvm_gmem_create, guest_memfd.c).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getProfile, hostProfile } from '../../src/model/index.js';
import { CAP } from '../../src/uapi/constants.js';
import { expectErrno, expectOk, GMEM_INIT_SHARED, GMEM_MMAP, gmemFile, inodeOf, KEEP, MiB, PS, setup, TiB } from './helpers.js';

test('A1: 6.18 default VM: flags bits 0 and 1 are accepted, every bit 2..63 gives EINVAL (GM-1)', () => {
  const { vm } = setup('6.18');
  const supported = BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
  assert.equal(supported, 3n);
  for (let b = 0n; b < 64n; b++) {
    const flags = 1n << b;
    expectErrno(() => vm.createGuestMemfd({ size: PS, flags }), flags & supported ? 'ok' : 'EINVAL', `flag bit ${b}`);
  }
});

test('A1: 6.8: every non-zero flag bit 0..63 gives EINVAL (valid_flags = 0)', () => {
  for (const type of ['default', 'sw_protected'] as const) {
    const { vm } = setup('6.8', type);
    for (let b = 0n; b < 64n; b++) expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 1n << b }), 'EINVAL', `${type} bit ${b}`);
    expectOk(() => vm.createGuestMemfd({ size: PS, flags: 0n }));
  }
});

test('A1: 6.18 sw_protected VM: supported = MMAP only, INIT_SHARED gives EINVAL (kvm_gmem_get_supported_flags)', () => {
  const { vm } = setup('6.18', 'sw_protected');
  assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS), 1);
  expectOk(() => vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP }));
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: GMEM_INIT_SHARED }), 'EINVAL');
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED }), 'EINVAL');
  for (let b = 2n; b < 64n; b++) expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 1n << b }), 'EINVAL', `bit ${b}`);
});

test('A1/A3: flags are checked before size: bad flags with a bad size still fail, and bad flags with a good size fail', () => {
  // Both checks return EINVAL, so the order shows only as "the flag check fires on a valid size" and
  // "a valid flag does not rescue a bad size".
  const { vm } = setup('6.18');
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 4n }), 'EINVAL');
  expectErrno(() => vm.createGuestMemfd({ size: 0n, flags: 4n }), 'EINVAL');
  expectErrno(() => vm.createGuestMemfd({ size: 1n, flags: GMEM_MMAP }), 'EINVAL');
});

test('A2: INIT_SHARED without MMAP is accepted, and mmap on it then gives ENODEV', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: GMEM_INIT_SHARED });
  assert.ok(g.fd > 2);
  expectErrno(() => g.mmap(0n, PS, 3), 'ENODEV');
});

test('A3: size <= 0 as loff_t or not page aligned gives EINVAL', () => {
  const { vm } = setup('6.18');
  const bad = [0n, 1n, 2048n, PS - 1n, PS + 1n, 0xfffffffffffff000n, 1n << 63n, (1n << 64n) - 1n, 0x8000000000001000n];
  for (const size of bad) expectErrno(() => vm.createGuestMemfd({ size, flags: 0n }), 'EINVAL', `size 0x${size.toString(16)}`);
});

test('A3: every size 1..PS-1 gives EINVAL, for each supported flag set (GM-3)', () => {
  const { vm } = setup('6.18');
  for (const flags of [0n, GMEM_MMAP, GMEM_MMAP | GMEM_INIT_SHARED]) {
    for (let size = 1n; size < PS; size++) expectErrno(() => vm.createGuestMemfd({ size, flags }), 'EINVAL', `size ${size} flags ${flags}`);
  }
});

test('A3: no upper bound: 1<<62 and 0x7ffffffffffff000 succeed (memory is allocated lazily)', () => {
  const { vm } = setup('6.18');
  for (const size of [1n << 62n, 0x7ffffffffffff000n]) {
    const g = vm.createGuestMemfd({ size, flags: 0n });
    assert.equal(g.size(), size);
    assert.equal(inodeOf(g).pages.size, 0);
  }
});

test('A3: no upper bound on 6.8 either', () => {
  const { vm } = setup('6.8');
  expectOk(() => vm.createGuestMemfd({ size: 0x7ffffffffffff000n, flags: 0n }));
});

test('A4: reserved[0..5] are ignored (non-zero values accepted)', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n, reserved: [1n, 2n, 3n, (1n << 64n) - 1n, 5n, 6n] });
  assert.equal(g.size(), PS);
});

test('A5: any VM type may create a guest_memfd, in 6.8 too (no VM-type check in kvm_gmem_create)', () => {
  for (const kernel of ['6.8', '6.18', 'next']) {
    for (const type of ['default', 'sw_protected'] as const) {
      const { vm } = setup(kernel, type);
      expectOk(() => vm.createGuestMemfd({ size: 2n * MiB, flags: 0n }), `${kernel} ${type}`);
    }
  }
});

test('A5: KVM_CAP_GUEST_MEMFD: 6.8 = !kvm || has_private_mem; 6.18 = 1 for every VM', () => {
  const k68 = setup('6.8');
  assert.equal(k68.kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1);
  assert.equal(k68.vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0);
  assert.equal(k68.kvm.createVm('sw_protected').checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1);
  const k618 = setup('6.18');
  assert.equal(k618.kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1);
  assert.equal(k618.vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1);
  assert.equal(k618.kvm.createVm('sw_protected').checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1);
});

test('A6: the return value is a new fd (the lowest free one, never 0), each create a distinct fd', () => {
  const { kvm, vm } = setup('6.18');
  const g1 = vm.createGuestMemfd({ size: PS, flags: 0n });
  const g2 = vm.createGuestMemfd({ size: PS, flags: 0n });
  // fds 0-2 are stdio, 3 is /dev/kvm, 4 the VM
  assert.equal(kvm.fd, 3);
  assert.equal(vm.fd, 4);
  assert.equal(g1.fd, 5);
  assert.equal(g2.fd, 6);
  g1.close();
  assert.equal(vm.createGuestMemfd({ size: PS, flags: 0n }).fd, 5);
});

test('A6: fstat: st_mode 0100600, st_nlink 1, st_size = size, st_blksize 4096, st_ino distinct per fd (GM-2, GM-10)', () => {
  const { kvm, vm } = setup('6.18');
  const g1 = vm.createGuestMemfd({ size: PS, flags: 0n });
  const g2 = vm.createGuestMemfd({ size: 2n * PS, flags: 0n });
  const s1 = kvm.files.fstat(g1.fd);
  const s2 = kvm.files.fstat(g2.fd);
  assert.equal(s1.mode, 0o100600);
  assert.equal(s1.nlink, 1);
  assert.equal(s1.size, PS);
  assert.equal(s2.size, 2n * PS);
  assert.equal(s1.blksize, 4096n);
  assert.notEqual(s1.ino, s2.ino);
  assert.equal(kvm.files.fstat(g1.fd).size, PS, 're-fstat of the first is still PS');
});

test('A6: st_blocks is always 0, even after allocation and after guest/host use', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  g.fallocate(KEEP, 0n, 16n * PS);
  const m = g.mmap(0n, 16n * PS, 3);
  m.write(0n, new Uint8Array(8 * 4096).fill(1));
  assert.ok(inodeOf(g).pages.size >= 8);
  assert.equal(kvm.files.fstat(g.fd).blocks, 0n);
});

test('A6: 1 TiB guest_memfd reports st_size 1 TiB', () => {
  const { kvm, vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: TiB, flags: 0n });
  assert.equal(kvm.files.fstat(g.fd).size, TiB);
});

test('A7: the gmem file takes a reference on the VM and drops it on release', () => {
  const { vm, k } = setup('6.18');
  const before = k.refCount;
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  assert.equal(k.refCount, before + 1);
  const f = gmemFile(g);
  assert.equal(f.vm, k);
  g.close();
  assert.equal(k.refCount, before);
});

test('§1.1: KVM_CREATE_GUEST_MEMFD issued on a /dev/kvm fd (not a VM fd) gives EINVAL (kvm_dev_ioctl default)', () => {
  const { kvm, vm } = setup('6.18');
  const vmFd = vm.fd;
  vm.close();
  // the lowest free fd is the VM's old number: it now refers to /dev/kvm
  assert.equal(kvm.files.dup(kvm.fd), vmFd);
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 0n }), 'EINVAL');
});

test('§1.1/§1.3: KVM_CHECK_EXTENSION issued on a /dev/kvm fd through a VM handle answers at system scope (kvm_dev_ioctl handles it)', () => {
  const { kvm, vm } = setup('6.8');
  const vmFd = vm.fd;
  assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0, 'on the default VM (6.8: !kvm || has_private_mem)');
  vm.close();
  assert.equal(kvm.files.dup(kvm.fd), vmFd);
  assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1, 'the same ioctl on /dev/kvm: kvm == NULL');
});

test("§1.3: KVM_CHECK_EXTENSION through the Kvm handle, whose fd number now names a VM fd, answers at that VM's scope", () => {
  const { kvm, vm } = setup('6.8');
  const kvmFd = kvm.fd;
  kvm.close();
  assert.equal(kvm.files.dup(vm.fd), kvmFd);
  assert.equal(kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0, '6.8 default VM scope: !kvm || has_private_mem = 0');
  expectErrno(() => kvm.createVm('default'), 'ENOTTY');
});

test('A0: a kernel without guest_memfd (the config off): KVM_CREATE_GUEST_MEMFD is ENOTTY, the caps are 0, a GUEST_MEMFD slot is EINVAL', () => {
  // kvm_vm_ioctl has no KVM_CREATE_GUEST_MEMFD case without CONFIG_KVM_GUEST_MEMFD (CONFIG_KVM_PRIVATE_MEM
  // before 6.18): kvm_arch_vm_ioctl's default answers ENOTTY. Seen live on 6.18.44-fc-v1300.
  for (const base of ['6.8', '6.12', '6.18', '7.3']) {
    const { kvm, vm } = setup({ ...getProfile(base), guestMemfd: false });
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0, base);
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS), 0, base);
    assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 0, base);
    expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 0n }), 'ENOTTY', base);
    // the ioctl does not exist, so not even its arguments are looked at
    expectErrno(() => vm.createGuestMemfd({ size: 1n, flags: 1n << 63n }), 'ENOTTY', base);
    const map = kvm.mmapAnonymous(2n * MiB);
    const slot = (flags: number) => () =>
      vm.setUserMemoryRegion2({ slot: 0, flags, guestPhysAddr: 0n, memorySize: 2n * MiB, userspaceAddr: map.addr, guestMemfd: 0, guestMemfdOffset: 0n });
    // check_memory_region_flags: GUEST_MEMFD is never a valid flag, on any VM type
    expectErrno(slot(4), 'EINVAL', base);
    expectOk(slot(0), base);
  }
});

test('A0: the host profile follows the probe: KVM_CAP_GUEST_MEMFD 0 means no guest_memfd', () => {
  const system = { [CAP.KVM_CAP_GUEST_MEMFD]: 0, [CAP.KVM_CAP_USER_MEMORY2]: 1, [CAP.KVM_CAP_VM_TYPES]: 1 };
  const p = hostProfile({ release: '6.18.44-fc-v1300', system });
  assert.equal(p.guestMemfd, false);
  assert.deepEqual(p.vmTypes, ['default']);
  const { vm } = setup(p);
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 0n }), 'ENOTTY');
  const withGmem = hostProfile({ release: '6.12.118', system: { ...system, [CAP.KVM_CAP_GUEST_MEMFD]: 1, [CAP.KVM_CAP_VM_TYPES]: 0b11 } });
  assert.equal(withGmem.guestMemfd, true);
  assert.deepEqual(withGmem.vmTypes, ['default', 'sw_protected']);
});
