/**
 * guest_memfd (virt/kvm/guest_memfd.c). The inode is the memory: a sparse page cache that only
 * costs memory for pages that were touched. Each file on it is one VM's view, holding the bindings
 * of file page ranges to that VM's memslots. The file pins its VM (kvm_get_kvm in
 * __kvm_gmem_create); a memslot does not pin the file (kvm_gmem_bind drops its reference).
 */
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  GMEM_ST_MODE,
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  PAGE_SIZE,
  PAGE_SIZE_N,
} from '../uapi/constants.js';
import type { ErrnoName } from '../uapi/errno.js';
import { fail } from './fail.js';
import { type AddressSpaceOps, type FaultResult, type FMode, type MmapBacking, ModelFile, type StatFields } from './file.js';
import type { HostMm } from './host.js';
import { DEFAULT_POLICY, nodeFor, type Policy, PolicyMap } from './mempolicy.js';
import type { GmemBinding, Memslot } from './memslots.js';
import { RangeMap } from './range-map.js';
import type { KvmVm } from './vm.js';

/** The physical storage: size and flags fixed at creation, pages allocated lazily. */
export class GmemInode {
  /** folios with contents (materialized); a missing index reads as zero */
  readonly pages = new Map<number, Uint8Array>();
  /** folios allocated by fallocate but never touched: present, zero, costing no model memory */
  readonly allocated = new RangeMap(0);
  /** folios marked by memory failure (kvm_gmem_error_folio): invalidated, not truncated */
  readonly poisoned = new Set<number>();
  readonly files = new Set<GmemFile>();
  /** struct gmem_inode's shared NUMA policy (after 6.18); null where guest_memfd has none */
  readonly policy: PolicyMap | null;
  /** i_size in pages, fixed at creation (guest_memfd cannot be resized) */
  readonly npages: number;

  constructor(
    readonly size: bigint,
    readonly flags: bigint,
    readonly mm: HostMm,
    numaPolicy: boolean,
  ) {
    this.policy = numaPolicy ? new PolicyMap() : null;
    this.npages = Number(size / PAGE_SIZE_N);
  }

  supportsMmap(): boolean {
    return (this.flags & GUEST_MEMFD_FLAG_MMAP) !== 0n;
  }

  /**
   * kvm_gmem_bind (6.18): the slot gets KVM_MEMSLOT_GMEM_ONLY (every guest fault, shared too, is
   * served from guest_memfd) when the file is mmap-able. A design may widen it (in-place conversion).
   */
  servesAllFaults(): boolean {
    return this.supportsMmap();
  }

  /** kvm_gmem_fault_user_mapping would fault `index` in (6.18: only INIT_SHARED files); a design may refine it. */
  hostMayFault(_index: number): boolean {
    return this.initShared();
  }

  initShared(): boolean {
    return (this.flags & GUEST_MEMFD_FLAG_INIT_SHARED) !== 0n;
  }

  /** kvm_gmem_get_folio + the "not up to date -> clear" step of its callers (G8). */
  getFolio(index: number): Uint8Array {
    let p = this.pages.get(index);
    if (!p) {
      // kvm_gmem_get_folio allocates under the inode's shared policy (after 6.18), else locally
      p = this.mm.allocPage(this.policy ? nodeFor(this.policy.get(index), index) : 0);
      this.pages.set(index, p);
    }
    return p;
  }

  isPresent(index: number): boolean {
    return this.pages.has(index) || this.allocated.get(index) === 1;
  }

  /** truncate_inode_pages_range over page indices [start, end): free them and zap host PTEs. */
  truncate(start: number, end: number): void {
    // no folio lies past i_size, and a punch may reach far beyond it (kvm_gmem_punch_hole has no size check)
    end = Math.min(end, Math.max(start, this.npages));
    const span = end - start;
    // walk whichever is smaller, the range or the pages held (deleting while iterating a Map or a
    // Set is well defined: visited entries are not revisited)
    if (span <= this.pages.size) {
      for (let i = start; i < end; i++) this.pages.delete(i);
    } else if (this.pages.size > 0) {
      for (const k of this.pages.keys()) if (k >= start && k < end) this.pages.delete(k);
    }
    if (this.poisoned.size > 0) for (const k of this.poisoned) if (k >= start && k < end) this.poisoned.delete(k);
    this.allocated.set(start, end, 0);
    // truncate_inode_pages_range: only folios a host PTE maps are unmapped (unmap_mapping_folio)
    this.mm.truncated(this, start, span, false);
  }

