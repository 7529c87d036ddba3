/**
 * The VM ioctls (virt/kvm/kvm_main.c kvm_vm_ioctl, x86 kvm_arch_vm_ioctl) as the Vm interface of
 * api.ts: each method is one ioctl on the VM fd, checked in the kernel's order.
 */
import type {
  CreateGuestMemfd,
  GuestMemfd,
  HostMapping,
  MemoryAttributes,
  MemoryEncryptCommand,
  MemoryEncryptResult,
  UserspaceMemoryRegion,
  UserspaceMemoryRegion2,
  Vcpu,
  Vm,
  VmType,
} from '../api.js';
import { CAP, GUEST_MEMFD_FLAG_INIT_SHARED, KVM_HC_MAP_GPA_RANGE, PAGE_SIZE_N, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { checkExtension } from './caps.js';
import { fail } from './fail.js';
import { GmemFile, GmemInode } from './guest-memfd.js';
import { ModelGuestMemfd } from './model-guest-memfd.js';
import { ModelVcpu } from './model-vcpu.js';
import { vmMemoryEncryptOp } from './platforms/index.js';
import type { ModelProcess } from './process.js';
import type { KernelProfile } from './profiles.js';
import { VcpuFile } from './vcpu.js';
import type { KvmVm } from './vm.js';
import { VmFile } from './vm-file.js';

/** KVM_MAX_VCPU_IDS on x86 */
const KVM_MAX_VCPU_IDS = 4096;

/** The Vm interface over a VM fd: every call is an ioctl on that fd number, as userspace makes it. */
export class ModelVm implements Vm {
  constructor(
    protected readonly proc: ModelProcess,
    readonly fd: number,
    readonly type: VmType,
  ) {}

  /** fdget + the ioctl landing on a VM file; on any other file a VM ioctl is unknown (ENOTTY). */
  protected kvm(op: string): KvmVm {
    const f = this.proc.fdt.get(this.fd, op);
    if (f instanceof VmFile) return f.vm;
    // The ioctl lands on whatever file the fd is: kvm_dev_ioctl's and x86 kvm_arch_vcpu_ioctl's
    // default case is EINVAL; a file with no unlocked_ioctl at all gives ENOTTY.
    if (f.kind === 'kvm' || f.kind === 'kvm-vcpu') fail(op, 'EINVAL', `fd ${this.fd} is not a VM (${f.kind} ioctl default)`);
    return fail(op, 'ENOTTY', `fd ${this.fd} is not a VM`);
  }

  get vm(): KvmVm {
    return this.kvm('vm');
  }

  checkExtension(cap: number): number {
    const op = 'KVM_CHECK_EXTENSION';
    // KVM_CHECK_EXTENSION is both a system and a VM ioctl: on /dev/kvm it answers for kvm == NULL
    const f = this.proc.fdt.get(this.fd, op);
    if (f.kind === 'kvm' && this.profile) return checkExtension(this.profile, cap);
    const vm = this.kvm(op);
    return checkExtension(vm.profile, cap, vm);
  }

  /** the profile /dev/kvm answers with, for a handle whose fd number now names /dev/kvm */
  profile: KernelProfile | undefined;

  enableCap(cap: number, args: readonly bigint[] = [], flags = 0): number {
    const op = 'KVM_ENABLE_CAP';
    const vm = this.kvm(op);
    // x86 kvm_vm_ioctl_enable_cap: flags must be 0; unknown caps are EINVAL
    if (flags !== 0) fail(op, 'EINVAL', 'flags must be 0');
    if (cap === CAP.KVM_CAP_EXIT_HYPERCALL) {
      const mask = args[0] ?? 0n;
      if (mask & ~(1n << BigInt(KVM_HC_MAP_GPA_RANGE))) fail(op, 'EINVAL', 'only KVM_HC_MAP_GPA_RANGE may exit to userspace');
      vm.hypercallExitMask = mask;
      return 0;
    }
    return fail(op, 'EINVAL', `capability ${cap} cannot be enabled`);
  }

  createGuestMemfd(a: CreateGuestMemfd): GuestMemfd {
    const op = 'KVM_CREATE_GUEST_MEMFD';
    const vm = this.kvm(op);
    // kvm_vm_ioctl: the KVM_CREATE_GUEST_MEMFD case exists only under CONFIG_KVM_GUEST_MEMFD;
    // without it the ioctl falls to kvm_arch_vm_ioctl(), whose default is ENOTTY
    if (!vm.profile.guestMemfd) fail(op, 'ENOTTY', 'this kernel has no guest_memfd (CONFIG_KVM_GUEST_MEMFD is off)');
    // kvm_gmem_create: flags against kvm_gmem_get_supported_flags (0 before 6.18), then the size as loff_t
    const valid = this.gmemSupportedFlags(vm);
    if (a.flags & ~valid) fail(op, 'EINVAL', `kvm_gmem_create: flags 0x${a.flags.toString(16)} not supported`);
    const size = BigInt.asIntN(64, a.size);
    if (size <= 0n || size % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', 'kvm_gmem_create: size must be positive and page aligned');
    // reserved[] is not checked (KERNEL-SPEC A4)
    const fd = this.proc.fdt.install(this.gmemCreate(vm, size, a.flags));
    return new ModelGuestMemfd(this.proc, fd);
  }

  /** kvm_gmem_get_supported_flags(kvm): INIT_SHARED only where the VM has no private memory. */
  protected gmemSupportedFlags(vm: KvmVm): bigint {
    return vm.hasPrivateMem ? vm.profile.gmemFlags & ~GUEST_MEMFD_FLAG_INIT_SHARED : vm.profile.gmemFlags;
  }

  /**
   * __kvm_gmem_create: the inode and the VM's file on it. The differential tester's planted bugs
   * (src/diff/mutants.ts) make their broken files here.
   */
  protected gmemCreate(vm: KvmVm, size: bigint, flags: bigint): GmemFile {
    const inode = new GmemInode(size, flags, this.proc.mm, vm.profile.gmemMempolicy);
    return new GmemFile(this.proc.nextIno(), inode, vm);
  }

  setUserMemoryRegion(r: UserspaceMemoryRegion): void {
    const vm = this.kvm('KVM_SET_USER_MEMORY_REGION');
    vm.memslots.set({ ...r, guestMemfdOffset: 0n, guestMemfd: 0 }, true, (fd) => this.proc.fdt.lookup(fd));
  }

  setUserMemoryRegion2(r: UserspaceMemoryRegion2): void {
    const vm = this.kvm('KVM_SET_USER_MEMORY_REGION2');
    vm.memslots.set({ ...r, slot: r.slot >>> 0, flags: r.flags >>> 0, guestMemfd: r.guestMemfd >>> 0 }, false, (fd) =>
      fd <= 0x7fffffff ? this.proc.fdt.lookup(fd) : undefined,
    );
  }

  setMemoryAttributes(a: MemoryAttributes): void {
    const op = 'KVM_SET_MEMORY_ATTRIBUTES';
    const vm = this.kvm(op);
    // Without CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES the ioctl falls to kvm_arch_vm_ioctl: ENOTTY
    if (!vm.profile.memoryAttributes) fail(op, 'ENOTTY', 'this kernel has no memory attributes');
    vm.attributes.set(a);
  }

  mmapAnonymous(length: bigint): HostMapping {
    // do_mmap: !len -> EINVAL
    if (length <= 0n) fail('mmap', 'EINVAL', 'do_mmap: zero length');
    return this.proc.mm.map(length, PROT_READ | PROT_WRITE, null, 0, false);
  }

  createVcpu(id: number): Vcpu {
    const op = 'KVM_CREATE_VCPU';
    const vm = this.kvm(op);
    // kvm_vm_ioctl_create_vcpu
    if (!Number.isInteger(id) || id < 0 || id >= KVM_MAX_VCPU_IDS) fail(op, 'EINVAL', `vcpu id ${id} out of range`);
    // kvm_vm_ioctl_create_vcpu: kvm_arch_vcpu_precreate and kvm_arch_vcpu_create run before the
    // duplicate-id check, which is made under kvm->lock just before the vCPU is published
    // (kvm_get_vcpu_by_id -> EEXIST). So TDX's tdx_vcpu_create (a TD not in TD_STATE_INITIALIZED ->
    // EIO, 6.16+) wins over EEXIST.
    vm.platform?.vcpuCreate(op);
    if (vm.vcpuIds.has(id)) fail(op, 'EEXIST', `vcpu ${id} already exists (kvm_get_vcpu_by_id)`);
    vm.vcpuIds.add(id);
    const file = new VcpuFile(this.proc.nextIno(), vm, id);
    vm.platform?.vcpuCreated(file);
    const fd = this.proc.fdt.install(file);
    return new ModelVcpu(this.proc, fd, id, this);
  }

  /** KVM_MEMORY_ENCRYPT_OP (confidential computing, issue 5: src/model/platforms/). */
  memoryEncryptOp(cmd: MemoryEncryptCommand): MemoryEncryptResult {
    return vmMemoryEncryptOp(this.kvm('KVM_MEMORY_ENCRYPT_OP'), cmd);
  }

  close(): void {
    this.proc.fdt.close(this.fd);
  }
}
