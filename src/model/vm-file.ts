/** The VM's file descriptor (kvm_vm_fops, made by kvm_dev_ioctl_create_vm through anon_inode_getfile). */
import { type FMode, ModelFile, type StatFields } from './file.js';
import type { KvmVm } from './vm.js';
/** The VM's anon-inode file ("kvm-vm"). Its release drops the fd's VM reference. */
export class VmFile extends ModelFile {
  readonly kind = 'kvm-vm';
  // kvm_vm_fops has .llseek = noop_llseek: lseek succeeds and reports the position
  readonly fmode: FMode = { read: true, write: true, pread: false, lseek: true };
  // anon_inode_getfd: the anon_inodefs mount is noexec where the profile says so (6.18: EPERM)
  override get noexec(): boolean {
    return this.vm.profile.anonInodeNoexec;
  }
  constructor(
    ino: bigint,
    readonly vm: KvmVm,
  ) {
    super(ino);
    vm.get();
  }
  statFields(): StatFields {
    return { mode: 0o600, size: 0n, blocks: 0n };
  }
  override llseek(): bigint {
    return this.pos;
  }
  protected override release(): void {
    this.vm.put();
  }
}
