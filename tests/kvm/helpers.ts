/**
 * Helpers for the kvm backend tests: a fresh /dev/kvm session per test that is always closed, and
 * errno assertions that compare the kernel's answer exactly.
 */
import { release } from 'node:os';
import type { Kvm, Vm } from '../../src/api.js';
import { GMEM_LINK, GMEM_LINK_6_19, type KvmSystem, openKvm } from '../../src/kvm/index.js';
import { inKernelRange, parseKernelRange, releaseVersion } from '../../src/scenario/index.js';
import { CAP } from '../../src/uapi/constants.js';

export * from '../support/uapi.js';

/** Run fn with a fresh session; everything made through it is released afterwards. */
export function withKvm<T>(fn: (kvm: KvmSystem) => T, timeoutMs?: number): T {
  const kvm = openKvm('/dev/kvm', timeoutMs === undefined ? {} : { runTimeoutMs: timeoutMs });
  try {
    return fn(kvm);
  } finally {
    kvm.close();
  }
}

/** Whether the running kernel's release lies in a range like '>=7.2' (scenario `kernels` syntax). */
export function kernelIn(range: string): boolean {
  const v = releaseVersion(release());
  return v !== undefined && inKernelRange(v, parseKernelRange(range));
}

/** What /proc/self/fd/N shows for a guest_memfd on this kernel: an anon inode before 6.19, a gmem-fs inode since. */
export const gmemLink = (): string => (kernelIn('>=6.19') ? GMEM_LINK_6_19 : GMEM_LINK);

/**
 * A VM that can bind a guest_memfd to a memslot: a default VM where its KVM_CAP_GUEST_MEMFD says so
 * (6.18 and later), else a software-protected one (before 6.18 only VMs with private memory bind).
 */
export function bindableVm(kvm: Kvm): Vm {
  const vm = kvm.createVm('default');
  if (vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD)) return vm;
  vm.close();
  return kvm.createVm('sw_protected');
}
