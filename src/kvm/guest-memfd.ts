/**
 * A guest_memfd file created with KVM_CREATE_GUEST_MEMFD. It is its own file, not part of its VM:
 * closing the VM leaves it open (and, in the kernel, the file keeps the VM alive: KERNEL-SPEC I1).
 * The object remembers the size and flags it was created with, because host mappings need them to
 * know which pages would SIGBUS and the kernel exposes the flags nowhere (known-files.ts).
 */
import { type GuestMemfd, KvmError } from '../api.js';
import { GUEST_MEMFD_FLAG_INIT_SHARED, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { check } from './check.js';
import { adoptFd, type FdOwner, releaseFd } from './fd-table.js';
import type { KvmFiles } from './files.js';
import { type GmemRef, registerGmem, releaseGmem, retainGmem } from './known-files.js';
import type { KvmMapping } from './mapping.js';
import type { Session } from './session.js';
import { decodeStat, STAT_SIZE, sys } from './sys.js';

export class KvmGuestMemfd implements GuestMemfd, FdOwner {
  readonly fd: number;
  /** the creation flags (GUEST_MEMFD_FLAG_*) */
  readonly flags: bigint;
  private readonly ref: GmemRef;
  private readonly files: KvmFiles;
  private readonly session: Session;
  private open = true;
  /** our fd was closed by a close(2) on its number elsewhere, and close() has not said so yet */
  private fdLost = false;

  /** Adopt `fd`, just returned by KVM_CREATE_GUEST_MEMFD with these arguments. */
  constructor(fd: number, size: bigint, flags: bigint, files: KvmFiles, session: Session) {
    this.fd = fd;
    this.flags = flags;
    this.files = files;
    this.session = session;
    adoptFd(fd, this, 'guest_memfd');
    const buf = new Uint8Array(STAT_SIZE);
    const s = sys();
    if (s.fstat(fd, buf) < 0) {
      const e = s.errno();
      releaseFd(fd, this);
      throw new KvmError('fstat', e, 'a just-created guest_memfd');
    }
    const st = decodeStat(buf);
    this.ref = registerGmem({ dev: st.dev, ino: st.ino, size, flags });
    session.track(this);
  }

  get isOpen(): boolean {
    return this.open;
  }

  get initShared(): boolean {
    return (this.flags & GUEST_MEMFD_FLAG_INIT_SHARED) !== 0n;
  }

  /** i_size, as fstat reports it (the kernel's answer, EBADF once the fd is closed). */
  size(): bigint {
    this.live('fstat');
    return this.files.fstat(this.fd).size;
  }

  fallocate(mode: number, offset: bigint, len: bigint): void {
    this.live('fallocate');
    check('fallocate', sys().fallocate(this.fd, mode, offset, len));
  }

  mmap(offset: bigint, length: bigint, prot: number = PROT_READ | PROT_WRITE, flags: number = MAP_SHARED): KvmMapping {
    this.live('mmap');
    // The mapping takes its own reference on what we know about the file: it outlives this fd.
    const ref = retainGmem(this.ref.info.dev, this.ref.info.ino);
    if (!ref) throw new Error('guest_memfd registration lost');
    try {
      return this.files.map(this.fd, offset, length, prot, flags, {
        kind: 'gmem',
        ref,
        fileOffset: offset,
        initShared: this.initShared,
      });
    } catch (e) {
      releaseGmem(ref);
      throw e;
    }
  }

  close(): void {
    if (this.fdLost) {
      // close(2) on our number after someone else's close(2) of it: the kernel says EBADF (once;
      // if the number now names another file, that file is not ours to close)
      this.fdLost = false;
      throw new KvmError('close', 'EBADF', `fd ${this.fd} was already closed by a close(2) on its number`);
    }
    if (!this.open) return;
    this.open = false;
    this.session.untrack(this);
    releaseGmem(this.ref);
    const err = releaseFd(this.fd, this);
    if (err !== 0) throw new KvmError('close', err);
  }

  /**
   * Once closed, the number may already name another file: answer EBADF, as the kernel does for a
   * closed fd, rather than act on whatever now holds the number.
   */
  private live(op: string): void {
    if (!this.open) throw new KvmError(op, 'EBADF', 'the guest_memfd was closed');
  }

  fdClosedElsewhere(): void {
    if (!this.open) return;
    this.open = false;
    this.fdLost = true;
    this.session.untrack(this);
    releaseGmem(this.ref);
  }
}
