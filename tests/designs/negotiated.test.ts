/** The negotiated variant: no MFD_INACCESSIBLE; restrictions at bind; a mapped file is refused (EBUSY). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { F_GET_SEALS, MFD_INACCESSIBLE } from '../../src/designs/v7/constants.js';
import { bindPrivate, errnoOf, MiB2, PS, privateFd, setupV7 } from './helpers.js';

test('there is no MFD_INACCESSIBLE: 0x8 is an unknown memfd_create flag', () => {
  const { kvm } = setupV7('sw_protected', true);
  assert.equal(
    errnoOf(() => kvm.memfdCreateFlags('p', MFD_INACCESSIBLE)),
    'EINVAL',
  );
});

test('any mapping of the file refuses the binding with EBUSY: shared, private, read-only alike', () => {
  for (const [prot, flags] of [
    [3, 1],
    [1, 2],
    [1, 1],
  ] as const) {
    const s = setupV7('sw_protected', true);
    const p = privateFd(s.kvm, MiB2, false);
    const m = s.kvm.files.mmap(p, 0n, PS, prot, flags);
    assert.equal(
      errnoOf(() => bindPrivate(s, p)),
      'EBUSY',
      `prot ${prot} flags ${flags}`,
    );
    // the refusal leaves nothing behind: no reference, no notifier, no flags
    assert.equal(s.kvmVm.memslots.all().length, 0);
    m.unmap();
    bindPrivate(s, p);
    assert.equal(
      errnoOf(() => s.kvm.files.mmap(p, 0n, PS, 1, 1)),
      'EPERM',
    );
  }
});

test('what the negotiation does not look at: contents, and other bindings', () => {
  const s = setupV7('sw_protected', true);
  const p = privateFd(s.kvm, MiB2, false);
  s.kvm.files.pwrite(p, new Uint8Array([1, 2, 3, 4]), 0n);
  bindPrivate(s, p);
  const vm2 = s.kvm.createVm('sw_protected');
  bindPrivate(s, p, 0, 0n, 0n, MiB2, vm2);
  assert.equal(s.kvm.fcntl(p, F_GET_SEALS), 1);
});
