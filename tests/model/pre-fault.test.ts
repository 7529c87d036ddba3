/**
 * KERNEL-SPEC §2.J: KVM_PRE_FAULT_MEMORY (kvm_vcpu_pre_fault_memory, x86
 * kvm_arch_vcpu_pre_fault_memory), and pre_fault_memory_test PF-1..PF-4.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvmError, type Vcpu } from '../../src/api.js';
import { CAP } from '../../src/uapi/constants.js';
import { bindGmem, expectErrno, hlt, inodeOf, liveHostProfile, MiB, PRIVATE, PS, read, region, runProgram, setup, U64_MAX } from './helpers.js';

const TEST_SIZE = 2n * MiB + PS;
const BASE = 0x40000000n;
const BASE_GFN = Number(BASE / PS);

/** The KvmError of a failing pre-fault, with what the kernel copied back. */
function preFaultError(vcpu: Vcpu, gpa: bigint, size: bigint): { errno: string; gpa: bigint | undefined; size: bigint | undefined } {
  try {
    vcpu.preFaultMemory({ gpa, size, flags: 0n });
  } catch (e) {
    if (!(e instanceof KvmError)) throw e;
    return { errno: e.errno, gpa: e.data?.gpa, size: e.data?.size };
  }
  assert.fail('expected KVM_PRE_FAULT_MEMORY to fail');
}

/** PF setup: slot 10 of TEST_SIZE at BASE, shared (host memory) or private (guest_memfd, all PRIVATE). */
function pfSetup(priv: boolean, kernel = '6.18') {
  const s = setup(kernel, priv ? 'sw_protected' : 'default');
  const host = s.vm.mmapAnonymous(TEST_SIZE);
  const g = priv ? s.vm.createGuestMemfd({ size: TEST_SIZE, flags: 0n }) : undefined;
  if (g) {
    bindGmem(s.vm, 10, BASE, TEST_SIZE, g, 0n, host.addr);
    s.vm.setMemoryAttributes({ address: BASE, size: TEST_SIZE, attributes: PRIVATE, flags: 0n });
  } else {
    s.vm.setUserMemoryRegion2(region({ slot: 10, guestPhysAddr: BASE, memorySize: TEST_SIZE, userspaceAddr: host.addr }));
  }
  const vcpu = s.vm.createVcpu(0);
  return { ...s, host, g, vcpu };
}

test('J1: flags != 0 gives EINVAL', () => {
  const { vcpu } = pfSetup(false);
  expectErrno(() => vcpu.preFaultMemory({ gpa: BASE, size: PS, flags: 1n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: BASE, size: PS, flags: 1n << 63n }), 'EINVAL');
});

test('J1: gpa or size unaligned, size 0, or gpa + size wrapping give EINVAL', () => {
  const { vcpu, k } = pfSetup(false);
  expectErrno(() => vcpu.preFaultMemory({ gpa: BASE + 1n, size: PS, flags: 0n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: BASE, size: PS - 1n, flags: 0n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: BASE, size: 0n, flags: 0n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: U64_MAX - PS + 1n, size: PS, flags: 0n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: U64_MAX - PS + 1n, size: 2n * PS, flags: 0n }), 'EINVAL');
  assert.equal(k.mmu.sptes.size, 0);
});

test('J1/J3: on a kernel without TDP (host profile, cap 236 = 0) valid calls give EOPNOTSUPP, size unchanged; invalid ones still EINVAL', () => {
  const { kvm, vm } = setup(liveHostProfile());
  assert.equal(kvm.checkExtension(CAP.KVM_CAP_PRE_FAULT_MEMORY), 0);
  const host = vm.mmapAnonymous(4n * PS);
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: 0n, memorySize: 4n * PS, userspaceAddr: host.addr }));
  const vcpu = vm.createVcpu(0);
  assert.deepEqual(preFaultError(vcpu, 0n, 4n * PS), { errno: 'EOPNOTSUPP', gpa: 0n, size: 4n * PS });
  expectErrno(() => vcpu.preFaultMemory({ gpa: 0n, size: PS, flags: 1n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: 0n, size: 0n, flags: 0n }), 'EINVAL');
  expectErrno(() => vcpu.preFaultMemory({ gpa: 1n, size: PS, flags: 0n }), 'EINVAL');
});

