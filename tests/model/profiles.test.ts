/**
 * The kernel profiles (src/model/profiles.ts) held against sources that are not the profiles: for
 * each version-dependent rule, the version in which it changed, the source that says so, and a KVM
 * call on the model under each profile whose errno (or value) must be the one that source gives.
 * Sources, cited per row:
 * - KS: ../shared/spec/KERNEL-SPEC.md (rule ids; [SRC] read in the kernel, [LIVE] the 6.18.44 machine);
 * - UP: ../shared/spec/UPSTREAM-2026.md (release rows, commit ids);
 * - LAB: ../shared/spec/LAB.md "Errno table", live on Debian's 6.12.117 and trixie-backports' 7.3.4;
 * - 6.12 is 6.12.118 with its stable backports (KS errata: "Debian's 6.12.118 already has 7.2's binding
 *   changes (EEXIST for a file range bound twice; offset+size unsigned)"), one release after the lab's 6.12.117.
 * Then the 'host' profile, checked against the live probe values KS §1.3 records.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Vm, VmType } from '../../src/api.js';
import { COCO_PROFILE_NAMES, getProfile, hostProfile, PROFILE_NAMES, PROFILES, VERSION_PROFILE_NAMES, withPlatform } from '../../src/model/index.js';
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

type Answer = string | number;
interface Rule {
  /** what the call does */
  readonly rule: string;
  /** the call on the model under a profile */
  readonly probe: (kernel: string) => Answer;
  /** per profile: the answer, and where it comes from */
  readonly expected: Readonly<Record<string, readonly [Answer, string]>>;
}

