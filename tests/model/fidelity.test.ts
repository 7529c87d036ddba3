/**
 * Issue 14 rules, one test each, expectations from kernel source:
 *  - kvm_arch_prepare_memory_region (x86): the last gfn must not exceed kvm_mmu_max_gfn(), checked
 *    after the guest_memfd bind (__kvm_set_memory_region -> kvm_gmem_bind -> kvm_set_memslot);
 *  - hva_to_pfn: a shared fault maps writable only through a FOLL_WRITE pin (read-only host
 *    mapping -> KVM_RUN EFAULT; MAP_PRIVATE -> copy on write, the page cache never changes);
 *  - kvm_vm_ioctl_create_vcpu: kvm_arch_vcpu_create (TDX: EIO) before the duplicate-id EEXIST.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getProfile } from '../../src/model/index.js';
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/uapi/constants.js';
import { bindGmem, errnoOf, expectErrno, expectOk, GiB, hlt, MiB, PS, read, region, runProgram, setup, TiB, write } from './helpers.js';

const MB2 = 2n * MiB;

test('max gfn: a slot ending above 2^MAXPHYADDR is EINVAL on create and on move; one ending at it is fine', () => {
  const { vm } = setup('6.18');
  const m = vm.mmapAnonymous(MB2);
  // 40-bit profile: the last frame is 2^28 - 1, so [1 TiB - 2 MiB, 1 TiB) fits and 1 TiB does not
  expectOk(() => vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: TiB - MB2, memorySize: MB2, userspaceAddr: m.addr })));
  expectErrno(() => vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: TiB, memorySize: MB2, userspaceAddr: m.addr })), 'EINVAL');
  expectErrno(() => vm.setUserMemoryRegion2(region({ slot: 2, guestPhysAddr: 1n << 60n, memorySize: MB2, userspaceAddr: m.addr })), 'EINVAL');
  // KVM_MR_MOVE of slot 0 above the limit
  expectErrno(() => vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: 1n << 60n, memorySize: MB2, userspaceAddr: m.addr })), 'EINVAL');
  // a host with 52 bits takes 2^60 - 2 MiB... but not 2^60 + 2 MiB beyond 2^52
  const wide = setup({ ...getProfile('6.18'), physAddrBits: 52 }).vm;
  const w = wide.mmapAnonymous(MB2);
  expectOk(() => wide.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: (1n << 52n) - MB2, memorySize: MB2, userspaceAddr: w.addr })));
  expectErrno(() => wide.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 1n << 52n, memorySize: MB2, userspaceAddr: w.addr })), 'EINVAL');
});

test('max gfn: the guest_memfd bind comes first (bad fd: EBADF), and a failed slot leaves no binding', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const bad = { slot: 1, flags: 4, guestPhysAddr: 1n << 60n, memorySize: MB2, guestMemfd: 9999, guestMemfdOffset: 0n };
  expectErrno(() => vm.setUserMemoryRegion2(region(bad)), 'EBADF');
  const g = vm.createGuestMemfd({ size: MB2, flags: 0n });
  expectErrno(() => vm.setUserMemoryRegion2(region({ ...bad, guestMemfd: g.fd })), 'EINVAL');
  // the unbind on the error path: the same file range binds again below the limit
  expectOk(() => bindGmem(vm, 1, GiB, MB2, g));
});

test('hva_to_pfn: a guest write through a read-only host mapping is KVM_RUN EFAULT, even after a read mapped the page', () => {
  for (const kernel of ['6.12', '6.18', '7.3']) {
    const { kvm, vm } = setup(kernel);
    const fd = kvm.files.memfdCreate('ro');
    kvm.files.ftruncate(fd, MB2);
    kvm.files.pwrite(fd, new Uint8Array([0x41, 0x42, 0x43, 0x44]), 0n);
    const m = kvm.files.mmap(fd, 0n, MB2, PROT_READ, MAP_SHARED);
    vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: 0n, memorySize: MB2, userspaceAddr: m.addr }));
    const vcpu = vm.createVcpu(0);
    assert.deepEqual(runProgram(vcpu, [read(0n), hlt]).reads, [0x44434241n], kernel);
    assert.equal(
      errnoOf(() => runProgram(vcpu, [write(0n, 7n), hlt])),
      'EFAULT',
      kernel,
    );
    assert.deepEqual([...kvm.files.pread(fd, 4, 0n)], [0x41, 0x42, 0x43, 0x44], kernel);
  }
});

test('hva_to_pfn: a guest write through MAP_PRIVATE copies on write; the page cache and a shared mapping keep the old data', () => {
  const { kvm, vm } = setup('6.18');
  const fd = kvm.files.memfdCreate('cow');
  kvm.files.ftruncate(fd, MB2);
  kvm.files.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 0n);
  const priv = kvm.files.mmap(fd, 0n, MB2, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  const shared = kvm.files.mmap(fd, 0n, MB2, PROT_READ | PROT_WRITE, MAP_SHARED);
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: 0n, memorySize: MB2, userspaceAddr: priv.addr }));
  const vcpu = vm.createVcpu(0);
  // the read maps the page-cache page read-only; the write breaks COW
  assert.deepEqual(runProgram(vcpu, [read(0n), write(0n, 0x99n, 1), read(0n), hlt]).reads, [0x04030201n, 0x04030299n]);
  assert.deepEqual([...kvm.files.pread(fd, 4, 0n)], [1, 2, 3, 4]);
  assert.deepEqual([...shared.read(0n, 4)], [1, 2, 3, 4]);
  assert.deepEqual([...priv.read(0n, 4)], [0x99, 2, 3, 4]);
  // a host store to another MAP_PRIVATE page after the guest read it: the COW notifies KVM, and
  // the guest then reads the copy
  assert.deepEqual(runProgram(vcpu, [read(PS), hlt]).reads, [0n]);
  priv.write(PS, new Uint8Array([5]));
  assert.deepEqual(runProgram(vcpu, [read(PS, 1), hlt]).reads, [5n]);
  assert.deepEqual([...kvm.files.pread(fd, 1, PS)], [0]);
});

test('KVM_CREATE_VCPU: kvm_arch_vcpu_create runs before the duplicate-id check (TDX before KVM_TDX_INIT_VM: EIO, not EEXIST)', () => {
  const { vm } = setup('6.18');
  expectOk(() => vm.createVcpu(0));
  expectErrno(() => vm.createVcpu(0), 'EEXIST');
  const tdx = setup('6.18+tdx', 'tdx').vm;
  expectErrno(() => tdx.createVcpu(0), 'EIO');
  expectErrno(() => tdx.createVcpu(0), 'EIO');
});
