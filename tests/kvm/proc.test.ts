/**
 * What /proc shows of a guest_memfd (KERNEL-SPEC §2 A6, GM-2): procfs is the kernel's, not part of
 * the interface both backends implement, so only the kvm backend is asked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { kvmTestIf } from '../support/kvm-gate.js';
import { gmemLink, PS, withKvm } from './helpers.js';

kvmTestIf('A6: a new guest_memfd fd is O_RDWR|O_LARGEFILE without O_CLOEXEC, and links to the gmem inode of this kernel', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: PS, flags: 0n });
    assert.equal(kvm.files.linkOf(g.fd), gmemLink());
    const fdinfo = readFileSync(`/proc/self/fdinfo/${g.fd}`, 'utf8');
    const flags = Number.parseInt(/^flags:\s+(\d+)/m.exec(fdinfo)?.[1] ?? 'x', 8);
    assert.equal(flags & 0o2000000, 0, 'no O_CLOEXEC');
    assert.equal(flags & 0o3, 0o2, 'O_RDWR');
    assert.equal(flags & 0o100000, 0o100000, 'O_LARGEFILE');
  }),
);