  /**
   * kvm_gmem_error_folio (KERNEL-SPEC G9), reached from memory_failure() through the mapping's
   * error_remove_folio: invalidate every binding's mapping of the folio but do not truncate it.
   * The folio stays poisoned: kvm_gmem_get_pfn answers later guest faults with EHWPOISON and the
   * host fault handler with SIGBUS, until a punch removes it. (Confidential computing, issue 5.)
   */
  errorFolio(index: number): void {
    this.poisoned.add(index);
    const files = [...this.files];
    const begun = files.map((f) => f.invalidateBegin(index, index + 1));
    files.forEach((f, i) => {
      if (begun[i]) f.invalidateEnd();
    });
  }

  /** Bytes of page data the model holds for this inode. */
  get residentBytes(): number {
    return this.pages.size * PAGE_SIZE;
  }
}

// O_RDWR | O_LARGEFILE, made by alloc_file_pseudo: no FMODE_PREAD/FMODE_LSEEK, no .read/.write.
// One frozen object for every file: the mode never changes, and a literal per file is garbage.
const GMEM_FMODE: FMode = Object.freeze({ read: true, write: true, pread: false, lseek: false });

interface Binding {
  start: number;
  end: number;
  slot: Memslot;
}

/** One VM's file on a guest_memfd inode (struct gmem_file / kvm_gmem). */
export class GmemFile extends ModelFile implements GmemBinding {
  readonly kind = 'guest_memfd';
  readonly fmode: FMode = GMEM_FMODE;
  override readonly regular = true;
  override get noexec(): boolean {
    return this.vm.profile.anonInodeNoexec;
  }
  private bindings: Binding[] = [];
  private released = false;

  constructor(
    ino: bigint,
    readonly inode: GmemInode,
    readonly vm: KvmVm,
  ) {
    super(ino);
    // __kvm_gmem_create: the file takes a reference on its VM
    vm.get();
    inode.files.add(this);
  }

  get isReleased(): boolean {
    return this.released;
  }

  statFields(): StatFields {
    // anon_inode_make_secure_inode: st_blocks stays 0 however much is allocated (KERNEL-SPEC A6)
    return { mode: GMEM_ST_MODE, size: this.inode.size, blocks: 0n };
  }

  /** kvm_gmem_setattr: guest_memfd cannot be resized, whatever the size. */
  override truncate(): void {
    fail('ftruncate', 'EINVAL', 'kvm_gmem_setattr: guest_memfd cannot be resized');
  }

  override fallocate(mode: number, offset: bigint, len: bigint): void {
    const op = 'fallocate';
    // kvm_gmem_fallocate: KEEP_SIZE is mandatory, only PUNCH_HOLE may join it, ranges page aligned
    if (!(mode & FALLOC_FL_KEEP_SIZE)) fail(op, 'EOPNOTSUPP', 'kvm_gmem_fallocate: FALLOC_FL_KEEP_SIZE is required');
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) fail(op, 'EOPNOTSUPP', 'kvm_gmem_fallocate: only KEEP_SIZE|PUNCH_HOLE');
    if (offset % PAGE_SIZE_N !== 0n || len % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', 'kvm_gmem_fallocate: offset and len must be page aligned');
    if (mode & FALLOC_FL_PUNCH_HOLE) this.punchHole(offset, len);
    else this.allocate(offset, len);
  }

  /** kvm_gmem_allocate: "Dedicated guest is immutable by default" - never past i_size. */
  private allocate(offset: bigint, len: bigint): void {
    if (offset + len > this.inode.size) fail('fallocate', 'EINVAL', 'kvm_gmem_allocate: range extends past the file size');
    this.inode.allocated.set(Number(offset / PAGE_SIZE_N), Number((offset + len) / PAGE_SIZE_N), 1);
  }

  /**
   * kvm_gmem_punch_hole: no size check (ranges past i_size succeed). Invalidate every file's
   * bindings in the range, truncate, then end the invalidation, all under the invalidate lock so
   * begin and end balance.
   */
  protected punchHole(offset: bigint, len: bigint): void {
    const start = Number(offset / PAGE_SIZE_N);
    const end = Number((offset + len) / PAGE_SIZE_N);
    const begun: GmemFile[] = [];
    for (const f of this.inode.files) if (f.invalidateBegin(start, end)) begun.push(f);
    this.inode.truncate(start, end);
    for (const f of begun) f.invalidateEnd();
  }

