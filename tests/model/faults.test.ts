/**
 * KERNEL-SPEC §2.G: guest faults (x86 kvm_mmu_faultin_pfn, kvm_mmu_faultin_pfn_gmem,
 * kvm_prepare_memory_fault_exit): private vs shared, KVM_EXIT_MEMORY_FAULT with KVM_RUN = -1/EFAULT,
 * where each kind of fault takes its page from, and zeroing. Plus PKE-1/PKE-2 of
 * private_mem_kvm_exits_test and the PMC conversions at the level of one page.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VcpuExit, Vm } from '../../src/api.js';
import {
  allBytes,
  bindGmem,
  deleteSlot,
  expectErrno,
  fill,
  GMEM_INIT_SHARED,
  GMEM_MMAP,
  hlt,
  inodeOf,
  KEEP,
  KEEP_PUNCH,
  PRIVATE,
  PS,
  read,
  region,
  runProgram,
  setup,
  snpKvm,
  write,
} from './helpers.js';

const GPA = 0xc0000000n;
const GFN = Number(GPA / PS);

function setPrivate(vm: Vm, gpa: bigint, size: bigint, priv = true): void {
  vm.setMemoryAttributes({ address: gpa, size, attributes: priv ? PRIVATE : 0n, flags: 0n });
}

function assertMemoryFault(exit: VcpuExit, want: { gpa: bigint; flags: bigint; errno?: string }): void {
  assert.equal(exit.reason, 'memory_fault');
  assert.equal(exit.errno, want.errno ?? 'EFAULT');
  assert.deepEqual(exit.memoryFault, { flags: want.flags, gpa: want.gpa, size: 4096n });
}

/** A sw_protected VM with slot 10 at GPA: a 4-page guest_memfd bound at offset 0, host memory at userspace_addr. */
function protectedSlot(kernel = '6.18', gmemFlags = 0n) {
  const s = setup(kernel, 'sw_protected');
  const g = s.vm.createGuestMemfd({ size: 4n * PS, flags: gmemFlags });
  const host = s.vm.mmapAnonymous(4n * PS);
  bindGmem(s.vm, 10, GPA, 4n * PS, g, 0n, host.addr);
  const vcpu = s.vm.createVcpu(0);
  return { ...s, g, host, vcpu };
}

test('G1/G6: default VM, non-MMAP gmem slot: every access is shared and uses userspace_addr; a punch changes nothing', () => {
  const { vm } = setup('6.18', 'default');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const host = vm.mmapAnonymous(4n * PS);
  bindGmem(vm, 10, GPA, 4n * PS, g, 0n, host.addr);
  host.write(0n, new Uint8Array([0x42, 0, 0, 0]));
  const vcpu = vm.createVcpu(0);
  assert.deepEqual(runProgram(vcpu, [read(GPA), write(GPA + PS, 0x5an, 1), hlt]).reads, [0x42n]);
  assert.equal(host.read(PS, 1)[0], 0x5a);
  assert.equal(inodeOf(g).pages.size, 0);
  g.fallocate(KEEP_PUNCH, 0n, 4n * PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA), read(GPA + PS, 1), hlt]).reads, [0x42n, 0x5an]);
});

test('G1/G2.2: SNP: the guest C-bit decides; an access whose privacy disagrees with the attribute exits (EFAULT)', () => {
  const kvm = snpKvm();
  const vm = kvm.createVm('snp');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const host = vm.mmapAnonymous(4n * PS);
  bindGmem(vm, 10, GPA, 4n * PS, g, 0n, host.addr);
  const vcpu = vm.createVcpu(0);
  // attribute shared (0), private access -> memory fault flags PRIVATE
  assertMemoryFault(runProgram(vcpu, [read(GPA + 0x10n, 4, false), hlt]), { gpa: GPA, flags: PRIVATE });
  // attribute shared, shared access -> fine
  assert.equal(runProgram(vcpu, [read(GPA, 4, true), hlt]).reason, 'hlt');
  setPrivate(vm, GPA + PS, PS);
  // attribute private, shared access -> memory fault flags 0
  assertMemoryFault(runProgram(vcpu, [read(GPA + PS, 4, true), hlt]), { gpa: GPA + PS, flags: 0n });
  assert.equal(runProgram(vcpu, [write(GPA + PS, 9n, 4, false), read(GPA + PS, 4, false), hlt]).reads[0], 9n);
});

