/**
 * Host-side events the designs were argued about, as calls a scenario can make on any model design:
 * the kernel trying to migrate or reclaim a page of a file (HostMm.migratePage/reclaimPage reach the
 * file's page cache), and how many pages back one guest physical address (double allocation).
 */
import { HostFault, type HostKernelAccess } from '../../api.js';
import { fail } from '../../model/fail.js';
import { MemfdFile } from '../../model/memfd.js';
import type { ModelProcess } from '../../model/process.js';
import type { KvmVm } from '../../model/vm.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../uapi/constants.js';

/** The file page at byte `offset` of the file behind `fd`. */
function filePage(proc: ModelProcess, fd: number, offset: bigint, op: string) {
  const file = proc.fdt.get(fd, op);
  if (offset < 0n) fail(op, 'EINVAL', 'negative offset');
  return { file, index: Number(offset / PAGE_SIZE_N) };
}

/** Compaction (or NUMA balancing) tries to move the page; the file's migrate_folio decides. */
export function mmMigrate(proc: ModelProcess, fd: number, offset: bigint): void {
  const { file, index } = filePage(proc, fd, offset, 'migrate_pages');
  proc.mm.migratePage(file, index);
}

/** kswapd tries to reclaim the page: 'swapped', or why it stayed ('unevictable', 'redirtied', 'absent'). */
export function mmReclaim(proc: ModelProcess, fd: number, offset: bigint): string {
  const { file, index } = filePage(proc, fd, offset, 'reclaim');
  return proc.mm.reclaimPage(file, index);
}

/**
 * Pages allocated for one GPA: the shared side (a page present at the slot's userspace_addr) plus
 * the private side (a page present in the file behind the slot's private fd). 2 is double allocation.
 */
export function backingPages(vm: KvmVm, gpa: bigint): number {
  const gfn = Number(gpa / PAGE_SIZE_N);
  const slot = vm.memslots.find(gfn);
  if (!slot) return 0;
  // distinct pages: with in-place conversion the host mapping and the gmem binding reach one folio
  const pages = new Set<Uint8Array>();
  const shared = vm.mm.peek(slot.userspaceAddr + BigInt(gfn - slot.baseGfn) * PAGE_SIZE_N);
  if (shared) pages.add(shared);
  const priv = slot.gmem;
  const p = priv?.file?.peek(priv.pgoff + gfn - slot.baseGfn);
  if (p) pages.add(p);
  return pages.size;
}

/**
 * The host kernel reading or writing a page of a memfd (shmem) through the direct map, for the
 * designs whose private memory is shmem (v7, negotiated); guest_memfd files go to `gmem`, the
 * model's own access. A shmem page is an ordinary kernel page: nothing stands in the way.
 */
export function directMapAccess(proc: ModelProcess, gmem: HostKernelAccess): HostKernelAccess {
  const shmemPage = (fd: number, offset: bigint, len: number, op: string): { page: Uint8Array; at: number } | undefined => {
    const f = proc.fdt.get(fd, op);
    if (!(f instanceof MemfdFile)) return undefined;
    const at = Number(offset % PAGE_SIZE_N);
    if (offset < 0n || len < 0 || at + len > PAGE_SIZE) fail(op, 'EINVAL', 'a direct-map access here stays inside one page');
    const page = f.pages.get(Number(offset / PAGE_SIZE_N));
    if (!page) fail(op, 'ENOENT', 'no page at that offset: nothing for the direct map to reach');
    return { page, at };
  };
  return {
    directMapRead(fd, offset, len) {
      const p = shmemPage(fd, offset, len, 'direct_map_read');
      if (!p) return gmem.directMapRead(fd, offset, len);
      const denied = proc.mm.physOwner.get(p.page)?.hostAccess(p.page, false);
      if (denied) throw new HostFault(denied.signal, offset, offset, denied.reason);
      return p.page.slice(p.at, p.at + len);
    },
    directMapWrite(fd, offset, data) {
      const p = shmemPage(fd, offset, data.length, 'direct_map_write');
      if (!p) return gmem.directMapWrite(fd, offset, data);
      const denied = proc.mm.physOwner.get(p.page)?.hostAccess(p.page, true);
      if (denied) throw new HostFault(denied.signal, offset, offset, denied.reason);
      p.page.set(data, p.at);
    },
  };
}
