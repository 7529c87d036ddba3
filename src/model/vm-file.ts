/** The VM's file descriptor (kvm_vm_fops, made by kvm_dev_ioctl_create_vm through anon_inode_getfile). */
import { type FMode, ModelFile, type StatFields } from './file.js';
import type { KvmVm } from './vm.js';
/**
 * A file of KVM's anon inodes that holds its VM (kvm_vm_fops, kvm_vcpu_fops): each fd takes a
 * reference on struct kvm (kvm_get_kvm) and its release drops it (kvm_put_kvm); both have
 * .llseek = noop_llseek (lseek succeeds and reports the position) and live on the anon_inodefs
 * mount, which is noexec where the profile says so (6.18: mmap(PROT_EXEC) is EPERM).
 */
export abstract class VmRefFile extends ModelFile {
  readonly fmode: FMode = { read: true, write: true, pread: false, lseek: true };
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

/** The VM's anon-inode file ("kvm-vm"). */
export class VmFile extends VmRefFile {
  readonly kind = 'kvm-vm';
}