  /**
   * kvm_gmem_invalidate_begin: for each binding overlapping [start, end) (file page indices), begin
   * an invalidation on first hit and zap the matching GFNs. Returns whether anything was bound.
   */
  invalidateBegin(start: number, end: number): boolean {
    let found = false;
    for (const b of this.bindings) {
      const s = Math.max(start, b.start);
      const e = Math.min(end, b.end);
      if (s >= e) continue;
      if (!found) {
        this.vm.mmu.invalidateBegin();
        found = true;
      }
      const base = b.slot.baseGfn - b.start;
      // kvm_gmem_get_invalidate_filter picks PRIVATE, or SHARED with INIT_SHARED; it selects roots
      // only on VMs with mirrored TDP (TDX), so here every SPTE of the range goes.
      this.vm.mmu.unmapGfnRange(base + s, base + e);
    }
    return found;
  }

  invalidateEnd(): void {
    this.vm.mmu.invalidateEnd();
  }

  /**
   * kvm_gmem_bind, after fget and the f_op check (done by the caller with the fd): same VM, offset
   * in range and aligned, and no part of the file range already bound.
   */
  bind(slot: Memslot, offset: bigint, overlapErrno: ErrnoName): void {
    const range = this.prepareBind(slot, offset);
    this.commitBind(slot, range, overlapErrno);
  }

  /** The checks of kvm_gmem_bind (kvm_gmem_prepare_memory_region where the bind is split): EINVAL. */
  prepareBind(slot: Memslot, offset: bigint): { start: number; end: number } {
    const op = 'KVM_SET_USER_MEMORY_REGION2';
    if (this.vm !== slot.vm) fail(op, 'EINVAL', 'kvm_gmem_bind: guest_memfd belongs to another VM');
    const size = BigInt(slot.npages) * PAGE_SIZE_N;
    // loff_t arithmetic: offset + size can overflow to a negative value, which then passes the
    // i_size test (found by guestmem diff against 6.18: offset 0x7ffffffffffff000 binds)
    const last = this.vm.profile.bindOffsetUnsigned ? offset + size : BigInt.asIntN(64, offset + size);
    if (offset >= 1n << 63n || offset % PAGE_SIZE_N !== 0n || last > this.inode.size) {
      fail(op, 'EINVAL', 'kvm_gmem_bind: offset negative, unaligned, or offset+size past the file size');
    }
    const start = Number(offset / PAGE_SIZE_N);
    return { start, end: start + slot.npages };
  }

  /** The binding itself (kvm_gmem_commit_memory_region where split): a range bound already fails. */
  commitBind(slot: Memslot, { start, end }: { start: number; end: number }, overlapErrno: ErrnoName): void {
    const op = 'KVM_SET_USER_MEMORY_REGION2';
    if (this.bindingsFind(start, end)) fail(op, overlapErrno, 'kvm_gmem_commit_memory_region: file range already bound to another memslot');
    this.bindings.push({ start, end, slot });
    this.bindings.sort((a, b) => a.start - b.start);
    slot.gmem = { file: this, pgoff: start };
  }

  /** xa_find(&gmem->bindings, &start, end - 1, XA_PRESENT): the first slot bound in [start, end). */
  protected bindingsFind(start: number, end: number): Memslot | undefined {
    return this.bindings.find((b) => b.start < end && start < b.end)?.slot;
  }

  /** kvm_gmem_unbind: clear the slot's range; nothing if the file was already released. */
  unbind(slot: Memslot): void {
    this.bindings = this.bindings.filter((b) => b.slot !== slot);
    if (slot.gmem) slot.gmem.file = null;
  }

  peek(index: number): Uint8Array | undefined {
    return this.inode.pages.get(index);
  }

  /** The slot bound at file page `index`, if any (xa_load(&gmem->bindings, index)). */
  bindingAt(index: number): Memslot | undefined {
    return this.bindings.find((b) => index >= b.start && index < b.end)?.slot;
  }

  get bindingCount(): number {
    return this.bindings.length;
  }