const RULES: readonly Rule[] = [
  {
    rule: 'KVM_CREATE_GUEST_MEMFD with GUEST_MEMFD_FLAG_MMAP (1 << 0) on a default VM',
    probe: (k) => errnoOf(() => setup(k, 'default').vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP })),
    expected: {
      '6.8': ['EINVAL', 'KS A1: 6.8-6.17 `valid_flags = 0` [SRC v14]'],
      '6.12': ['EINVAL', 'LAB 6.12.117: CREATE_GUEST_MEMFD flags=1 EINVAL ("no flags before 6.18")'],
      '6.18': ['ok', 'KS A1: 6.18 kvm_gmem_get_supported_flags() [LIVE: bits 0 and 1 accepted]; UP 6.18 row'],
      '7.3': ['ok', 'LAB 7.3.4: flags=1 OK (MMAP)'],
    },
  },
  {
    rule: 'KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD_FLAGS = 244) on /dev/kvm',
    probe: (k) => kvmFor(k).checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS),
    expected: {
      '6.8': [0, 'KS §1.3: cap 244 since 6.18'],
      '6.12': [0, 'KS §1.3: cap 244 since 6.18 (UP 6.18 row: named in the 6.18 cycle)'],
      '6.18': [3, 'KS §1.4: MMAP | (kvm == NULL ? INIT_SHARED) [SRC]; KS §1.3 live 244 -> 3'],
      '7.3': [3, 'KS §1.4 [SRC], unchanged after 6.18 (UP has no change to it)'],
    },
  },
  {
    rule: 'KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD_FLAGS) on a SW_PROTECTED VM',
    probe: (k) => setup(k, 'sw_protected').vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS),
    expected: {
      '6.8': [0, 'KS §1.3: cap 244 since 6.18'],
      '6.12': [0, 'KS §1.3: cap 244 since 6.18'],
      '6.18': [1, 'KS §1.4: x86 kvm_arch_supports_gmem_init_shared = !kvm_arch_has_private_mem: MMAP only'],
      '7.3': [1, 'LAB 7.3.4: VM-level cap 244 on a SW_PROTECTED VM -> 1'],
    },
  },
  {
    rule: 'KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD = 234) on a default VM',
    probe: (k) => setup(k, 'default').vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD),
    expected: {
      '6.8': [0, 'KS A5: 6.8 returns `!kvm || kvm_arch_has_private_mem(kvm)` [SRC]'],
      '6.12': [0, 'LAB 6.12.117: a default VM reports cap 234 = 0'],
      '6.18': [1, 'KS A5: 6.18 returns 1 for every VM [SRC][LIVE]'],
      '7.3': [1, 'LAB 7.3.4: cap 234 = 1 on a default VM'],
    },
  },
  {
    rule: 'KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD on a default VM',
    probe: (k) => {
      const { vm } = setup(k, 'default');
      return gmemSlot(vm, 1, 0x100000n, vm.createGuestMemfd({ size: 4n * PS, flags: 0n }).fd);
    },
    expected: {
      '6.8': ['EINVAL', 'KS E2: 6.8-6.17 check_memory_region_flags accepts GUEST_MEMFD only with kvm_arch_has_private_mem [SRC]'],
      '6.12': ['EINVAL', 'LAB 6.12.117: REGION2 with GUEST_MEMFD on a default VM EINVAL'],
      '6.18': ['ok', 'KS E2: 6.18 valid with CONFIG_KVM_GUEST_MEMFD on any VM type [SRC][LIVE]'],
      '7.3': ['ok', 'LAB 7.3.4: 0'],
    },
  },
  {
    rule: 'a guest_memfd file range bound to a second memslot',
    probe: (k) => {
      const { vm } = setup(k, 'sw_protected');
      const g = vm.createGuestMemfd({ size: 8n * PS, flags: 0n });
      assert.equal(gmemSlot(vm, 1, 0x100000n, g.fd, 0n), 'ok');
      return gmemSlot(vm, 2, 0x200000n, g.fd, 2n * PS);
    },
    expected: {
      '6.8': ['EINVAL', 'KS E7.5: `r = -EINVAL; goto err` in 6.8-6.18 [SRC v14]'],
      '6.12': ['EEXIST', "KS errata: 6.12.118 carries 7.2's 7ea987a90585 (LAB 6.12.117, one release earlier: EINVAL)"],
      '6.18': ['EINVAL', 'KS E7.5 [LIVE 6.18.44]'],
      '7.2': ['EEXIST', 'UP 7.2: 7ea987a90585 "Return -EEXIST for overlapping bindings"'],
      '7.3': ['EEXIST', 'LAB 7.3.4: REGION2 file range already bound -> EEXIST'],
    },
  },
  {
    rule: 'a binding whose offset + size overflows loff_t (offset 0x7ffffffffffff000, two pages)',
    probe: (k) => {
      const { vm } = setup(k, 'sw_protected');
      const g = vm.createGuestMemfd({ size: 8n * PS, flags: 0n });
      return gmemSlot(vm, 1, 0x100000n, g.fd, 0x7ffffffffffff000n, 2n * PS);
    },
    expected: {
      '6.8': ['ok', 'KS E7.4: `offset < 0 || ... || offset + size > i_size` on loff_t: the sum wraps negative and passes (the signed overflow UP 7.2 fixes)'],
      '6.12': ['EINVAL', 'KS errata: 6.12.118 has "offset+size unsigned" (UP 7.2 eba85fee7fc6 through stable)'],
      '6.18': ['ok', 'KS E7.4, as 6.8: guest_memfd.c kvm_gmem_bind still computes it as loff_t in 6.18'],
      '7.2': ['EINVAL', 'UP 7.2: eba85fee7fc6 "Treat memslot binding offset+size as unsigned" (uoff_t)'],
      '7.3': ['EINVAL', 'UP 7.2 eba85fee7fc6, in every later release'],
    },
  },
  {
    rule: 'KVM_SET_USER_MEMORY_REGION2 clearing KVM_MEM_GUEST_MEMFD on an existing gmem slot',
    probe: (k) => {
      const { vm } = setup(k, 'sw_protected');
      const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
      assert.equal(gmemSlot(vm, 1, 0x100000n, g.fd), 'ok');
      return errnoOf(() => vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS })));
    },
    expected: {
      '6.8': ['ok', 'KS E5: mainline 6.8-6.18.0 took it as KVM_MR_FLAGS_ONLY; the fix is Dec 2025 (6.8 was no longer maintained)'],
      '6.12': ['EINVAL', 'LAB 6.12.117: EINVAL ("Debian 6.12.117 carries the stable fix"), so 6.12.118 too'],
      '6.18': ['EINVAL', 'KS E5 [LIVE 6.18.44 has the fix, 20251202020334.1171351-2-seanjc, Cc stable]'],
      '7.3': ['EINVAL', 'LAB 7.3.4: EINVAL'],
    },
  },
  {
    rule: 'KVM_CHECK_EXTENSION(KVM_CAP_PRE_FAULT_MEMORY = 236) on /dev/kvm (TDP host)',
    probe: (k) => kvmFor(k).checkExtension(CAP.KVM_CAP_PRE_FAULT_MEMORY),
    expected: {
      '6.8': [0, 'KS §1.3 / J: KVM_PRE_FAULT_MEMORY since 6.11 [HIST]; V7-DESIGN §3.7 "-> 6.11"'],
      '6.12': [1, 'KS J (6.11); LAB 6.12.117 ran KVM_PRE_FAULT_MEMORY'],
      '6.18': [1, 'KS J (6.11); the live 6.18.44 said 0 only because it had shadow paging (KS §0)'],
      '7.3': [1, 'LAB 7.3.4 ran KVM_PRE_FAULT_MEMORY'],
    },
  },
  {
    rule: 'KVM_PRE_FAULT_MEMORY on a private gmem page of a SW_PROTECTED VM (size left)',
    probe: (k) => {
      const { vm } = setup(k, 'sw_protected');
      const g = vm.createGuestMemfd({ size: PS, flags: 0n });
      bindGmem(vm, 1, 0x10000n, PS, g, 0n, vm.mmapAnonymous(PS).addr);
      vm.setMemoryAttributes({ address: 0x10000n, size: PS, attributes: PRIVATE, flags: 0n });
      const vcpu = vm.createVcpu(0);
      let left = -1n;
      const e = errnoOf(() => {
        left = vcpu.preFaultMemory({ gpa: 0x10000n, size: PS, flags: 0n }).size;
      });
      return e === 'ok' ? `size ${left}` : e;
    },
    expected: {
      '6.8': ['EINVAL', 'no KVM_PRE_FAULT_MEMORY before 6.11 (KS J): an unknown vCPU ioctl falls to x86 kvm_arch_vcpu_ioctl, `default: r = -EINVAL`'],
      '6.12': ['size 0', 'LAB 6.12.117: "private gmem page -> 0 (size left 0)"'],
      '7.3': ['size 0', 'LAB 7.3.4: same'],
    },
  },
  {
    rule: 'KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) on a default VM (the ioctl exists, nothing is supported)',
    probe: (k) => errnoOf(() => setup(k, 'default').vm.setMemoryAttributes({ address: 0n, size: PS, attributes: PRIVATE, flags: 0n })),
    expected: {
      '6.8': ['EINVAL', 'KS F0/F1.2: supported = PRIVATE only with kvm_arch_has_private_mem, `attributes & ~supported` -> EINVAL [SRC 6.8]'],
      '6.12': ['EINVAL', 'LAB 6.12.117: EINVAL on a default VM'],
      '7.3': ['EINVAL', 'LAB 7.3.4: EINVAL'],
    },
  },
];

