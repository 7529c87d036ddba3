/**
 * Guest programs where the real kernel depends on how it runs guest code (a hypercall that PVM
 * never forwards, PVM's emulated accesses through userspace_addr); what every backend does is in
 * tests/conformance/guest.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { KvmError } from '../../src/api.js';
import { probeCaps } from '../../src/kvm/index.js';
import { CAP, KVM_EXIT_HYPERCALL_LONG_MODE, KVM_HC_MAP_GPA_RANGE } from '../../src/uapi/constants.js';
import { kernelLacks, kvmTest, kvmTestIf, SHARED_GMEM } from '../support/kvm-gate.js';
import { GMEM_MMAP, GMEM_SHARED, MAP_SHARED, MEM_GUEST_MEMFD, MiB, RW, withKvm } from './helpers.js';

const GPA = 1n << 32n;
const PVM = existsSync('/sys/module/kvm_pvm');

kvmTest('map_gpa_range: KVM_EXIT_HYPERCALL where the kernel forwards it, else EINTR at the deadline', () => {
  const caps = withKvm((kvm) => probeCaps(kvm, { guest: true, hypercallTimeoutMs: 100 }));
  withKvm((kvm) => {
    const vm = kvm.createVm();
    vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << BigInt(KVM_HC_MAP_GPA_RANGE)]);
    const v = vm.createVcpu(0);
    v.load([{ op: 'map_gpa_range', gpa: 0x200000n, npages: 2n, attrs: 0x10n }, { op: 'out', port: 9, value: 0n }, { op: 'hlt' }]);
    if (caps.guest?.hypercallExit) {
      const e = v.run();
      assert.equal(e.reason, 'hypercall');
      assert.equal(e.hypercall?.nr, BigInt(KVM_HC_MAP_GPA_RANGE));
      assert.deepEqual(e.hypercall?.args.slice(0, 3), [0x200000n, 2n, 0x10n]);
      assert.equal((e.hypercall?.flags ?? 0n) & KVM_EXIT_HYPERCALL_LONG_MODE, KVM_EXIT_HYPERCALL_LONG_MODE);
      assert.equal(v.run({ hypercallRet: 0n }).reason, 'io');
    } else {
      // This kernel (PVM: guest code is emulated) re-executes VMCALL/VMMCALL forever.
      try {
        v.run();
        assert.fail('expected the watchdog to interrupt KVM_RUN');
      } catch (e) {
        assert.ok(e instanceof KvmError, String(e));
        assert.equal(e.errno, 'EINTR');
        assert.match(e.message, /op #0 \(map_gpa_range\)/);
      }
    }
  }, 150);
});

// On VMX/SVM hosts with TDP the same accesses are served from the guest_memfd (KERNEL-SPEC G6).

kvmTestIf(
  'PVM: guest accesses go through userspace_addr, so a gmem slot without a usable hva gives MMIO',
  () => (PVM ? kernelLacks(SHARED_GMEM) : 'the kvm_pvm module (guest code is not emulated here)'),
  () => {
    withKvm((kvm) => {
      const vm = kvm.createVm();
      const shared = vm.createGuestMemfd({ size: 2n * MiB, flags: GMEM_SHARED });
      vm.setUserMemoryRegion2({
        slot: 1,
        flags: MEM_GUEST_MEMFD,
        guestPhysAddr: GPA,
        memorySize: 2n * MiB,
        userspaceAddr: 0n,
        guestMemfd: shared.fd,
        guestMemfdOffset: 0n,
      });
      const priv = vm.createGuestMemfd({ size: 2n * MiB, flags: GMEM_MMAP });
      const pm = priv.mmap(0n, 2n * MiB, RW, MAP_SHARED);
      vm.setUserMemoryRegion2({
        slot: 2,
        flags: MEM_GUEST_MEMFD,
        guestPhysAddr: 2n * GPA,
        memorySize: 2n * MiB,
        userspaceAddr: pm.addr,
        guestMemfd: priv.fd,
        guestMemfdOffset: 0n,
      });
      const v = vm.createVcpu(0);
      v.load([{ op: 'read', gpa: GPA, width: 4 }, { op: 'read', gpa: 2n * GPA, width: 4 }, { op: 'hlt' }]);
      assert.equal(v.run().mmio?.physAddr, GPA, 'userspace_addr 0');
      assert.equal(v.run().mmio?.physAddr, 2n * GPA, 'hva of a gmem without INIT_SHARED');
      assert.equal(v.run().reason, 'hlt');
    });
  },
);
