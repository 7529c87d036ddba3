/**
 * guest_memfd with per-file memory attributes and in-place conversion (the series applied in
 * next-20260923; uapi.ts says which text), plus direct-map removal (v12). Each rule cites the
 * kernel function it mirrors in virt/kvm/guest_memfd.c of that tree (LN-GMEM @ 856852ef2108).
 *
 * The attributes live on the inode (struct gmem_inode's maple tree `attributes`), shared by every
 * VM's file on it; every index [0, size) always has a value, PRIVATE at creation or 0 (shared)
 * with GUEST_MEMFD_FLAG_INIT_SHARED. The page cache holds shared and private pages alike: a
 * conversion changes the attribute, never the folio, so the contents stay where they are (for
 * software-protected VMs they survive every conversion, which the selftests assert).
 */
import { KvmError } from '../../api.js';
import type { MemoryAttributes2 } from '../../design-api.js';
import { fail } from '../../model/fail.js';
import type { FaultResult, MmapBacking } from '../../model/file.js';
import { GmemFile, GmemInode } from '../../model/guest-memfd.js';
import type { HostMm } from '../../model/host.js';
import type { Memslot } from '../../model/memslots.js';
import { RangeMap } from '../../model/range-map.js';
import type { KvmVm } from '../../model/vm.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SHIFT, PAGE_SIZE_N, U64_MAX } from '../../uapi/constants.js';
import type { ErrnoName } from '../../uapi/errno.js';
import { isDmaPinned } from '../host/pins.js';
import { GUEST_MEMFD_FLAG_NO_DIRECT_MAP, type InPlaceKernelConfig } from './uapi.js';

const PRIVATE = Number(KVM_MEMORY_ATTRIBUTE_PRIVATE);
const OP = 'KVM_SET_MEMORY_ATTRIBUTES2';

/** struct gmem_inode with its attribute tree, and AS_NO_DIRECT_MAP on its mapping. */
export class InplaceInode extends GmemInode {
  /** gi->attributes: per page index, KVM_MEMORY_ATTRIBUTE_PRIVATE or 0 */
  readonly attributes: RangeMap;
  /** folios whose direct-map entry was zapped (folio->private KVM_GMEM_FOLIO_NO_DIRECT_MAP) */
  readonly zapped = new Set<number>();

  constructor(
    size: bigint,
    flags: bigint,
    mm: HostMm,
    numaPolicy: boolean,
    readonly config: InPlaceKernelConfig,
  ) {
    super(size, flags, mm, numaPolicy);
    // __kvm_gmem_create -> kvm_gmem_init_attributes: the whole range PRIVATE, or shared with INIT_SHARED
    this.attributes = new RangeMap(this.initShared() ? 0 : PRIVATE);
  }

  get inPlace(): boolean {
    return this.config.gmemInPlaceConversion;
  }

  /** mapping_no_direct_map(inode->i_mapping): set at creation with GUEST_MEMFD_FLAG_NO_DIRECT_MAP (v12 p10) */
  get noDirectMap(): boolean {
    return (this.flags & GUEST_MEMFD_FLAG_NO_DIRECT_MAP) !== 0n;
  }

  /** kvm_gmem_get_attributes(inode, index) & PRIVATE */
  isPrivateIndex(index: number): boolean {
    return (this.attributes.get(index) & PRIVATE) !== 0;
  }

  /**
   * kvm_gmem_prepare_memory_region (2e646bcfcf90): KVM_MEMSLOT_GMEM_ONLY when in-place conversion
   * is on, whatever the flags (v8 set it only for MMAP).
   */
  override servesAllFaults(): boolean {
    return this.inPlace || super.servesAllFaults();
  }

  /** kvm_gmem_fault_user_mapping: with in-place conversion, a shared index and only that. */
  override hostMayFault(index: number): boolean {
    return this.inPlace ? !this.isPrivateIndex(index) : super.hostMayFault(index);
  }

