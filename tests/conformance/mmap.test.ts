/**
 * mmap of a guest_memfd and host faults through it (KERNEL-SPEC §2.D: kvm_gmem_mmap,
 * kvm_gmem_fault_user_mapping; selftests GM-5..9, GM-15), once for every backend: which mappings
 * the kernel allows, what the data does through them, and where a host access is SIGBUS (a
 * HostFault) or SIGSEGV.
 */
import assert from 'node:assert/strict';
import { CAP, MADV, MAP_SHARED_VALIDATE, PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE, VM_TYPE } from '../../src/uapi/constants.js';
import { type Backend, forEachBackend } from '../support/conformance.js';
import { inodeOf } from '../support/model.js';
import {
  allBytes,
  expectErrno,
  expectOk,
  fill,
  GMEM_INIT_SHARED,
  GMEM_MMAP,
  GMEM_SHARED,
  hostFault,
  KEEP,
  KEEP_PUNCH,
  MAP_PRIVATE,
  MAP_SHARED,
  MiB,
  outcome,
  PS,
  RW,
} from '../support/uapi.js';

const T = 4n * PS;
const MMAP = ['guest_memfd', 'guest_memfd_flags:mmap'];
const SHARED_GMEM = [...MMAP, 'guest_memfd_flags:init_shared'];

const gmem = (b: Backend, flags = GMEM_SHARED, size = T) => b.kvm.createVm().createGuestMemfd({ size, flags });

forEachBackend(
  'D1/D2/GM-5: without GUEST_MEMFD_FLAG_MMAP (or before 6.18, without .mmap) every mmap is ENODEV, whatever the VM type, flags and prot',
  ['guest_memfd'],
  (b) => {
    // the VM types this kernel has (KVM_CAP_VM_TYPES): every model profile lists sw_protected
    const types = b.kvm.checkExtension(CAP.KVM_CAP_VM_TYPES) || 1;
    for (const type of (['default', 'sw_protected'] as const).filter((t) => types & (1 << VM_TYPE[t]))) {
      const vm = b.kvm.createVm(type);
      const g = vm.createGuestMemfd({ size: T, flags: 0n });
      expectErrno(() => g.mmap(0n, T, RW, MAP_SHARED), 'ENODEV', `${type} whole file`);
      for (const flags of [MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE]) {
        for (const prot of [PROT_NONE, PROT_READ, RW]) expectErrno(() => g.mmap(0n, PS, prot, flags), 'ENODEV', `${type} flags ${flags} prot ${prot}`);
      }
      vm.close();
    }
  },
  { profiles: ['6.8', '6.12', '6.18', '7.3'] },
);

forEachBackend('D2/D3: ENODEV (no MMAP flag) is checked before the MAP_SHARED requirement', ['guest_memfd', 'guest_memfd_flags:init_shared'], (b) => {
  expectErrno(() => gmem(b, GMEM_INIT_SHARED).mmap(0n, PS, RW, MAP_PRIVATE), 'ENODEV');
});

forEachBackend('D3/GM-6: with MMAP, MAP_PRIVATE is EINVAL for any prot; MAP_SHARED and MAP_SHARED_VALIDATE work, on sw_protected VMs too', MMAP, (b) => {
  const flagSets = BigInt(b.kvm.createVm().checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) & GMEM_INIT_SHARED ? [GMEM_MMAP, GMEM_SHARED] : [GMEM_MMAP];
  for (const flags of flagSets) {
    const g = gmem(b, flags);
    for (const prot of [PROT_NONE, PROT_READ, PROT_WRITE, RW]) expectErrno(() => g.mmap(0n, T, prot, MAP_PRIVATE), 'EINVAL', `flags ${flags} prot ${prot}`);
    expectOk(() => g.mmap(0n, T, RW, MAP_SHARED).unmap());
    expectOk(() => g.mmap(0n, T, RW, MAP_SHARED_VALIDATE).unmap());
    expectOk(() => g.mmap(0n, T, PROT_READ, MAP_SHARED_VALIDATE).unmap());
  }
  if (b.kvm.checkExtension(CAP.KVM_CAP_VM_TYPES) & (1 << VM_TYPE.sw_protected)) {
    const sw = b.kvm.createVm('sw_protected').createGuestMemfd({ size: T, flags: GMEM_MMAP });
    expectOk(() => sw.mmap(0n, T, RW, MAP_SHARED), 'sw_protected, MMAP only');
  }
});

