/**
 * Read-only, kernel-neutral views of a model KVM for people and tools: which VMs exist, their
 * memslots and guest_memfd files, and the state of every page of a GFN range as runs of equal
 * state, so a 1 TiB guest with a handful of populated pages is a handful of runs, not 2^28 entries.
 * Nothing here allocates a page, faults anything in or changes model state; the cost of a view is
 * the number of runs and populated pages it covers, never the size of the range.
 */
import { PAGE_SIZE_N } from '../uapi/constants.js';
import { GmemFile } from './guest-memfd.js';
import type { ModelKvm } from './kvm.js';
import type { Memslot, PrivateFile } from './memslots.js';
import type { KvmVm } from './vm.js';

/** Bits of a page's state (PageRun.bits). */
export const PAGE = {
  /** a memslot covers the GFN */
  SLOT: 1,
  /** the PRIVATE memory attribute is set */
  PRIVATE: 2,
  /** the slot's guest_memfd has a page at the GFN's file offset (allocated or written) */
  GMEM: 4,
  /** a host PTE maps a page at the slot's userspace_addr for the GFN */
  HOST: 8,
  /** KVM has a mapping (SPTE) for the GFN */
  SPTE: 16,
  /** the guest_memfd page is poisoned (memory failure) */
  POISON: 32,
} as const;

/** [start, end) GFNs that share one state. */
export interface PageRun {
  readonly start: number;
  readonly end: number;
  readonly bits: number;
}

export interface SlotView {
  readonly id: number;
  readonly asId: number;
  readonly baseGfn: number;
  readonly npages: number;
  readonly flags: number;
  readonly userspaceAddr: bigint;
  /** the guest_memfd bound to the slot: its inode number and the first file page of the binding */
  readonly gmem: { readonly ino: bigint | undefined; readonly pgoff: number } | undefined;
}

export interface GmemView {
  readonly ino: bigint;
  /** the fd it is open on in the model process, if still open */
  readonly fd: number | undefined;
  readonly npages: number;
  readonly flags: bigint;
  /** pages the file holds (written or allocated) */
  readonly populated: number;
  readonly poisoned: number;
  /** file page ranges bound to memslots of this VM */
  readonly bindings: readonly { readonly slot: number; readonly start: number; readonly end: number }[];
}

export interface VmView {
  readonly index: number;
  readonly type: string;
  readonly destroyed: boolean;
  readonly mmuInvalidateSeq: number;
  readonly invalidateInProgress: number;
  readonly faultRetries: number;
  readonly slots: readonly SlotView[];
  readonly gmems: readonly GmemView[];
  /** one past the highest GFN anything (a slot, an attribute) covers: the extent worth drawing */
  readonly extent: number;
}

function gmemOf(f: PrivateFile | null | undefined): GmemFile | undefined {
  return f instanceof GmemFile ? f : undefined;
}

/** The guest_memfd files of `vm`: open in the process, or still bound to one of its slots. */
function gmemFiles(kvm: ModelKvm, vm: KvmVm): Map<GmemFile, number | undefined> {
  const out = new Map<GmemFile, number | undefined>();
  for (const fd of kvm.proc.fdt.openFds) {
    const f = kvm.proc.fdt.lookup(fd);
    if (f instanceof GmemFile && f.vm === vm && !out.has(f)) out.set(f, fd);
  }
  for (const s of vm.memslots.all()) {
    const g = gmemOf(s.gmem?.file);
    if (g && !out.has(g)) out.set(g, undefined);
  }
  return out;
}

/** Everything about the VMs of a model KVM that the page map's bands and headers show. */
export function snapshotKvm(kvm: ModelKvm): VmView[] {
  return kvm.vms.map((vm, index) => {
    const slots = vm.memslots
      .all()
      .sort((a, b) => a.asId - b.asId || a.baseGfn - b.baseGfn)
      .map((s) => ({
        id: s.id,
        asId: s.asId,
        baseGfn: s.baseGfn,
        npages: s.npages,
        flags: s.flags,
        userspaceAddr: s.userspaceAddr,
        gmem: s.gmem ? { ino: gmemOf(s.gmem.file)?.ino, pgoff: s.gmem.pgoff } : undefined,
      }));
    const gmems = [...gmemFiles(kvm, vm)].map(([f, fd]) => {
      let populated = f.inode.pages.size;
      for (const r of f.inode.allocated.runs(0, f.inode.npages)) {
        if (r.value !== 1) continue;
        populated += r.end - r.start;
        for (const k of f.inode.pages.keys()) if (k >= r.start && k < r.end) populated--;
      }
      const bindings = vm.memslots
        .all()
        .filter((s) => s.gmem?.file === f)
        .map((s) => ({ slot: s.id, start: s.gmem!.pgoff, end: s.gmem!.pgoff + s.npages }))
        .sort((a, b) => a.start - b.start);
      return { ino: f.ino, fd, npages: f.inode.npages, flags: f.inode.flags, populated, poisoned: f.inode.poisoned.size, bindings };
    });
    let extent = 0;
    for (const s of slots) if (s.asId === 0) extent = Math.max(extent, s.baseGfn + s.npages);
    let last: { start: number; value: number } | undefined;
    for (const r of vm.attributes.map.runs(0, Number.MAX_SAFE_INTEGER)) last = r;
    if (last && last.value !== vm.attributes.map.initial) extent = Math.max(extent, last.start + 1);
    for (const g of vm.mmu.sptes.keys()) extent = Math.max(extent, g + 1);
    return {
      index,
      type: vm.type,
      destroyed: vm.destroyed,
      mmuInvalidateSeq: vm.mmu.seq,
      invalidateInProgress: vm.mmu.inProgress,
      faultRetries: vm.mmu.retries,
      slots,
      gmems,
      extent,
    };
  });
}

