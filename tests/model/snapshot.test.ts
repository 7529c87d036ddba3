/** src/model/snapshot.ts: page runs are exact on small guests and cost nothing per page on a 1 TiB one. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createModelKvm, PAGE, pageRuns, snapshotKvm } from '../../src/model/index.js';
import type { KvmVm } from '../../src/model/vm.js';
import { KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../src/uapi/constants.js';

const TIB = 1n << 40n;

function guest(size: bigint) {
  const kvm = createModelKvm({ kernel: '6.18' });
  const vm = kvm.createVm('sw_protected');
  const gmem = vm.createGuestMemfd({ size, flags: 0n });
  const shared = vm.mmapAnonymous(size);
  vm.setUserMemoryRegion2({
    slot: 0,
    flags: KVM_MEM_GUEST_MEMFD,
    guestPhysAddr: 0n,
    memorySize: size,
    userspaceAddr: shared.addr,
    guestMemfd: gmem.fd,
    guestMemfdOffset: 0n,
  });
  return { kvm, vm, gmem, shared, kvmVm: kvm.vms[0] as KvmVm };
}

test('a 1 TiB guest: a few runs, fast, whatever the range', () => {
  const { kvm, vm, gmem, shared, kvmVm } = guest(TIB);
  vm.setMemoryAttributes({ address: 0x10000000n, size: 1n << 39n, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0n });
  shared.write(0x3000n, new Uint8Array([1]));
  gmem.fallocate(1 /* FALLOC_FL_KEEP_SIZE */, 0x10000000n, 0x200000n);
  const t0 = performance.now();
  const runs = pageRuns(kvmVm, 0, Number(TIB / 4096n));
  const ms = performance.now() - t0;
  assert.ok(ms < 200, `pageRuns over 2^28 pages took ${ms} ms`);
  const at = (g: number) => runs.find((r) => r.start <= g && g < r.end)?.bits;
  assert.equal(at(3), PAGE.SLOT | PAGE.HOST);
  assert.equal(at(4), PAGE.SLOT);
  assert.equal(at(0x10000), PAGE.SLOT | PAGE.PRIVATE | PAGE.GMEM);
  assert.equal(at(0x10200), PAGE.SLOT | PAGE.PRIVATE);
  assert.ok(runs.length < 10, `${runs.length} runs`);
  assert.equal(runs[0]?.start, 0);
  assert.equal(runs.at(-1)?.end, 1 << 28);
  const [v] = snapshotKvm(kvm);
  assert.equal(v?.extent, 1 << 28);
  assert.equal(v?.gmems[0]?.populated, 512);
  assert.deepEqual(v?.gmems[0]?.bindings, [{ slot: 0, start: 0, end: 1 << 28 }]);
  assert.ok((v?.mmuInvalidateSeq ?? 0) > 0, 'the conversion bumped mmu_invalidate_seq');
  kvm.close();
});
