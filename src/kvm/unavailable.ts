/**
 * What `guestmem/kvm` resolves to in a browser bundle (the "browser" export condition): the kvm
 * backend drives /dev/kvm through koffi, which a page cannot do. Importing it there is not an error;
 * calling it is, with the reason, instead of a bundle that drags in Node and koffi.
 */
import type { Kvm } from '../api.js';

export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';

const WHY = 'guestmem/kvm drives /dev/kvm through koffi and runs only in Node on Linux; in a browser use guestmem/model';

export function openKvm(): Kvm {
  throw new Error(WHY);
}

export function kvmAvailable(): { ok: false; reason: string } {
  return { ok: false, reason: WHY };
}
