/**
 * FileOps: the file syscalls by fd number, on any fd of the process (ours, foreign, closed or made
 * up: fd 9999 must give the kernel's EBADF). Results and errnos are the kernel's.
 *
 * fds this object hands out (dup, memfd_create) are owned by it until `close(fd)`; closing any
 * number goes through the process-wide fd table, so an object whose fd is closed here learns it.
 */
import { type FileOps, type HostMapping, KvmError, type Stat } from '../api.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, MAP_ANONYMOUS } from '../uapi/constants.js';
import { check, checkBig } from './check.js';
import { adoptFd, closeAnyFd, type FdOwner, releaseFd } from './fd-table.js';
import { type GmemRef, releaseGmem, retainGmem } from './known-files.js';
import { type Backing, KvmMapping } from './mapping.js';
import type { Session } from './session.js';
import { decodeStat, type RawStat, STAT_SIZE, sys } from './sys.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** What /proc/self/fd/N links to for a guest_memfd in 6.8-6.18: an anon inode (KERNEL-SPEC A6). */
export const GMEM_LINK = 'anon_inode:[kvm-gmem]';
/**
 * ... and from 6.19, where every guest_memfd gets an inode of its own on KVM's private mount
 * (alloc_file_pseudo on the kvm_guest_memfd filesystem, for the per-file mempolicy): d_path of an
 * unhashed pseudo dentry. Seen in the lab on 7.3.4.
 */
export const GMEM_LINK_6_19 = '/[kvm-gmem] (deleted)';

/** Whether a /proc/self/fd link names a guest_memfd, on any kernel. */
export const isGmemLink = (link: string | undefined): boolean => link === GMEM_LINK || link === GMEM_LINK_6_19;

export class KvmFiles implements FileOps, FdOwner {
  private readonly session: Session;
  /** fds handed out by dup/memfdCreate, with the gmem reference a dup of a known gmem holds */
  private readonly owned = new Map<number, GmemRef | undefined>();
  private readonly statBuf = new Uint8Array(STAT_SIZE);
  private readonly linkBuf = new Uint8Array(256);

  constructor(session: Session) {
    this.session = session;
  }

  read(fd: number, length: number): Uint8Array {
    const buf = new Uint8Array(length);
    const n = check('read', sys().read(fd, buf, length));
    return buf.subarray(0, n);
  }

  write(fd: number, data: Uint8Array): number {
    return check('write', sys().write(fd, data, data.length));
  }

  pread(fd: number, length: number, offset: bigint): Uint8Array {
    const buf = new Uint8Array(length);
    const n = check('pread', sys().pread(fd, buf, length, offset));
    return buf.subarray(0, n);
  }

  pwrite(fd: number, data: Uint8Array, offset: bigint): number {
    return check('pwrite', sys().pwrite(fd, data, data.length, offset));
  }

  lseek(fd: number, offset: bigint, whence: number): bigint {
    return checkBig('lseek', sys().lseek(fd, offset, whence));
  }

  ftruncate(fd: number, length: bigint): void {
    check('ftruncate', sys().ftruncate(fd, length));
  }

  fstat(fd: number): Stat {
    const st = this.rawStat(fd);
    return { ino: st.ino, mode: st.mode, nlink: Number(st.nlink), size: st.size, blksize: st.blksize, blocks: st.blocks };
  }

  dup(fd: number): number {
    const n = check('dup', sys().dup(fd));
    let ref: GmemRef | undefined;
    if (isGmemLink(this.linkOf(n))) {
      const st = this.rawStat(n);
      ref = retainGmem(st.dev, st.ino);
    }
    this.own(n, ref);
    return n;
  }

  close(fd: number): void {
    const { r, errno } = closeAnyFd(fd);
    if (r < 0) throw new KvmError('close', errno);
  }

  fallocate(fd: number, mode: number, offset: bigint, len: bigint): void {
    check('fallocate', sys().fallocate(fd, mode, offset, len));
  }

  mmap(fd: number, offset: bigint, length: bigint, prot: number, flags: number): HostMapping {
    return this.map(fd, offset, length, prot, flags);
  }

  /** mmap, with the backing worked out from the fd (KvmMapping says why it matters). */
  map(fd: number, offset: bigint, length: bigint, prot: number, flags: number, known?: Backing): KvmMapping {
    const m = KvmMapping.map(
      length,
      prot,
      flags,
      fd,
      offset,
      () => this.checkedIfAsked(known ?? this.classify(fd, offset, flags)),
      (x) => this.session.untrack(x),
    );
    return this.session.track(m);
  }

  /**
   * With hostAccess 'kernel-checked' (conformance and differential runs), a guest_memfd mapping is
   * not predicted from kvm_gmem_fault_user_mapping's rule but copied through process_vm_readv/writev,
   * so the kernel itself says where a fault is refused and the model is never held against a copy
   * of its own rule.
   */
  private checkedIfAsked(b: Backing): Backing {
    if (b.kind !== 'gmem' || this.session.hostAccess !== 'kernel-checked') return b;
    releaseGmem(b.ref);
    return { kind: 'unknown' };
  }

  memfdCreate(name: string): number {
    const fd = check('memfd_create', sys().memfdCreate(name, 0));
    this.own(fd, undefined);
    return fd;
  }

  /** fds handed out by dup/memfdCreate and not yet closed. */
  get ownedFds(): number[] {
    return [...this.owned.keys()];
  }

  fdClosedElsewhere(fd: number): void {
    const ref = this.owned.get(fd);
    this.owned.delete(fd);
    if (ref) releaseGmem(ref);
  }

  /** Close every fd this object handed out (Kvm.close). */
  closeOwned(): void {
    for (const fd of [...this.owned.keys()]) {
      const ref = this.owned.get(fd);
      this.owned.delete(fd);
      if (ref) releaseGmem(ref);
      releaseFd(fd, this);
    }
  }

  /** readlink(/proc/self/fd/N), or undefined if it cannot be read. */
  linkOf(fd: number): string | undefined {
    const n = sys().readlink(`/proc/self/fd/${fd}`, this.linkBuf, this.linkBuf.length);
    return n < 0 ? undefined : new TextDecoder().decode(this.linkBuf.subarray(0, n));
  }

  private rawStat(fd: number): RawStat {
    check('fstat', sys().fstat(fd, this.statBuf));
    return decodeStat(this.statBuf);
  }

  private own(fd: number, ref: GmemRef | undefined): void {
    this.owned.set(fd, ref);
    adoptFd(fd, this, 'file');
  }

  private classify(fd: number, offset: bigint, flags: number): Backing {
    if (flags & MAP_ANONYMOUS) return { kind: 'anon' };
    let st: RawStat;
    try {
      st = this.rawStat(fd);
    } catch {
      return { kind: 'unknown' };
    }
    if (isGmemLink(this.linkOf(fd))) {
      const ref = retainGmem(st.dev, st.ino);
      if (!ref) return { kind: 'unknown' };
      return { kind: 'gmem', ref, fileOffset: offset, initShared: (ref.info.flags & GUEST_MEMFD_FLAG_INIT_SHARED) !== 0n };
    }
    return (st.mode & S_IFMT) === S_IFREG ? { kind: 'file' } : { kind: 'unknown' };
  }
}
