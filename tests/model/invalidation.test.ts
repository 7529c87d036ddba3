/**
 * KERNEL-SPEC §2.H: the invalidation protocol (kvm_mmu_invalidate_begin / _range_add / _end,
 * mmu_invalidate_retry_gfn) and who runs it: guest_memfd punch (H6) and release (H7), attribute
 * changes (H8, see attributes.test.ts for F5). The fault-side retry is driven deterministically
 * by raceInstall, which runs a callback between the page lookup and the install.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Mmu } from '../../src/model/mmu.js';
import { bindGmem, deleteSlot, hlt, inodeOf, KEEP_PUNCH, PRIVATE, PS, read, region, runProgram, setup, write } from './helpers.js';

const GPA = 0xc0000000n;
const GFN = Number(GPA / PS);

/** sw_protected VM with a 16-page guest_memfd bound at pgoff 4 (8 pages) to slot 1 at GPA, all private. */
/**
 * Run `race` at the start of every mmu.install, i.e. between a fault's page lookup and its install,
 * where an invalidation on another CPU could land; returns the undo.
 */
function raceInstall(mmu: Mmu, race: (gfn: number) => void): () => void {
  const install = mmu.install;
  mmu.install = function (this: Mmu, gfn, spte, snapshot) {
    race(gfn);
    return install.call(this, gfn, spte, snapshot);
  };
  return () => {
    mmu.install = install;
  };
}

function bound() {
  const s = setup('6.18', 'sw_protected');
  const g = s.vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  bindGmem(s.vm, 1, GPA, 8n * PS, g, 4n * PS);
  s.vm.setMemoryAttributes({ address: GPA, size: 8n * PS, attributes: PRIVATE, flags: 0n });
  const vcpu = s.vm.createVcpu(0);
  return { ...s, g, vcpu };
}

test('H1/H2: begin increments in_progress and resets the range only when it becomes 1', () => {
  const mmu = new Mmu();
  assert.equal(mmu.inProgress, 0);
  assert.equal(mmu.rangeStart, -1);
  mmu.invalidateBegin();
  assert.equal(mmu.inProgress, 1);
  mmu.rangeAdd(10, 20);
  mmu.invalidateBegin();
  assert.equal(mmu.inProgress, 2);
  assert.deepEqual([mmu.rangeStart, mmu.rangeEnd], [10, 20], 'a nested begin keeps the range');
  mmu.rangeAdd(30, 40);
  mmu.invalidateEnd();
  mmu.invalidateEnd();
  mmu.invalidateBegin();
  assert.equal(mmu.rangeStart, -1, 'the first begin of a new invalidation resets the range (INVALID_GPA)');
  mmu.rangeAdd(5, 6);
  mmu.invalidateEnd();
});

test('H3: range_add: the first range is taken as is; later ones widen it to the union until all end', () => {
  const mmu = new Mmu();
  mmu.invalidateBegin();
  mmu.rangeAdd(100, 110);
  assert.deepEqual([mmu.rangeStart, mmu.rangeEnd], [100, 110]);
  mmu.invalidateBegin();
  mmu.rangeAdd(50, 60);
  assert.deepEqual([mmu.rangeStart, mmu.rangeEnd], [50, 110]);
  mmu.invalidateEnd();
  assert.deepEqual([mmu.rangeStart, mmu.rangeEnd], [50, 110], 'the union persists while one is outstanding');
  mmu.rangeAdd(200, 210);
  assert.deepEqual([mmu.rangeStart, mmu.rangeEnd], [50, 210]);
  mmu.invalidateEnd();
});

test('H3/H4: range_add outside an invalidation and end without a range are WARNs (the model refuses them)', () => {
  const mmu = new Mmu();
  assert.throws(() => mmu.rangeAdd(1, 2), /WARN/);
  mmu.invalidateBegin();
  assert.throws(() => mmu.invalidateEnd(), /WARN/);
});

test('H4: end: seq++ and in_progress--; seq is monotonic', () => {
  const mmu = new Mmu();
  const seq = mmu.seq;
  mmu.invalidateBegin();
  mmu.invalidateBegin();
  mmu.rangeAdd(0, 1);
  mmu.invalidateEnd();
  assert.deepEqual([mmu.seq, mmu.inProgress], [seq + 1, 1]);
  mmu.invalidateEnd();
  assert.deepEqual([mmu.seq, mmu.inProgress], [seq + 2, 0]);
});

