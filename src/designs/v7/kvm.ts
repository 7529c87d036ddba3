/**
 * A model process with v7's kernel: /dev/kvm whose VMs are V7KvmVm, and the memfd syscalls as the
 * series changed them (memfd_create with MFD_INACCESSIBLE, 05/14; the F_SEAL_AUTO_ALLOCATE seal,
 * 01/14). Every memfd is a ShmemFile, because in v7 every shmem file can back a private memslot.
 */
import type { FileOps, HostKernelAccess, HostMapping, Stat, Vm } from '../../api.js';
import type { DesignKvmOps } from '../../design-api.js';
import { fail } from '../../model/fail.js';
import { ModelKvm } from '../../model/kvm.js';
import type { KernelProfile } from '../../model/profiles.js';
import { VmFile } from '../../model/vm-file.js';
import { PROT_WRITE, type VmType } from '../../uapi/constants.js';
import { directMapAccess, mmMigrate, mmReclaim } from '../host/hazard-ops.js';
import { forkMapping, pinUserPages } from '../host/pins.js';
import {
  F_ADD_SEALS,
  F_ALL_SEALS,
  F_GET_SEALS,
  F_SEAL_SEAL,
  F_SEAL_WRITE,
  MEMFILE_F_USER_INACCESSIBLE,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_HUGE_BITS,
  MFD_HUGETLB,
  MFD_INACCESSIBLE,
  MFD_NAME_MAX_LEN,
  V7_PATCH,
} from './constants.js';
import { memfileNodeSetFlags } from './memfile-notifier.js';
import { V7_PROFILE, v7CheckExtension } from './profile.js';
import { ShmemFile } from './shmem.js';
import { V7KvmVm, V7Vm } from './vm.js';

export class V7Kvm extends ModelKvm implements DesignKvmOps {
  private readonly v7files: FileOps;

  constructor(profile: KernelProfile = V7_PROFILE) {
    super(profile);
    this.v7files = new V7Files(this.proc.vfs, (name) => this.memfdCreateFlags(name, 0));
  }

  /** MFD_* flags memfd_create accepts (MFD_ALL_FLAGS): v7 adds MFD_INACCESSIBLE. */
  protected get mfdAllFlags(): number {
    return MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_INACCESSIBLE;
  }

  protected override newVm(type: VmType): V7KvmVm {
    return new V7KvmVm(type, this.kernel, this.proc.mm);
  }

  protected override newVmHandle(fd: number, type: VmType): Vm {
    const h = new V7Vm(this.proc, fd, type);
    h.profile = this.kernel;
    return h;
  }

  override get files(): FileOps {
    return this.v7files;
  }

  override checkExtension(cap: number): number {
    const f = this.proc.fdt.get(this.fd, 'KVM_CHECK_EXTENSION');
    if (!(f instanceof VmFile) && f.kind !== 'kvm') fail('KVM_CHECK_EXTENSION', 'ENOTTY', `fd ${this.fd} is not /dev/kvm`);
    return v7CheckExtension(cap);
  }

  /**
   * memfd_create(2) with 05/14: unknown flags EINVAL (huge page size bits only with MFD_HUGETLB);
   * MFD_INACCESSIBLE with MFD_ALLOW_SEALING EINVAL; the name at most MFD_NAME_MAX_LEN bytes.
   * Without MFD_ALLOW_SEALING the file is born with F_SEAL_SEAL; with MFD_INACCESSIBLE its memfile
   * node is born USER_INACCESSIBLE (memfile_node_set_flags, whose error fails the call).
   */
  memfdCreateFlags(name: string, flags: number): number {
    const op = 'memfd_create';
    const allowed = flags & MFD_HUGETLB ? this.mfdAllFlags | MFD_HUGE_BITS : this.mfdAllFlags;
    if ((flags >>> 0) & ~allowed) fail(op, 'EINVAL', `unknown flags 0x${(flags >>> 0).toString(16)}`);
    if (flags & MFD_INACCESSIBLE && flags & MFD_ALLOW_SEALING) fail(op, 'EINVAL', `${V7_PATCH.inaccessible}: MFD_INACCESSIBLE cannot be sealed`);
    if (new TextEncoder().encode(name).length > MFD_NAME_MAX_LEN) fail(op, 'EINVAL', 'name longer than MFD_NAME_MAX_LEN');
    if (flags & MFD_HUGETLB) {
      // hugetlbfs has no memfile backing store: memfile_node_set_flags fails the call (05/14 err_file)
      if (flags & MFD_INACCESSIBLE) fail(op, 'EOPNOTSUPP', `${V7_PATCH.inaccessible}: hugetlbfs is not a memfile backing store`);
      throw new Error('memfd_create: hugetlbfs memfds are not modelled');
    }
    const file = new ShmemFile(this.proc.nextIno(), name, this.proc.mm);
    if (flags & MFD_ALLOW_SEALING) file.seals &= ~F_SEAL_SEAL;
    else if (flags & MFD_INACCESSIBLE) memfileNodeSetFlags(op, file, MEMFILE_F_USER_INACCESSIBLE);
    return this.proc.fdt.install(file);
  }

