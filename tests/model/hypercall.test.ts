/**
 * KERNEL-SPEC §2.K: KVM_HC_MAP_GPA_RANGE -> KVM_EXIT_HYPERCALL (x86 kvm_emulate_hypercall), the
 * KVM_CAP_EXIT_HYPERCALL opt-in, and the handling loop of private_mem_conversions_test (PMC).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GuestProgram } from '../../src/api.js';
import { CAP } from '../../src/uapi/constants.js';
import { bindGmem, expectErrno, hlt, inodeOf, KEEP, KEEP_PUNCH, liveHostProfile, PRIVATE, PS, read, runProgram, setup, vcpuFile, write } from './helpers.js';

const HC_MAP_GPA_RANGE = 12;
const KVM_ENOSYS = 1000n;
const KVM_EINVAL = 22n;
const neg = (v: bigint) => BigInt.asUintN(64, -v);
const ENCRYPTED = 1n << 4n;

function mapGpaRange(gpa: bigint, npages: bigint, attrs: bigint): GuestProgram[number] {
  return { op: 'map_gpa_range', gpa, npages, attrs };
}

test('K1: KVM_CAP_EXIT_HYPERCALL reports the forwardable mask 1 << KVM_HC_MAP_GPA_RANGE = 4096', () => {
  for (const kernel of ['6.8', '6.18']) {
    const { kvm, vm } = setup(kernel, 'sw_protected');
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_EXIT_HYPERCALL), 4096);
    assert.equal(vm.checkExtension(CAP.KVM_CAP_EXIT_HYPERCALL), 4096);
  }
  assert.equal(setup(liveHostProfile()).kvm.checkExtension(201), 4096);
});

test('K1: ENABLE_CAP(201): 1<<12 and 0 give 0; any other bit or flags != 0 give EINVAL', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  assert.equal(vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]), 0);
  assert.equal(k.hypercallExitMask, 1n << 12n);
  assert.equal(vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [0n]), 0);
  assert.equal(k.hypercallExitMask, 0n);
  expectErrno(() => vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 11n]), 'EINVAL');
  expectErrno(() => vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [(1n << 12n) | 1n]), 'EINVAL');
  expectErrno(() => vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n], 1), 'EINVAL');
  assert.equal(k.hypercallExitMask, 0n, 'a rejected ENABLE_CAP changes nothing');
});

test('K1: without the opt-in the hypercall returns -KVM_ENOSYS in RAX and does not exit', () => {
  const { kvm, vm } = setup('6.18', 'sw_protected');
  const vcpu = vm.createVcpu(0);
  const e = runProgram(vcpu, [mapGpaRange(0x100000n, 1n, ENCRYPTED), hlt]);
  assert.equal(e.reason, 'hlt');
  assert.equal(vcpuFile(kvm, vcpu).hypercallRet, neg(KVM_ENOSYS));
});

test('K1 before K2: without the opt-in even invalid arguments get -KVM_ENOSYS, not -KVM_EINVAL', () => {
  const { kvm, vm } = setup('6.18', 'sw_protected');
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [mapGpaRange(0x100001n, 0n, 0n), hlt]);
  assert.equal(vcpuFile(kvm, vcpu).hypercallRet, neg(KVM_ENOSYS));
});

test('K2: unaligned gpa, npages 0, or a wrapping GFN range give -KVM_EINVAL and no exit', () => {
  const { kvm, vm } = setup('6.18', 'sw_protected');
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]);
  const vcpu = vm.createVcpu(0);
  for (const [gpa, npages] of [
    [0x100001n, 1n],
    [0x100800n, 1n],
    [0x100000n, 0n],
    [0x1000n, (1n << 64n) - 1n],
    [0xfffffffffffff000n, (1n << 64n) - (1n << 52n) + 1n],
  ] as const) {
    vcpuFile(kvm, vcpu).hypercallRet = 0n;
    const e = runProgram(vcpu, [mapGpaRange(gpa, npages, 0n), hlt]);
    assert.equal(e.reason, 'hlt', `gpa 0x${gpa.toString(16)} npages ${npages}`);
    assert.equal(vcpuFile(kvm, vcpu).hypercallRet, neg(KVM_EINVAL));
  }
  // the last GFN of the u64 space does not wrap: gfn + npages = 2^52 exits normally
  assert.equal(runProgram(vcpu, [mapGpaRange(0xfffffffffffff000n, 1n, 0n), hlt]).reason, 'hypercall');
});

test('K2: attrs are not validated by KVM: any value exits', () => {
  const { vm } = setup('6.18', 'sw_protected');
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]);
  const vcpu = vm.createVcpu(0);
  for (const attrs of [0n, ENCRYPTED, 7n, (1n << 64n) - 1n]) {
    const e = runProgram(vcpu, [mapGpaRange(0x100000n, 2n, attrs), hlt]);
    assert.equal(e.reason, 'hypercall');
    assert.equal(e.hypercall?.args[2], attrs);
  }
});

test('K3: the exit: reason hypercall, nr 12, args = gpa, npages, attrs, flags LONG_MODE, ret 0', () => {
  const { vm } = setup('6.18', 'sw_protected');
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]);
  const vcpu = vm.createVcpu(0);
  const e = runProgram(vcpu, [mapGpaRange(0x100000000n, 513n, ENCRYPTED), hlt]);
  assert.equal(e.reason, 'hypercall');
  assert.equal(e.errno, undefined);
  assert.equal(e.hypercall?.nr, BigInt(HC_MAP_GPA_RANGE));
  assert.deepEqual(e.hypercall?.args.slice(0, 3), [0x100000000n, 513n, ENCRYPTED]);
  assert.equal(e.hypercall?.flags, 1n);
  assert.equal(e.hypercall?.ret, 0n);
});

test('K3: the next KVM_RUN writes hypercall.ret to RAX and advances past the hypercall', () => {
  const { kvm, vm } = setup('6.18', 'sw_protected');
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]);
  const vcpu = vm.createVcpu(0);
  vcpu.load([mapGpaRange(0x100000n, 1n, 0n), { op: 'out', port: 0x10, value: 1n }, hlt]);
  assert.equal(vcpu.run().reason, 'hypercall');
  const e = vcpu.run({ hypercallRet: 0x1234n });
  assert.equal(e.reason, 'io');
  assert.equal(e.io?.port, 0x10);
  assert.equal(vcpuFile(kvm, vcpu).hypercallRet, 0x1234n);
  assert.equal(vcpu.run().reason, 'hlt');
});

test('K3: KVM itself changes no attributes and touches no guest_memfd on the exit', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]);
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 10, 0x100000n, 4n * PS, g);
  const vcpu = vm.createVcpu(0);
  const seq = k.mmu.seq;
  vcpu.load([mapGpaRange(0x100000n, 4n, ENCRYPTED), hlt]);
  assert.equal(vcpu.run().reason, 'hypercall');
  assert.equal(vcpu.run().reason, 'hlt');
  assert.equal(k.attributes.map.size, 1);
  assert.equal(k.attributes.isPrivate(0x100), false);
  assert.equal(k.mmu.seq, seq);
  assert.equal(inodeOf(g).pages.size, 0);
});

test('K: the conversion loop of private_mem_conversions_test (SET_ATTRIBUTES|DO_FALLOCATE, then SHARED|DO_FALLOCATE)', () => {
  const { vm } = setup('6.18', 'sw_protected');
  vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 12n]);
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const host = vm.mmapAnonymous(4n * PS);
  const base = 0x100000000n;
  bindGmem(vm, 10, base, 4n * PS, g, 0n, host.addr);
  const vcpu = vm.createVcpu(0);
  const SET_ATTRIBUTES = 1n;
  const SHARED = 2n;
  const DO_FALLOCATE = 4n;
  // handle_exit_hypercall, as the selftest writes it
  const handle = (args: readonly bigint[]) => {
    const [gpa = 0n, npages = 0n, flags = 0n] = args;
    const size = npages * PS;
    if (flags & DO_FALLOCATE) g.fallocate(KEEP | (flags & SHARED ? KEEP_PUNCH : 0), gpa - base, size);
    if (flags & SET_ATTRIBUTES) vm.setMemoryAttributes({ address: gpa, size, attributes: flags & SHARED ? 0n : PRIVATE, flags: 0n });
  };
  vcpu.load([
    write(base, 0x11n, 1),
    mapGpaRange(base, 1n, SET_ATTRIBUTES | DO_FALLOCATE),
    read(base, 1),
    write(base, 0x22n, 1),
    mapGpaRange(base, 1n, SET_ATTRIBUTES | SHARED | DO_FALLOCATE),
    read(base, 1),
    hlt,
  ]);
  let e = vcpu.run();
  const reads: bigint[] = [];
  while (e.reason === 'hypercall') {
    reads.push(...e.reads);
    handle(e.hypercall?.args ?? []);
    e = vcpu.run({ hypercallRet: 0n });
  }
  reads.push(...e.reads);
  assert.equal(e.reason, 'hlt');
  // private page starts zeroed (G8); back to shared shows the host's p1
  assert.deepEqual(reads, [0n, 0x11n]);
  assert.equal(host.read(0n, 1)[0], 0x11);
  assert.equal(inodeOf(g).pages.size, 0, 'the punch on conversion to shared freed the private page');
});
