/**
 * struct file, as far as guestmem needs it: a reference count shared by every fd and mapping that
 * holds the file (fget/fput), the f_mode bits the VFS consults before it reaches a file's own
 * operations, and the optional operations themselves. A file type implements only what its kernel
 * counterpart's file_operations has; a missing operation makes the VFS answer as it would.
 */
import type { Stat } from '../api.js';
import type { Policy } from './mempolicy.js';

export interface FMode {
  read: boolean;
  write: boolean;
  /** FMODE_PREAD/FMODE_PWRITE: files opened through open(2); anon-inode files lack them */
  pread: boolean;
  /** FMODE_LSEEK */
  lseek: boolean;
}

/** A host page-fault outcome (vm_operations_struct.fault): the page, or the signal. */
export type FaultResult = { page: Uint8Array } | { signal: 'SIGBUS' | 'MCE'; reason: string };

export interface StatFields {
  mode: number;
  size: bigint;
  blocks: bigint;
}

export abstract class ModelFile {
  /** file refs: fds (incl. dup) + mappings; release() runs when the last one goes (fput) */
  private refs = 0;
  pos = 0n;
  abstract readonly kind: string;
  abstract readonly fmode: FMode;

  constructor(readonly ino: bigint) {}

  get(): this {
    this.refs++;
    return this;
  }

  put(): void {
    if (--this.refs === 0) this.release();
  }

  get refCount(): number {
    return this.refs;
  }

  /** Called once, when the last reference is dropped (file_operations.release). */
  protected release(): void {}

  abstract statFields(): StatFields;

  stat(): Stat {
    const f = this.statFields();
    return { ino: this.ino, mode: f.mode, nlink: 1, size: f.size, blksize: 4096n, blocks: f.blocks };
  }

  // Optional file_operations. The VFS (vfs.ts) checks for their presence.
  read?(len: number, pos: bigint): Uint8Array;
  write?(data: Uint8Array, pos: bigint): number;
  /** .llseek; absent with FMODE_LSEEK means the default (generic_file_llseek on i_size) */
  llseek?(offset: bigint, whence: number): bigint;
  fallocate?(mode: number, offset: bigint, len: bigint): void;
  /** .mmap: validate and return the fault handler the VMA will use */
  mmap?(shared: boolean, prot: number): MmapBacking;
  /** inode_operations.setattr for a size change (do_truncate) */
  truncate?(size: bigint): void;
  /** the mount has SB_I_NOEXEC (path_noexec) */
  get noexec(): boolean {
    return false;
  }
  /** S_ISREG: only regular files can be ftruncate'd and fallocate'd */
  readonly regular: boolean = false;
  /** the page cache's side of reclaim and migration, for files that have one (host hazards, src/designs/) */
  addressSpace?(): AddressSpaceOps;
}

/**
 * What page reclaim and page migration reach in a file's page cache: the mapping's flags and its
 * address_space_operations. Only the host hazards of src/designs/ drive these (HostMm.migratePage,
 * HostMm.reclaimPage); nothing in the guest_memfd model calls them on its own.
 */
export interface AddressSpaceOps {
  /** the key host VMAs map these pages under (MmapBacking.mappingKey) */
  readonly mappingKey: object;
  /** mapping_unevictable(): reclaim never picks these pages (unevictable LRU) */
  unevictable(): boolean;
  /** a page-cache page is present at index */
  present(index: number): boolean;
  /** a_ops->migrate_folio: move the page to a new one, or throw KvmError with the errno that refuses */
  migrateFolio(index: number): void;
  /** a_ops->writepage from reclaim: 'swapped' (the page left the page cache for swap) or 'redirtied' (it stays) */
  writepage(index: number): 'swapped' | 'redirtied';
}

/** What mmap(2) of a file installs in the VMA: the fault handler and how truncation reaches it. */
export interface MmapBacking {
  readonly file: ModelFile;
  fault(pgoff: number, write: boolean): FaultResult;
  /** MADV_REMOVE on a shared mapping: punch the file range (vfs_fallocate KEEP_SIZE|PUNCH_HOLE) */
  punch?(pgoff: number, npages: number): void;
  /** vm_operations_struct.set_policy/get_policy: the file's shared NUMA policy by page index */
  setPolicy?(pgoff: number, npages: number, p: Policy): void;
  getPolicy?(pgoff: number): Policy;
  /** the page cache entry, if present, without faulting (invariant checks) */
  peek(pgoff: number): Uint8Array | undefined;
  /** MADV_COLLAPSE support (file THP); guest_memfd refuses it */
  readonly collapsible: boolean;
  /** the inode, so host.ts can find every VMA mapping it when pages are truncated */
  readonly mappingKey: object;
}