test('G2.2 before G2.3 (SNP): the mismatch is checked before the slot lookup: a shared access to a private GFN with no slot exits, not MMIO', () => {
  const kvm = snpKvm();
  const vm = kvm.createVm('snp');
  const vcpu = vm.createVcpu(0);
  setPrivate(vm, 0x80000000n, PS);
  assertMemoryFault(runProgram(vcpu, [read(0x80000000n, 4, true), hlt]), { gpa: 0x80000000n, flags: 0n });
  assert.equal(runProgram(vcpu, [read(0x90000000n, 4, true), hlt]).reason, 'mmio');
});

test('G2.3: no memslot: a private fault exits with EFAULT and flags PRIVATE; a shared fault is emulated MMIO', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const vcpu = vm.createVcpu(0);
  setPrivate(vm, 0x80000000n, PS);
  assertMemoryFault(runProgram(vcpu, [read(0x80000123n, 2), hlt]), { gpa: 0x80000000n, flags: PRIVATE });
  const e = runProgram(vcpu, [write(0x90000010n, 0xabcdn, 2), hlt]);
  assert.equal(e.reason, 'mmio');
  assert.deepEqual(e.mmio, { physAddr: 0x90000010n, len: 2, isWrite: true, data: 0xabcdn });
  assert.equal(e.errno, undefined);
});

test('G2.5: a private fault on a slot without guest_memfd exits with EFAULT, flags PRIVATE (PKE-2)', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 10, guestPhysAddr: GPA, memorySize: PS, userspaceAddr: host.addr }));
  setPrivate(vm, GPA, PS);
  const vcpu = vm.createVcpu(0);
  assertMemoryFault(runProgram(vcpu, [read(GPA, 8), hlt]), { gpa: GPA, flags: PRIVATE });
});

test('G2.3: a private access after its memslot was deleted exits with EFAULT, flags PRIVATE, gpa, 4096 (PKE-1)', () => {
  const { vm, vcpu } = protectedSlot();
  setPrivate(vm, GPA, PS);
  assert.equal(runProgram(vcpu, [read(GPA), hlt]).reason, 'hlt');
  deleteSlot(vm, 10);
  const e = runProgram(vcpu, [read(GPA), hlt]);
  assertMemoryFault(e, { gpa: GPA, flags: PRIVATE });
});

test('G2.5/I2: after the guest_memfd is closed, private faults on its slot exit with EFAULT, flags PRIVATE', () => {
  const { vm, g, vcpu, k } = protectedSlot();
  setPrivate(vm, GPA, 4n * PS);
  assert.equal(runProgram(vcpu, [write(GPA, 1n), hlt]).reason, 'hlt');
  assert.equal(k.mmu.sptes.has(GFN), true);
  g.close();
  assert.equal(k.mmu.sptes.has(GFN), false, 'release zapped the mapping');
  assertMemoryFault(runProgram(vcpu, [read(GPA), hlt]), { gpa: GPA, flags: PRIVATE });
  assertMemoryFault(runProgram(vcpu, [read(GPA + 3n * PS), hlt]), { gpa: GPA + 3n * PS, flags: PRIVATE });
});

test('G2.6: a shared fault on an ordinary slot resolves through userspace_addr', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(2n * PS);
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: GPA, memorySize: 2n * PS, userspaceAddr: host.addr }));
  host.write(PS, new Uint8Array([1, 2, 3, 4]));
  const vcpu = vm.createVcpu(0);
  assert.deepEqual(runProgram(vcpu, [read(GPA + PS), write(GPA, 0x77n, 1), hlt]).reads, [0x04030201n]);
  assert.equal(host.read(0n, 1)[0], 0x77);
});