/** Pages of another design's private file are probed one by one, in slices of the view up to this long. */
const OTHER_FILE_PROBE = 1 << 16;

/** The slots of address space 0 that overlap [lo, hi), in GFN order. */
function slotsIn(vm: KvmVm, lo: number, hi: number): Memslot[] {
  return vm.memslots
    .all()
    .filter((s) => s.asId === 0 && s.baseGfn < hi && s.baseGfn + s.npages > lo)
    .sort((a, b) => a.baseGfn - b.baseGfn);
}

/**
 * The state of every GFN in [lo, hi) as runs, merged where the state is equal. Costs the number of
 * attribute runs, slots and populated pages in the range (plus a sort), whatever the range's size.
 */
export function pageRuns(vm: KvmVm, lo: number, hi: number): PageRun[] {
  if (hi <= lo) return [];
  const cuts: number[] = [lo, hi];
  const cut = (g: number) => {
    if (g > lo && g < hi) cuts.push(g);
  };
  const point = (g: number) => {
    if (g >= lo && g < hi) {
      cuts.push(g);
      cut(g + 1);
    }
  };
  for (const r of vm.attributes.map.runs(lo, hi)) cut(r.start);
  const slots = slotsIn(vm, lo, hi);
  const host = new Set<number>();
  const other = new Set<number>();
  for (const s of slots) {
    cut(s.baseGfn);
    cut(s.baseGfn + s.npages);
    const sLo = Math.max(lo, s.baseGfn);
    const sHi = Math.min(hi, s.baseGfn + s.npages);
    const g = gmemOf(s.gmem?.file);
    if (g && s.gmem) {
      const off = s.gmem.pgoff - s.baseGfn;
      for (const k of g.inode.pages.keys()) point(k - off);
      for (const k of g.inode.poisoned) point(k - off);
      for (const r of g.inode.allocated.runs(sLo + off, sHi + off)) cut(r.start - off);
    } else if (s.gmem?.file && sHi - sLo <= OTHER_FILE_PROBE) {
      // another design's private file (src/designs/): only what peek shows, page by page
      for (let gfn = sLo; gfn < sHi; gfn++) {
        if (s.gmem.file.peek(s.gmem.pgoff + gfn - s.baseGfn)) {
          other.add(gfn);
          point(gfn);
        }
      }
    }
    // host pages behind the slot's userspace_addr range
    const uStart = s.userspaceAddr + BigInt(sLo - s.baseGfn) * PAGE_SIZE_N;
    const uEnd = s.userspaceAddr + BigInt(sHi - s.baseGfn) * PAGE_SIZE_N;
    for (const m of vm.mm.mappings) {
      if (m.addr >= uEnd || m.addr + m.span <= uStart) continue;
      for (const i of m.hostMappedIndices()) {
        const hva = m.addr + BigInt(i) * PAGE_SIZE_N;
        if (hva < uStart || hva >= uEnd) continue;
        const gfn = s.baseGfn + Number((hva - s.userspaceAddr) / PAGE_SIZE_N);
        host.add(gfn);
        point(gfn);
      }
    }
  }
  for (const g of vm.mmu.sptes.keys()) point(g);
  cuts.sort((a, b) => a - b);
  const out: { start: number; end: number; bits: number }[] = [];
  let si = 0;
  for (let i = 0; i < cuts.length - 1; i++) {
    const start = cuts[i] as number;
    const end = cuts[i + 1] as number;
    if (end <= start) continue;
    while (si < slots.length && (slots[si] as Memslot).baseGfn + (slots[si] as Memslot).npages <= start) si++;
    const s = slots[si] && (slots[si] as Memslot).baseGfn <= start ? (slots[si] as Memslot) : undefined;
    let bits = vm.attributes.isPrivate(start) ? PAGE.PRIVATE : 0;
    if (s) {
      bits |= PAGE.SLOT;
      const g = gmemOf(s.gmem?.file);
      if (g && s.gmem) {
        const idx = s.gmem.pgoff + start - s.baseGfn;
        if (g.inode.isPresent(idx)) bits |= PAGE.GMEM;
        if (g.inode.poisoned.has(idx)) bits |= PAGE.POISON;
      } else if (other.has(start)) {
        bits |= PAGE.GMEM;
      }
      if (host.has(start)) bits |= PAGE.HOST;
    }
    if (vm.mmu.sptes.has(start)) bits |= PAGE.SPTE;
    const prev = out[out.length - 1];
    if (prev && prev.bits === bits && prev.end === start) prev.end = end;
    else out.push({ start, end, bits });
  }
  return out;
}

/** Hear every completed invalidation of `vm` (its new mmu_invalidate_seq and GFN range); returns the undo. */
export function observeInvalidations(vm: KvmVm, fn: (seq: number, start: number, end: number) => void): () => void {
  const prev = vm.mmu.observer;
  vm.mmu.observer = (seq, start, end) => {
    prev?.(seq, start, end);
    fn(seq, start, end);
  };
  return () => {
    vm.mmu.observer = prev;
  };
}

/** The private/shared attribute runs of [lo, hi) (true = private), for spotting conversions. */
export function attributeRuns(vm: KvmVm, lo: number, hi: number): { start: number; end: number; private: boolean }[] {
  return [...vm.attributes.map.runs(lo, hi)].map((r) => ({ start: r.start, end: r.end, private: vm.attributes.isPrivate(r.start) }));
}