  /** kvm_gmem_folio_zap_direct_map (v12 p10): once per folio, whether shared or private. */
  zapDirectMap(index: number): void {
    if (this.noDirectMap) this.zapped.add(index);
  }

  /**
   * truncate_inode_pages_range: the attributes are untouched (a punched private page stays
   * private); kvm_gmem_free_folio restores the direct map of every folio that leaves (v12 p10).
   */
  override truncate(start: number, end: number): void {
    // deleting the entry being visited is safe in a Set's iteration
    for (const i of this.zapped) if (i >= start && i < end) this.zapped.delete(i);
    super.truncate(start, end);
  }
}

/** One VM's file on an in-place inode. */
export class InplaceFile extends GmemFile {
  declare readonly inode: InplaceInode;

  constructor(ino: bigint, inode: InplaceInode, vm: KvmVm) {
    super(ino, inode, vm);
  }

  /**
   * kvm_gmem_fault_user_mapping with per-file attributes: past i_size SIGBUS; a private index is
   * ERR_PTR(-EACCES) -> vmf_error -> SIGBUS, for reads and writes, in every process; a shared one
   * gets (or allocates) the folio, zeroed on first touch. With the series off the 6.18 rule holds
   * (only INIT_SHARED files fault in). With NO_DIRECT_MAP the folio leaves the direct map here.
   */
  protected override vmOps(): MmapBacking {
    const base = super.vmOps();
    const inode = this.inode;
    return {
      ...base,
      fault: (pgoff: number, write: boolean): FaultResult => {
        if (!inode.inPlace) {
          const r = base.fault(pgoff, write);
          if ('page' in r) inode.zapDirectMap(pgoff);
          return r;
        }
        if (BigInt(pgoff) * PAGE_SIZE_N >= inode.size) return { signal: 'SIGBUS', reason: 'kvm_gmem_fault_user_mapping: page beyond the guest_memfd size' };
        if (inode.isPrivateIndex(pgoff)) return { signal: 'SIGBUS', reason: 'kvm_gmem_fault_user_mapping: the index is private (-EACCES)' };
        if (inode.poisoned.has(pgoff)) return { signal: 'SIGBUS', reason: 'hardware-poisoned page' };
        const page = inode.getFolio(pgoff);
        inode.zapDirectMap(pgoff);
        return { page };
      },
    };
  }

  /** kvm_gmem_get_pfn: v12 order "zap then prepare" (the folio leaves the direct map before the guest gets it). */
  override getPfn(slot: Memslot, index: number): { page: Uint8Array } | { errno: ErrnoName } {
    const r = super.getPfn(slot, index);
    if ('page' in r) this.inode.zapDirectMap(index);
    return r;
  }

  /**
   * kvm_gmem_ioctl -> kvm_gmem_set_attributes, checks in the applied order (first failing wins);
   * none of them writes error_offset.
   */
  setAttributes(a: MemoryAttributes2): void {
    // kvm_gmem_ioctl: !gmem_in_place_conversion -> -ENOTTY
    if (!this.inode.inPlace) fail(OP, 'ENOTTY', 'kvm_gmem_ioctl: gmem_in_place_conversion is off');
    if (a.flags !== 0n) fail(OP, 'EINVAL', 'kvm_gmem_set_attributes: flags must be 0 (the RFC content modes were dropped in v6)');
    if ((a.reserved ?? []).some((r) => r !== 0n)) fail(OP, 'EINVAL', 'kvm_gmem_set_attributes: reserved[] must be 0');
    if (!this.vm.hasPrivateMem) fail(OP, 'EINVAL', "kvm_gmem_set_attributes: !kvm_arch_has_private_mem(f->kvm): the file's VM has no private memory");
    if (a.attributes & ~KVM_MEMORY_ATTRIBUTE_PRIVATE) fail(OP, 'EINVAL', 'kvm_gmem_set_attributes: only KVM_MEMORY_ATTRIBUTE_PRIVATE');
    if (a.size === 0n || a.offset + a.size > U64_MAX) fail(OP, 'EINVAL', 'kvm_gmem_set_attributes: size 0 or offset+size wraps');
    if (a.offset % PAGE_SIZE_N !== 0n || a.size % PAGE_SIZE_N !== 0n) fail(OP, 'EINVAL', 'kvm_gmem_set_attributes: offset or size not PAGE_ALIGNED');
    if (a.offset >= this.inode.size || a.offset + a.size > this.inode.size) fail(OP, 'EINVAL', 'kvm_gmem_set_attributes: range past i_size');
    const start = Number(a.offset / PAGE_SIZE_N);
    const err = this.convert(start, start + Number(a.size / PAGE_SIZE_N), Number(a.attributes));
    // on error the whole struct is copied back with error_offset = err_index << PAGE_SHIFT (absolute)
    if (err) throw new KvmError(OP, err.errno, err.reason, { error_offset: BigInt(err.index) << BigInt(PAGE_SHIFT) });
  }

