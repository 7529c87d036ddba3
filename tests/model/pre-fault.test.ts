/**
 * KERNEL-SPEC §2.J: KVM_PRE_FAULT_MEMORY (kvm_vcpu_pre_fault_memory, x86
 * kvm_arch_vcpu_pre_fault_memory), and pre_fault_memory_test PF-1..PF-4.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvmError, type Vcpu } from '../../src/api.js';
import { hostProfile, PROFILES } from '../../src/model/index.js';
import { CAP } from '../../src/uapi/constants.js';
import {
  bindGmem,
  deleteSlot,
  expectErrno,
  hlt,
  inodeOf,
  LIVE_CAPS,
  liveHostProfile,
  MiB,
  PRIVATE,
  PS,
  read,
  region,
  runProgram,
  setup,
  U64_MAX,
} from './helpers.js';

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

// ---- 6.12: KVM_PRE_FAULT_MEMORY on an obsolete MMU root (profile.preFaultObsoleteRootSpins) ----
// kvm_arch_flush_shadow_memslot -> kvm_mmu_zap_all_fast (default VM) obsoletes every root and only
// requests KVM_REQ_MMU_FREE_OBSOLETE_ROOTS; 6.12's kvm_mmu_reload keeps a root that is not
// INVALID_PAGE, and kvm_tdp_map_page retries (is_page_fault_stale) until a signal: EINTR.

const SLOT_GPA = 0x100000n;
const MOVED_GPA = 0x200000n;

/** A default VM with slot 0 of 2 pages at SLOT_GPA, and vCPU 0 whose root is loaded by a pre-fault. */
function loadedRoot(kernel: string) {
  const s = setup(kernel);
  const host = s.vm.mmapAnonymous(2n * PS);
  s.vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: SLOT_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  const vcpu = s.vm.createVcpu(0);
  assert.deepEqual({ ...vcpu.preFaultMemory({ gpa: SLOT_GPA, size: PS, flags: 0n }) }, { gpa: SLOT_GPA + PS, size: 0n });
  return { ...s, host, vcpu };
}

test('6.12 (kvm_mmu_reload keeps an obsolete root): after a slot delete, pre-faults with or without a slot give EINTR, range unchanged, nothing mapped', () => {
  const { vm, k, host, vcpu } = loadedRoot('6.12');
  deleteSlot(vm, 0);
  assert.equal(k.mmu.sptes.size, 0);
  // no memslot, shared: kvm_handle_noslot_fault returns RET_PF_CONTINUE (MMIO caching), then is_page_fault_stale
  assert.deepEqual(preFaultError(vcpu, SLOT_GPA, 2n * PS), { errno: 'EINTR', gpa: SLOT_GPA, size: 2n * PS });
  // the slot re-created: kvm_faultin_pfn succeeds, is_page_fault_stale does not let it map
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: SLOT_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  assert.deepEqual(preFaultError(vcpu, SLOT_GPA, 2n * PS), { errno: 'EINTR', gpa: SLOT_GPA, size: 2n * PS });
  assert.equal(k.mmu.sptes.size, 0, 'no SPTE was installed');
  // and again: only KVM_RUN or a fresh root ends it
  assert.equal(preFaultError(vcpu, SLOT_GPA, PS).errno, 'EINTR');
});

test('6.12: the EINTR is the signal the process gets (signal_pending in kvm_tdp_map_page); with no timer armed the model refuses to spin for ever', () => {
  const { kvm, vm, vcpu } = loadedRoot('6.12');
  deleteSlot(vm, 0);
  assert.equal(preFaultError(vcpu, SLOT_GPA, PS).errno, 'EINTR');
  assert.equal(kvm.proc.signalPending(), false, 'delivered on the way back to userspace');
  kvm.proc.timerArmed = false;
  assert.throws(() => vcpu.preFaultMemory({ gpa: SLOT_GPA, size: PS, flags: 0n }), /no timer is armed/);
});

test('6.12: a memslot move (KVM_MR_MOVE) obsoletes the root the same way', () => {
  const { vm, host, vcpu } = loadedRoot('6.12');
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: MOVED_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  assert.deepEqual(preFaultError(vcpu, MOVED_GPA, 2n * PS), { errno: 'EINTR', gpa: MOVED_GPA, size: 2n * PS });
  assert.deepEqual(preFaultError(vcpu, SLOT_GPA, PS), { errno: 'EINTR', gpa: SLOT_GPA, size: PS });
});

test('6.12: a KVM_RUN in between (vcpu_enter_guest frees obsolete roots) makes the pre-fault work again', () => {
  const { vm, k, host, vcpu } = loadedRoot('6.12');
  deleteSlot(vm, 0);
  assert.equal(preFaultError(vcpu, SLOT_GPA, PS).errno, 'EINTR');
  assert.equal(runProgram(vcpu, [hlt]).reason, 'hlt');
  assert.deepEqual(preFaultError(vcpu, SLOT_GPA, PS), { errno: 'ENOENT', gpa: SLOT_GPA, size: PS });
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: SLOT_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  assert.deepEqual({ ...vcpu.preFaultMemory({ gpa: SLOT_GPA, size: 2n * PS, flags: 0n }) }, { gpa: SLOT_GPA + 2n * PS, size: 0n });
  assert.equal(k.mmu.sptes.has(Number(SLOT_GPA / PS) + 1), true);
});