for (const priv of [false, true]) {
  const kind = priv ? 'private' : 'shared';

  test(`J3: PF-1 (${kind}): (0, 2 MiB) returns 0 with size left 0 and maps every page`, () => {
    const { vcpu, k, g } = pfSetup(priv);
    assert.deepEqual({ ...vcpu.preFaultMemory({ gpa: BASE, size: 2n * MiB, flags: 0n }) }, { gpa: BASE + 2n * MiB, size: 0n });
    assert.equal(k.mmu.sptes.has(BASE_GFN), true);
    assert.equal(k.mmu.sptes.has(BASE_GFN + 511), true);
    assert.equal(k.mmu.sptes.has(BASE_GFN + 512), false);
    assert.equal(k.mmu.sptes.get(BASE_GFN)?.private, priv);
    if (g) assert.equal(inodeOf(g).pages.size, 512, 'J2: private pre-fault allocates guest_memfd pages');
  });

  test(`J3: PF-2 (${kind}): (2 MiB, 2 PS): one page inside the slot -> 0 with size PS left, then ENOENT with size PS`, () => {
    const { vcpu } = pfSetup(priv);
    const r = vcpu.preFaultMemory({ gpa: BASE + 2n * MiB, size: 2n * PS, flags: 0n });
    assert.deepEqual({ ...r }, { gpa: BASE + 2n * MiB + PS, size: PS });
    assert.deepEqual(preFaultError(vcpu, r.gpa, r.size), { errno: 'ENOENT', gpa: BASE + 2n * MiB + PS, size: PS });
  });

  test(`J3: PF-3 (${kind}): (TEST_SIZE, PS), entirely past the slot -> ENOENT, size PS copied back`, () => {
    const { vcpu } = pfSetup(priv);
    assert.deepEqual(preFaultError(vcpu, BASE + TEST_SIZE, PS), { errno: 'ENOENT', gpa: BASE + TEST_SIZE, size: PS });
  });

  test(`J3: PF-4 (${kind}): after pre-faulting, the guest reads every page of TEST_SIZE without an exit`, () => {
    const { vcpu, k } = pfSetup(priv);
    vcpu.preFaultMemory({ gpa: BASE, size: TEST_SIZE, flags: 0n });
    const faults = k.mmu.sptes.size;
    const prog = [];
    for (let off = 0n; off < TEST_SIZE; off += PS) prog.push(read(BASE + off, 8));
    const e = runProgram(vcpu, [...prog, hlt]);
    assert.equal(e.reason, 'hlt');
    assert.equal(e.reads.length, 513);
    assert.ok(e.reads.every((v) => v === 0n));
    assert.equal(k.mmu.sptes.size, faults, 'every data page was already mapped');
  });
}

test('J2: a private pre-fault uses PFERR_PRIVATE_ACCESS: pages come from guest_memfd, not userspace_addr', () => {
  const { vcpu, g, host, k } = pfSetup(true);
  host.write(0n, new Uint8Array([0x55]));
  vcpu.preFaultMemory({ gpa: BASE, size: PS, flags: 0n });
  const spte = k.mmu.sptes.get(BASE_GFN);
  assert.equal(spte?.source.kind, 'gmem');
  assert.equal(spte?.page, g && inodeOf(g).pages.get(0));
  assert.equal(spte?.page[0], 0);
});

test('J2/J3: an error after progress returns 0 with the remainder; the remainder is copied back on error', () => {
  const { vcpu } = pfSetup(false);
  const r = vcpu.preFaultMemory({ gpa: BASE + TEST_SIZE - 2n * PS, size: 5n * PS, flags: 0n });
  assert.deepEqual({ ...r }, { gpa: BASE + TEST_SIZE, size: 3n * PS });
});

test('J3: a private GFN with no memslot or a slot without guest_memfd gives EFAULT', () => {
  const { vm, vcpu } = pfSetup(true);
  vm.setMemoryAttributes({ address: 0x80000000n, size: PS, attributes: PRIVATE, flags: 0n });
  assert.equal(preFaultError(vcpu, 0x80000000n, PS).errno, 'EFAULT');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 11, guestPhysAddr: 0x90000000n, memorySize: PS, userspaceAddr: host.addr }));
  vm.setMemoryAttributes({ address: 0x90000000n, size: PS, attributes: PRIVATE, flags: 0n });
  assert.deepEqual(preFaultError(vcpu, 0x90000000n, PS), { errno: 'EFAULT', gpa: 0x90000000n, size: PS });
});

test('J3: a shared GFN with no memslot (emulated MMIO) gives ENOENT', () => {
  const { vcpu } = pfSetup(false);
  assert.deepEqual(preFaultError(vcpu, 0x80000000n, 2n * PS), { errno: 'ENOENT', gpa: 0x80000000n, size: 2n * PS });
});