  /**
   * __kvm_gmem_get_pfn, for a guest fault (kvm_gmem_get_pfn) and for kvm_gmem_populate: the page
   * backing `index`, or the errno (KVM_RUN returns it with KVM_EXIT_MEMORY_FAULT).
   */
  getPfn(slot: Memslot, index: number): { page: Uint8Array } | { errno: ErrnoName } {
    if (this.bindingAt(index) !== slot) return { errno: 'EIO' };
    if (this.inode.poisoned.has(index)) return { errno: 'EHWPOISON' };
    return { page: this.inode.getFolio(index) };
  }

  /** memory_failure() -> the mapping's error_remove_folio, kvm_gmem_error_folio */
  errorRemoveFolio(index: number): void {
    this.inode.errorFolio(index);
  }

  /** kvm_gmem_mmap (6.18): needs GUEST_MEMFD_FLAG_MMAP, and a shared mapping. */
  override mmap(shared: boolean): MmapBacking {
    if (!this.inode.supportsMmap()) fail('mmap', 'ENODEV', 'kvm_gmem_mmap: guest_memfd created without GUEST_MEMFD_FLAG_MMAP');
    if (!shared) fail('mmap', 'EINVAL', 'kvm_gmem_mmap: only MAP_SHARED mappings');
    return this.vmOps();
  }

  /** kvm_gmem_vm_ops, which kvm_gmem_mmap installs in the VMA once its checks passed. */
  protected vmOps(): MmapBacking {
    const inode = this.inode;
    return {
      file: this,
      mappingKey: inode,
      collapsible: false,
      fault: (pgoff: number): FaultResult => {
        // kvm_gmem_fault_user_mapping
        if (BigInt(pgoff) * PAGE_SIZE_N >= inode.size) return { signal: 'SIGBUS', reason: 'kvm_gmem_fault_user_mapping: page beyond the guest_memfd size' };
        if (!inode.initShared()) return { signal: 'SIGBUS', reason: 'kvm_gmem_fault_user_mapping: guest_memfd without INIT_SHARED is private to the guest' };
        if (inode.poisoned.has(pgoff)) return { signal: 'SIGBUS', reason: 'hardware-poisoned page' };
        return { page: inode.getFolio(pgoff) };
      },
      punch: (pgoff: number, n: number) => this.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, BigInt(pgoff) * PAGE_SIZE_N, BigInt(n) * PAGE_SIZE_N),
      peek: (pgoff: number) => inode.pages.get(pgoff),
      // kvm_gmem_set_policy/get_policy exist only where the inode has a shared policy (after 6.18)
      ...(inode.policy && {
        setPolicy: (pgoff: number, n: number, p: Policy) => inode.policy?.set(pgoff, pgoff + n, p),
        getPolicy: (pgoff: number) => inode.policy?.get(pgoff) ?? DEFAULT_POLICY,
      }),
    };
  }

  /**
   * The mapping's side of reclaim and migration (driven only by the host hazards of src/designs/):
   * __kvm_gmem_create calls mapping_set_unmovable (later mapping_set_inaccessible), which sets
   * AS_UNEVICTABLE and AS_UNMOVABLE, and kvm_gmem_migrate_folio refuses with -EINVAL should a
   * migration reach a folio anyway.
   */
  override addressSpace(): AddressSpaceOps {
    const inode = this.inode;
    return {
      mappingKey: inode,
      unevictable: () => true,
      present: (index) => inode.isPresent(index),
      migrateFolio: () => fail('migrate_folio', 'EINVAL', 'kvm_gmem_migrate_folio: guest_memfd folios are unmovable (AS_UNMOVABLE)'),
      writepage: () => 'redirtied',
    };
  }

  /**
   * kvm_gmem_release: detach every bound slot (later faults get EFAULT), zap everything this file
   * mapped, and drop the VM reference. The inode's memory stays while other files or mappings use it.
   */
  protected override release(): void {
    this.released = true;
    for (const b of this.bindings) if (b.slot.gmem) b.slot.gmem.file = null;
    if (this.invalidateBegin(0, Number.MAX_SAFE_INTEGER)) this.invalidateEnd();
    this.bindings = [];
    this.inode.files.delete(this);
    if (this.inode.files.size === 0) this.inode.truncate(0, this.inode.npages);
    this.vm.put();
  }
}
