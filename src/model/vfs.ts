/**
 * The syscalls guestmem issues on file descriptors, with the checks the VFS makes before a file's
 * own operation runs (fs/read_write.c, fs/open.c, mm/mmap.c), and the fd table that hands out the
 * lowest free number (alloc_fd). Whatever a file type lacks is answered here as the kernel would.
 */
import type { FileOps, HostMapping, Stat } from '../api.js';
import {
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_ZERO_RANGE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAX_LFS_FILESIZE,
  PAGE_SIZE_N,
  PROT_EXEC,
  PROT_WRITE,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from '../uapi/constants.js';
import { fail } from './fail.js';
import { type FMode, ModelFile, type StatFields } from './file.js';
import type { HostMm } from './host.js';
import { MemfdFile } from './memfd.js';

/** RLIMIT_NOFILE's usual soft limit */
const NOFILE = 1024;

export class FdTable {
  private readonly fds = new Map<number, ModelFile>();

  /** alloc_fd: the lowest free number (fd_install). Takes a new reference on the file. */
  install(file: ModelFile): number {
    for (let fd = 0; fd < NOFILE; fd++) {
      if (!this.fds.has(fd)) {
        this.fds.set(fd, file.get());
        return fd;
      }
    }
    return fail('open', 'EMFILE', 'fd table full');
  }

  /** fdget: the file, or EBADF. */
  get(fd: number, op: string): ModelFile {
    const f = Number.isInteger(fd) ? this.fds.get(fd) : undefined;
    if (!f) fail(op, 'EBADF', `fd ${fd} is not open`);
    return f;
  }

  lookup(fd: number): ModelFile | undefined {
    return this.fds.get(fd);
  }

  close(fd: number): void {
    const f = this.get(fd, 'close');
    this.fds.delete(fd);
    f.put();
  }

  get openFds(): number[] {
    return [...this.fds.keys()];
  }
}

/** /dev/null: stands in for the process's stdio fds 0-2 so that fd 0 is a real, non-KVM file. */
export class NullFile extends ModelFile {
  readonly kind = 'null';
  readonly fmode: FMode = { read: true, write: true, pread: true, lseek: true };
  statFields(): StatFields {
    return { mode: 0o020666, size: 0n, blocks: 0n };
  }
  override read(): Uint8Array {
    return new Uint8Array(0);
  }
  override write(data: Uint8Array): number {
    return data.length;
  }
  override llseek(): bigint {
    return 0n;
  }
}

const FALLOC_FL_MODE_MASK = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE;

export class Vfs implements FileOps {
  constructor(
    readonly fdt: FdTable,
    readonly mm: HostMm,
    private readonly nextIno: () => bigint,
  ) {}

  read(fd: number, length: number): Uint8Array {
    const f = this.fdt.get(fd, 'read');
    // vfs_read: FMODE_READ else EBADF; no .read/.read_iter (FMODE_CAN_READ) -> EINVAL
    if (!f.fmode.read) fail('read', 'EBADF', 'file not open for reading');
    if (!f.read) fail('read', 'EINVAL', `${f.kind} has no read operation`);
    const out = f.read(length, f.pos);
    f.pos += BigInt(out.length);
    return out;
  }

  write(fd: number, data: Uint8Array): number {
    const f = this.fdt.get(fd, 'write');
    if (!f.fmode.write) fail('write', 'EBADF', 'file not open for writing');
    if (!f.write) fail('write', 'EINVAL', `${f.kind} has no write operation`);
    const n = f.write(data, f.pos);
    f.pos += BigInt(n);
    return n;
  }

  pread(fd: number, length: number, pos: bigint): Uint8Array {
    // ksys_pread64: pos (loff_t) < 0 -> EINVAL before the fd is looked up; !FMODE_PREAD -> ESPIPE
    const offset = BigInt.asIntN(64, pos);
    if (offset < 0n) fail('pread', 'EINVAL', 'negative offset');
    const f = this.fdt.get(fd, 'pread');
    if (!f.fmode.pread) fail('pread', 'ESPIPE', `${f.kind} is not seekable`);
    if (!f.fmode.read) fail('pread', 'EBADF', 'file not open for reading');
    if (!f.read) fail('pread', 'EINVAL', `${f.kind} has no read operation`);
    return f.read(length, offset);
  }

  pwrite(fd: number, data: Uint8Array, pos: bigint): number {
    const offset = BigInt.asIntN(64, pos);
    if (offset < 0n) fail('pwrite', 'EINVAL', 'negative offset');
    const f = this.fdt.get(fd, 'pwrite');
    if (!f.fmode.pread) fail('pwrite', 'ESPIPE', `${f.kind} is not seekable`);
    if (!f.fmode.write) fail('pwrite', 'EBADF', 'file not open for writing');
    if (!f.write) fail('pwrite', 'EINVAL', `${f.kind} has no write operation`);
    return f.write(data, offset);
  }

  lseek(fd: number, offsetIn: bigint, whence: number): bigint {
    const offset = BigInt.asIntN(64, offsetIn);
    const f = this.fdt.get(fd, 'lseek');
    // ksys_lseek: whence > SEEK_MAX -> EINVAL; vfs_llseek: !FMODE_LSEEK -> ESPIPE
    if (whence < 0 || whence > 4) fail('lseek', 'EINVAL', `whence ${whence}`);
    if (!f.fmode.lseek) fail('lseek', 'ESPIPE', `${f.kind} is not seekable`);
    if (f.llseek) return f.llseek(offset, whence);
    // generic_file_llseek over i_size
    const size = f.statFields().size;
    const base = whence === SEEK_SET ? 0n : whence === SEEK_CUR ? f.pos : whence === SEEK_END ? size : -1n;
    if (base < 0n) fail('lseek', 'EINVAL', 'SEEK_DATA/SEEK_HOLE unsupported');
    const pos = base + offset;
    if (pos < 0n || pos > MAX_LFS_FILESIZE) fail('lseek', 'EINVAL', 'resulting offset out of range');
    f.pos = pos;
    return pos;
  }

  ftruncate(fd: number, lengthIn: bigint): void {
    // do_sys_ftruncate: length (loff_t) < 0 -> EINVAL; then fdget; !S_ISREG or !FMODE_WRITE -> EINVAL
    const length = BigInt.asIntN(64, lengthIn);
    if (length < 0n) fail('ftruncate', 'EINVAL', 'negative length');
    const f = this.fdt.get(fd, 'ftruncate');
    if (!f.regular || !f.fmode.write) fail('ftruncate', 'EINVAL', `${f.kind} is not a writable regular file`);
    if (!f.truncate) fail('ftruncate', 'EINVAL', `${f.kind} cannot be resized`);
    f.truncate(length);
  }

  fstat(fd: number): Stat {
    return this.fdt.get(fd, 'fstat').stat();
  }

  dup(fd: number): number {
    return this.fdt.install(this.fdt.get(fd, 'dup'));
  }

  close(fd: number): void {
    this.fdt.close(fd);
  }

  fallocate(fd: number, mode: number, offsetIn: bigint, lenIn: bigint): void {
    const op = 'fallocate';
    // ksys_fallocate(int fd, int mode, loff_t offset, loff_t len): the arguments are signed 64-bit
    const offset = BigInt.asIntN(64, offsetIn);
    const len = BigInt.asIntN(64, lenIn);
    const f = this.fdt.get(fd, op);
    // vfs_fallocate, in its order:
    if (offset < 0n || len <= 0n) fail(op, 'EINVAL', 'offset < 0 or len <= 0');
    if (mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE)) fail(op, 'EOPNOTSUPP', `mode 0x${mode.toString(16)} has unknown bits`);
    switch (mode & FALLOC_FL_MODE_MASK) {
      case 0:
      case FALLOC_FL_UNSHARE_RANGE:
      case FALLOC_FL_ZERO_RANGE:
        break;
      case FALLOC_FL_PUNCH_HOLE:
        if (!(mode & FALLOC_FL_KEEP_SIZE)) fail(op, 'EOPNOTSUPP', 'PUNCH_HOLE requires KEEP_SIZE');
        break;
      case FALLOC_FL_COLLAPSE_RANGE:
      case FALLOC_FL_INSERT_RANGE:
        if (mode & FALLOC_FL_KEEP_SIZE) fail(op, 'EOPNOTSUPP', 'COLLAPSE/INSERT with KEEP_SIZE');
        break;
      default:
        fail(op, 'EOPNOTSUPP', 'more than one mode');
    }
    if (!f.fmode.write) fail(op, 'EBADF', 'file not open for writing');
    if (!f.regular) fail(op, 'ENODEV', `${f.kind} is not a regular file`);
    // offset + len past s_maxbytes (or wrapping loff_t) -> EFBIG
    if (offset + len > MAX_LFS_FILESIZE) fail(op, 'EFBIG', 'offset + len exceeds the maximum file size');
    if (!f.fallocate) fail(op, 'EOPNOTSUPP', `${f.kind} has no fallocate`);
    f.fallocate(mode, offset, len);
  }

  mmap(fd: number, offset: bigint, length: bigint, prot: number, flags: number): HostMapping {
    const op = 'mmap';
    // x86 sys_mmap: the byte offset must be page aligned
    if (offset % PAGE_SIZE_N !== 0n || offset < 0n) fail(op, 'EINVAL', 'offset not page aligned');
    const f = this.fdt.get(fd, op);
    // do_mmap
    if (length === 0n) fail(op, 'EINVAL', 'zero length');
    const len = (length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
    if (len > 0x7fffffffffffn) fail(op, 'ENOMEM', 'length exceeds the address space');
    // file_mmap_ok: the mapped range must fit the largest file size
    if (offset + len > MAX_LFS_FILESIZE) fail(op, 'EOVERFLOW', 'offset + length past the maximum file size');
    const type = flags & 0x0f;
    const shared = type === MAP_SHARED || type === MAP_SHARED_VALIDATE;
    if (!shared && type !== MAP_PRIVATE) fail(op, 'EINVAL', 'neither MAP_SHARED nor MAP_PRIVATE');
    if (shared && prot & PROT_WRITE && !f.fmode.write) fail(op, 'EACCES', 'shared writable mapping of a read-only file');
    if (!f.fmode.read) fail(op, 'EACCES', 'file not open for reading');
    if (f.noexec && prot & PROT_EXEC) fail(op, 'EPERM', 'the mount is noexec');
    if (!f.mmap) fail(op, 'ENODEV', `${f.kind} cannot be mapped`);
    const backing = f.mmap(shared, prot);
    return this.mm.map(length, prot, backing, Number(offset / PAGE_SIZE_N), shared);
  }

  memfdCreate(name: string): number {
    return this.fdt.install(new MemfdFile(this.nextIno(), name, this.mm));
  }
}