test('G2.6 (lab): a shared fault whose userspace_addr has no mapping is a bare EFAULT, no memory-fault exit (kvm_handle_error_pfn)', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 10, GPA, PS, g, 0n, 0n);
  const vcpu = vm.createVcpu(0);
  expectErrno(() => runProgram(vcpu, [read(GPA + 8n), hlt]), 'EFAULT');
  assert.equal(inodeOf(g).pages.size, 0, 'a shared fault never touches guest_memfd');
  // the access is retried, not skipped: once the page is private (and so served from guest_memfd) it completes
  setPrivate(vm, GPA, PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA + 8n), hlt]).reads, [0n]);
});

test('G3/G4: the exit carries exit_reason 39 fields: gpa = gfn << 12 (not the access address), size 4096, flags PRIVATE; KVM_RUN is -1/EFAULT', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const vcpu = vm.createVcpu(0);
  setPrivate(vm, 0x80000000n, 4n * PS);
  for (const off of [0n, 1n, 0xfffn, 0x2ff8n]) {
    const e = runProgram(vcpu, [read(0x80000000n + off, 1), hlt]);
    assertMemoryFault(e, { gpa: 0x80000000n + (off & ~0xfffn), flags: PRIVATE });
    assert.deepEqual(e.reads, []);
  }
});

test('G4: after a memory-fault exit the next KVM_RUN re-executes the access', () => {
  const { vm } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 10, guestPhysAddr: GPA, memorySize: PS, userspaceAddr: host.addr }));
  host.write(0n, new Uint8Array([0x99]));
  setPrivate(vm, GPA, PS);
  const vcpu = vm.createVcpu(0);
  vcpu.load([read(GPA, 1), hlt]);
  assert.equal(vcpu.run().reason, 'memory_fault');
  assert.equal(vcpu.run().reason, 'memory_fault');
  setPrivate(vm, GPA, PS, false);
  const e = vcpu.run();
  assert.equal(e.reason, 'hlt');
  assert.deepEqual(e.reads, [0x99n]);
});

test('G5: at VM creation all memory is shared: a gmem slot of a sw_protected VM is reached through userspace_addr', () => {
  const { g, host, vcpu } = protectedSlot();
  host.write(0n, new Uint8Array([0xcc]));
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), hlt]).reads, [0xccn]);
  assert.equal(inodeOf(g).pages.size, 0);
});

test('G5: private mappings come from guest_memfd, shared ones from the host mapping; neither sees the other (PMC-2/3)', () => {
  const { vm, g, host, vcpu } = protectedSlot();
  assert.equal(runProgram(vcpu, [write(GPA, 0x11n, 1), hlt]).reason, 'hlt');
  setPrivate(vm, GPA, PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), write(GPA, 0x22n, 1), read(GPA, 1), hlt]).reads, [0n, 0x22n]);
  assert.equal(host.read(0n, 1)[0], 0x11, 'the host still sees p1 (SYNC_PRIVATE)');
  host.write(0n, new Uint8Array([0x33]));
  setPrivate(vm, GPA, PS, false);
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), hlt]).reads, [0x33n], 'back to shared: the host bytes');
  assert.equal(inodeOf(g).pages.get(0)?.[0], 0x22, 'the private page keeps p2 until punched');
});

test('G6: 6.18 MMAP|INIT_SHARED gmem slot with userspace_addr NULL: guest faults are served from guest_memfd (GM-16)', () => {
  const { vm } = setup('6.18', 'default');
  const g = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  bindGmem(vm, 1, 4n << 30n, PS, g, 0n, 0n);
  const m = g.mmap(0n, PS, 3);
  m.write(0n, fill(0xaa, 4096));
  m.unmap();
  const vcpu = vm.createVcpu(0);
  const prog = [];
  for (let off = 0n; off < PS; off += 8n) prog.push(read((4n << 30n) + off, 8));
  for (let off = 0n; off < PS; off += 8n) prog.push(write((4n << 30n) + off, 0xffffffffffffffffn, 8));
  const e = runProgram(vcpu, [...prog, hlt]);
  assert.equal(e.reason, 'hlt');
  assert.ok(e.reads.every((v) => v === 0xaaaaaaaaaaaaaaaan));
  assert.ok(allBytes(g.mmap(0n, PS, 3).read(0n, 4096), 0xff));
});