  /** fcntl(2) F_ADD_SEALS / F_GET_SEALS (mm/memfd.c memfd_fcntl, with 01/14's seal); other commands EINVAL. */
  fcntl(fd: number, cmd: number, arg = 0): number {
    const op = 'fcntl';
    const f = this.proc.fdt.get(fd, op);
    if (cmd === F_GET_SEALS) {
      if (!(f instanceof ShmemFile)) fail(op, 'EINVAL', `${f.kind} has no seals`);
      return f.seals;
    }
    if (cmd !== F_ADD_SEALS) fail(op, 'EINVAL', `fcntl command ${cmd} is not modelled`);
    // memfd_add_seals, in its order
    if (!f.fmode.write) fail(op, 'EPERM', 'file not open for writing');
    if ((arg >>> 0) & ~F_ALL_SEALS) fail(op, 'EINVAL', `unknown seals 0x${arg.toString(16)}`);
    if (!(f instanceof ShmemFile)) fail(op, 'EINVAL', `${f.kind} has no seals`);
    if (f.seals & F_SEAL_SEAL) fail(op, 'EPERM', 'F_SEAL_SEAL is set');
    if (arg & F_SEAL_WRITE && !(f.seals & F_SEAL_WRITE)) {
      // mapping_deny_writable: a shared writable mapping is in the way
      if (this.proc.mm.mappings.some((m) => m.backing?.file === f && m.shared && m.prot & PROT_WRITE))
        fail(op, 'EBUSY', 'the memfd has a shared writable mapping');
    }
    f.seals |= arg;
    return 0;
  }

  mmMigrate(fd: number, offset: bigint): void {
    mmMigrate(this.proc, fd, offset);
  }

  mmReclaim(fd: number, offset: bigint): string {
    return mmReclaim(this.proc, fd, offset);
  }

  pinUserPages(map: HostMapping, offset: bigint, length: bigint): HostMapping {
    return pinUserPages(this.proc.mm, map, offset, length);
  }

  fork(map: HostMapping): HostMapping {
    return forkMapping(this.proc.mm, map);
  }

  /** The host kernel's direct-map accesses reach shmem pages too (a memfd's pages are in the direct map). */
  override get hostKernel(): HostKernelAccess {
    return directMapAccess(this.proc, super.hostKernel);
  }
}

/** The process's file syscalls, with memfd_create making v7's shmem files. */
class V7Files implements FileOps {
  constructor(
    private readonly vfs: FileOps,
    private readonly create: (name: string) => number,
  ) {}
  read(fd: number, length: number): Uint8Array {
    return this.vfs.read(fd, length);
  }
  write(fd: number, data: Uint8Array): number {
    return this.vfs.write(fd, data);
  }
  pread(fd: number, length: number, offset: bigint): Uint8Array {
    return this.vfs.pread(fd, length, offset);
  }
  pwrite(fd: number, data: Uint8Array, offset: bigint): number {
    return this.vfs.pwrite(fd, data, offset);
  }
  lseek(fd: number, offset: bigint, whence: number): bigint {
    return this.vfs.lseek(fd, offset, whence);
  }
  ftruncate(fd: number, length: bigint): void {
    this.vfs.ftruncate(fd, length);
  }
  fstat(fd: number): Stat {
    return this.vfs.fstat(fd);
  }
  dup(fd: number): number {
    return this.vfs.dup(fd);
  }
  close(fd: number): void {
    this.vfs.close(fd);
  }
  fallocate(fd: number, mode: number, offset: bigint, len: bigint): void {
    this.vfs.fallocate(fd, mode, offset, len);
  }
  mmap(fd: number, offset: bigint, length: bigint, prot: number, flags: number): HostMapping {
    return this.vfs.mmap(fd, offset, length, prot, flags);
  }
  memfdCreate(name: string): number {
    return this.create(name);
  }
}
