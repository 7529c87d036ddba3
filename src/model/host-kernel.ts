/**
 * The host kernel's own accesses to guest memory (api.ts HostKernelAccess): a driver or a bug
 * reaching a guest_memfd folio through the direct map. No user mapping is involved, so only the
 * hardware's rule applies, which the platform that owns the page (host.ts PhysicalPageOwner: SNP's
 * RMP, TDX's integrity check) states.
 */
import { HostFault, type HostKernelAccess } from '../api.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../uapi/constants.js';
import { fail } from './fail.js';
import { GmemFile } from './guest-memfd.js';
import type { ModelProcess } from './process.js';

/** The guest_memfd file behind a model fd. */
function gmemFileOf(f: unknown, op: string): GmemFile {
  if (!(f instanceof GmemFile)) fail(op, 'EINVAL', 'not a guest_memfd');
  return f;
}

/**
 * The host kernel's accesses to guest_memfd pages through the direct map (api.ts HostKernelAccess):
 * no user mapping is involved, so only the platform's hardware rule applies. A page no folio backs
 * yet is ENOENT (nothing to reach); an access crossing a page is EINVAL.
 */
export function hostKernelAccess(proc: ModelProcess): HostKernelAccess {
  const folio = (fd: number, offset: bigint, len: number, op: string) => {
    const f = gmemFileOf(proc.fdt.get(fd, op), op);
    if (offset < 0n || offset >= f.inode.size) fail(op, 'EINVAL', 'offset outside the guest_memfd');
    const at = Number(offset % PAGE_SIZE_N);
    if (len < 0 || at + len > PAGE_SIZE) fail(op, 'EINVAL', 'a direct-map access here stays inside one page');
    const index = Number(offset / PAGE_SIZE_N);
    if (!f.inode.isPresent(index)) fail(op, 'ENOENT', 'no folio at that offset: nothing for the direct map to reach');
    const page = f.inode.getFolio(index);
    return { page, at, poisoned: f.inode.poisoned.has(index) };
  };
  const check = (page: Uint8Array, poisoned: boolean, write: boolean, offset: bigint) => {
    if (poisoned) throw new HostFault('MCE', offset, offset, 'the page is hardware-poisoned');
    const denied = proc.mm.physOwner.get(page)?.hostAccess(page, write);
    if (denied) throw new HostFault(denied.signal, offset, offset, denied.reason);
  };
  return {
    directMapRead(fd, offset, len) {
      const { page, at, poisoned } = folio(fd, offset, len, 'direct_map_read');
      check(page, poisoned, false, offset);
      const view = proc.mm.physOwner.get(page)?.hostView?.(page) ?? page;
      return view.slice(at, at + len);
    },
    directMapWrite(fd, offset, data) {
      const { page, at, poisoned } = folio(fd, offset, data.length, 'direct_map_write');
      check(page, poisoned, true, offset);
      page.set(data, at);
    },
  };
}
