/**
 * Read-only views of model state for people: the per-page picture the demo and the visualizer draw.
 * Nothing here changes state or faults anything in.
 */
import { PAGE_SIZE_N } from '../uapi/constants.js';
import type { KvmVm } from './vm.js';

export interface PageView {
  gfn: number;
  /** the PRIVATE attribute */
  private: boolean;
  /** a guest_memfd page exists behind this GFN (private memory, or shared for MMAP guest_memfd) */
  gmemPage: boolean;
  /** the host mapping at the slot's userspace_addr has a page here */
  hostPage: boolean;
  /** KVM has a mapping (SPTE) for the GFN */
  kvmMapped: boolean;
  /** no memslot covers the GFN */
  noSlot: boolean;
}

export function pageMap(vm: KvmVm, gpa: bigint, npages: number): PageView[] {
  const out: PageView[] = [];
  const first = Number(gpa / PAGE_SIZE_N);
  for (let gfn = first; gfn < first + npages; gfn++) {
    const slot = vm.memslots.find(gfn);
    let gmemPage = false;
    let hostPage = false;
    if (slot) {
      const file = slot.gmem?.file;
      if (file && slot.gmem) gmemPage = file.peek(slot.gmem.pgoff + gfn - slot.baseGfn) !== undefined;
      hostPage = vm.mm.peek(slot.userspaceAddr + BigInt(gfn - slot.baseGfn) * PAGE_SIZE_N) !== undefined;
    }
    out.push({ gfn, private: vm.attributes.isPrivate(gfn), gmemPage, hostPage, kvmMapped: vm.mmu.sptes.has(gfn), noSlot: !slot });
  }
  return out;
}

/**
 * One character per page: P/p private with/without a guest_memfd page, S/s shared with/without a
 * host page; upper case = KVM has it mapped is shown separately by `mappedLine`.
 */
export function pageMapLine(pages: readonly PageView[]): string {
  return pages.map((p) => (p.noSlot ? '.' : p.private ? (p.gmemPage ? 'P' : 'p') : p.hostPage || p.gmemPage ? 'S' : 's')).join(' ');
}

export function mappedLine(pages: readonly PageView[]): string {
  return pages.map((p) => (p.kvmMapped ? '^' : ' ')).join(' ');
}