describe('version-dependent rules, each profile against its source', () => {
  for (const r of RULES) {
    for (const [kernel, [want, source]] of Object.entries(r.expected)) {
      test(`${kernel}: ${r.rule} -> ${want}`, () => {
        assert.equal(r.probe(kernel), want, `source: ${source}`);
      });
    }
  }
  test('every rule has a 6.12 row (6.12.118 with its stable backports) and a 6.8 row', () => {
    for (const r of RULES) {
      assert.ok(r.expected['6.12'], `${r.rule}: no 6.12 row`);
      assert.ok(r.expected['6.8'], `${r.rule}: no 6.8 row`);
    }
    assert.equal(getProfile('6.12').version, '6.12.118', 'the 6.12 rows are 6.12.118');
  });
});

describe('VM types by release (KVM_CREATE_VM), KS §1.4', () => {
  const createVm = (p: Parameters<typeof kvmFor>[0], t: VmType) => errnoOf(() => kvmFor(p).createVm(t));
  test('KVM_X86_SW_PROTECTED_VM since 6.8 (KS §1.4, §2.L 6.8 row)', () => {
    for (const k of ['6.8', '6.12', '6.18', '7.3']) assert.equal(createVm(k, 'sw_protected'), 'ok', k);
  });
  test('KVM_X86_SNP_VM since 6.11 [HIST]: on an SNP host 6.12 creates one, 6.8 cannot', () => {
    assert.equal(createVm(withPlatform(getProfile('6.12'), 'snp'), 'snp'), 'ok');
    assert.equal(createVm(withPlatform(getProfile('6.8'), 'snp'), 'snp'), 'EINVAL');
  });
  test('KVM_X86_TDX_VM since 6.16 [HIST]: on a TDX host 6.12 cannot create one, 6.18 can', () => {
    assert.equal(createVm(withPlatform(getProfile('6.12'), 'tdx'), 'tdx'), 'EINVAL');
    assert.equal(createVm(withPlatform(getProfile('6.18'), 'tdx'), 'tdx'), 'ok');
  });
  test('without the hardware no version creates SNP or TDX VMs (KVM_CAP_VM_TYPES reports kernel and hardware)', () => {
    for (const k of ['6.12', '6.18', '7.3']) for (const t of ['snp', 'tdx'] as const) assert.equal(createVm(k, t), 'EINVAL', `${k} ${t}`);
  });
});

