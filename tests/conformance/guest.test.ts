/**
 * Guest programs, once for every backend: a default VM whose memory is a guest_memfd mapped the QEMU
 * way (userspace_addr = an mmap of the same gmem, flags MMAP|INIT_SHARED), and the exit forms (io,
 * hlt, mmio, memory round trips of every width, the read list per run).
 */
import assert from 'node:assert/strict';
import { CODE_GPA } from '../../src/api.js';
import { forEachBackend } from '../support/conformance.js';
import { expectErrno, GMEM_SHARED, KEEP_PUNCH, MAP_SHARED, MEM_GUEST_MEMFD, MiB, PS, RW } from '../support/uapi.js';

const GPA = 1n << 32n;
const SHARED_GMEM = ['guest_memfd', 'guest_memfd_flags:mmap', 'guest_memfd_flags:init_shared'];

forEachBackend('QEMU-style gmem memory: host write -> guest read, guest write -> host read, punch -> guest reads 0', SHARED_GMEM, (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const g = vm.createGuestMemfd({ size: 2n * MiB, flags: GMEM_SHARED });
  const m = g.mmap(0n, 2n * MiB, RW, MAP_SHARED);
  vm.setUserMemoryRegion2({
    slot: 1,
    flags: MEM_GUEST_MEMFD,
    guestPhysAddr: GPA,
    memorySize: 2n * MiB,
    userspaceAddr: m.addr,
    guestMemfd: g.fd,
    guestMemfdOffset: 0n,
  });
  const v = vm.createVcpu(0);
  m.write(0x1000n, Uint8Array.of(0x41, 0x42, 0x43, 0x44));
  v.load([{ op: 'read', gpa: GPA + 0x1000n, width: 4 }, { op: 'write', gpa: GPA + 0x2000n, width: 4, value: 0x5a5a5a5an }, { op: 'hlt' }]);
  const e = v.run();
  assert.equal(e.reason, 'hlt');
  assert.deepEqual(e.reads, [0x44434241n], 'the guest read what the host wrote');
  assert.deepEqual([...m.read(0x2000n, 4)], [0x5a, 0x5a, 0x5a, 0x5a], 'the host sees what the guest wrote');
  g.fallocate(KEEP_PUNCH, 0x1000n, PS);
  v.load([{ op: 'read', gpa: GPA + 0x1000n, width: 4 }, { op: 'read', gpa: GPA + 0x2000n, width: 4 }, { op: 'hlt' }]);
  assert.deepEqual(v.run().reads, [0n, 0x5a5a5a5an], 'the punched page reads 0, the other keeps its data');
});

forEachBackend('exit forms: out -> io, hlt, running past the end -> hlt, reads are per run', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const mem = vm.mmapAnonymous(2n * MiB);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 2n * MiB, userspaceAddr: mem.addr });
  mem.write(0x10n, Uint8Array.of(7));
  const v = vm.createVcpu(0);
  v.load([
    { op: 'read', gpa: 0x10n, width: 1 },
    { op: 'out', port: 0x3f8, value: 0xdeadbeefn },
    { op: 'read', gpa: 0x10n, width: 2 },
    { op: 'hlt' },
    { op: 'read', gpa: 0x10n, width: 8 },
  ]);
  const e1 = v.run();
  assert.equal(e1.reason, 'io');
  assert.deepEqual(e1.io, { direction: 'out', port: 0x3f8, size: 4, value: 0xdeadbeefn });
  assert.deepEqual(e1.reads, [7n]);
  const e2 = v.run();
  assert.equal(e2.reason, 'hlt');
  assert.deepEqual(e2.reads, [7n]);
  const e3 = v.run();
  assert.equal(e3.reason, 'hlt', 'after the last op the guest halts');
  assert.deepEqual(e3.reads, [7n]);
  assert.deepEqual(v.run().reads, [], 'and keeps halting');
});

