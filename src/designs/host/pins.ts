/**
 * Two host events every design is asked about once guest memory can be shared in place (issue 16):
 * - a long-term GUP pin (pin_user_pages(FOLL_LONGTERM | FOLL_WRITE), as VFIO, io_uring fixed
 *   buffers, RDMA or the selftests' /sys/kernel/debug/gup_test PIN_LONGTERM_TEST_START take it),
 *   whose pages a device then reads and writes without any CPU page table (the pin's view below);
 * - fork(2): a child whose MAP_SHARED file mappings are the parent's (dup_mmap), faulting pages in
 *   through its own page tables.
 * Pins are counted per page (folio_maybe_dma_pinned); the in-place design's conversion reads them.
 */
import { HostFault, type HostMapping } from '../../api.js';
import { fail } from '../../model/fail.js';
import { HostMm, ModelMapping } from '../../model/host.js';
import { ScenarioError } from '../../scenario/values.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../uapi/constants.js';

/** Pins per page: folio_maybe_dma_pinned() is `PINS.get(page) > 0`. */
const PINS = new WeakMap<Uint8Array, number>();

export function isDmaPinned(page: Uint8Array): boolean {
  return (PINS.get(page) ?? 0) > 0;
}

/** AS_NO_DIRECT_MAP on the mapping behind a VMA (direct-map removal v12 patch 6), if the file says so. */
export function vmaHasNoDirectMap(m: ModelMapping): boolean {
  return (m.backing?.mappingKey as { noDirectMap?: boolean } | undefined)?.noDirectMap === true;
}

/**
 * What the device sees of pinned pages: reads and writes go straight to the pinned pages (DMA, no
 * CPU page table, no fault handler); unmap() is unpin_user_pages.
 */
class PinnedPages implements HostMapping {
  private unpinned = false;
  readonly addr: bigint;
  readonly length: bigint;

  constructor(
    private readonly pages: Uint8Array[],
    addr: bigint,
  ) {
    this.addr = addr;
    this.length = BigInt(pages.length) * PAGE_SIZE_N;
    for (const p of pages) PINS.set(p, (PINS.get(p) ?? 0) + 1);
  }

  private span(offset: bigint, len: number, op: string): void {
    if (this.unpinned) throw new HostFault('SIGSEGV', this.addr + offset, offset, `${op}: the pages were unpinned`);
    if (offset < 0n || offset + BigInt(len) > this.length) throw new HostFault('SIGSEGV', this.addr + offset, offset, `${op}: outside the pinned range`);
  }

  read(offset: bigint, len: number): Uint8Array {
    this.span(offset, len, 'dma read');
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) {
      const at = Number(offset) + i;
      out[i] = (this.pages[Math.floor(at / PAGE_SIZE)] as Uint8Array)[at % PAGE_SIZE] as number;
    }
    return out;
  }

  write(offset: bigint, data: Uint8Array): void {
    this.span(offset, data.length, 'dma write');
    for (let i = 0; i < data.length; i++) {
      const at = Number(offset) + i;
      (this.pages[Math.floor(at / PAGE_SIZE)] as Uint8Array)[at % PAGE_SIZE] = data[i] as number;
    }
  }

  // A device's view of pinned pages is no VMA: these calls have no kernel answer for it, so asking
  // is a bad step (a ScenarioError), never an errno a scenario could expect.
  madvise(): void {
    throw new ScenarioError("madvise: a pin is a device's view of pages, not a mapping");
  }
  mbind(): void {
    throw new ScenarioError("mbind: a pin is a device's view of pages, not a mapping");
  }
  getMempolicy(): { mode: number; nodemask: bigint } {
    throw new ScenarioError("get_mempolicy: a pin is a device's view of pages, not a mapping");
  }
  pageNodes(_offset: bigint, count: number): number[] {
    return Array.from({ length: count }, () => -14);
  }

  /** unpin_user_pages */
  unmap(): void {
    if (this.unpinned) return;
    this.unpinned = true;
    for (const p of this.pages) PINS.set(p, Math.max(0, (PINS.get(p) ?? 0) - 1));
  }
}

/**
 * pin_user_pages(FOLL_LONGTERM | FOLL_WRITE) over [offset, offset+length) of a mapping of `mm`: the
 * slow path's check_vma_flags refuses a VMA whose file has AS_NO_DIRECT_MAP (-EFAULT, direct-map
 * removal v12 patch 6, as for secretmem); each page is faulted in through the VMA's fault handler,
 * and a fault that fails (SIGBUS from kvm_gmem_fault_user_mapping on a private page) ends the pin
 * with -EFAULT. All or nothing here (the gup_test ioctl fails unless every page was pinned).
 */
export function pinUserPages(mm: HostMm, map: HostMapping, offset: bigint, length: bigint): HostMapping {
  const op = 'pin_user_pages';
  // __get_user_pages: find_vma finds no VMA at the address, or the range runs past it: -EFAULT
  if (!(map instanceof ModelMapping) || !mm.mappings.includes(map)) fail(op, 'EFAULT', '__get_user_pages: no VMA of this process at that address');
  if (offset < 0n || offset % PAGE_SIZE_N !== 0n || length <= 0n || offset + length > map.span)
    fail(op, 'EFAULT', '__get_user_pages: range not inside the VMA');
  if (vmaHasNoDirectMap(map)) fail(op, 'EFAULT', 'check_vma_flags: vma_has_no_direct_map() (AS_NO_DIRECT_MAP): GUP refuses memory outside the direct map');
  const first = Number(offset / PAGE_SIZE_N);
  const n = Number((length + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
  const pages: Uint8Array[] = [];
  for (let i = first; i < first + n; i++) {
    const r = map.faultPage(i, true);
    if (!('page' in r)) fail(op, 'EFAULT', `handle_mm_fault: ${r.signal} (${r.reason})`);
    pages.push(r.page);
  }
  return new PinnedPages(pages, map.addr + offset);
}

/**
 * fork(2) from the process that owns `map`, returning the child's copy of that VMA. dup_mmap copies
 * no PTEs for a shared file VMA without anon pages (vma_needs_copy() is false): the child faults
 * its pages in through the file's fault handler on first touch. The child sits in the same file's
 * i_mmap (HostMm.forks), so truncation and unmap_mapping_pages reach it. Anonymous and MAP_PRIVATE
 * VMAs would need copy-on-write of the parent's pages, which no hazard needs: refused here.
 */
export function forkMapping(mm: HostMm, map: HostMapping): HostMapping {
  const op = 'fork';
  // fork(2) does not fail for a mapping: these are the model's limits, so a bad step, not an errno
  if (!(map instanceof ModelMapping) || !mm.mappings.includes(map) || !map.isMapped) throw new ScenarioError(`${op}: the parent has no such mapping`);
  if (!map.backing || !map.shared)
    throw new ScenarioError(`${op}: the model forks MAP_SHARED file mappings only (copy-on-write of anonymous or private pages is not modelled)`);
  const child = new HostMm(mm.numaNodes);
  mm.forks.add(child);
  return child.map(map.length, map.prot, map.backing, map.pgoff, true);
}