describe('guest_memfd mmap by release', () => {
  test('6.8 and 6.12: no .mmap in kvm_gmem_fops, mmap is ENODEV (KS D1; LAB 6.12.117 "mmap ... ENODEV")', () => {
    for (const k of ['6.8', '6.12']) {
      const g = setup(k, 'sw_protected').vm.createGuestMemfd({ size: PS, flags: 0n });
      expectErrno(() => g.mmap(0n, PS, 3), 'ENODEV', k);
    }
  });
  test('6.18: a SW_PROTECTED VM may not ask for INIT_SHARED (KS §1.4; LAB 7.3.4 "INIT_SHARED (2) -> EINVAL")', () => {
    expectErrno(() => setup('6.18', 'sw_protected').vm.createGuestMemfd({ size: PS, flags: GMEM_INIT_SHARED }), 'EINVAL');
  });
  test('6.18: MMAP|INIT_SHARED memory bound to a slot is what the guest sees, not userspace_addr (KS §2.L KVM_MEMSLOT_GMEM_ONLY; LAB 7.3.4 [I])', () => {
    const { vm } = setup('6.18', 'default');
    const g = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
    g.mmap(0n, PS, 3).write(0n, new Uint8Array([0x0d, 0xf0, 0xfe, 0xca]));
    const anon = vm.mmapAnonymous(PS);
    anon.write(0n, new Uint8Array([0x11, 0x11, 0x11, 0x11]));
    bindGmem(vm, 1, 0x100000n, PS, g, 0n, anon.addr);
    const vcpu = vm.createVcpu(0);
    vcpu.load([{ op: 'read', gpa: 0x100000n, width: 4 }, { op: 'hlt' }]);
    assert.deepEqual(vcpu.run().reads, [0xcafef00dn]);
  });
  test('6.8: a shared fault on a gmem slot goes to userspace_addr, never to guest_memfd (KS E10; LAB row B)', () => {
    const { vm } = setup('6.8', 'sw_protected');
    const g = vm.createGuestMemfd({ size: PS, flags: 0n });
    const host = vm.mmapAnonymous(PS);
    host.write(0n, new Uint8Array([0x3c]));
    bindGmem(vm, 1, 0x100000n, PS, g, 0n, host.addr);
    const vcpu = vm.createVcpu(0);
    vcpu.load([{ op: 'read', gpa: 0x100000n, width: 1 }, { op: 'hlt' }]);
    assert.deepEqual(vcpu.run().reads, [0x3cn]);
  });
});