test('H5: mmu_invalidate_retry_gfn: stale if in progress and the gfn is in the range, or if seq moved', () => {
  const mmu = new Mmu();
  const snap = mmu.seq;
  assert.equal(mmu.isStale(7, snap), false);
  mmu.invalidateBegin();
  mmu.rangeAdd(5, 10);
  assert.equal(mmu.isStale(7, snap), true, 'gfn in the in-progress range');
  assert.equal(mmu.isStale(5, snap), true);
  assert.equal(mmu.isStale(10, snap), false, 'range end is exclusive');
  assert.equal(mmu.isStale(4, snap), false, 'outside the range, seq unchanged');
  mmu.invalidateEnd();
  assert.equal(mmu.isStale(100, snap), true, 'seq moved');
  assert.equal(mmu.isStale(100, mmu.seq), false);
});

test('H5: a fault that raced a punch of its page retries, and the guest reads the fresh zero page, not the freed one', () => {
  const { g, vcpu, k } = bound();
  runProgram(vcpu, [write(GPA, 0xaan, 1), hlt]);
  // drop the mapping so the next read faults, with the page still holding 0xaa
  k.mmu.invalidateBegin();
  k.mmu.unmapGfnRange(GFN, GFN + 1);
  k.mmu.invalidateEnd();
  let calls = 0;
  const undo = raceInstall(k.mmu, () => {
    if (calls++ === 0) g.fallocate(KEEP_PUNCH, 4n * PS, PS);
  });
  const retries = k.mmu.retries;
  const e = runProgram(vcpu, [read(GPA, 1), hlt]);
  undo();
  assert.deepEqual(e.reads, [0n]);
  assert.equal(k.mmu.retries, retries + 1);
  assert.equal(calls, 2);
  assert.equal(k.mmu.sptes.get(GFN)?.page, inodeOf(g).pages.get(4));
});

test('H5: an in-progress invalidation covering the gfn makes the fault retry even before seq moves', () => {
  const { vcpu, k } = bound();
  let calls = 0;
  const undo = raceInstall(k.mmu, () => {
    calls++;
    if (calls === 1) {
      k.mmu.invalidateBegin();
      k.mmu.rangeAdd(GFN, GFN + 1);
      assert.equal(k.mmu.isStale(GFN, k.mmu.seq), true);
    } else if (calls === 2) {
      k.mmu.invalidateEnd(); // still stale: seq moved past this attempt's snapshot
    }
  });
  const retries = k.mmu.retries;
  assert.equal(runProgram(vcpu, [read(GPA), hlt]).reason, 'hlt');
  undo();
  assert.equal(calls, 3);
  assert.equal(k.mmu.retries, retries + 2);
});

test('H5: an in-progress invalidation elsewhere does not stop a fault; a completed one anywhere does (seq moved)', () => {
  const { vcpu, k } = bound();
  const seen: number[] = [];
  const undo = raceInstall(k.mmu, (gfn) => {
    seen.push(gfn);
    if (seen.length === 1) {
      // first fault (GFN): an invalidation of another range begins and is still running
      k.mmu.invalidateBegin();
      k.mmu.rangeAdd(GFN + 5, GFN + 6);
    } else if (seen.length === 2) {
      // second fault (GFN+1), outside the range: the invalidation ends under it, seq moves
      k.mmu.invalidateEnd();
    }
  });
  const retries = k.mmu.retries;
  assert.equal(runProgram(vcpu, [read(GPA), read(GPA + PS), hlt]).reason, 'hlt');
  undo();
  assert.deepEqual(seen, [GFN, GFN + 1, GFN + 1]);
  assert.equal(k.mmu.retries, retries + 1, 'only the second fault retried');
  assert.equal(k.mmu.sptes.has(GFN), true);
  assert.equal(k.mmu.sptes.has(GFN + 1), true);
});

test('H6: punch invalidates exactly the bound GFNs of the punched file range, one seq bump', () => {
  const { g, vcpu, k } = bound();
  runProgram(vcpu, [read(GPA), read(GPA + 7n * PS), hlt]);
  const seq = k.mmu.seq;
  // file pages [6, 20) against a binding of [4, 12) at GFN: GFNs [GFN+2, GFN+8)
  g.fallocate(KEEP_PUNCH, 6n * PS, 14n * PS);
  assert.equal(k.mmu.seq, seq + 1);
  assert.equal(k.mmu.inProgress, 0);
  assert.deepEqual([k.mmu.rangeStart, k.mmu.rangeEnd], [GFN + 2, GFN + 8]);
  assert.equal(k.mmu.sptes.has(GFN), true, 'outside the punched range');
  assert.equal(k.mmu.sptes.has(GFN + 7), false);
});

test('H6: a punch that overlaps no binding does not bump seq', () => {
  const { g, k } = bound();
  const seq = k.mmu.seq;
  g.fallocate(KEEP_PUNCH, 0n, 4n * PS);
  g.fallocate(KEEP_PUNCH, 12n * PS, 4n * PS);
  g.fallocate(KEEP_PUNCH, 16n * PS, 4n * PS);
  assert.equal(k.mmu.seq, seq);
});

