/**
 * KERNEL-SPEC §2.F: KVM_SET_MEMORY_ATTRIBUTES (kvm_vm_ioctl_set_mem_attributes,
 * kvm_vm_set_mem_attributes): the checks in order, per-GFN overwrite semantics independent of
 * memslots, the no-op fast path, and the invalidation over intersecting memslots only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MemoryAttributes, Vm } from '../../src/api.js';
import { getProfile } from '../../src/model/index.js';
import { CAP } from '../../src/uapi/constants.js';
import {
  bindGmem,
  deleteSlot,
  expectErrno,
  expectOk,
  hlt,
  inodeOf,
  liveHostProfile,
  PRIVATE,
  PS,
  read,
  runProgram,
  setup,
  TiB,
  U64_MAX,
  write,
} from './helpers.js';

function attrs(vm: Vm, address: bigint, size: bigint, attributes = PRIVATE, flags = 0n): void {
  vm.setMemoryAttributes({ address, size, attributes, flags });
}

test('F0: without CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES (host profile, cap 233 = 0) the ioctl is ENOTTY, whatever the arguments', () => {
  const { kvm, vm } = setup(liveHostProfile());
  assert.equal(kvm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 0);
  for (const a of [
    { address: 0n, size: PS, attributes: 0n, flags: 0n },
    { address: 0n, size: PS, attributes: PRIVATE, flags: 0n },
    { address: 1n, size: 0n, attributes: 1n, flags: 1n },
  ] satisfies MemoryAttributes[]) {
    expectErrno(() => vm.setMemoryAttributes(a), 'ENOTTY');
  }
});

test('F0: supported attributes: PRIVATE at system scope and on VMs with private memory, 0 on default VMs', () => {
  for (const kernel of ['6.8', '6.18']) {
    const { kvm, vm } = setup(kernel);
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 8, kernel);
    assert.equal(vm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 0, kernel);
    assert.equal(kvm.createVm('sw_protected').checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 8, kernel);
  }
});

test('F1.1: flags != 0 gives EINVAL', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  for (const flags of [1n, 2n, 1n << 63n]) expectErrno(() => attrs(vm, 0n, PS, PRIVATE, flags), 'EINVAL');
  assert.equal(k.attributes.map.size, 1);
});

test('F1.2: unsupported attributes give EINVAL; attributes = 0 is accepted even on a VM that supports none', () => {
  const d = setup('6.18', 'default');
  expectErrno(() => attrs(d.vm, 0n, PS, PRIVATE), 'EINVAL');
  expectOk(() => attrs(d.vm, 0n, PS, 0n));
  const s = setup('6.18', 'sw_protected');
  for (const a of [1n, 2n, 4n, 16n, PRIVATE | 1n, 1n << 63n]) expectErrno(() => attrs(s.vm, 0n, PS, a), 'EINVAL', `attributes ${a}`);
  expectOk(() => attrs(s.vm, 0n, PS, PRIVATE));
  expectOk(() => attrs(s.vm, 0n, PS, 0n));
});

test('F1.3: size 0, or address + size wrapping (2^64 exactly included), gives EINVAL', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  expectErrno(() => attrs(vm, 0n, 0n), 'EINVAL');
  expectErrno(() => attrs(vm, PS, 0n), 'EINVAL');
  expectErrno(() => attrs(vm, U64_MAX - PS + 1n, 2n * PS), 'EINVAL');
  expectErrno(() => attrs(vm, U64_MAX - PS + 1n, PS), 'EINVAL');
  expectOk(() => attrs(vm, U64_MAX - 2n * PS + 1n, PS));
  assert.equal(k.attributes.isPrivate(Number((U64_MAX - 2n * PS + 1n) / PS)), true);
});

test('F1.4: unaligned address or size gives EINVAL', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  expectErrno(() => attrs(vm, 1n, PS), 'EINVAL');
  expectErrno(() => attrs(vm, 0n, PS + 1n), 'EINVAL');
  expectErrno(() => attrs(vm, PS / 2n, PS / 2n), 'EINVAL');
  assert.equal(k.attributes.map.size, 1, 'a failed call changes nothing');
});

test('F1: check order is observable only as "every failure changes nothing" (all four checks are EINVAL)', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(4n * PS);
  vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 4n * PS, userspaceAddr: host.addr, guestMemfd: 0, guestMemfdOffset: 0n });
  const seq = k.mmu.seq;
  for (const [a, s, at, f] of [
    [0n, PS, PRIVATE, 1n],
    [0n, PS, 1n, 0n],
    [0n, 0n, PRIVATE, 0n],
    [1n, PS, PRIVATE, 0n],
    [1n, 0n, 1n, 1n],
  ] as const) {
    expectErrno(() => attrs(vm, a, s, at, f), 'EINVAL');
  }
  assert.equal(k.mmu.seq, seq);
  assert.equal(k.attributes.isPrivate(0), false);
});

test('F2: at VM creation every GFN is shared (one run of 0)', () => {
  const { k } = setup('6.18', 'sw_protected');
  assert.equal(k.attributes.map.size, 1);
  assert.equal(k.attributes.map.get(0), 0);
  assert.equal(k.attributes.isPrivate(2 ** 40), false);
});

test('F2: attributes can be set where no memslot exists, and persist across slot delete and re-create', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const gpa = 0x40000000n;
  expectOk(() => attrs(vm, gpa, 4n * PS));
  assert.equal(k.attributes.isPrivate(Number(gpa / PS)), true);
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 1, gpa, 4n * PS, g);
  deleteSlot(vm, 1);
  assert.equal(k.attributes.isPrivate(Number(gpa / PS) + 3), true);
  bindGmem(vm, 1, gpa, 4n * PS, g);
  // the guest access is private: it is served from guest_memfd (a page appears in the inode)
  const vcpu = vm.createVcpu(0);
  assert.equal(runProgram(vcpu, [read(gpa), hlt]).reason, 'hlt');
  assert.equal(inodeOf(g).pages.has(0), true);
});

test('F2: the ioctl overwrites the range (it does not OR): setting 0 makes a private range shared', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  attrs(vm, 0n, 8n * PS);
  attrs(vm, 2n * PS, 2n * PS, 0n);
  assert.deepEqual(
    Array.from({ length: 8 }, (_, i) => k.attributes.isPrivate(i)),
    [true, true, false, false, true, true, true, true],
  );
  assert.equal(k.attributes.map.size, 4);
});

test('F3: no-op fast path: a range that already holds the value returns 0 without an invalidation', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(8n * PS);
  vm.setUserMemoryRegion2({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 8n * PS, userspaceAddr: host.addr, guestMemfd: 0, guestMemfdOffset: 0n });
  const seq0 = k.mmu.seq;
  attrs(vm, 0n, 8n * PS, 0n);
  assert.equal(k.mmu.seq, seq0, 'shared -> shared');
  attrs(vm, 0n, 4n * PS);
  assert.equal(k.mmu.seq, seq0 + 1);
  attrs(vm, 0n, 4n * PS);
  attrs(vm, PS, 2n * PS);
  assert.equal(k.mmu.seq, seq0 + 1, 'private -> private');
  attrs(vm, 0n, 5n * PS);
  assert.equal(k.mmu.seq, seq0 + 2, 'a partly different range is not a no-op');
});

test('F5: with no intersecting memslot nothing is invalidated (seq unchanged)', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g);
  const seq = k.mmu.seq;
  attrs(vm, 0x200000n, 16n * PS);
  attrs(vm, 0x100000n + 4n * PS, PS);
  attrs(vm, 0x100000n - PS, PS);
  assert.equal(k.mmu.seq, seq);
  assert.equal(k.attributes.isPrivate(0x200), true);
});

test('F5/H8: one invalidation (seq + 1) whose range is the union of the per-slot clipped ranges', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n);
  bindGmem(vm, 2, 0x200000n, 4n * PS, g, 4n * PS);
  const seq = k.mmu.seq;
  attrs(vm, 0x102000n, 0x100000n);
  assert.equal(k.mmu.seq, seq + 1);
  assert.equal(k.mmu.inProgress, 0);
  // slot 1 contributes [0x102, 0x104), slot 2 [0x200, 0x202): the union spans both
  assert.equal(k.mmu.rangeStart, 0x102);
  assert.equal(k.mmu.rangeEnd, 0x202);
});

test('F5: the change zaps the SPTEs of the range, private and shared, and only those', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const host = vm.mmapAnonymous(4n * PS);
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n, host.addr);
  attrs(vm, 0x102000n, 2n * PS);
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [read(0x100000n), read(0x101000n), read(0x102000n), read(0x103000n), hlt]);
  assert.deepEqual(
    [0x100, 0x101, 0x102, 0x103].map((g) => k.mmu.sptes.get(g)?.private),
    [false, false, true, true],
  );
  attrs(vm, 0x101000n, 2n * PS, 0n);
  assert.deepEqual(
    [0x100, 0x101, 0x102, 0x103].map((g) => k.mmu.sptes.has(g)),
    [true, false, false, true],
  );
});

test('F6: an attribute change neither allocates nor frees guest_memfd pages; private data survives a round trip', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const host = vm.mmapAnonymous(4n * PS);
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n, host.addr);
  attrs(vm, 0x100000n, 4n * PS);
  assert.equal(inodeOf(g).pages.size, 0, 'converting to private allocates nothing');
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [write(0x100000n, 0x11223344n), hlt]);
  assert.equal(inodeOf(g).pages.size, 1);
  attrs(vm, 0x100000n, 4n * PS, 0n);
  assert.equal(inodeOf(g).pages.size, 1, 'converting to shared frees nothing');
  assert.deepEqual(runProgram(vcpu, [read(0x100000n), hlt]).reads, [0n], 'the shared view is the host memory');
  attrs(vm, 0x100000n, 4n * PS);
  assert.deepEqual(runProgram(vcpu, [read(0x100000n), hlt]).reads, [0x11223344n], 'the private data is still there');
});

test('F costs: setting attributes on a 1 TiB range leaves the RangeMap with O(1) runs', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  attrs(vm, TiB, TiB);
  assert.equal(k.attributes.map.size, 3);
  attrs(vm, 0n, 4n * TiB);
  assert.equal(k.attributes.map.size, 2);
  attrs(vm, TiB + 5n * PS, PS, 0n);
  assert.equal(k.attributes.map.size, 4);
  attrs(vm, 0n, 4n * TiB, 0n);
  assert.equal(k.attributes.map.size, 1);
});

test('F costs: converting a 1 TiB gmem slot to private and back materialises nothing and stays O(1)', () => {
  // a host with 46-bit MAXPHYADDR: a slot up to 2 TiB is below kvm_mmu_max_gfn()
  const { vm, k } = setup({ ...getProfile('6.18'), physAddrBits: 46 }, 'sw_protected');
  const g = vm.createGuestMemfd({ size: TiB, flags: 0n });
  bindGmem(vm, 1, TiB, TiB, g);
  const seq = k.mmu.seq;
  attrs(vm, TiB, TiB);
  attrs(vm, TiB, TiB, 0n);
  assert.equal(k.mmu.seq, seq + 2);
  assert.equal(k.mmu.rangeStart, Number(TiB / PS));
  assert.equal(k.mmu.rangeEnd, Number((2n * TiB) / PS));
  assert.equal(k.attributes.map.size, 1);
  assert.equal(inodeOf(g).pages.size, 0);
});
