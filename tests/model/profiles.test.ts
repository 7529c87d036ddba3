/**
 * KERNEL-SPEC §2.L: what differs between kernel versions (6.8, 6.18, kvm-x86 next), and the 'host'
 * profile that hostProfile() builds from a capability probe of the live 6.18.44 machine
 * (§1.3 "Values live on 6.18": 201->4096, 231->1, 232->1, 233->0, 234->1, 235->1, 236->0, 244->3).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Vm } from '../../src/api.js';
import { COCO_PROFILE_NAMES, hostProfile, PROFILE_NAMES, PROFILES, VERSION_PROFILE_NAMES } from '../../src/model/index.js';
import { CAP, PENDING_CAP } from '../../src/uapi/constants.js';
import {
  bindGmem,
  errnoOf,
  expectErrno,
  expectOk,
  GMEM_INIT_SHARED,
  GMEM_MMAP,
  KEEP,
  kvmFor,
  LIVE_CAPS,
  liveHostProfile,
  MEM_GUEST_MEMFD,
  PRIVATE,
  PS,
  region,
  setup,
} from './helpers.js';

function gmemSlot(vm: Vm, slot: number, gpa: bigint, fd: number, off = 0n, size = 4n * PS): string {
  return errnoOf(() =>
    vm.setUserMemoryRegion2(region({ slot, flags: MEM_GUEST_MEMFD, guestPhysAddr: gpa, memorySize: size, guestMemfd: fd, guestMemfdOffset: off })),
  );
}

/** The version-dependent answers, one row per profile. */
const table = [
  {
    kernel: '6.8',
    flagsCapSystem: 0,
    flagsCapDefaultVm: 0,
    gmemCapDefaultVm: 0,
    gmemSlotOnDefaultVm: 'EINVAL',
    fileOverlap: 'EINVAL',
    clearGmemFlag: 'ok',
    preFaultCap: 0,
  },
  {
    kernel: '6.18',
    flagsCapSystem: 3,
    flagsCapDefaultVm: 3,
    gmemCapDefaultVm: 1,
    gmemSlotOnDefaultVm: 'ok',
    fileOverlap: 'EINVAL',
    clearGmemFlag: 'EINVAL',
    preFaultCap: 1,
  },
  {
    kernel: 'next',
    flagsCapSystem: 3,
    flagsCapDefaultVm: 3,
    gmemCapDefaultVm: 1,
    gmemSlotOnDefaultVm: 'ok',
    fileOverlap: 'EEXIST',
    clearGmemFlag: 'EINVAL',
    preFaultCap: 1,
  },
] as const;

for (const row of table) {
  test(`L ${row.kernel}: KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_GUEST_MEMFD and KVM_CAP_PRE_FAULT_MEMORY`, () => {
    const { kvm, vm } = setup(row.kernel);
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS), row.flagsCapSystem);
    assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS), row.flagsCapDefaultVm);
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 1);
    assert.equal(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), row.gmemCapDefaultVm);
    assert.equal(kvm.checkExtension(CAP.KVM_CAP_PRE_FAULT_MEMORY), row.preFaultCap);
    for (const cap of [CAP.KVM_CAP_USER_MEMORY2, CAP.KVM_CAP_MEMORY_FAULT_INFO]) assert.equal(kvm.checkExtension(cap), 1);
    assert.equal(kvm.checkExtension(PENDING_CAP.KVM_CAP_MEMORY_ATTRIBUTES2), 0);
  });

  test(`L ${row.kernel}: gmem memslots on a default VM, overlapping file bindings, clearing GUEST_MEMFD`, () => {
    const d = setup(row.kernel, 'default');
    const dg = d.vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
    assert.equal(gmemSlot(d.vm, 1, 0x100000n, dg.fd), row.gmemSlotOnDefaultVm);
    const { vm } = setup(row.kernel, 'sw_protected');
    const g = vm.createGuestMemfd({ size: 8n * PS, flags: 0n });
    assert.equal(gmemSlot(vm, 1, 0x100000n, g.fd, 0n), 'ok');
    assert.equal(gmemSlot(vm, 2, 0x200000n, g.fd, 2n * PS), row.fileOverlap);
    assert.equal(gmemSlot(vm, 3, 0x102000n, g.fd, 4n * PS), 'EEXIST', 'a GPA overlap is EEXIST in every version');
    assert.equal(
      errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS }))),
      row.clearGmemFlag,
    );
  });
}

test('L 6.8: guest_memfd flags must be 0 and mmap is ENODEV (no .mmap, no MMAP flag)', () => {
  const { vm } = setup('6.8', 'sw_protected');
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP }), 'EINVAL');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  expectErrno(() => g.mmap(0n, PS, 3), 'ENODEV');
});

test('L 6.18: MMAP and INIT_SHARED, GMEM_ONLY slots; sw_protected VMs get MMAP only', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  expectOk(() => g.mmap(0n, PS, 3).write(0n, new Uint8Array([1])));
  bindGmem(vm, 1, 0x100000n, PS, g);
  assert.equal(k.memslots.all()[0]?.gmemOnly, true);
  const sp = setup('6.18', 'sw_protected');
  assert.equal(sp.vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS), 1);
  expectErrno(() => sp.vm.createGuestMemfd({ size: PS, flags: GMEM_INIT_SHARED }), 'EINVAL');
});