test('6.12: a vCPU that never loaded a root (INVALID_PAGE) loads a current one and pre-faults normally', () => {
  const { vm, host, vcpu } = loadedRoot('6.12');
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: MOVED_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  const fresh = vm.createVcpu(1);
  assert.deepEqual({ ...fresh.preFaultMemory({ gpa: MOVED_GPA, size: 2n * PS, flags: 0n }) }, { gpa: MOVED_GPA + 2n * PS, size: 0n });
  assert.equal(preFaultError(vcpu, MOVED_GPA, PS).errno, 'EINTR', 'vCPU 0 still holds its obsolete root');
});

test('6.12: a delete before the vCPU ever loaded a root does not spin (PF-4 first call)', () => {
  const s = setup('6.12');
  const host = s.vm.mmapAnonymous(2n * PS);
  s.vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: SLOT_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  deleteSlot(s.vm, 0);
  const vcpu = s.vm.createVcpu(0);
  assert.deepEqual(preFaultError(vcpu, SLOT_GPA, PS), { errno: 'ENOENT', gpa: SLOT_GPA, size: PS });
});

test('6.12: a fault that fails before is_page_fault_stale (host mapping gone: kvm_handle_error_pfn) still gives EFAULT on an obsolete root', () => {
  const { vm, vcpu } = loadedRoot('6.12');
  const other = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: MOVED_GPA, memorySize: PS, userspaceAddr: other.addr }));
  other.unmap();
  deleteSlot(vm, 0);
  assert.deepEqual(preFaultError(vcpu, MOVED_GPA, PS), { errno: 'EFAULT', gpa: MOVED_GPA, size: PS });
  assert.equal(preFaultError(vcpu, SLOT_GPA, PS).errno, 'EINTR', 'the root is obsolete all the same');
});

test('6.12: on a SW_PROTECTED VM a slot delete zaps only that slot (no KVM_X86_QUIRK_SLOT_ZAP_ALL path): no root goes obsolete', () => {
  const { vm, vcpu, k } = pfSetup(true, '6.12');
  vcpu.preFaultMemory({ gpa: BASE, size: 2n * MiB, flags: 0n });
  const other = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 11, guestPhysAddr: 0x90000000n, memorySize: PS, userspaceAddr: other.addr }));
  vcpu.preFaultMemory({ gpa: 0x90000000n, size: PS, flags: 0n });
  deleteSlot(vm, 11);
  assert.equal(k.mmu.sptes.size, 512, "slot 10's mappings survive");
  assert.deepEqual(preFaultError(vcpu, 0x90000000n, PS), { errno: 'ENOENT', gpa: 0x90000000n, size: PS });
  assert.deepEqual({ ...vcpu.preFaultMemory({ gpa: BASE, size: PS, flags: 0n }) }, { gpa: BASE + PS, size: 0n });
});

test('kvm_mmu_zap_all_fast on a default VM drops the SPTEs of every slot, not only the deleted one', () => {
  const { vm, k } = loadedRoot('6.18');
  const other = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: MOVED_GPA, memorySize: PS, userspaceAddr: other.addr }));
  assert.equal(k.mmu.sptes.size, 1);
  deleteSlot(vm, 1);
  assert.equal(k.mmu.sptes.size, 0);
});

for (const kernel of ['6.18', '7.3', 'next']) {
  test(`${kernel} (20a6cff3b283: kvm_mmu_reload frees obsolete roots): the same sequence does not spin`, () => {
    const { vm, host, vcpu } = loadedRoot(kernel);
    deleteSlot(vm, 0);
    assert.deepEqual(preFaultError(vcpu, SLOT_GPA, 2n * PS), { errno: 'ENOENT', gpa: SLOT_GPA, size: 2n * PS });
    vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: MOVED_GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
    assert.deepEqual({ ...vcpu.preFaultMemory({ gpa: MOVED_GPA, size: 2n * PS, flags: 0n }) }, { gpa: MOVED_GPA + 2n * PS, size: 0n });
  });
}

test('profiles: only 6.12 spins on an obsolete root; the host profile takes it from its base version', () => {
  for (const [name, p] of Object.entries(PROFILES)) assert.equal(p.preFaultObsoleteRootSpins, name === '6.12' || name.startsWith('6.12+'), name);
  assert.equal(hostProfile({ release: '6.12.117', system: { [CAP.KVM_CAP_PRE_FAULT_MEMORY]: 1 } }).preFaultObsoleteRootSpins, true);
  assert.equal(hostProfile({ release: '6.18.44', system: LIVE_CAPS }).preFaultObsoleteRootSpins, false);
  assert.equal(hostProfile({ release: '7.3.4', system: { [CAP.KVM_CAP_PRE_FAULT_MEMORY]: 1 } }).preFaultObsoleteRootSpins, false);
});