  /**
   * __kvm_gmem_set_attributes under filemap_invalidate_lock: the no-op fast path (856852ef2108),
   * then for to-private unmap_mapping_pages over the range (every process's PTEs, even when the
   * conversion then fails) and kvm_gmem_is_safe_for_conversion over the allocated folios
   * (folio_maybe_dma_pinned || folio_mapped, else the refcount after lru_cache_drain_for_folio):
   * the first busy folio fails the whole call with -EAGAIN at max(start, folio->index), no
   * attribute stored (all or nothing). Then kvm_gmem_invalidate_start on every file bound to the
   * inode (KVM zaps the old type's mappings), store, kvm_gmem_invalidate_end.
   */
  protected convert(start: number, end: number, attrs: number): { errno: ErrnoName; index: number; reason: string } | undefined {
    const inode = this.inode;
    if (inode.attributes.allEqual(start, end, attrs)) return undefined;
    // kvm_gmem_mas_preallocate cannot fail in the model (the kernel's -ENOMEM sets err_index = start)
    const toPrivate = (attrs & PRIVATE) !== 0;
    if (toPrivate) {
      // unmap_mapping_pages(mapping, start, nr, false): host PTEs in every process (forks included)
      inode.mm.truncated(inode, start, end - start, false);
      const busy = this.firstBusyFolio(start, end);
      if (busy !== undefined)
        return { errno: 'EAGAIN', index: Math.max(start, busy), reason: `kvm_gmem_is_safe_for_conversion: folio at index ${busy} is pinned` };
    }
    const begun: GmemFile[] = [];
    for (const f of inode.files) if (f.invalidateBegin(start, end)) begun.push(f);
    // to-shared: kvm_arch_gmem_make_shared for allocated folios (no hook for software-protected VMs)
    inode.attributes.set(start, end, attrs);
    for (const f of begun) f.invalidateEnd();
    return undefined;
  }

  /**
   * kvm_gmem_is_safe_for_conversion: filemap_get_folios over [start, end), i.e. allocated folios
   * only. After unmap_mapping_pages no host PTE maps them (guest_memfd has no MAP_PRIVATE copies),
   * so folio_mapped() is false and what remains is a GUP pin (or a transient reference, which the
   * model does not hold).
   */
  private firstBusyFolio(start: number, end: number): number | undefined {
    const pages = this.inode.pages;
    // the lowest pinned index in range: by index where the range is the smaller, else one pass
    if (end - start <= pages.size) {
      for (let i = start; i < end; i++) {
        const p = pages.get(i);
        if (p && isDmaPinned(p)) return i;
      }
      return undefined;
    }
    let first: number | undefined;
    for (const [i, p] of pages) if (i >= start && i < end && (first === undefined || i < first) && isDmaPinned(p)) first = i;
    return first;
  }
}
