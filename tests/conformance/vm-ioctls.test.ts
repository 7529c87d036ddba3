/**
 * VM and vCPU ioctls around guest_memfd, once for every backend: VM types (§1.4), memory attributes
 * (F0/F1), KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL) (K1), KVM_PRE_FAULT_MEMORY (J), and objects whose
 * fd is closed. What a kernel lacks is answered with its own errno, which is what these tests pin.
 */
import assert from 'node:assert/strict';
import { KvmError } from '../../src/api.js';
import { CAP, KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, VM_TYPE } from '../../src/uapi/constants.js';
import { forEachBackend } from '../support/conformance.js';
import { expectErrno, expectOk, PS } from '../support/uapi.js';

forEachBackend('§1.4: KVM_CREATE_VM succeeds exactly for the types KVM_CAP_VM_TYPES lists, else EINVAL', [], (b) => {
  const kvm = b.kvm;
  const mask = kvm.checkExtension(CAP.KVM_CAP_VM_TYPES) || 1;
  for (let type = 0; type <= 6; type++) {
    if (mask & (1 << type)) expectOk(() => kvm.createVm(type).close(), `type ${type}`);
    else expectErrno(() => kvm.createVm(type), 'EINVAL', `type ${type}`);
  }
  assert.equal(kvm.createVm('default').type, 'default');
  assert.equal(VM_TYPE.default, 0);
});

forEachBackend('F0/F1: KVM_SET_MEMORY_ATTRIBUTES is ENOTTY without the config, else validated in order', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const set = (a: Partial<{ address: bigint; size: bigint; attributes: bigint; flags: bigint }>) =>
    vm.setMemoryAttributes({ address: 0n, size: PS, attributes: 0n, flags: 0n, ...a });
  // the model's profiles (6.12, 6.18, 7.3) describe kernels built with software-protected VMs, so
  // KVM_GENERIC_MEMORY_ATTRIBUTES: /dev/kvm reports PRIVATE (kvm_supported_mem_attributes(NULL));
  // without this the ENOTTY branch below would let a profile that lost the config pass
  if (b.kind === 'model') assert.equal(BigInt(kvm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES)), KVM_MEMORY_ATTRIBUTE_PRIVATE);
  if (vm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES) === 0 && kvm.checkExtension(CAP.KVM_CAP_MEMORY_ATTRIBUTES) === 0) {
    expectErrno(() => set({}), 'ENOTTY');
    expectErrno(() => set({ attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 1n }), 'ENOTTY', 'any arguments');
    return;
  }
  expectErrno(() => set({ flags: 1n }), 'EINVAL', 'flags');
  expectErrno(() => set({ size: 0n }), 'EINVAL', 'size 0');
  expectErrno(() => set({ address: 1n }), 'EINVAL', 'unaligned');
  expectOk(() => set({}), 'attributes 0 always');
});

forEachBackend('K1: KVM_ENABLE_CAP(EXIT_HYPERCALL) takes a subset of the cap value; other bits or flags are EINVAL', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const offered = vm.checkExtension(CAP.KVM_CAP_EXIT_HYPERCALL);
  const hc = 1n << BigInt(KVM_HC_MAP_GPA_RANGE);
  // x86 offers KVM_HC_MAP_GPA_RANGE exits on every VM since 5.19 (KVM_EXIT_HYPERCALL_VALID_MASK):
  // every model profile must, or the EINVAL branch below would hide it
  if (b.kind === 'model') assert.equal(BigInt(offered) & hc, hc);
  if ((BigInt(offered) & hc) === 0n) {
    expectErrno(() => vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [hc]), 'EINVAL');
    return;
  }
  assert.equal(vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [hc]), 0);
  assert.equal(vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [0n]), 0);
  expectErrno(() => vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [1n << 11n]), 'EINVAL', 'a hypercall not offered');
  expectErrno(() => vm.enableCap(CAP.KVM_CAP_EXIT_HYPERCALL, [hc], 1), 'EINVAL', 'flags');
});

forEachBackend('J: KVM_PRE_FAULT_MEMORY copies gpa/size back on error; without the cap it is EOPNOTSUPP', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const mem = vm.mmapAnonymous(2n * PS);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: 2n * PS, userspaceAddr: mem.addr });
  const v = vm.createVcpu(0);
  const supported = vm.checkExtension(CAP.KVM_CAP_PRE_FAULT_MEMORY) !== 0;
  try {
    const r = v.preFaultMemory({ gpa: 0n, size: 2n * PS, flags: 0n });
    assert.ok(supported, 'it worked, so the cap must say so');
    assert.deepEqual(r, { gpa: 2n * PS, size: 0n });
  } catch (e) {
    assert.ok(e instanceof KvmError);
    assert.ok(!supported, `unexpected ${e.message}`);
    assert.equal(e.errno, 'EOPNOTSUPP');
    assert.deepEqual(e.data, { gpa: 0n, size: 2n * PS }, 'nothing was pre-faulted, and the struct says so');
  }
});

forEachBackend('objects whose fd is closed answer EBADF without touching the number', [], (b) => {
  const kvm = b.kvm;
  const vm = kvm.createVm();
  const v = vm.createVcpu(0);
  v.close();
  expectErrno(() => v.run(), 'EBADF');
  expectErrno(() => v.load([{ op: 'hlt' }]), 'EBADF');
  vm.close();
  expectErrno(() => vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD), 'EBADF');
  expectErrno(() => vm.createVcpu(1), 'EBADF');
  kvm.close();
  expectErrno(() => kvm.apiVersion(), 'EBADF');
});

forEachBackend('KVM_CREATE_VCPU: an id stays taken after its fd is closed (kvm_vcpu_release keeps the vCPU until the VM goes)', [], (b) => {
  const vm = b.kvm.createVm();
  vm.createVcpu(0).close();
  // kvm_vm_ioctl_create_vcpu: kvm_get_vcpu_by_id still finds vCPU 0 in kvm->vcpu_array
  expectErrno(() => vm.createVcpu(0), 'EEXIST', 'id 0 again after close');
  expectOk(() => vm.createVcpu(1).close(), 'another id');
  vm.close();
  expectOk(() => b.kvm.createVm().createVcpu(0), 'a new VM starts with no vCPUs');
});
