/**
 * A memfd as the v7 series left shmem (mm/shmem.c, mm/memfd.c with 01/14, 04/14, 05/14 applied):
 * the model's plain memfd plus seals (F_SEAL_AUTO_ALLOCATE among them), a memfile_node whose
 * flags every userspace path consults at the time of the call, and a memfile backing store that
 * hands pages to KVM. Every shmem file has a node, MFD_INACCESSIBLE or not: what MFD_INACCESSIBLE
 * changes is only that the node's flags start as USER_INACCESSIBLE.
 */

import { fail } from '../../model/fail.js';
import type { AddressSpaceOps, FaultResult, MmapBacking, ModelFile, StatFields } from '../../model/file.js';
import type { HostMm } from '../../model/host.js';
import { MemfdFile } from '../../model/memfd.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, PAGE_SIZE, PAGE_SIZE_N, PROT_WRITE } from '../../uapi/constants.js';
import { hostOf } from '../host/host.js';
import {
  F_SEAL_AUTO_ALLOCATE,
  F_SEAL_FUTURE_WRITE,
  F_SEAL_GROW,
  F_SEAL_SEAL,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  MEMFILE_F_UNMOVABLE,
  MEMFILE_F_UNRECLAIMABLE,
  MEMFILE_F_USER_INACCESSIBLE,
  V7_PATCH,
} from './constants.js';
import { type MemfileBackingStore, MemfileNode, memfileNotifierInvalidate, memfileRegisterBackingStore } from './memfile-notifier.js';

/** What a freed page holds once someone else reuses it (slab's POISON_FREE): makes stale mappings show. */
export const FREED_PAGE_FILL = 0x6b;

export class ShmemFile extends MemfdFile {
  /** shmem_inode_info.memfile_node (04/14) */
  readonly memfileNode = new MemfileNode();
  /** shmem_inode_info.seals: F_SEAL_SEAL unless created with MFD_ALLOW_SEALING */
  seals = F_SEAL_SEAL;
  /** AS_UNEVICTABLE on the mapping (memfile_node_update_flags for MEMFILE_F_UNRECLAIMABLE) */
  unevictable = false;
  /** pages reclaim wrote to swap: their contents, until a fault or read brings them back */
  private readonly swap = new Map<number, Uint8Array>();

  constructor(ino: bigint, name: string, mm: HostMm) {
    super(ino, name, mm);
  }

  private get inaccessible(): boolean {
    return (this.memfileNode.flags & MEMFILE_F_USER_INACCESSIBLE) !== 0;
  }

  override statFields(): StatFields {
    // i_blocks counts swapped-out pages too (shmem_recalc_inode: info->alloced)
    return { ...super.statFields(), blocks: BigInt((this.pages.size + this.swap.size) * (PAGE_SIZE / 512)) };
  }

  /** A page exists in the page cache or in swap: not a hole. */
  hasPage(index: number): boolean {
    return this.pages.has(index) || this.swap.has(index);
  }

  /** shmem_getpage_gfp: a swapped page is read back in first; a hole is allocated. */
  protected override page(index: number): Uint8Array {
    const saved = this.swap.get(index);
    if (saved && !this.pages.has(index)) {
      const p = this.mm.allocPage(0);
      p.set(saved);
      this.pages.set(index, p);
      this.swap.delete(index);
    }
    return super.page(index);
  }

  private swapIn(first: number, last: number): void {
    for (const i of [...this.swap.keys()]) if (i >= first && i < last) this.page(i);
  }

  /** shmem_file_read_iter (04/14): -EPERM for an inaccessible file, for any page up to i_size's. */
  override read(len: number, pos: bigint): Uint8Array {
    if (this.inaccessible && pos / PAGE_SIZE_N <= this.size / PAGE_SIZE_N) {
      fail('read', 'EPERM', `${V7_PATCH.shmem}: shmem_file_read_iter on an inaccessible memfd`);
    }
    this.swapIn(Number(pos / PAGE_SIZE_N), Number((pos + BigInt(len) + PAGE_SIZE_N - 1n) / PAGE_SIZE_N));
    return super.read(len, pos);
  }

