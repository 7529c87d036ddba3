/**
 * The in-place design (src/designs/inplace/): its uAPI facts, its kernel configurations, and the
 * scenarios of scenarios/in-place-conversion/ on the model. Expected values come from
 * shared/spec/IN-PLACE-CONVERSION.md (the applied code in next-20260923 and the v12 direct-map
 * series), never from the model.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { KvmError } from '../../src/api.js';
import {
  GUEST_MEMFD_FLAG_NO_DIRECT_MAP,
  InplaceKvm,
  KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES,
  KVM_SET_MEMORY_ATTRIBUTES2,
  kvm_memory_attributes2,
  parseConfig,
} from '../../src/designs/inplace/index.js';
import { DESIGNS } from '../../src/designs/registry.js';
import { modelBackend, parseScenario, runScenario } from '../../src/scenario/index.js';
import { CAP, GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP } from '../../src/uapi/constants.js';
import { SCENARIOS, scenarioFiles } from '../support/files.js';

const errno = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof KvmError) return e.errno;
    throw e;
  }
  return 'ok';
};

test('struct kvm_memory_attributes2 is 128 bytes with error_offset at 32, and the ioctl is 0xC080AED2 (§1.2.1-1.2.2)', () => {
  assert.equal(kvm_memory_attributes2.size, 128);
  assert.equal(kvm_memory_attributes2.fields.error_offset.offset, 32);
  assert.equal(kvm_memory_attributes2.fields.reserved.offset, 40);
  assert.equal(kvm_memory_attributes2.fields.reserved.count, 11);
  assert.equal(KVM_SET_MEMORY_ATTRIBUTES2, 0xc080aed2);
  assert.equal(KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES, 250);
  assert.equal(GUEST_MEMFD_FLAG_NO_DIRECT_MAP, 4n);
});

test('the module parameter: off, the gmem ioctl is ENOTTY, the cap 0, per-VM attributes back and INIT_SHARED not offered to CoCo VMs (§1.2.3, §1.3.1)', () => {
  const kvm = new InplaceKvm(parseConfig(['gmem_in_place_conversion=0']));
  assert.equal(kvm.checkExtension(KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES), 0);
  const vm = kvm.createVm('sw_protected');
  assert.equal(vm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 8);
  assert.equal(BigInt(vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) & GUEST_MEMFD_FLAG_INIT_SHARED, 0n);
  const g = vm.createGuestMemfd({ size: 0x2000n, flags: GUEST_MEMFD_FLAG_MMAP });
  assert.equal(
    errno(() => kvm.setMemoryAttributes2(g.fd, { offset: 0n, size: 0x1000n, attributes: 8n, flags: 0n })),
    'ENOTTY',
  );
  assert.equal(
    errno(() => vm.setMemoryAttributes({ address: 0n, size: 0x1000n, attributes: 8n, flags: 0n })),
    'ok',
  );
});

test('without CONFIG_KVM_VM_MEMORY_ATTRIBUTES in-place is always on and the per-VM ioctl is gone (§1.2.5, §1.3.9)', () => {
  const kvm = new InplaceKvm(parseConfig(['vm_memory_attributes=n', 'gmem_in_place_conversion=0']));
  assert.equal(kvm.config.gmemInPlaceConversion, true);
  const vm = kvm.createVm('sw_protected');
  assert.equal(
    errno(() => vm.setMemoryAttributes({ address: 0n, size: 0x1000n, attributes: 0n, flags: 0n })),
    'ENOTTY',
  );
  assert.equal(vm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES), 0);
});

test('a failed conversion reports error_offset as an absolute file offset; validation errors copy nothing back (§1.3.2-1.3.3)', () => {
  const kvm = new InplaceKvm();
  const vm = kvm.createVm('sw_protected');
  const g = vm.createGuestMemfd({ size: 0x4000n, flags: GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED });
  const m = g.mmap(0n, 0x4000n, 3);
  const pin = kvm.pinUserPages(m, 0x2000n, 0x1000n);
  try {
    kvm.setMemoryAttributes2(g.fd, { offset: 0x1000n, size: 0x3000n, attributes: 8n, flags: 0n });
    assert.fail('expected EAGAIN');
  } catch (e) {
    assert.ok(e instanceof KvmError);
    assert.equal(e.errno, 'EAGAIN');
    assert.equal(e.data?.error_offset, 0x2000n);
  }
  try {
    kvm.setMemoryAttributes2(g.fd, { offset: 1n, size: 0x1000n, attributes: 8n, flags: 0n });
    assert.fail('expected EINVAL');
  } catch (e) {
    assert.ok(e instanceof KvmError);
    assert.equal(e.errno, 'EINVAL');
    assert.equal(e.data, undefined);
  }
  pin.unmap();
  kvm.setMemoryAttributes2(g.fd, { offset: 0x1000n, size: 0x3000n, attributes: 8n, flags: 0n });
});

test('KVM_SET_MEMORY_ATTRIBUTES2 on the wrong fd: /dev/kvm and a vCPU answer EINVAL (kvm_arch_dev_ioctl, kvm_arch_vcpu_ioctl defaults), a VM and a memfd ENOTTY', () => {
  const kvm = new InplaceKvm();
  const vm = kvm.createVm('sw_protected');
  const vcpu = vm.createVcpu(0);
  const memfd = kvm.files.memfdCreate('m');
  const attrs = { offset: 0n, size: 0x1000n, attributes: 8n, flags: 0n };
  const errnoAt = (fd: number) => {
    try {
      kvm.setMemoryAttributes2(fd, attrs);
      return 'ok';
    } catch (e) {
      assert.ok(e instanceof KvmError);
      return e.errno;
    }
  };
  assert.deepEqual([kvm.fd, vcpu.fd, vm.fd, memfd].map(errnoAt), ['EINVAL', 'EINVAL', 'ENOTTY', 'ENOTTY']);
});

test('scenarios/in-place-conversion pass on the model with invariants', () => {
  const backend = modelBackend({ designs: DESIGNS });
  const files = scenarioFiles(join(SCENARIOS, 'in-place-conversion'));
  assert.ok(files.length >= 9 + 4);
  for (const f of files) {
    const r = runScenario(parseScenario(readFileSync(f, 'utf8'), f), f, backend);
    assert.equal(r.status, 'passed', `${f}: ${JSON.stringify(r)}`);
  }
});