test('L 6.8: no GMEM_ONLY slots: a shared fault on a gmem slot goes to userspace_addr, never to guest_memfd', () => {
  const { vm, k } = setup('6.8', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  const host = vm.mmapAnonymous(PS);
  host.write(0n, new Uint8Array([0x3c]));
  bindGmem(vm, 1, 0x100000n, PS, g, 0n, host.addr);
  assert.equal(k.memslots.all()[0]?.gmemOnly, false);
  const vcpu = vm.createVcpu(0);
  vcpu.load([{ op: 'read', gpa: 0x100000n, width: 1 }, { op: 'hlt' }]);
  assert.deepEqual(vcpu.run().reads, [0x3cn]);
});

test('host: hostProfile(live probe) answers KVM_CHECK_EXTENSION with the probed values, on /dev/kvm and on a type-0 VM', () => {
  const p = liveHostProfile();
  assert.equal(p.name, 'host');
  assert.equal(p.version, '6.18.44');
  const kvm = kvmFor(p);
  assert.equal(kvm.profile, 'host');
  const vm = kvm.createVm(0);
  for (const [cap, value] of Object.entries(LIVE_CAPS)) {
    assert.equal(kvm.checkExtension(Number(cap)), value, `system cap ${cap}`);
    assert.equal(vm.checkExtension(Number(cap)), value, `VM cap ${cap}`);
  }
  assert.equal(kvm.checkExtension(PENDING_CAP.KVM_CAP_MEMORY_ATTRIBUTES2), 0, 'cap 245 is 0 live');
});

test('host: only KVM_X86_DEFAULT_VM can be created (235 = BIT(0)); types 1..6 give EINVAL', () => {
  const kvm = kvmFor(liveHostProfile());
  expectOk(() => kvm.createVm(0));
  expectOk(() => kvm.createVm('default'));
  for (let t = 1; t <= 6; t++) expectErrno(() => kvm.createVm(t), 'EINVAL', `type ${t}`);
  expectErrno(() => kvm.createVm('sw_protected'), 'EINVAL');
});

test('host: KVM_SET_MEMORY_ATTRIBUTES gives ENOTTY (233 = 0); KVM_PRE_FAULT_MEMORY gives EOPNOTSUPP (236 = 0)', () => {
  const { vm } = setup(liveHostProfile());
  expectErrno(() => vm.setMemoryAttributes({ address: 0n, size: PS, attributes: PRIVATE, flags: 0n }), 'ENOTTY');
  expectErrno(() => vm.setMemoryAttributes({ address: 0n, size: PS, attributes: 0n, flags: 0n }), 'ENOTTY');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 0, memorySize: PS, userspaceAddr: host.addr }));
  expectErrno(() => vm.createVcpu(0).preFaultMemory({ gpa: 0n, size: PS, flags: 0n }), 'EOPNOTSUPP');
});

test('host: the 6.18 guest_memfd rules: flags 0..1 accepted, bits 2..63 EINVAL; gmem slots on the default VM; overlap EINVAL', () => {
  const { vm } = setup(liveHostProfile());
  for (let b = 0n; b < 64n; b++) expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 1n << b }), b < 2n ? 'ok' : 'EINVAL', `bit ${b}`);
  const g = vm.createGuestMemfd({ size: 8n * PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  assert.equal(gmemSlot(vm, 1, 0x100000n, g.fd, 0n), 'ok');
  assert.equal(gmemSlot(vm, 2, 0x200000n, g.fd, 2n * PS), 'EINVAL');
  assert.equal(
    errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS }))),
    'EINVAL',
  );
  expectOk(() => g.fallocate(KEEP, 0n, 8n * PS));
  const noMmap = vm.createGuestMemfd({ size: PS, flags: 0n });
  expectErrno(() => noMmap.mmap(0n, PS, 3), 'ENODEV');
});

test("host: a probe of an older kernel release takes that version's rules (6.8: no gmem slot on default VMs)", () => {
  const p = hostProfile({ release: '6.8.12', system: { 231: 1, 232: 1, 233: 8, 234: 1, 235: 3 } });
  const kvm = kvmFor(p);
  assert.equal(kvm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 8);
  const vm = kvm.createVm('default');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  assert.equal(gmemSlot(vm, 1, 0n, g.fd, 0n, PS), 'EINVAL');
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP }), 'EINVAL');
  expectOk(() => kvm.createVm('sw_protected'));
});

test('PROFILE_NAMES spells out every profile of PROFILES, version profiles first, then the confidential-computing hosts, then host', () => {
  assert.deepEqual([...VERSION_PROFILE_NAMES, ...COCO_PROFILE_NAMES], Object.keys(PROFILES));
  assert.deepEqual(PROFILE_NAMES, [...Object.keys(PROFILES), 'host']);
  for (const name of COCO_PROFILE_NAMES) assert.equal(PROFILES[name]?.platform, name.split('+')[1]);
});