  /**
   * generic_perform_write over shmem_write_begin, page by page: seals, then the node's flags (04/14),
   * then F_SEAL_AUTO_ALLOCATE's SGP_NOALLOC (01/14), which fails a hole with -ENOENT. A failure after
   * some bytes went in returns the count instead, as write(2) does.
   */
  override write(data: Uint8Array, pos: bigint): number {
    let done = 0;
    while (done < data.length) {
      const at = pos + BigInt(done);
      const index = Number(at / PAGE_SIZE_N);
      const k = Math.min(data.length - done, PAGE_SIZE - Number(at % PAGE_SIZE_N));
      const why = this.writeBegin(at, k, index);
      if (why) {
        if (done > 0) return done;
        fail('write', why[0], why[1]);
      }
      super.write(data.subarray(done, done + k), at);
      done += k;
    }
    return done;
  }

  private writeBegin(pos: bigint, len: number, index: number): [errno: 'EPERM' | 'ENOENT', why: string] | undefined {
    if (this.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) return ['EPERM', 'shmem_write_begin: F_SEAL_WRITE'];
    if (this.seals & F_SEAL_GROW && pos + BigInt(len) > this.size) return ['EPERM', 'shmem_write_begin: F_SEAL_GROW'];
    if (this.inaccessible) return ['EPERM', `${V7_PATCH.shmem}: shmem_write_begin on an inaccessible memfd`];
    if (this.seals & F_SEAL_AUTO_ALLOCATE && !this.hasPage(index)) return ['ENOENT', `${V7_PATCH.seal}: SGP_NOALLOC finds a hole`];
    return undefined;
  }