test('G6: on a GMEM_ONLY slot a host punch zeroes what the guest sees', () => {
  const { vm } = setup('6.18', 'default');
  const g = vm.createGuestMemfd({ size: 2n * PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  const m = g.mmap(0n, 2n * PS, 3);
  bindGmem(vm, 1, GPA, 2n * PS, g, 0n, m.addr);
  m.write(PS, new Uint8Array([0x42]));
  const vcpu = vm.createVcpu(0);
  assert.deepEqual(runProgram(vcpu, [read(GPA + PS, 1), write(GPA, 0x5an, 1), hlt]).reads, [0x42n]);
  assert.equal(m.read(0n, 1)[0], 0x5a);
  g.fallocate(KEEP_PUNCH, PS, PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA + PS, 1), hlt]).reads, [0n]);
});

test('G6: 6.18 sw_protected VM, MMAP-only gmem: a shared access is served from guest_memfd, not userspace_addr', () => {
  const { g, host, vcpu } = protectedSlot('6.18', GMEM_MMAP);
  host.write(0n, new Uint8Array([0x66]));
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), hlt]).reads, [0n]);
  assert.equal(inodeOf(g).pages.size, 1);
});

test('G7: private faults ignore the host mapping at userspace_addr: munmap of it leaves private data reachable', () => {
  const { vm, host, vcpu } = protectedSlot();
  setPrivate(vm, GPA, PS);
  runProgram(vcpu, [write(GPA, 0xfeedn), hlt]);
  host.unmap();
  assert.deepEqual(runProgram(vcpu, [read(GPA), hlt]).reads, [0xfeedn]);
  // the shared pages of the same slot now have no host page behind them: a bare EFAULT
  expectErrno(() => runProgram(vcpu, [read(GPA + PS), hlt]), 'EFAULT');
});

test('G7: a host invalidation of userspace_addr zaps the shared SPTE, so the guest sees the new host page', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: GPA, memorySize: PS, userspaceAddr: host.addr }));
  host.write(0n, new Uint8Array([5]));
  const vcpu = vm.createVcpu(0);
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), hlt]).reads, [5n]);
  const seq = k.mmu.seq;
  host.madvise(0n, PS, 4 /* MADV_DONTNEED */);
  assert.equal(k.mmu.sptes.has(GFN), false);
  assert.equal(k.mmu.seq, seq + 1);
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), hlt]).reads, [0n], 'a fresh zero page');
});

test('G8: a private page never written reads zero; a punched and re-faulted private page reads zero (PMC-5)', () => {
  const { vm, g, vcpu } = protectedSlot();
  setPrivate(vm, GPA, 4n * PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA, 8), read(GPA + 3n * PS + 8n, 8), hlt]).reads, [0n, 0n]);
  runProgram(vcpu, [write(GPA + PS, 0xccccccccn), hlt]);
  g.fallocate(KEEP_PUNCH, PS, PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA + PS), hlt]).reads, [0n]);
});

test('G8: fallocate-allocated private pages read zero when the guest first touches them', () => {
  const { vm, g, vcpu } = protectedSlot();
  g.fallocate(KEEP, 0n, 4n * PS);
  setPrivate(vm, GPA, 4n * PS);
  assert.deepEqual(runProgram(vcpu, [read(GPA + 2n * PS, 8), hlt]).reads, [0n]);
});

test('G9: a poisoned gmem folio: the next guest access exits with EHWPOISON; the folio is not truncated', () => {
  const { vm, g, vcpu, k } = protectedSlot();
  setPrivate(vm, GPA, PS);
  runProgram(vcpu, [write(GPA, 1n), hlt]);
  // kvm_gmem_error_folio: invalidate (zap) but do not truncate
  inodeOf(g).poisoned.add(0);
  k.mmu.invalidateBegin();
  k.mmu.unmapGfnRange(GFN, GFN + 1);
  k.mmu.invalidateEnd();
  assertMemoryFault(runProgram(vcpu, [read(GPA), hlt]), { gpa: GPA, flags: PRIVATE, errno: 'EHWPOISON' });
  assert.equal(inodeOf(g).pages.has(0), true);
});

