/**
 * The kvm backend: the interfaces of src/api.ts on the real /dev/kvm, through koffi.
 *
 * @example
 * ```ts
 * import { openKvm, kvmAvailable } from 'guestmem/kvm';
 * const ok = kvmAvailable();
 * if (ok.ok) {
 *   const kvm = openKvm();
 *   const vm = kvm.createVm('default');
 *   const gmem = vm.createGuestMemfd({ size: 0x200000n, flags: 3n }); // MMAP | INIT_SHARED
 *   kvm.close(); // releases the VM, the gmem and anything else still open
 * }
 * ```
 */
import { accessSync, constants } from 'node:fs';
import type { Kvm } from '../api.js';
import type { SessionOptions } from './session.js';
import { sys } from './sys.js';
import { KvmSystem } from './system.js';

export { countMappings, countOpenFds, listMappings, listOpenFds } from './accounting.js';
export { type CapsReport, type GuestCaps, type ProbeOptions, probeCaps } from './caps.js';
export { ownedCounts, traceMappings } from './fd-table.js';
export { GMEM_LINK, GMEM_LINK_6_19, isGmemLink, KvmFiles } from './files.js';
export { KvmGuestMemfd } from './guest-memfd.js';
export { knownGmemCount } from './known-files.js';
export { type AccessMode, type Backing, KvmMapping } from './mapping.js';
export { DEFAULT_PRE_FAULT_TIMEOUT_MS, DEFAULT_RUN_TIMEOUT_MS, type SessionOptions } from './session.js';
export { KvmSystem } from './system.js';
export { KvmVcpu } from './vcpu.js';
export { KvmVm } from './vm.js';
export { WATCHDOG_SIGNAL } from './watchdog.js';

/** Open /dev/kvm (or `path`). Throws KvmError('open', errno) if it cannot be opened. */
export function openKvm(path = '/dev/kvm', options: SessionOptions = {}): Kvm & KvmSystem {
  return new KvmSystem(path, options);
}

/** Whether the kvm backend can run here, and if not, why (for loud test skips). */
export function kvmAvailable(path = '/dev/kvm'): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { ok: false, reason: `the kvm backend needs Linux on x86-64 (this is ${process.platform}/${process.arch})` };
  }
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return { ok: false, reason: `no usable ${path}: ${code}` };
  }
  try {
    sys();
  } catch (e) {
    return { ok: false, reason: `koffi could not load libc: ${e instanceof Error ? e.message : String(e)}` };
  }
  try {
    const kvm = new KvmSystem(path);
    try {
      const v = kvm.apiVersion();
      if (v !== 12) return { ok: false, reason: `${path} reports KVM API version ${v}, not 12` };
    } finally {
      kvm.close();
    }
  } catch (e) {
    return { ok: false, reason: `${path} could not be used: ${e instanceof Error ? e.message : String(e)}` };
  }
  return { ok: true };
}
// every entry point throws these: catch them from whichever you imported
export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';