forEachBackend('D4: a mapping may be larger than the file or start past its end; the check is at fault time', SHARED_GMEM, (b) => {
  const g = gmem(b);
  const big = g.mmap(0n, 4n * T, RW, MAP_SHARED);
  assert.equal(big.length, 4n * T);
  const past = g.mmap(2n * T, T, RW, MAP_SHARED);
  const f = hostFault(() => past.read(0n, 1));
  assert.equal(f.signal, 'SIGBUS');
  assert.equal(f.offset, 0n);
});

forEachBackend(
  'D7: PROT_EXEC is EPERM (noexec mount), before f_op->mmap (its EINVAL and ENODEV); an unaligned offset is EINVAL, before the fd',
  SHARED_GMEM,
  (b) => {
    const g = gmem(b);
    expectErrno(() => g.mmap(0n, T, PROT_READ | PROT_EXEC, MAP_SHARED), 'EPERM');
    expectErrno(() => g.mmap(0n, T, RW | PROT_EXEC, MAP_SHARED), 'EPERM');
    expectErrno(() => g.mmap(0n, T, RW | PROT_EXEC, MAP_SHARED_VALIDATE), 'EPERM');
    expectErrno(() => g.mmap(0n, T, PROT_READ | PROT_EXEC, MAP_PRIVATE), 'EPERM');
    expectErrno(() => gmem(b, 0n).mmap(0n, T, PROT_READ | PROT_EXEC, MAP_SHARED), 'EPERM', 'no MMAP flag');
    expectErrno(() => g.mmap(1n, PS, RW, MAP_SHARED), 'EINVAL');
    expectErrno(() => g.mmap(PS - 1n, PS, RW, MAP_SHARED), 'EINVAL');
    expectErrno(() => b.kvm.files.mmap(999, 1n, PS, RW, MAP_SHARED), 'EINVAL');
    expectErrno(() => b.kvm.files.mmap(999, 0n, PS, RW, MAP_SHARED), 'EBADF');
  },
);

forEachBackend('GM-8/D5: past i_size a read is SIGBUS at the first page past the end; nothing is returned', SHARED_GMEM, (b) => {
  const g = gmem(b, GMEM_SHARED, 2n * PS);
  const m = g.mmap(0n, 4n * PS, RW, MAP_SHARED);
  assert.equal(m.read(2n * PS - 1n, 1).length, 1);
  const f = hostFault(() => m.read(2n * PS, 1));
  assert.equal(f.signal, 'SIGBUS');
  assert.equal(f.offset, 2n * PS);
  assert.equal(f.addr, m.addr + 2n * PS);
  assert.equal(hostFault(() => m.read(PS + 10n, Number(2n * PS))).offset, 2n * PS, 'a read spanning the end faults at the boundary');
  assert.equal(hostFault(() => m.read(3n * PS + 5n, 3)).offset, 3n * PS + 5n, 'a read starting past the end faults at its first byte');
});

forEachBackend(
  'GM-8/D5: a write spanning i_size stores the bytes before the end, then faults (memset order); untouched pages fault in zeroed',
  SHARED_GMEM,
  (b) => {
    const g = gmem(b);
    const m = g.mmap(0n, 4n * T, RW, MAP_SHARED);
    assert.ok(allBytes(m.read(0n, Number(T)), 0), 'with INIT_SHARED an untouched page faults in zeroed');
    if (b.model) assert.equal(inodeOf(g).pages.size, 4);
    const f = hostFault(() => m.write(0n, fill(0xaa, 4n * T)));
    assert.equal(f.signal, 'SIGBUS');
    assert.equal(f.offset, T);
    assert.equal(hostFault(() => m.read(T, 1)).signal, 'SIGBUS');
    assert.ok(allBytes(m.read(0n, Number(T)), 0xaa), 'the bytes before the faulting page were stored');
  },
);

forEachBackend('GM-9/D5: without INIT_SHARED every host access faults at its first byte, even after fallocate', MMAP, (b) => {
  const g = gmem(b, GMEM_MMAP);
  const m = g.mmap(0n, T, RW, MAP_SHARED);
  const w = hostFault(() => m.write(0n, fill(0xaa, T)));
  assert.equal(w.signal, 'SIGBUS');
  assert.equal(w.offset, 0n);
  assert.equal(hostFault(() => m.read(0n, 1)).offset, 0n);
  assert.equal(hostFault(() => m.write(PS + 7n, Uint8Array.of(1))).offset, PS + 7n);
  g.fallocate(KEEP, 0n, T);
  for (let i = 0n; i < 4n; i++)
    assert.equal(
      outcome(() => m.read(i * PS, 1)),
      'SIGBUS',
      `page ${i} after fallocate`,
    );
  if (b.model) assert.equal(inodeOf(g).pages.size, 0);
});

