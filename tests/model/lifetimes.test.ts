/**
 * KERNEL-SPEC §2.I: lifetimes. The gmem file pins its VM (I1); a memslot does not pin the gmem file
 * (I2); dup'd fds and mappings share one file, released on the last reference (I3); destroying the
 * VM frees and unbinds its memslots (I4).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  allBytes,
  bindGmem,
  deleteSlot,
  expectErrno,
  expectOk,
  fill,
  GMEM_INIT_SHARED,
  GMEM_MMAP,
  gmemFile,
  hlt,
  inodeOf,
  KEEP,
  KEEP_PUNCH,
  MEM_GUEST_MEMFD,
  PRIVATE,
  PS,
  read,
  region,
  runProgram,
  setup,
  write,
} from './helpers.js';

const GPA = 0xc0000000n;

test('I1: the gmem fd keeps the VM alive after the VM fd is closed: fallocate and mmap still work', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  bindGmem(vm, 1, GPA, 4n * PS, g);
  vm.close();
  assert.equal(k.destroyed, false);
  expectOk(() => g.fallocate(KEEP, 0n, 4n * PS));
  expectOk(() => g.fallocate(KEEP_PUNCH, 0n, 4n * PS));
  const m = g.mmap(0n, 4n * PS, 3);
  m.write(0n, fill(0x42, 8));
  assert.ok(allBytes(m.read(0n, 8), 0x42));
  assert.equal(k.memslots.all().length, 1, 'the memslots live as long as the VM');
});

test('I1: the VM is destroyed only after its VM fd, its vCPU fds and all its gmem fds are closed', () => {
  const { vm, k } = setup('6.18');
  const g1 = vm.createGuestMemfd({ size: PS, flags: 0n });
  const g2 = vm.createGuestMemfd({ size: PS, flags: 0n });
  const vcpu = vm.createVcpu(0);
  vm.close();
  g1.close();
  assert.equal(k.destroyed, false);
  vcpu.close();
  assert.equal(k.destroyed, false);
  g2.close();
  assert.equal(k.destroyed, true);
});

test('I1: VM ioctls on the closed VM fd give EBADF while the gmem fd still works', () => {
  const { vm } = setup('6.18');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  vm.close();
  expectErrno(() => vm.createGuestMemfd({ size: PS, flags: 0n }), 'EBADF');
  expectErrno(() => vm.setUserMemoryRegion2(region({ slot: 0, memorySize: PS })), 'EBADF');
  expectOk(() => g.fallocate(KEEP, 0n, PS));
});

test('I2: closing the gmem fd while slots are bound succeeds; the slots stay and can be deleted normally', () => {
  const { vm, k } = setup('6.18');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  const fd = g.fd;
  bindGmem(vm, 1, GPA, 2n * PS, g, 0n);
  bindGmem(vm, 2, GPA + 0x100000n, 2n * PS, g, 2n * PS);
  expectOk(() => g.close());
  const slots = k.memslots.all();
  assert.equal(slots.length, 2);
  for (const s of slots) assert.equal(s.gmem?.file, null);
  // the closed fd number gives EBADF for new bindings
  expectErrno(() => vm.setUserMemoryRegion2(region({ slot: 3, flags: MEM_GUEST_MEMFD, guestPhysAddr: 0x10000000n, memorySize: PS, guestMemfd: fd })), 'EBADF');
  expectOk(() => deleteSlot(vm, 1));
  expectOk(() => deleteSlot(vm, 2, MEM_GUEST_MEMFD));
  assert.equal(k.memslots.all().length, 0);
});

test('I2: after the gmem fd is closed, guest private faults on its slots exit with EFAULT (memory fault, PRIVATE)', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  bindGmem(vm, 10, GPA, PS, g);
  vm.setMemoryAttributes({ address: GPA, size: PS, attributes: PRIVATE, flags: 0n });
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [write(GPA, 3n), hlt]);
  g.close();
  const e = runProgram(vcpu, [read(GPA), hlt]);
  assert.equal(e.reason, 'memory_fault');
  assert.equal(e.errno, 'EFAULT');
  assert.deepEqual(e.memoryFault, { flags: PRIVATE, gpa: GPA, size: 4096n });
  assert.equal(k.mmu.sptes.size, 0);
});

test('I2: 6.18 GMEM_ONLY slot: after the file is released, shared guest faults exit with EFAULT, flags 0', () => {
  const { vm } = setup('6.18', 'default');
  const g = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  bindGmem(vm, 1, GPA, PS, g);
  const vcpu = vm.createVcpu(0);
  assert.equal(runProgram(vcpu, [read(GPA), hlt]).reason, 'hlt');
  g.close();
  const e = runProgram(vcpu, [read(GPA), hlt]);
  assert.equal(e.reason, 'memory_fault');
  assert.equal(e.errno, 'EFAULT');
  assert.deepEqual(e.memoryFault, { flags: 0n, gpa: GPA, size: 4096n });
});

test("I3: a dup'd fd keeps the file: closing the original changes nothing; the last close releases it", () => {
  const { kvm, vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  const f = gmemFile(g);
  bindGmem(vm, 10, GPA, PS, g);
  vm.setMemoryAttributes({ address: GPA, size: PS, attributes: PRIVATE, flags: 0n });
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [write(GPA, 0x77n), hlt]);
  const d = kvm.files.dup(g.fd);
  g.close();
  assert.equal(f.isReleased, false);
  assert.deepEqual(runProgram(vcpu, [read(GPA), hlt]).reads, [0x77n]);
  expectOk(() => kvm.files.fallocate(d, KEEP_PUNCH, 0n, PS));
  kvm.files.close(d);
  assert.equal(f.isReleased, true);
  assert.equal(k.memslots.all().find((s) => s.id === 10)?.gmem?.file, null);
});

test('I3: a host mapping holds the file too: with the fd closed, bindings stay until the last munmap', () => {
  const { vm } = setup('6.18', 'default');
  const g = vm.createGuestMemfd({ size: PS, flags: GMEM_MMAP | GMEM_INIT_SHARED });
  const f = gmemFile(g);
  const m = g.mmap(0n, PS, 3);
  bindGmem(vm, 1, GPA, PS, g);
  m.write(0n, fill(0x31, 1));
  g.close();
  assert.equal(f.isReleased, false);
  const vcpu = vm.createVcpu(0);
  assert.deepEqual(runProgram(vcpu, [read(GPA, 1), hlt]).reads, [0x31n]);
  m.unmap();
  assert.equal(f.isReleased, true);
  assert.equal(runProgram(vcpu, [read(GPA, 1), hlt]).reason, 'memory_fault');
});

test('I4: destroying the VM frees its memslots, which unbinds them; its SPTEs are gone', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 0n });
  bindGmem(vm, 1, GPA, 4n * PS, g);
  vm.setMemoryAttributes({ address: GPA, size: 4n * PS, attributes: PRIVATE, flags: 0n });
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [write(GPA, 1n), hlt]);
  const f = gmemFile(g);
  const inode = inodeOf(g);
  vcpu.close();
  vm.close();
  assert.equal(k.destroyed, false);
  assert.equal(f.bindingCount, 1);
  g.close();
  assert.equal(k.destroyed, true);
  assert.equal(k.memslots.all().length, 0);
  assert.equal(k.mmu.sptes.size, 0);
  assert.equal(f.bindingCount, 0);
  assert.equal(inode.pages.size, 0, 'the last file on the inode is gone: its memory is freed');
});

test('I: a memslot does not keep the VM alive beyond its fds (slots die with the VM, not the reverse)', () => {
  const { vm, k } = setup('6.18');
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 0, guestPhysAddr: 0n, memorySize: PS, userspaceAddr: host.addr }));
  vm.close();
  assert.equal(k.destroyed, true);
  assert.equal(k.memslots.all().length, 0);
});
