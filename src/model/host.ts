/**
 * The host process's address space (struct mm_struct): VMAs created by mmap, their page faults, and
 * the MMU notifiers through which KVM hears that host mappings went away. KVM's shared (non-gmem)
 * guest memory is whatever this address space has at userspace_addr (hva_to_pfn / GUP).
 */
import { HostFault, type HostMapping, hostAccessFault } from '../api.js';
import { MADV, PAGE_SIZE, PAGE_SIZE_N, PROT_EXEC, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { fail } from './fail.js';
import type { FaultResult, MmapBacking, ModelFile } from './file.js';
import { mbindPolicy, nodeFor, type Policy, PolicyMap } from './mempolicy.js';

/**
 * Confidential computing (issue 5): the platform that owns a physical page, asked before any host
 * access reaches it. Returns the fault the hardware raises (SNP: an RMP #PF on a write, which a
 * user access turns into SIGBUS; TDX: a machine check), or nothing where the access goes through.
 */
export interface PhysicalPageOwner {
  hostAccess(page: Uint8Array, write: boolean): { signal: 'SIGBUS' | 'MCE'; reason: string } | undefined;
  /** what a host read returns instead of the plaintext (SNP: ciphertext), if it differs */
  hostView?(page: Uint8Array): Uint8Array | undefined;
}

/** mmu_notifier_ops.invalidate_range_start/end collapsed into one call on [start, end) host addresses. */
export interface MmuNotifier {
  invalidateHvaRange(start: bigint, end: bigint): void;
}

/** TASK_SIZE_MAX with 4-level paging: the top of the user address space (access_ok). */
export const TASK_SIZE_MAX = 0x7ffffffff000n;
const MMAP_BASE = 0x7f0000000000n;

/**
 * Pages are carved from slabs of this many pages, one ArrayBuffer each: a backing store per page
 * cost most of a first touch (its allocation, and the GC tracking it as external memory), and a
 * per-page WeakMap for the node cost the rest. A slab lives while any of its pages does, so a
 * few long-lived pages scattered over many slabs hold at most SLAB_PAGES times their size.
 */
const SLAB_PAGES = 16;

export class HostMm {
  private readonly vmas: ModelMapping[] = [];
  /** the slab each node's next pages come from */
  private readonly slabs = new Map<number, { buf: ArrayBuffer; next: number }>();
  /** the NUMA node of each slab's pages (page_to_nid) */
  private readonly slabNode = new WeakMap<ArrayBuffer, number>();
  /**
   * Confidential computing (issue 5): pages a platform gave to a guest (SNP RMP-assigned, TDX
   * TD-owned), and what the hardware does when the host touches one (src/model/platforms/).
   */
  readonly physOwner = new WeakMap<Uint8Array, PhysicalPageOwner>();

  /** @param numaNodes online NUMA nodes of the model host */
  constructor(readonly numaNodes = 2) {}

  /** alloc_pages on `node`: a zeroed page, remembered with its node. */
  allocPage(node: number): Uint8Array {
    let slab = this.slabs.get(node);
    if (!slab || slab.next === SLAB_PAGES) {
      slab = { buf: new ArrayBuffer(SLAB_PAGES * PAGE_SIZE), next: 0 };
      this.slabNode.set(slab.buf, node);
      this.slabs.set(node, slab);
    }
    return new Uint8Array(slab.buf, PAGE_SIZE * slab.next++, PAGE_SIZE);
  }

  /** page_to_nid: the node a page was allocated on (0 for a page not from allocPage). */
  nodeOf(page: Uint8Array): number {
    return this.slabNode.get(page.buffer as ArrayBuffer) ?? 0;
  }
  private readonly notifiers = new Set<MmuNotifier>();
  /**
   * Address spaces forked from this one (dup_mmap): their shared file VMAs sit in the same files'
   * i_mmap trees, so a truncation or unmap_mapping_range of a file reaches them too.
   */
  readonly forks = new Set<HostMm>();

  register(n: MmuNotifier): void {
    this.notifiers.add(n);
  }
  unregister(n: MmuNotifier): void {
    this.notifiers.delete(n);
  }

  notify(start: bigint, end: bigint): void {
    for (const n of this.notifiers) n.invalidateHvaRange(start, end);
  }

  /**
   * vm_unmapped_area, top-down: the highest gap below mmap_base that fits, so a range freed by
   * munmap is handed out again, as in a real process (a memslot whose userspace_addr was unmapped
   * may later alias a new mapping).
   */
  private place(len: bigint): bigint {
    const taken = [...this.vmas].sort((a, b) => (a.addr > b.addr ? -1 : 1));
    let top = MMAP_BASE;
    for (const m of taken) {
      if (m.addr + m.span <= top && top - (m.addr + m.span) >= len) break;
      if (m.addr < top) top = m.addr;
    }
    const addr = top - len;
    if (addr < 0x10000n) fail('mmap', 'ENOMEM', 'address space exhausted');
    return addr;
  }

  /** do_mmap after the file's own checks: pick an address and install the VMA. */
  map(length: bigint, prot: number, backing: MmapBacking | null, pgoff: number, shared: boolean): ModelMapping {
    const len = (length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
    const addr = this.place(len);
    backing?.file.get();
    const m = new ModelMapping(this, addr, length, prot, backing, pgoff, shared);
    this.vmas.push(m);
    return m;
  }

  /** munmap: remove the VMA, tell KVM (mmu notifier), drop the file reference. */
  unmap(m: ModelMapping): void {
    const i = this.vmas.indexOf(m);
    if (i < 0) return;
    this.vmas.splice(i, 1);
    this.notify(m.addr, m.addr + m.span);
    m.backing?.file.put();
  }

  find(hva: bigint): ModelMapping | undefined {
    return this.vmas.find((m) => hva >= m.addr && hva < m.addr + m.span);
  }

  /**
   * File pages [pgoff, pgoff+n) were truncated: zap the host PTEs that map them, and tell KVM.
   * `wholeRange` is unmap_mapping_range over the range (shmem punch: every VMA's whole span is
   * invalidated); otherwise truncate_inode_pages_range unmaps only folios that are mapped
   * (folio_mapped -> unmap_mapping_folio), so the notifier fires per mapped page.
   */
  truncated(mappingKey: object, pgoff: number, npages: number, wholeRange: boolean): void {
    for (const child of this.forks) child.truncated(mappingKey, pgoff, npages, wholeRange);
    for (const m of this.vmas) {
      if (m.backing?.mappingKey !== mappingKey) continue;
      const first = Math.max(pgoff, m.pgoff);
      const last = Math.min(pgoff + npages, m.pgoff + m.pages);
      if (first >= last) continue;
      const at = (pg: number) => m.addr + BigInt(pg - m.pgoff) * PAGE_SIZE_N;
      // MAP_PRIVATE: unmap_mapping_range(.., even_cows = 0) zaps only PTEs that still map the
      // page-cache page; private copies stay
      if (wholeRange && m.shared) {
        m.dropPtes(first - m.pgoff, last - m.pgoff);
        this.notify(at(first), at(last));
        continue;
      }
      for (const i of m.mappedIndices(first - m.pgoff, last - m.pgoff)) {
        m.dropPtes(i, i + 1);
        this.notify(at(m.pgoff + i), at(m.pgoff + i + 1));
      }
    }
  }

  /**
   * get_user_pages for KVM (hva_to_pfn): the page at hva, faulting it in, or null where the host
   * would fail (no VMA, protection, SIGBUS from the file's fault handler).
   */
  gup(hva: bigint, write: boolean): Uint8Array | null {
    const m = this.find(hva);
    if (!m) return null;
    if (write && !(m.prot & PROT_WRITE)) return null;
    if (!(m.prot & (PROT_READ | PROT_WRITE | PROT_EXEC))) return null;
    const r = m.faultPage(Number((hva - m.addr) / PAGE_SIZE_N), write);
    return 'page' in r ? r.page : null;
  }

  /**
   * hva_to_pfn's opportunistic write pin for a read fault (hva_to_pfn_fast / hva_to_pfn_slow: "map
   * read fault as writable if possible", get_user_page_fast_only(hva, FOLL_WRITE)): it succeeds
   * only where the host PTE is already writable, i.e. a writable VMA and, for MAP_PRIVATE file
   * mappings, a page already copied on write. Otherwise KVM maps the page read-only and a later
   * guest write faults again with FOLL_WRITE (which fails on a read-only VMA, or breaks COW).
   */
  writablePin(hva: bigint): boolean {
    const m = this.find(hva);
    if (!m || !(m.prot & PROT_WRITE)) return false;
    return m.shared || !m.backing || m.hasOwnPage(Number((hva - m.addr) / PAGE_SIZE_N));
  }

  /** The page currently behind hva, without faulting anything in (for invariants). */
  peek(hva: bigint): Uint8Array | undefined {
    const m = this.find(hva);
    return m?.peekPage(Number((hva - m.addr) / PAGE_SIZE_N));
  }

  get mappings(): readonly ModelMapping[] {
    return this.vmas;
  }

  // ---- Reclaim and migration of one page-cache page. Host hazards for src/designs/ (the v7 review
  // asked what happens to private pages when mm moves or swaps them); the guest_memfd model never
  // starts either on its own.

  /**
   * migrate_pages for one page-cache page (compaction, NUMA balancing, hot-unplug): the mapping's
   * migrate_folio moves it or refuses (a KvmError with its errno). On success try_to_migrate has
   * replaced every host PTE, so the MMU notifiers fire; whoever took the page without one keeps
   * the old page.
   */
  migratePage(file: ModelFile, index: number): void {
    const a = file.addressSpace?.();
    // move_pages(2) reports a page that is not there as -ENOENT
    if (!a?.present(index)) fail('migrate_pages', 'ENOENT', `no page-cache page at index ${index} of ${file.kind}`);
    a.migrateFolio(index);
    this.truncated(a.mappingKey, index, 1, false);
  }

  /**
   * shrink_folio_list for one page-cache page: an unevictable mapping's page is never taken; else
   * try_to_unmap (MMU notifiers fire) and pageout, where the mapping's writepage swaps the page out
   * or redirties it.
   */
  reclaimPage(file: ModelFile, index: number): 'swapped' | 'redirtied' | 'unevictable' | 'absent' {
    const a = file.addressSpace?.();
    if (!a?.present(index)) return 'absent';
    if (a.unevictable()) return 'unevictable';
    this.truncated(a.mappingKey, index, 1, false);
    return a.writepage(index);
  }
}

/** One VMA. Anonymous (backing null) or a file mapping; shared, or private with copy-on-write. */
export class ModelMapping implements HostMapping {
  /** anonymous pages, and private copies of file pages (MAP_PRIVATE COW) */
  private readonly own = new Map<number, Uint8Array>();
  /** indices whose file page a host PTE maps (folio_mapped), for shared file mappings */
  private readonly ptes = new Set<number>();
  private unmapped = false;
  /** vma->vm_policy */
  private readonly policy = new PolicyMap();
  readonly span: bigint;
  readonly pages: number;

  constructor(
    private readonly mm: HostMm,
    readonly addr: bigint,
    readonly length: bigint,
    readonly prot: number,
    readonly backing: MmapBacking | null,
    readonly pgoff: number,
    readonly shared: boolean,
  ) {
    this.span = (length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
    this.pages = Number(this.span / PAGE_SIZE_N);
  }

  /** handle_mm_fault for one page of this VMA. */
  faultPage(index: number, write: boolean): FaultResult {
    const own = this.own.get(index);
    if (own) return { page: own };
    if (!this.backing) {
      const page = this.mm.allocPage(nodeFor(this.policy.get(index), index));
      this.own.set(index, page);
      return { page };
    }
    const r = this.backing.fault(this.pgoff + index, write && this.shared);
    // a shared mapping, or a MAP_PRIVATE read before any write, maps the page-cache page itself
    if ('page' in r && (this.shared || !write)) this.ptes.add(index);
    if (!('page' in r) || this.shared || !write) return r;
    this.ptes.delete(index);
    // MAP_PRIVATE write: do_cow_fault / wp_page_copy replaces the PTE that mapped the page-cache
    // page with a private copy, and ptep_clear_flush_notify tells the MMU notifiers, so KVM drops
    // an SPTE that still maps the page-cache page
    const copy = r.page.slice();
    this.own.set(index, copy);
    const at = this.addr + BigInt(index) * PAGE_SIZE_N;
    this.mm.notify(at, at + PAGE_SIZE_N);
    return { page: copy };
  }

  /** Whether page `index` is this VMA's own (anonymous, or a private copy of a file page). */
  hasOwnPage(index: number): boolean {
    return this.own.has(index);
  }

  /** Indices in [from, to) whose file page a host PTE maps. */
  mappedIndices(from: number, to: number): number[] {
    if (to - from <= this.ptes.size) return Array.from({ length: to - from }, (_, k) => from + k).filter((i) => this.ptes.has(i));
    return [...this.ptes].filter((i) => i >= from && i < to).sort((a, b) => a - b);
  }

  dropPtes(from: number, to: number): void {
    for (const i of this.mappedIndices(from, to)) this.ptes.delete(i);
  }

  /** Indices a host PTE maps: own pages, and file pages this VMA maps (read-only views: snapshot.ts). */
  *hostMappedIndices(): Generator<number> {
    yield* this.own.keys();
    for (const i of this.ptes) if (!this.own.has(i)) yield i;
  }

  peekPage(index: number): Uint8Array | undefined {
    return this.own.get(index) ?? (this.shared || this.ptes.has(index) ? this.backing?.peek(this.pgoff + index) : undefined);
  }

  private check(offset: bigint, len: number, write: boolean): void {
    const fault = hostAccessFault(this.addr, this.span, this.prot, this.unmapped, offset, len, write);
    if (fault) throw fault;
  }

  private pageFor(index: number, write: boolean, offset: bigint): Uint8Array {
    const r = this.faultPage(index, write);
    if ('page' in r) {
      // a page a confidential guest owns: the platform's hardware check (RMP, TDX integrity)
      const denied = this.mm.physOwner.get(r.page)?.hostAccess(r.page, write);
      if (denied) throw new HostFault(denied.signal, this.addr + offset, offset, denied.reason);
      return r.page;
    }
    throw new HostFault(r.signal, this.addr + offset, offset, r.reason);
  }

  read(offset: bigint, len: number): Uint8Array {
    this.check(offset, len, false);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const at = offset + BigInt(done);
      const index = Number(at / PAGE_SIZE_N);
      const inPage = Number(at % PAGE_SIZE_N);
      const n = Math.min(len - done, PAGE_SIZE - inPage);
      const page = this.pageFor(index, false, at);
      out.set(page.subarray(inPage, inPage + n), done);
      done += n;
    }
    return out;
  }

  write(offset: bigint, data: Uint8Array): void {
    this.check(offset, data.length, true);
    let done = 0;
    while (done < data.length) {
      const at = offset + BigInt(done);
      const index = Number(at / PAGE_SIZE_N);
      const inPage = Number(at % PAGE_SIZE_N);
      const n = Math.min(data.length - done, PAGE_SIZE - inPage);
      const page = this.pageFor(index, true, at);
      page.set(data.subarray(done, done + n), inPage);
      done += n;
    }
  }

  madvise(offset: bigint, length: bigint, advice: number): void {
    // madvise: start must be page aligned; len rounds up (mm/madvise.c do_madvise)
    if (offset % PAGE_SIZE_N !== 0n || offset < 0n) fail('madvise', 'EINVAL', 'start not page aligned');
    const end = offset + ((length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n));
    if (this.unmapped || end > this.span) fail('madvise', 'ENOMEM', 'range not fully mapped');
    const first = Number(offset / PAGE_SIZE_N);
    const last = Number(end / PAGE_SIZE_N);
    switch (advice) {
      case MADV.normal:
      case MADV.hugepage:
      case MADV.nohugepage:
        return;
      case MADV.dontneed:
        // zap_page_range: anonymous and COW pages are freed; shared file pages stay in the page cache
        for (let i = first; i < last; i++) this.own.delete(i);
        this.dropPtes(first, last);
        this.mm.notify(this.addr + offset, this.addr + end);
        return;
      case MADV.remove:
        // madvise_remove: a VMA without a file is EINVAL; one that is not shared and may-write
        // (vma_is_shared_maywrite: VM_SHARED|VM_MAYWRITE, from the file's open mode, not the
        // mapping's PROT_WRITE) is EACCES; then it punches the file (vfs_fallocate). The files here
        // (memfd, guest_memfd) are open O_RDWR, so every shared mapping of them may write. A
        // MAP_PRIVATE mapping is EACCES (found by the diff against 6.18).
        if (!this.backing?.punch) fail('madvise', 'EINVAL', 'MADV_REMOVE needs a file mapping');
        if (!this.shared) fail('madvise', 'EACCES', 'MADV_REMOVE needs a shared mapping (vma_is_shared_maywrite)');
        this.backing.punch(this.pgoff + first, last - first);
        return;
      case MADV.collapse:
        // hpage_collapse: guest_memfd folios are never large (kvm_gmem_get_folio), so collapse fails
        if (!this.backing?.collapsible) fail('madvise', 'EINVAL', 'MADV_COLLAPSE not supported on this mapping');
        // madvise_collapse -> thp_vma_allowable_order -> thp_vma_suitable_order(PMD_ORDER): the VMA
        // must hold a 2 MiB-aligned block (for a file, with vm_pgoff aligned the same way), else EINVAL
        // whatever the file (found by the diff against 6.18: a 16 KiB memfd mapping)
        if (!this.holdsPmdBlock()) fail('madvise', 'EINVAL', 'MADV_COLLAPSE: the mapping holds no aligned 2 MiB block');
        return;
      default:
        fail('madvise', 'EINVAL', `unknown advice ${advice}`);
    }
  }

  /** thp_vma_suitable_order(vma, vm_end - HPAGE_PMD_SIZE, PMD_ORDER) for this mapping. */
  private holdsPmdBlock(): boolean {
    const pmd = 2n << 20n;
    const pmdPages = pmd / PAGE_SIZE_N;
    if (this.backing && (((this.addr / PAGE_SIZE_N - BigInt(this.pgoff)) % pmdPages) + pmdPages) % pmdPages !== 0n) return false;
    const end = this.addr + this.span;
    const haddr = ((end - pmd) / pmd) * pmd;
    return haddr >= this.addr && haddr + pmd <= end;
  }

  /** do_mbind: the range must be mapped; the VMA takes the policy, and a file with set_policy too. */
  mbind(offset: bigint, length: bigint, mode: number, nodemask: bigint): void {
    const p = mbindPolicy(mode, nodemask, this.mm.numaNodes);
    if (offset % PAGE_SIZE_N !== 0n || offset < 0n) fail('mbind', 'EINVAL', 'start not page aligned');
    const end = offset + ((length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n));
    if (end === offset) return;
    if (this.unmapped || end > this.span) fail('mbind', 'EFAULT', 'range not fully mapped');
    const first = Number(offset / PAGE_SIZE_N);
    const last = Number(end / PAGE_SIZE_N);
    this.policy.set(first, last, p);
    if (this.shared) this.backing?.setPolicy?.(this.pgoff + first, last - first, p);
  }

  /** get_mempolicy(MPOL_F_ADDR): the file's shared policy where it has one, else the VMA's. */
  getMempolicy(offset: bigint): Policy {
    if (this.unmapped || offset < 0n || offset >= this.span) fail('get_mempolicy', 'EFAULT', 'address not mapped');
    const index = Number(offset / PAGE_SIZE_N);
    const shared = this.shared ? this.backing?.getPolicy?.(this.pgoff + index) : undefined;
    return shared ?? this.policy.get(index);
  }

  /** do_pages_stat: the node of each present page, -ENOENT where none, -EFAULT outside the VMA. */
  pageNodes(offset: bigint, count: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const at = offset + BigInt(i) * PAGE_SIZE_N;
      if (this.unmapped || at < 0n || at >= this.span) {
        out.push(-14);
        continue;
      }
      const page = this.peekPage(Number(at / PAGE_SIZE_N));
      out.push(page ? this.mm.nodeOf(page) : -2);
    }
    return out;
  }

  unmap(): void {
    if (this.unmapped) return;
    this.unmapped = true;
    this.own.clear();
    this.mm.unmap(this);
  }

  get isMapped(): boolean {
    return !this.unmapped;
  }
}
