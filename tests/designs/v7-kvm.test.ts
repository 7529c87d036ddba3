/**
 * The KVM side of v7: private memslots (09/14, 13/14), the private/shared xarray and its ioctls
 * (11/14), the fault path and its exit (10/14, 12/14), and the memfile notifier's invalidation
 * (03/14, 13/14), through the model's objects.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KVM_MEMORY_EXIT_FLAG_PRIVATE_V7 } from '../../src/designs/v7/constants.js';
import type { V7KvmVm, V7Vm } from '../../src/designs/v7/vm.js';
import { checkInvariants } from '../../src/model/invariants.js';
import { CAP } from '../../src/uapi/constants.js';
import { bindPrivate, errnoOf, KEEP, MiB2, PRIVATE, PS, PUNCH, privateFd, setupV7 } from './helpers.js';

const region = (s: ReturnType<typeof setupV7>, o: Partial<Parameters<V7Vm['setUserMemoryRegionExt']>[0]>) => () =>
  s.vm.setUserMemoryRegionExt({
    slot: 0,
    flags: PRIVATE,
    guestPhysAddr: 0n,
    memorySize: MiB2,
    userspaceAddr: s.shared.addr,
    privateFd: 0,
    privateOffset: 0n,
    ...o,
  });

test('13/14: KVM_MEM_PRIVATE only where kvm_arch_private_mem_supported(); fget failure EINVAL; non-shmem EOPNOTSUPP', () => {
  const d = setupV7('default');
  const fd = privateFd(d.kvm);
  assert.equal(errnoOf(region(d, { privateFd: fd })), 'EINVAL');
  const s = setupV7();
  const p = privateFd(s.kvm);
  assert.equal(errnoOf(region(s, { privateFd: 9999 })), 'EINVAL');
  assert.equal(errnoOf(region(s, { privateFd: s.vm.fd })), 'EOPNOTSUPP');
  assert.equal(errnoOf(region(s, { privateFd: p, privateOffset: 0x800n })), 'EINVAL');
  assert.equal(errnoOf(region(s, { privateFd: p, privateOffset: (1n << 64n) - PS })), 'EINVAL');
  assert.equal(errnoOf(region(s, { privateFd: p })), 'ok');
  // private slots are immutable: identical, flags-only and move are all EINVAL
  assert.equal(errnoOf(region(s, { privateFd: p })), 'EINVAL');
  assert.equal(errnoOf(region(s, { privateFd: p, flags: PRIVATE | 1 })), 'EINVAL');
  assert.equal(errnoOf(region(s, { privateFd: p, guestPhysAddr: 1n << 30n })), 'EINVAL');
  // what upstream later forbade, v7 accepts: dirty logging, READONLY, aliasing one file range
  assert.equal(errnoOf(region(s, { slot: 1, privateFd: p, flags: PRIVATE | 1, guestPhysAddr: MiB2 })), 'ok');
  assert.equal(errnoOf(region(s, { slot: 2, privateFd: p, flags: PRIVATE | 2, guestPhysAddr: 2n * MiB2 })), 'ok');
  assert.equal(checkInvariants(s.kvm).length, 0);
});

test('09/14: the slot holds its own file reference: the fd can be closed and faults still find the pages', () => {
  const s = setupV7();
  const p = privateFd(s.kvm);
  bindPrivate(s, p);
  s.kvm.files.close(p);
  s.vm.memoryEncryptRegRegion({ addr: 0n, size: PS });
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'write', gpa: 0n, width: 8, value: 5n }, { op: 'read', gpa: 0n, width: 8 }, { op: 'hlt' }]);
  assert.deepEqual(v.run().reads, [5n]);
  assert.equal(checkInvariants(s.kvm).length, 0);
});

test('v7 has none of the later uAPI: REGION2, guest_memfd, memory attributes are ENOTTY; no capability announces it', () => {
  const s = setupV7();
  assert.equal(
    errnoOf(() => s.vm.createGuestMemfd({ size: MiB2, flags: 0n })),
    'ENOTTY',
  );
  assert.equal(
    errnoOf(() => s.vm.setMemoryAttributes({ address: 0n, size: PS, attributes: 8n, flags: 0n })),
    'ENOTTY',
  );
  assert.equal(
    errnoOf(() =>
      s.vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: PS, userspaceAddr: s.shared.addr, guestMemfd: 0, guestMemfdOffset: 0n }),
    ),
    'ENOTTY',
  );
  for (const cap of [CAP.KVM_CAP_GUEST_MEMFD, CAP.KVM_CAP_USER_MEMORY2, CAP.KVM_CAP_MEMORY_ATTRIBUTES, CAP.KVM_CAP_MEMORY_FAULT_INFO, CAP.KVM_CAP_VM_TYPES]) {
    assert.equal(s.kvm.checkExtension(cap), 0, `cap ${cap}`);
    assert.equal(s.vm.checkExtension(cap), 0, `vm cap ${cap}`);
  }
});

test('11/14: REG/UNREG_REGION validation, no memslot needed, ENOTTY without private memory, zaps even when nothing changes', () => {
  const s = setupV7();
  const reg = (addr: bigint, size: bigint) => () => s.vm.memoryEncryptRegRegion({ addr, size });
  assert.equal(errnoOf(reg(0n, 0n)), 'EINVAL');
  assert.equal(errnoOf(reg((1n << 64n) - PS, PS)), 'EINVAL');
  assert.equal(errnoOf(reg(0x800n, PS)), 'EINVAL');
  assert.equal(errnoOf(reg(0n, 0x800n)), 'EINVAL');
  assert.equal(errnoOf(reg(1n << 40n, PS)), 'ok');
  assert.equal(s.kvmVm.attributes.isPrivate(2 ** 28), true);
  const d = setupV7('default');
  assert.equal(
    errnoOf(() => d.vm.memoryEncryptRegRegion({ addr: 0n, size: PS })),
    'ENOTTY',
  );
  // a private mapping, then REG_REGION over the same (already private) range: zapped anyway
  const p = privateFd(s.kvm);
  bindPrivate(s, p);
  s.vm.memoryEncryptRegRegion({ addr: 0n, size: PS });
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'read', gpa: 0n, width: 1 }, { op: 'hlt' }]);
  v.run();
  assert.equal(s.kvmVm.mmu.sptes.size, 1);
  s.vm.memoryEncryptRegRegion({ addr: 0n, size: PS });
  assert.equal(s.kvmVm.mmu.sptes.size, 0);
});

test('10/14, 12/14: a mismatch on a private slot is exit 37 with KVM_RUN returning 0 and flags bit 0; only private slots check', () => {
  const s = setupV7('tdx');
  const p = privateFd(s.kvm);
  bindPrivate(s, p);
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'read', gpa: PS, width: 8 }, { op: 'hlt' }]);
  const e = v.run();
  assert.equal(e.reason, 'memory_fault');
  assert.equal(e.errno, undefined, 'KVM_RUN returned 0');
  assert.deepEqual(e.memoryFault, { flags: KVM_MEMORY_EXIT_FLAG_PRIVATE_V7, gpa: PS, size: PS });
  s.vm.memoryEncryptRegRegion({ addr: PS, size: PS });
  assert.equal(v.run().reason, 'hlt');
  // shared access to the now-private GPA: flags 0
  v.load([{ op: 'read', gpa: PS, width: 8, shared: true }, { op: 'hlt' }]);
  assert.deepEqual(v.run().memoryFault, { flags: 0n, gpa: PS, size: PS });
  // no slot at all: emulated MMIO, even for a private access
  v.load([{ op: 'read', gpa: 1n << 32n, width: 4 }, { op: 'hlt' }]);
  assert.equal(v.run().reason, 'mmio');
  // a slot without KVM_MEM_PRIVATE never compares privacy: the private access goes to userspace_addr
  const other = s.vm.mmapAnonymous(PS);
  other.write(0n, new Uint8Array([0x42]));
  s.vm.setUserMemoryRegionExt({ slot: 1, flags: 0, guestPhysAddr: 1n << 31n, memorySize: PS, userspaceAddr: other.addr, privateFd: 0, privateOffset: 0n });
  v.load([{ op: 'read', gpa: 1n << 31n, width: 1 }, { op: 'hlt' }]);
  assert.deepEqual(v.run().reads, [0x42n]);
});

test('12/14: a shared page that cannot be had is KVM_RUN -EFAULT with no exit information', () => {
  const s = setupV7();
  const p = privateFd(s.kvm);
  s.vm.setUserMemoryRegionExt({ slot: 0, flags: PRIVATE, guestPhysAddr: 0n, memorySize: MiB2, userspaceAddr: 0x10000000n, privateFd: p, privateOffset: 0n });
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'read', gpa: 0n, width: 1 }, { op: 'hlt' }]);
  assert.equal(
    errnoOf(() => v.run()),
    'EFAULT',
  );
});

test('04/14: get_pfn allocates on demand, past i_size too; 13/14: punch invalidates the slot GFNs', () => {
  const s = setupV7();
  const p = privateFd(s.kvm, 0n);
  bindPrivate(s, p);
  s.vm.memoryEncryptRegRegion({ addr: 0n, size: MiB2 });
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'write', gpa: 2n * PS, width: 8, value: 9n }, { op: 'hlt' }]);
  v.run();
  assert.equal(s.kvm.files.fstat(p).size, 0n);
  assert.equal(s.kvm.files.fstat(p).blocks, 8n);
  assert.ok(s.kvmVm.mmu.sptes.has(2));
  s.kvm.files.fallocate(p, KEEP | PUNCH, 2n * PS, PS);
  assert.ok(!s.kvmVm.mmu.sptes.has(2));
  assert.equal(checkInvariants(s.kvm).length, 0);
});

test('13/14 kvm_memfile_notifier_invalidate: a file range below private_offset wraps and zaps every GFN above base_gfn', () => {
  const s = setupV7();
  const p = privateFd(s.kvm);
  // slot 0 maps the file from page 16 at GPA 0; slot 1 maps the file from page 0 at GPA 2 MiB
  bindPrivate(s, p, 0, 0n, 16n * PS, MiB2 - 16n * PS);
  bindPrivate(s, p, 1, MiB2, 0n, PS);
  // an unrelated slot with a private page mapped
  const q = privateFd(s.kvm);
  bindPrivate(s, q, 2, 1n << 30n, 0n, PS);
  s.vm.memoryEncryptRegRegion({ addr: 0n, size: (1n << 30n) + PS });
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'write', gpa: MiB2, width: 1, value: 1n }, { op: 'write', gpa: 1n << 30n, width: 1, value: 2n }, { op: 'hlt' }]);
  v.run();
  const unrelated = 2 ** 18;
  assert.ok((s.kvmVm as V7KvmVm).mmu.sptes.has(unrelated));
  // punching file page 0 calls slot 0's notifier with [0, 1): end - base_pgoff wraps past 2^64
  s.kvm.files.fallocate(p, KEEP | PUNCH, 0n, PS);
  assert.ok(!s.kvmVm.mmu.sptes.has(unrelated), 'the over-zap reached a slot of another file');
});

test('TDX (model): a host store to a page the TD owns is a machine check; accept zeroes; removal clears', () => {
  const s = setupV7('tdx');
  const p = privateFd(s.kvm, MiB2, false);
  const m = s.kvm.files.mmap(p, 0n, MiB2, 3, 1);
  m.write(0n, new Uint8Array([1, 2, 3]));
  bindPrivate(s, p);
  s.vm.memoryEncryptRegRegion({ addr: 0n, size: PS });
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'read', gpa: 0n, width: 4 }, { op: 'write', gpa: 0n, width: 4, value: 0x11223344n }, { op: 'hlt' }]);
  assert.deepEqual(v.run().reads, [0n], 'accepted zeroed, not what the host wrote');
  assert.equal(
    errnoOf(() => m.write(0n, new Uint8Array([9]))),
    'MCE',
  );
  assert.deepEqual([...m.read(0n, 4)], [0, 0, 0, 0], 'non-TD reads see zeros');
  s.vm.memoryEncryptUnregRegion({ addr: 0n, size: PS });
  assert.deepEqual([...m.read(0n, 4)], [0, 0, 0, 0], 'removed from the TD: cleared');
  m.write(0n, new Uint8Array([9]));
});

test('a v7 vCPU holds its VM: KVM_RUN works after the VM fd is closed, and the TD counts as launched', () => {
  const s = setupV7('tdx');
  const v = s.vm.createVcpu(0);
  v.load([{ op: 'hlt' }]);
  s.vm.close();
  assert.equal(v.run().reason, 'hlt');
  assert.equal(s.kvmVm.td?.launched, true);
});