  /**
   * shmem_setattr with ATTR_SIZE: seals, then (04/14) an inaccessible file may be sized once, from
   * 0, to a page multiple. Shrinking truncates from the new size to the end of the page cache,
   * pages past the old i_size included.
   */
  override truncate(size: bigint): void {
    const op = 'ftruncate';
    const old = this.size;
    if ((size < old && this.seals & F_SEAL_SHRINK) || (size > old && this.seals & F_SEAL_GROW)) fail(op, 'EPERM', 'shmem_setattr: F_SEAL_SHRINK/F_SEAL_GROW');
    if (this.inaccessible) {
      if (old !== 0n) fail(op, 'EPERM', `${V7_PATCH.shmem}: an inaccessible memfd is sized only once`);
      if (size % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', `${V7_PATCH.shmem}: an inaccessible memfd's size must be page aligned`);
    }
    this.size = size;
    if (size <= old) {
      const top = [...this.pages.keys(), ...this.swap.keys()].reduce((m, i) => Math.max(m, i + 1), 0);
      const end = BigInt(top) * PAGE_SIZE_N;
      if (end > size) this.dropRange(size, end);
    }
  }

  /**
   * shmem_fallocate: PUNCH_HOLE checks the write seals, then (04/14) alignment on an inaccessible
   * file; allocation checks F_SEAL_GROW. The alignment rule is in the punch branch only: an
   * unaligned allocation on an inaccessible file rounds out as on any other.
   */
  override fallocate(mode: number, offset: bigint, len: bigint): void {
    const op = 'fallocate';
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) fail(op, 'EOPNOTSUPP', 'shmem supports only allocate and punch');
    if (mode & FALLOC_FL_PUNCH_HOLE) {
      if (this.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) fail(op, 'EPERM', 'shmem_fallocate: punching a write-sealed memfd');
      if (this.inaccessible && (offset % PAGE_SIZE_N !== 0n || len % PAGE_SIZE_N !== 0n)) {
        fail(op, 'EINVAL', `${V7_PATCH.shmem}: punching an inaccessible memfd needs page-aligned offset and len`);
      }
      this.dropRange(offset, offset + len);
      return;
    }
    if (this.seals & F_SEAL_GROW && offset + len > this.size) fail(op, 'EPERM', 'shmem_fallocate: F_SEAL_GROW');
    super.fallocate(mode, offset, len);
  }

  /**
   * shmem_undo_range (04/14): each whole page is announced to the memfile notifiers before it is
   * truncated (notify_invalidate); partial pages are only zeroed, and are not announced. Swapped
   * pages in the range are freed too.
   */
  protected override dropRange(start: bigint, end: bigint): void {
    const first = Number((start + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
    const last = Number(end / PAGE_SIZE_N);
    for (const i of [...this.pages.keys()].sort((a, b) => a - b)) if (i >= first && i < last) memfileNotifierInvalidate(this.memfileNode, i, i + 1);
    for (const i of [...this.swap.keys()]) if (i >= first && i < last) this.swap.delete(i);
    super.dropRange(start, end);
  }

  /**
   * shmem_mmap: F_SEAL_FUTURE_WRITE (seal_check_future_write) and F_SEAL_WRITE (mapping_map_writable)
   * refuse shared writable mappings; then (04/14) an inaccessible file refuses every mapping. The
   * check is made now: mappings that existed before the flag was set keep working.
   */
  override mmap(shared = false, prot = 0): MmapBacking {
    if (shared && prot & PROT_WRITE && this.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) fail('mmap', 'EPERM', 'shmem_mmap: write-sealed memfd');
    if (this.inaccessible) fail('mmap', 'EPERM', `${V7_PATCH.shmem}: shmem_mmap on an inaccessible memfd`);
    const base = super.mmap();
    const tdx = hostOf(this.mm).tdx;
    return {
      ...base,
      fault: (pgoff: number, write: boolean): FaultResult => {
        // shmem_fault with F_SEAL_AUTO_ALLOCATE uses SGP_NOALLOC (01/14): a hole is -ENOENT -> SIGBUS, reads too
        if (this.seals & F_SEAL_AUTO_ALLOCATE && !this.hasPage(pgoff) && BigInt(pgoff) * PAGE_SIZE_N < this.size) {
          return { signal: 'SIGBUS', reason: `${V7_PATCH.seal}: shmem_fault with SGP_NOALLOC on a hole` };
        }
        const r = base.fault(pgoff, write);
        if (!('page' in r) || !tdx.isTdOwned(r.page)) return r;
        // the page now belongs to a TD: the host's store is a machine check, its load reads zeros
        if (write) return { signal: 'MCE', reason: 'host write to a page a TD owns (TDX): the host process is killed' };
        return { page: new Uint8Array(PAGE_SIZE) };
      },
    };
  }

  /** shmem_get_pfn (04/14): shmem_getpage(SGP_WRITE) allocates on demand, past i_size too. */
  getPfn(index: number): Uint8Array {
    return this.page(index);
  }

  /**
   * Reclaim and migration (04/14): shmem_migrate_page refuses -EOPNOTSUPP while the node says
   * UNMOVABLE; the mapping is unevictable while it says UNRECLAIMABLE (memfile_node_update_flags),
   * and shmem_writepage redirties then as well. Otherwise the model host has swap: the page goes.
   */
  override addressSpace(): AddressSpaceOps {
    return {
      mappingKey: this,
      unevictable: () => this.unevictable,
      present: (index) => this.pages.has(index),
      migrateFolio: (index) => {
        if (this.memfileNode.flags & MEMFILE_F_UNMOVABLE) fail('migrate_folio', 'EOPNOTSUPP', `${V7_PATCH.shmem}: shmem_migrate_page: MEMFILE_F_UNMOVABLE`);
        this.replacePage(index, true);
      },
      writepage: (index) => {
        if (this.memfileNode.flags & MEMFILE_F_UNRECLAIMABLE) return 'redirtied';
        this.replacePage(index, false);
        return 'swapped';
      },
    };
  }

  /** The page leaves its frame (migration: to a new frame; swap-out: to swap); the old frame is reused. */
  private replacePage(index: number, migrate: boolean): void {
    const old = this.pages.get(index);
    if (!old) return;
    if (migrate) {
      const moved = this.mm.allocPage((this.mm.nodeOf(old) + 1) % this.mm.numaNodes);
      moved.set(old);
      this.pages.set(index, moved);
    } else {
      this.swap.set(index, old.slice());
      this.pages.delete(index);
    }
    old.fill(FREED_PAGE_FILL);
  }
}

/** shmem's memfile backing store (04/14), registered at boot (shmem_init). */
export const shmemBackingStore: MemfileBackingStore = {
  // shmem_lookup_memfile_node: any shmem file, MFD_INACCESSIBLE or not
  lookupMemfileNode: (file: ModelFile) => (file instanceof ShmemFile ? file.memfileNode : null),
  getPfn: (file: ModelFile, offset: number) => ({ page: (file as ShmemFile).getPfn(offset) }),
  updateFlags: (file: ModelFile, flags: number) => {
    // memfile_node_update_flags: UNMOVABLE clears __GFP_MOVABLE (not modelled), UNRECLAIMABLE sets AS_UNEVICTABLE
    (file as ShmemFile).unevictable = (flags & MEMFILE_F_UNRECLAIMABLE) !== 0;
  },
  peek: (file: ModelFile, offset: number) => (file as ShmemFile).pages.get(offset),
};
memfileRegisterBackingStore(shmemBackingStore);
