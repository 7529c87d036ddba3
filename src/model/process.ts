/**
 * The host process the model's KVM objects live in: one fd table, one address space, one inode
 * number counter. fds 0-2 are taken, as in any process, so the first KVM fd is 3.
 */
import type { GuestMemfd, HostMapping } from '../api.js';
import { MAP_SHARED } from '../uapi/constants.js';
import { fail } from './file.js';
import { GmemFile } from './guest-memfd.js';
import { HostMm } from './host.js';
import { FdTable, NullFile, Vfs } from './vfs.js';

export class ModelProcess {
  readonly fdt = new FdTable();
  readonly mm = new HostMm();
  private ino = 1000n;
  readonly vfs: Vfs;

  constructor() {
    this.vfs = new Vfs(this.fdt, this.mm, () => this.nextIno());
    const devnull = new NullFile(this.nextIno());
    for (let i = 0; i < 3; i++) this.fdt.install(devnull);
  }

  nextIno(): bigint {
    return this.ino++;
  }

  gmemHandle(fd: number): GuestMemfd {
    return new ModelGuestMemfd(this, fd);
  }
}

/** The GuestMemfd interface over a guest_memfd fd number: each call is the syscall on that fd. */
export class ModelGuestMemfd implements GuestMemfd {
  constructor(
    private readonly proc: ModelProcess,
    readonly fd: number,
  ) {}

  size(): bigint {
    return this.proc.vfs.fstat(this.fd).size;
  }

  fallocate(mode: number, offset: bigint, len: bigint): void {
    this.proc.vfs.fallocate(this.fd, mode, offset, len);
  }

  mmap(offset: bigint, length: bigint, prot: number, flags: number = MAP_SHARED): HostMapping {
    return this.proc.vfs.mmap(this.fd, offset, length, prot, flags);
  }

  close(): void {
    this.proc.vfs.close(this.fd);
  }

  /** The file behind the fd, for tests and invariants (not part of the interface). */
  get file(): GmemFile {
    const f = this.proc.fdt.get(this.fd, 'fget');
    if (!(f instanceof GmemFile)) fail('fget', 'EINVAL', `fd ${this.fd} is not a guest_memfd`);
    return f;
  }
}
