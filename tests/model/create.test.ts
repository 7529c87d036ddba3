/**
 * KERNEL-SPEC §2.A: KVM_CREATE_GUEST_MEMFD (kvm_gmem_create / __kvm_gmem_create, guest_memfd.c), the
 * model's side: its fd numbering, the VM reference the file holds, ioctls that reach another file
 * through a reused fd number, and the host profile. The uAPI rules themselves are checked once for
 * every backend in tests/conformance/create.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostProfile } from '../../src/model/index.js';
import { CAP } from '../../src/uapi/constants.js';
import { expectErrno, gmemFile, PS, setup } from './helpers.js';

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