test("H6: a punch where nothing is bound and no page exists does not bump seq, even if the file is mmapped at a slot's userspace_addr", () => {
  const { vm, k } = setup('6.18', 'default');
  const g = vm.createGuestMemfd({ size: 4n * PS, flags: 3n });
  const m = g.mmap(0n, 4n * PS, 3);
  // an ordinary slot whose host memory is the guest_memfd mapping; no binding, nothing touched
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS, userspaceAddr: m.addr }));
  let seq = k.mmu.seq;
  g.fallocate(KEEP_PUNCH, 0n, 4n * PS);
  assert.equal(k.mmu.seq, seq, 'no binding overlaps and truncate found no folio');
  // the QEMU layout: a gmem slot whose userspace_addr is the same file's mapping, nothing touched
  const vm2 = setup('6.18', 'default');
  const g2 = vm2.vm.createGuestMemfd({ size: 4n * PS, flags: 3n });
  const m2 = g2.mmap(0n, 4n * PS, 3);
  bindGmem(vm2.vm, 1, 0x100000n, 4n * PS, g2, 0n, m2.addr);
  seq = vm2.k.mmu.seq;
  g2.fallocate(KEEP_PUNCH, 0n, PS);
  assert.equal(vm2.k.mmu.seq, seq + 1, 'exactly the one begin/end of the binding');
});

test('H6: a punch spanning two bindings of one file is one invalidation whose range is the union', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n);
  bindGmem(vm, 2, 0x300000n, 4n * PS, g, 8n * PS);
  const seq = k.mmu.seq;
  g.fallocate(KEEP_PUNCH, 2n * PS, 8n * PS);
  assert.equal(k.mmu.seq, seq + 1);
  assert.deepEqual([k.mmu.rangeStart, k.mmu.rangeEnd], [0x102, 0x302]);
});

test('H6: after a slot delete the punch no longer invalidates its GFNs', () => {
  const { vm, g, k } = bound();
  deleteSlot(vm, 1);
  const seq = k.mmu.seq;
  g.fallocate(KEEP_PUNCH, 0n, 16n * PS);
  assert.equal(k.mmu.seq, seq);
});

test("H7: release nulls the slots' file, invalidates every bound GFN once, and zaps all SPTEs from the file", () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: 16n * PS, flags: 0n });
  bindGmem(vm, 1, 0x100000n, 4n * PS, g, 0n);
  bindGmem(vm, 2, 0x300000n, 4n * PS, g, 8n * PS);
  const host = vm.mmapAnonymous(PS);
  vm.setUserMemoryRegion2(region({ slot: 3, guestPhysAddr: 0x500000n, memorySize: PS, userspaceAddr: host.addr }));
  vm.setMemoryAttributes({ address: 0x100000n, size: 0x300000n, attributes: PRIVATE, flags: 0n });
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [read(0x100000n), read(0x303000n), read(0x500000n), hlt]);
  assert.equal(k.mmu.sptes.size, 3);
  const seq = k.mmu.seq;
  g.close();
  assert.equal(k.mmu.seq, seq + 1);
  assert.deepEqual([k.mmu.rangeStart, k.mmu.rangeEnd], [0x100, 0x304]);
  assert.deepEqual([...k.mmu.sptes.keys()], [0x500], 'the host-backed SPTE stays');
  for (const s of k.memslots.all()) if (s.id === 1 || s.id === 2) assert.equal(s.gmem?.file, null, `slot ${s.id}`);
  assert.equal(k.memslots.all().filter((s) => s.gmem).length, 2, 'the slots stay');
});

test('H7: release of a file with no bindings does not bump seq', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const g = vm.createGuestMemfd({ size: PS, flags: 0n });
  const seq = k.mmu.seq;
  g.close();
  assert.equal(k.mmu.seq, seq);
});

test('H: a host invalidation (munmap of userspace_addr) runs the protocol over the GFNs it backs only', () => {
  const { vm, k } = setup('6.18', 'sw_protected');
  const host = vm.mmapAnonymous(4n * PS);
  vm.setUserMemoryRegion2(region({ slot: 1, guestPhysAddr: 0x100000n, memorySize: 4n * PS, userspaceAddr: host.addr }));
  const vcpu = vm.createVcpu(0);
  runProgram(vcpu, [read(0x100000n), hlt]);
  const seq = k.mmu.seq;
  host.madvise(PS, 2n * PS, 4);
  assert.equal(k.mmu.seq, seq + 1);
  assert.deepEqual([k.mmu.rangeStart, k.mmu.rangeEnd], [0x101, 0x103]);
  assert.equal(k.mmu.sptes.has(0x100), true);
});
