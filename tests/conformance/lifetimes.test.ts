/**
 * Object lifetimes (KERNEL-SPEC §2 A7, I1), once for every backend: a guest_memfd holds its VM, so
 * it keeps working after the VM fd is closed.
 */
import assert from 'node:assert/strict';
import { forEachBackend } from '../support/conformance.js';
import { GMEM_SHARED, KEEP, MAP_SHARED, MiB, PS, RW } from '../support/uapi.js';

forEachBackend(
  'A5/A7: a guest_memfd outlives its VM fd (the file holds the VM): size, fallocate and mmap keep working',
  ['guest_memfd', 'guest_memfd_flags:mmap', 'guest_memfd_flags:init_shared'],
  (b) => {
    const vm = b.kvm.createVm();
    const k = b.model?.vms.at(-1);
    const g = vm.createGuestMemfd({ size: 2n * MiB, flags: GMEM_SHARED });
    vm.close();
    if (k) assert.equal(k.destroyed, false);
    assert.equal(g.size(), 2n * MiB);
    g.fallocate(KEEP, 0n, PS);
    const m = g.mmap(0n, PS, RW, MAP_SHARED);
    m.write(0n, Uint8Array.of(1, 2, 3));
    assert.deepEqual([...m.read(0n, 3)], [1, 2, 3]);
  },
);
