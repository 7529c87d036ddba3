/**
 * Helpers for the kvm backend tests: a fresh /dev/kvm session per test that is always closed, and
 * errno assertions that compare the kernel's answer exactly.
 */
import assert from 'node:assert/strict';
import { release } from 'node:os';
import { HostFault, KvmError } from '../../src/api.js';
import { GMEM_LINK, GMEM_LINK_6_19, type KvmSystem, openKvm } from '../../src/kvm/index.js';
import { inKernelRange, parseKernelRange, releaseVersion } from '../../src/scenario/index.js';
import { CAP } from '../../src/uapi/constants.js';

export const PS = 4096n;
export const MiB = 1n << 20n;
export const GiB = 1n << 30n;
export const GMEM_MMAP = 1n;
export const GMEM_INIT_SHARED = 2n;
export const GMEM_SHARED = GMEM_MMAP | GMEM_INIT_SHARED;
export const MEM_LOG_DIRTY = 1;
export const MEM_READONLY = 2;
export const MEM_GUEST_MEMFD = 4;
export const KEEP = 0x01;
export const PUNCH = 0x02;
export const KEEP_PUNCH = KEEP | PUNCH;
export const RW = 3;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;

/** Run fn with a fresh session; everything made through it is released afterwards. */
export function withKvm<T>(fn: (kvm: KvmSystem) => T, timeoutMs?: number): T {
  const kvm = openKvm('/dev/kvm', timeoutMs === undefined ? {} : { runTimeoutMs: timeoutMs });
  try {
    return fn(kvm);
  } finally {
    kvm.close();
  }
}

/** 'ok', the errno name of a KvmError, or the signal of a HostFault. */
export function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof KvmError) return e.errno;
    if (e instanceof HostFault) return e.signal;
    throw e;
  }
}

export function expectErrno(fn: () => unknown, errno: string, msg?: string): void {
  assert.equal(outcome(fn), errno, msg);
}

export function expectOk(fn: () => unknown, msg?: string): void {
  assert.equal(outcome(fn), 'ok', msg);
}

/** The HostFault fn throws (fails the test if it throws anything else or nothing). */
export function hostFault(fn: () => unknown): HostFault {
  try {
    fn();
  } catch (e) {
    if (e instanceof HostFault) return e;
    throw e;
  }
  assert.fail('expected a HostFault');
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
export function bindableVm(kvm: KvmSystem): ReturnType<KvmSystem['createVm']> {
  const vm = kvm.createVm('default');
  if (vm.checkExtension(CAP.KVM_CAP_GUEST_MEMFD)) return vm;
  vm.close();
  return kvm.createVm('sw_protected');
}
