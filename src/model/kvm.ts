/**
 * /dev/kvm (virt/kvm/kvm_main.c kvm_dev_ioctl): the system fd, KVM_CREATE_VM and system-scope
 * KVM_CHECK_EXTENSION. One ModelKvm is one process with /dev/kvm open.
 */
import type { FileOps, HostKernelAccess, HostMapping, Kvm, LaunchAccess, Vm } from '../api.js';
import { KVM_API_VERSION, PROT_READ, PROT_WRITE, VM_TYPE, VM_TYPE_NAMES, type VmType } from '../uapi/constants.js';
import { checkExtension } from './caps.js';
import { fail } from './fail.js';
import { type FMode, ModelFile, type StatFields } from './file.js';
import { hostKernelAccess } from './host-kernel.js';
import { ModelVm } from './model-vm.js';
import { launchDigest, setSnpVcpuRegs } from './platforms/index.js';
import { ModelProcess } from './process.js';
import type { KernelProfile } from './profiles.js';
import { KvmVm } from './vm.js';
import { VmFile } from './vm-file.js';

const LAUNCH: LaunchAccess = { setSnpVcpuRegs, launchDigest };

/** The /dev/kvm character device: opened with open(2), so seekable (noop_llseek), but unreadable. */
class KvmDevFile extends ModelFile {
  readonly kind = 'kvm';
  readonly fmode: FMode = { read: true, write: true, pread: true, lseek: true };
  statFields(): StatFields {
    return { mode: 0o020600, size: 0n, blocks: 0n };
  }
  override llseek(): bigint {
    return this.pos;
  }
}

export class ModelKvm implements Kvm {
  readonly backend = 'model' as const;
  readonly proc = new ModelProcess();
  readonly fd: number;
  readonly vms: KvmVm[] = [];

  constructor(readonly kernel: KernelProfile) {
    this.fd = this.proc.fdt.install(new KvmDevFile(this.proc.nextIno()));
  }

  get profile(): string {
    return this.kernel.name;
  }

  get files(): FileOps {
    return this.proc.vfs;
  }

  private dev(op: string): void {
    const f = this.proc.fdt.get(this.fd, op);
    if (!(f instanceof KvmDevFile)) fail(op, 'ENOTTY', `fd ${this.fd} is not /dev/kvm`);
  }

  apiVersion(): number {
    this.dev('KVM_GET_API_VERSION');
    return KVM_API_VERSION;
  }

  checkExtension(cap: number): number {
    const f = this.proc.fdt.get(this.fd, 'KVM_CHECK_EXTENSION');
    // the same ioctl on a VM fd answers for that VM (kvm_vm_ioctl_check_extension_generic)
    if (f instanceof VmFile) return checkExtension(f.vm.profile, cap, f.vm);
    this.dev('KVM_CHECK_EXTENSION');
    return checkExtension(this.kernel, cap);
  }

  /** kvm_dev_ioctl_create_vm -> kvm_arch_init_vm: an unsupported type is EINVAL. */
  createVm(type: VmType | number = 'default'): Vm {
    const op = 'KVM_CREATE_VM';
    this.dev(op);
    const name = typeof type === 'number' ? VM_TYPE_NAMES.find((n) => VM_TYPE[n] === type) : type;
    if (name === undefined || !this.kernel.vmTypes.includes(name)) fail(op, 'EINVAL', `VM type ${type} not supported by kernel ${this.kernel.name}`);
    const vm = this.newVm(name);
    const fd = this.proc.fdt.install(new VmFile(this.proc.nextIno(), vm));
    this.vms.push(vm);
    return this.newVmHandle(fd, name);
  }

  /** struct kvm for a new VM; another design's model (src/designs/) returns its own subclass. */
  protected newVm(type: VmType): KvmVm {
    return new KvmVm(type, this.kernel, this.proc.mm);
  }

  protected newVmHandle(fd: number, type: VmType): Vm {
    const h = new ModelVm(this.proc, fd, type);
    h.profile = this.kernel;
    return h;
  }

  mmapAnonymous(length: bigint): HostMapping {
    if (length <= 0n) fail('mmap', 'EINVAL', 'zero length');
    return this.proc.mm.map(length, PROT_READ | PROT_WRITE, null, 0, false);
  }

  /** The host kernel's direct-map accesses to guest memory (confidential computing, issue 5). */
  get hostKernel(): HostKernelAccess {
    return hostKernelAccess(this.proc);
  }

  /** The launch flows' way to the platform state no uAPI reaches (api.ts LaunchAccess). */
  get launch(): LaunchAccess {
    return LAUNCH;
  }

  close(): void {
    this.proc.vfs.close(this.fd);
  }
}
