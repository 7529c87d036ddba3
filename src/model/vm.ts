/**
 * struct kvm and the VM file descriptor (virt/kvm/kvm_main.c kvm_create_vm, kvm_vm_ioctl,
 * kvm_put_kvm, kvm_destroy_vm). The VM lives while anything holds a reference: its fd, its vCPUs,
 * and every guest_memfd created on it (KERNEL-SPEC I1). Its MMU notifier hears about host mappings
 * that change under shared memslots.
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
import { MemAttributes } from './attributes.js';
import { checkExtension } from './caps.js';
import { type FaultContext, type FaultOutcome, faultIn } from './fault.js';
import { type FMode, fail, ModelFile, type StatFields } from './file.js';
import { GmemFile, GmemInode } from './guest-memfd.js';
import type { HostMm, MmuNotifier } from './host.js';
import { Memslots } from './memslots.js';
import { Mmu } from './mmu.js';
import { type CocoPlatform, createPlatform, vmMemoryEncryptOp } from './platforms/index.js';
import type { ModelProcess } from './process.js';
import type { KernelProfile } from './profiles.js';
import { ModelVcpu, VcpuFile } from './vcpu.js';

/** KVM_MAX_VCPU_IDS on x86 */
const KVM_MAX_VCPU_IDS = 4096;

/** struct kvm */
export class KvmVm implements MmuNotifier {
  private users = 0;
  destroyed = false;
  readonly memslots = new Memslots(this);
  readonly attributes = new MemAttributes(this);
  readonly mmu = new Mmu();
  /** kvm->arch.hypercall_exit_enabled */
  hypercallExitMask = 0n;
  readonly vcpuIds = new Set<number>();
  /** the anonymous mapping behind the reserved code slot, once a program was loaded */
  codeMapping: HostMapping | undefined;

  constructor(
    readonly type: VmType,
    readonly profile: KernelProfile,
    readonly mm: HostMm,
  ) {
    mm.register(this);
  }

  /** kvm_arch_has_private_mem */
  get hasPrivateMem(): boolean {
    return this.type === 'sw_protected' || this.type === 'snp' || this.type === 'tdx';
  }
  /** kvm->arch.has_protected_state: SEV-ES, SNP, TDX */
  get hasProtectedState(): boolean {
    return this.type === 'sev_es' || this.type === 'snp' || this.type === 'tdx';
  }
  /** kvm_arch_has_readonly_mem */
  get hasReadonlyMem(): boolean {
    return !this.hasProtectedState;
  }

  get(): void {
    this.users++;
  }

  /** kvm_put_kvm: the last reference destroys the VM and frees (unbinds) its memslots. */
  put(): void {
    if (--this.users > 0) return;
    this.destroyed = true;
    this.memslots.clear();
    this.mm.unregister(this);
  }

  get refCount(): number {
    return this.users;
  }

  // ---- Confidential computing (issue 5): SNP and TDX state, created with the VM (sev_vm_init /
  // tdx_vm_init); undefined for the other VM types. ----
  private cocoPlatform: CocoPlatform | undefined | null = null;
  get platform(): CocoPlatform | undefined {
    if (this.cocoPlatform === null) this.cocoPlatform = createPlatform(this);
    return this.cocoPlatform;
  }

  /** The guest page-fault path (fault.ts); src/designs/v7 overrides it with the 2022 fault path. */
  faultIn(gfn: number, write: boolean, isPrivate: boolean, ctx?: FaultContext): FaultOutcome {
    return faultIn(this, gfn, write, isPrivate, ctx);
  }

  /**
   * kvm_mmu_notifier_invalidate_range_start/end: host PTEs in [start, end) changed; zap the
   * GFNs of every slot whose userspace_addr range intersects it. (The SHARED attr filter selects
   * roots only on TDX; on other VMs every SPTE in the range goes.)
   */
  invalidateHvaRange(start: bigint, end: bigint): void {
    let begun = false;
    for (const s of this.memslots.all()) {
      const sStart = s.userspaceAddr;
      const sEnd = s.userspaceAddr + BigInt(s.npages) * PAGE_SIZE_N;
      const lo = start > sStart ? start : sStart;
      const hi = end < sEnd ? end : sEnd;
      if (lo >= hi) continue;
      if (!begun) {
        this.mmu.invalidateBegin();
        begun = true;
      }
      const g0 = s.baseGfn + Number((lo - sStart) / PAGE_SIZE_N);
      const g1 = s.baseGfn + Number((hi - sStart + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
      this.mmu.unmapGfnRange(g0, g1);
    }
    if (begun) this.mmu.invalidateEnd();
  }
}

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
    let valid = vm.profile.gmemFlags;
    if (vm.hasPrivateMem) valid &= ~GUEST_MEMFD_FLAG_INIT_SHARED;
    if (a.flags & ~valid) fail(op, 'EINVAL', `kvm_gmem_create: flags 0x${a.flags.toString(16)} not supported`);
    const size = BigInt.asIntN(64, a.size);
    if (size <= 0n || size % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', 'kvm_gmem_create: size must be positive and page aligned');
    // reserved[] is not checked (KERNEL-SPEC A4)
    const inode = new GmemInode(size, a.flags, this.proc.mm, vm.profile.gmemMempolicy);
    const file = new GmemFile(this.proc.nextIno(), inode, vm);
    const fd = this.proc.fdt.install(file);
    return this.proc.gmemHandle(fd);
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
    if (length <= 0n) fail('mmap', 'EINVAL', 'zero length');
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