test('every version: USER_MEMORY2 and MEMORY_FAULT_INFO are 1 (KS §1.3, 6.8); the pending MEMORY_ATTRIBUTES2 is 0 (KS §1.3 notes)', () => {
  for (const k of ['6.8', '6.12', '6.18', '7.3']) {
    const kvm = kvmFor(k);
    for (const cap of [CAP.KVM_CAP_USER_MEMORY2, CAP.KVM_CAP_MEMORY_FAULT_INFO, CAP.KVM_CAP_GUEST_MEMFD])
      assert.equal(kvm.checkExtension(cap), 1, `${k} cap ${cap}`);
    assert.equal(kvm.checkExtension(PENDING_CAP.KVM_CAP_MEMORY_ATTRIBUTES2), 0, k);
  }
});

// ---- the 'host' profile: KS §1.3 "Values live on 6.18" (201->4096, 231->1, 232->1, 233->0,
// 234->1, 235->1, 236->0, 244->3) and the live errnos of KS §0, §2 ----

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

test('host: only KVM_X86_DEFAULT_VM can be created (235 = BIT(0)); types 1..6 give EINVAL (KS §1.4 [LIVE])', () => {
  const kvm = kvmFor(liveHostProfile());
  expectOk(() => kvm.createVm(0));
  expectOk(() => kvm.createVm('default'));
  for (let t = 1; t <= 6; t++) expectErrno(() => kvm.createVm(t), 'EINVAL', `type ${t}`);
  expectErrno(() => kvm.createVm('sw_protected'), 'EINVAL');
});

test('host: KVM_SET_MEMORY_ATTRIBUTES gives ENOTTY (233 = 0, KS F0 [LIVE]); KVM_PRE_FAULT_MEMORY gives EOPNOTSUPP (236 = 0, KS J3 [LIVE])', () => {
  const { vm } = setup(liveHostProfile());
  expectErrno(() => vm.setMemoryAttributes({ address: 0n, size: PS, attributes: PRIVATE, flags: 0n }), 'ENOTTY');
  expectErrno(() => vm.setMemoryAttributes({ address: 0n, size: PS, attributes: 0n, flags: 0n }), 'ENOTTY');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 0, memorySize: PS, userspaceAddr: host.addr }));
  expectErrno(() => vm.createVcpu(0).preFaultMemory({ gpa: 0n, size: PS, flags: 0n }), 'EOPNOTSUPP');
});

test('host: the 6.18 guest_memfd rules (KS A1, E2, E5, E7.5, D2 [LIVE]): flags 0..1 accepted, bits 2..63 EINVAL; gmem slots on the default VM; overlap EINVAL', () => {
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

test("host: a probe of an older kernel release takes that version's rules (6.8: KS E2 no gmem slot on default VMs, A1 flags 0)", () => {
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
test('PROFILE_NAMES spells out every profile of PROFILES, version profiles first, then the confidential-computing hosts, then host', () => {
  assert.deepEqual([...VERSION_PROFILE_NAMES, ...COCO_PROFILE_NAMES], Object.keys(PROFILES));
  assert.deepEqual(PROFILE_NAMES, [...Object.keys(PROFILES), 'host']);
  for (const name of COCO_PROFILE_NAMES) assert.equal(PROFILES[name]?.platform, name.split('+')[1]);
});
