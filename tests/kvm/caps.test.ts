/**
 * probeCaps on the live kernel: a plain JSON-able report that agrees with KERNEL-SPEC §1.3's live
 * values for this machine's kind of kernel, and leaves nothing open behind it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Kvm } from '../../src/api.js';
import { countOpenFds, ownedCounts, probeCaps } from '../../src/kvm/index.js';
import { createModelKvm } from '../../src/model/index.js';
import { CAP } from '../../src/uapi/constants.js';
import { kvmTest } from '../support/kvm-gate.js';
import { kernelIn, outcome, PS, withKvm } from './helpers.js';

kvmTest('probeCaps: JSON-able, consistent, read-only', () =>
  withKvm((kvm) => {
    const fds = countOpenFds();
    const owned = ownedCounts();
    const r = probeCaps(kvm);
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r, 'a plain JSON value');
    assert.equal(countOpenFds(), fds, 'no fd left open');
    assert.deepEqual(ownedCounts(), owned);
    assert.equal(r.backend, 'kvm');
    assert.equal(r.profile, 'host');
    assert.equal(r.apiVersion, 12);
    assert.ok(r.vmTypes.names.includes('default'));
    assert.ok(!('error' in r.vm), 'a default VM could be created');
    assert.equal(r.system.KVM_CAP_USER_MEMORY2, 1);
    // KVM_CAP_GUEST_MEMFD says whether the ioctl exists: 0 here means the kernel has no
    // KVM_CREATE_GUEST_MEMFD case (ENOTTY), 1 that a plain one can be made
    const vm = kvm.createVm('default');
    const made = outcome(() => vm.createGuestMemfd({ size: 4096n, flags: 0n }).close());
    vm.close();
    assert.equal(made, r.system.KVM_CAP_GUEST_MEMFD ? 'ok' : 'ENOTTY', `KVM_CAP_GUEST_MEMFD ${r.system.KVM_CAP_GUEST_MEMFD}`);
    if (!r.system.KVM_CAP_GUEST_MEMFD) assert.equal(r.system.KVM_CAP_GUEST_MEMFD_FLAGS, 0, 'no flags without guest_memfd');
    if (r.system.KVM_CAP_GUEST_MEMFD_FLAGS) assert.ok(r.guestMemfdFlags.system.names.includes('mmap'), 'MMAP wherever flags exist');
    // KERNEL-SPEC §1.3: the guest_memfd caps read the same on /dev/kvm and on a default VM, except
    // KVM_CAP_GUEST_MEMFD before 6.18, which is `!kvm || kvm_arch_has_private_mem(kvm)`: 0 on a
    // default VM (seen in the lab on 6.12.118)
    if (!('error' in r.vm)) {
      for (const cap of ['KVM_CAP_USER_MEMORY2', 'KVM_CAP_GUEST_MEMFD_FLAGS', 'KVM_CAP_VM_TYPES'] as const) {
        assert.equal(r.vm[cap], r.system[cap], cap);
      }
      assert.equal(r.vm.KVM_CAP_GUEST_MEMFD, kernelIn('>=6.18') ? r.system.KVM_CAP_GUEST_MEMFD : 0, 'KVM_CAP_GUEST_MEMFD on a default VM');
    }
  }),
);

kvmTest('probeCaps with guest: long mode, memory and MMIO work; hypercall forwarding is reported', (t) =>
  withKvm((kvm) => {
    const fds = countOpenFds();
    const r = probeCaps(kvm, { guest: true, hypercallTimeoutMs: 100 });
    const g = r.guest;
    assert.ok(g);
    assert.equal(g.longMode, true);
    assert.equal(g.memory, true);
    assert.equal(g.mmioExit, true);
    assert.equal(typeof g.hypercallExit, 'boolean');
    if (!g.hypercallExit) assert.ok(g.hypercallNote);
    if (r.guestMemfdFlags.system.mask === 3) assert.equal(typeof g.gmemFaultsWithoutHva, 'boolean');
    else assert.equal(g.gmemFaultsWithoutHva, undefined, 'not tried without MMAP|INIT_SHARED');
    assert.equal(typeof g.emulatedAccess, 'boolean', 'an unmapped hva gives MMIO or EFAULT');
    if (existsSync('/sys/module/kvm_pvm')) assert.equal(g.emulatedAccess, true, 'PVM emulates guest code');
    assert.equal(countOpenFds(), fds);
    t.diagnostic(`guest: ${JSON.stringify(g)}`);
  }),
);

kvmTest("the host profile follows this kernel's KVM_CAP_GUEST_MEMFD, and the model under it creates a guest_memfd exactly when the kernel does", async () => {
  const has = withKvm((kvm) => kvm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD));
  const { kvmBackend } = await import('../../src/backends/kvm.js');
  const profile = (await kvmBackend()).hostProfile();
  assert.equal(profile.guestMemfd, has !== 0, `the host profile follows KVM_CAP_GUEST_MEMFD = ${has}`);
  const model = createModelKvm({ kernel: profile });
  try {
    const create = (k: Kvm) => outcome(() => k.createVm().createGuestMemfd({ size: PS, flags: 0n }).close());
    assert.equal(create(model), withKvm(create), 'KVM_CREATE_GUEST_MEMFD: the model (host profile) and /dev/kvm');
    assert.equal(create(model), has ? 'ok' : 'ENOTTY');
  } finally {
    model.close();
  }
});