// ---- MMIO SPTEs (found by guestmem diff --lab on 6.12 and 7.3) ----

test('MMIO SPTE (lab): a shared no-slot access leaves an MMIO SPTE; a conversion to private does not retire it', () => {
  const { vm, k } = setup('7.3', 'sw_protected');
  const vcpu = vm.createVcpu(0);
  assert.equal(runProgram(vcpu, [read(0x2008n, 8), hlt]).reason, 'mmio');
  assert.equal(k.mmu.mmioSptes.has(2), true);
  setPrivate(vm, 0x2000n, 2n * PS);
  const e = runProgram(vcpu, [write(0x2010n, 78n, 1), hlt]);
  assert.equal(e.reason, 'mmio', 'the reserved-bit fault is never private: emulated MMIO, not a memory-fault exit');
  // without the earlier shared access, the same private access is a private no-slot exit
  const fresh = setup('7.3', 'sw_protected');
  setPrivate(fresh.vm, 0x2000n, 2n * PS);
  assertMemoryFault(runProgram(fresh.vm.createVcpu(0), [write(0x2010n, 78n, 1), hlt]), { gpa: 0x2000n, flags: PRIVATE });
});

test('MMIO SPTE (lab): a new memslots generation makes it stale: the access faults again, as a shared one', () => {
  const { vm } = setup('7.3', 'sw_protected');
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [read(0x2008n, 8), hlt]);
  setPrivate(vm, 0x2000n, PS);
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 3, guestPhysAddr: 0x100000n, memorySize: PS, userspaceAddr: host.addr }));
  // shared access (flags 0) meets the private attribute
  assertMemoryFault(runProgram(vcpu, [write(0x2010n, 78n, 1), hlt]), { gpa: 0x2000n, flags: 0n });
  // a shared GFN with a stale MMIO SPTE is plain MMIO again (and the SPTE is renewed)
  setPrivate(vm, 0x2000n, PS, false);
  assert.equal(runProgram(vcpu, [read(0x2008n, 8), hlt]).reason, 'mmio');
});

test('MMIO SPTE (lab): deleting a slot drops MMIO SPTEs on default VMs only (kvm_memslot_flush_zap_all)', () => {
  for (const type of ['default', 'sw_protected'] as const) {
    const { vm, k } = setup('7.3', type);
    const vcpu = vm.createVcpu(0);
    runProgram(vcpu, [read(0x2008n, 8), hlt]);
    const host = vm.mmapAnonymous(PS);
    vm.setUserMemoryRegion2(region({ slot: 3, guestPhysAddr: 0x100000n, memorySize: PS, userspaceAddr: host.addr }));
    deleteSlot(vm, 3);
    assert.equal(k.mmu.mmioSptes.has(2), type !== 'default', type);
  }
});

test('MMIO SPTE: a slot created over the GFN replaces it with a real mapping', () => {
  const { vm, k } = setup('7.3', 'default');
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [read(0x2008n, 8), hlt]);
  const host = vm.mmapAnonymous(PS);
  host.write(8n, new Uint8Array([0x5a]));
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 0x2000n, memorySize: PS, userspaceAddr: host.addr }));
  assert.deepEqual(runProgram(vcpu, [read(0x2008n, 1), hlt]).reads, [0x5an]);
  assert.equal(k.mmu.mmioSptes.has(2), false);
});

test('G2 (lab): a private write to a read-only slot is a private memory-fault exit; a shared one is emulated MMIO', () => {
  const { vm } = setup('7.3', 'sw_protected');
  const host = vm.mmapAnonymous(4n * PS);
  vm.setUserMemoryRegion2(region({ slot: 2, flags: 2, guestPhysAddr: 0n, memorySize: 4n * PS, userspaceAddr: host.addr }));
  setPrivate(vm, 2n * PS, PS);
  const vcpu = vm.createVcpu(0);
  assertMemoryFault(runProgram(vcpu, [write(2n * PS + 16n, 12n, 1), hlt]), { gpa: 2n * PS, flags: PRIVATE });
  assert.equal(runProgram(vcpu, [write(3n * PS + 16n, 12n, 1), hlt]).reason, 'mmio');
});
