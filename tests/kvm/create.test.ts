/**
 * KVM_CREATE_GUEST_MEMFD on the real kernel (KERNEL-SPEC §2 A, selftests GM-1..3, GM-10): flag and
 * size validation, ignored reserved words, and the properties of the new file.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CAP } from '../../src/uapi/constants.js';
import { kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import { expectErrno, GMEM_INIT_SHARED, GMEM_MMAP, GMEM_SHARED, gmemLink, KEEP, MAP_SHARED, MiB, PS, RW, withKvm } from './helpers.js';

kvmTestIf('A1/GM-1: a single flag bit succeeds iff KVM_CAP_GUEST_MEMFD_FLAGS has it, else EINVAL', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    const supported = BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS));
    for (let b = 0n; b < 64n; b++) {
      const flag = 1n << b;
      if (supported & flag) vm.createGuestMemfd({ size: PS, flags: flag }).close();
      else expectErrno(() => vm.createGuestMemfd({ size: PS, flags: flag }), 'EINVAL', `flag bit ${b}`);
    }
  }),
);

kvmTestIf('A2: INIT_SHARED without MMAP is accepted, but mmap of it is ENODEV', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: PS, flags: GMEM_INIT_SHARED });
    expectErrno(() => g.mmap(0n, PS, RW, MAP_SHARED), 'ENODEV');
  }),
);

kvmTestIf('A3/GM-3: size <= 0 (as loff_t) or unaligned is EINVAL; there is no upper bound', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    for (const size of [0n, 1n, 4095n, 4097n, PS + 1n, 0xfffffffffffff000n, 1n << 63n, (1n << 64n) - 1n]) {
      expectErrno(() => vm.createGuestMemfd({ size, flags: 0n }), 'EINVAL', `size 0x${size.toString(16)}`);
    }
    for (const size of [PS, 1n << 62n, 0x7ffffffffffff000n]) vm.createGuestMemfd({ size, flags: GMEM_SHARED }).close();
  }),
);

kvmTestIf('A4: reserved[] words are not checked', ['guest_memfd'], () =>
  withKvm((kvm) => {
    const g = kvm.createVm().createGuestMemfd({ size: PS, flags: 0n, reserved: [1n, 2n, 3n, 4n, 5n, (1n << 64n) - 1n] });
    assert.equal(g.size(), PS);
  }),
);

kvmTestIf('A6/GM-2/GM-10: a new fd without CLOEXEC, O_RDWR|O_LARGEFILE, a fresh 0100600 inode, st_blocks 0', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    const g1 = vm.createGuestMemfd({ size: PS, flags: 0n });
    const g2 = vm.createGuestMemfd({ size: 2n * PS, flags: GMEM_SHARED });
    const s1 = kvm.files.fstat(g1.fd);
    const s2 = kvm.files.fstat(g2.fd);
    assert.notEqual(s1.ino, s2.ino);
    assert.equal(s1.size, PS);
    assert.equal(s2.size, 2n * PS);
    assert.equal(s1.mode, 0o100600);
    assert.equal(s1.nlink, 1);
    assert.equal(s1.blksize, 4096n);
    g2.fallocate(KEEP, 0n, 2n * PS);
    assert.equal(kvm.files.fstat(g2.fd).blocks, 0n, 'st_blocks stays 0 after allocation');
    assert.equal(kvm.files.linkOf(g1.fd), gmemLink());
    const fdinfo = readFileSync(`/proc/self/fdinfo/${g1.fd}`, 'utf8');
    const flags = Number.parseInt(/^flags:\s+(\d+)/m.exec(fdinfo)?.[1] ?? 'x', 8);
    assert.equal(flags & 0o2000000, 0, 'no O_CLOEXEC');
    assert.equal(flags & 0o3, 0o2, 'O_RDWR');
    assert.equal(flags & 0o100000, 0o100000, 'O_LARGEFILE');
  }),
);

kvmTestIf('A5/A7: a guest_memfd outlives its VM fd (the file holds the VM)', [...SHARED_GMEM], () =>
  withKvm((kvm) => {
    const vm = kvm.createVm();
    const g = vm.createGuestMemfd({ size: 2n * MiB, flags: GMEM_MMAP | GMEM_INIT_SHARED });
    vm.close();
    assert.equal(g.size(), 2n * MiB);
    g.fallocate(KEEP, 0n, PS);
    const m = g.mmap(0n, PS, RW, MAP_SHARED);
    m.write(0n, Uint8Array.of(1, 2, 3));
    assert.deepEqual([...m.read(0n, 3)], [1, 2, 3]);
  }),
);