forEachBackend('SIGSEGV without touching: outside the mapping, after unmap, against its protection', SHARED_GMEM, (b) => {
  const g = gmem(b);
  const m = g.mmap(0n, 2n * PS, RW, MAP_SHARED);
  assert.equal(hostFault(() => m.read(2n * PS - 1n, 2)).signal, 'SIGSEGV');
  assert.equal(hostFault(() => m.read(-1n, 1)).signal, 'SIGSEGV');
  const ro = g.mmap(0n, PS, PROT_READ, MAP_SHARED);
  assert.equal(hostFault(() => ro.write(0n, Uint8Array.of(1))).signal, 'SIGSEGV');
  m.unmap();
  assert.equal(hostFault(() => m.read(0n, 1)).signal, 'SIGSEGV');
  expectErrno(() => m.madvise(0n, PS, MADV.dontneed), 'ENOMEM');
});

forEachBackend(
  'GM-7/D6: data persists in the file (MADV_DONTNEED keeps it), every mapping sees it, punch zeroes in every mapping, the mapping outlives the fd',
  SHARED_GMEM,
  (b) => {
    const g = gmem(b);
    const a = g.mmap(0n, T, RW, MAP_SHARED);
    a.write(0n, fill(0xaa, T));
    assert.ok(allBytes(a.read(0n, Number(T)), 0xaa));
    a.madvise(0n, T, MADV.dontneed);
    assert.ok(allBytes(a.read(0n, Number(T)), 0xaa), 'page cache survives MADV_DONTNEED');
    const c = g.mmap(0n, T, RW, MAP_SHARED);
    assert.ok(allBytes(c.read(0n, Number(T)), 0xaa), 'and is shared');
    const tail = g.mmap(2n * PS, 2n * PS, PROT_READ, MAP_SHARED);
    assert.ok(allBytes(tail.read(0n, Number(2n * PS)), 0xaa));
    g.fallocate(KEEP_PUNCH, 0n, PS);
    for (const mm of [a, c]) {
      assert.ok(allBytes(mm.read(0n, Number(PS)), 0));
      assert.ok(allBytes(mm.read(PS, Number(T - PS)), 0xaa));
    }
    a.write(0n, fill(0xaa, PS));
    assert.ok(allBytes(c.read(0n, Number(T)), 0xaa), 'a write through one mapping is seen through the other');
    g.fallocate(KEEP_PUNCH, 2n * PS, PS);
    assert.ok(allBytes(tail.read(0n, Number(PS)), 0));
    assert.ok(allBytes(tail.read(PS, Number(PS)), 0xaa));
    a.write(0n, fill(7, 4));
    g.close();
    assert.ok(allBytes(a.read(0n, 4), 7), 'data stays reachable after close(fd)');
  },
);

forEachBackend('D7/GM-15: madvise on a gmem mapping: HUGEPAGE 0, COLLAPSE EINVAL, DONTNEED keeps data, REMOVE punches', SHARED_GMEM, (b) => {
  const g = gmem(b, GMEM_SHARED, 2n * MiB);
  const m = g.mmap(0n, 2n * MiB, RW, MAP_SHARED);
  for (let off = 0n; off < 2n * MiB; off += PS) m.read(off, 1);
  m.write(0n, fill(5, 2n * PS));
  expectOk(() => m.madvise(0n, 2n * MiB, MADV.hugepage));
  expectErrno(() => m.madvise(0n, 2n * MiB, MADV.collapse), 'EINVAL');
  expectOk(() => m.madvise(0n, 2n * MiB, MADV.dontneed));
  assert.equal(m.read(0n, 1)[0], 5);
  expectOk(() => m.madvise(0n, PS, MADV.remove));
  if (b.model) assert.equal(inodeOf(g).pages.has(0), false, 'the page is gone from the file');
  assert.ok(allBytes(m.read(0n, Number(PS)), 0));
  assert.equal(m.read(PS, 1)[0], 5);
  expectErrno(() => m.madvise(1n, PS, MADV.dontneed), 'EINVAL');
  expectErrno(() => m.madvise(0n, 4n * MiB, MADV.dontneed), 'ENOMEM', 'past the mapping: refused without touching anything else');
});
