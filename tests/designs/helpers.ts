/** Shared setup for the design tests: a v7 (or negotiated) model process and its VM. */
import type { HostMapping, Vm, VmType } from '../../src/api.js';
import { NegotiatedKvm } from '../../src/designs/negotiated/index.js';
import { MFD_INACCESSIBLE } from '../../src/designs/v7/constants.js';
import { V7Kvm } from '../../src/designs/v7/kvm.js';
import type { V7KvmVm, V7Vm } from '../../src/designs/v7/vm.js';
import { errnoOf } from '../support/model.js';

export { errnoOf };
export const PS = 4096n;
export const MiB2 = 0x200000n;
export const PRIVATE = 1 << 2;
export const KEEP = 0x01;
export const PUNCH = 0x02;

export interface V7Setup {
  kvm: V7Kvm;
  vm: V7Vm;
  /** struct kvm behind the VM fd */
  kvmVm: V7KvmVm;
  /** the shared side: an anonymous mapping for userspace_addr */
  shared: HostMapping;
}

export function setupV7(type: VmType = 'sw_protected', negotiated = false): V7Setup {
  const kvm = negotiated ? new NegotiatedKvm() : new V7Kvm();
  const vm = kvm.createVm(type) as V7Vm;
  const shared = vm.mmapAnonymous(MiB2);
  return { kvm, vm, kvmVm: vm.vm as V7KvmVm, shared };
}

/** memfd_create(MFD_INACCESSIBLE) sized `size` (or a plain memfd). */
export function privateFd(kvm: V7Kvm, size = MiB2, inaccessible = true): number {
  const fd = kvm.memfdCreateFlags('priv', inaccessible ? MFD_INACCESSIBLE : 0);
  if (size) kvm.files.ftruncate(fd, size);
  return fd;
}

/** A private slot of `size` at `gpa`, backed by `fd` from `offset`. */
export function bindPrivate(s: V7Setup, fd: number, slot = 0, gpa = 0n, offset = 0n, size = MiB2, vm: Vm = s.vm): void {
  (vm as V7Vm).setUserMemoryRegionExt({
    slot,
    flags: PRIVATE,
    guestPhysAddr: gpa,
    memorySize: size,
    userspaceAddr: s.shared.addr,
    privateFd: fd,
    privateOffset: offset,
  });
}
