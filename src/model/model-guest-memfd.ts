/** A guest_memfd fd as api.ts's GuestMemfd: each call is the syscall on that fd number. */
import type { GuestMemfd, HostMapping } from '../api.js';
import { MAP_SHARED } from '../uapi/constants.js';
import { GmemFile } from './guest-memfd.js';
import type { ModelProcess } from './process.js';

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
    // an accessor, not a syscall: a misuse is a bug in the caller, never an errno
    if (!(f instanceof GmemFile)) throw new Error(`fd ${this.fd} is not a guest_memfd`);
    return f;
  }
}