forEachBackend('every width round-trips, including an access that crosses a page boundary', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const mem = vm.mmapAnonymous(2n * MiB);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0x200000n, memorySize: 2n * MiB, userspaceAddr: mem.addr });
  const v = vm.createVcpu(0);
  v.load([
    { op: 'write', gpa: 0x200000n, width: 1, value: 0x1ffn },
    { op: 'write', gpa: 0x200010n, width: 2, value: 0xbeefn },
    { op: 'write', gpa: 0x200020n, width: 4, value: 0xcafef00dn },
    { op: 'write', gpa: 0x200000n + PS - 4n, width: 8, value: 0x0123456789abcdefn },
    { op: 'read', gpa: 0x200000n, width: 1 },
    { op: 'read', gpa: 0x200010n, width: 2 },
    { op: 'read', gpa: 0x200020n, width: 4 },
    { op: 'read', gpa: 0x200000n + PS - 4n, width: 8 },
    { op: 'hlt' },
  ]);
  const e = v.run();
  assert.deepEqual(e.reads, [0xffn, 0xbeefn, 0xcafef00dn, 0x0123456789abcdefn]);
  assert.equal(Buffer.from(mem.read(PS - 4n, 8)).toString('hex'), 'efcdab8967452301');
});

forEachBackend('no memslot: mmio exits; a read completes with 0 on the next run; load after mmio works', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const v = vm.createVcpu(0);
  v.load([{ op: 'read', gpa: 0x40000000n, width: 4 }, { op: 'write', gpa: 0x40000008n, width: 8, value: 0x1122334455667788n }, { op: 'hlt' }]);
  const e1 = v.run();
  assert.equal(e1.reason, 'mmio');
  assert.deepEqual(e1.mmio, { physAddr: 0x40000000n, len: 4, isWrite: false, data: 0n });
  assert.deepEqual(e1.reads, []);
  const e2 = v.run();
  assert.equal(e2.reason, 'mmio');
  assert.deepEqual(e2.mmio, { physAddr: 0x40000008n, len: 8, isWrite: true, data: 0x1122334455667788n });
  assert.deepEqual(e2.reads, [0n], 'the MMIO read completed with the zeroed kvm_run.mmio.data');
  // Leave an MMIO read pending, then load another program: KVM completes it first.
  v.load([{ op: 'read', gpa: 0x40000000n, width: 1 }, { op: 'hlt' }]);
  assert.equal(v.run().reason, 'mmio');
  v.load([{ op: 'out', port: 1, value: 2n }, { op: 'hlt' }]);
  assert.equal(v.run().reason, 'io');
  assert.equal(v.run().reason, 'hlt');
});

forEachBackend('two vCPUs of one VM run their own programs from the shared code slot', [], (be) => {
  const kvm = be.kvm;
  const vm = kvm.createVm();
  const mem = vm.mmapAnonymous(2n * MiB);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 2n * MiB, userspaceAddr: mem.addr });
  const a = vm.createVcpu(0);
  const b = vm.createVcpu(1);
  a.load([
    { op: 'write', gpa: 0x100n, width: 4, value: 0xaaaan },
    { op: 'out', port: 1, value: 1n },
  ]);
  b.load([
    { op: 'write', gpa: 0x200n, width: 4, value: 0xbbbbn },
    { op: 'out', port: 2, value: 2n },
  ]);
  assert.equal(b.run().io?.port, 2);
  assert.equal(a.run().io?.port, 1);
  a.load([{ op: 'read', gpa: 0x200n, width: 4 }]);
  assert.deepEqual(a.run().reads, [0xbbbbn]);
});

forEachBackend('the code slot is a real memslot: a scenario slot over it makes load() fail with EEXIST', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const mem = vm.mmapAnonymous(2n * MiB);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: CODE_GPA, memorySize: 2n * MiB, userspaceAddr: mem.addr });
  const v = vm.createVcpu(0);
  expectErrno(() => v.load([{ op: 'hlt' }]), 'EEXIST');
  assert.throws(() => v.run(), /no guest program loaded/);
});
