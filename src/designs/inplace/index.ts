/**
 * In-place conversion (and direct-map removal) as a design beside upstream guest_memfd. PENDING:
 * this is linux-next (next-20260923, the applied in-place series, v13) plus the v12 direct-map
 * removal series as posted; neither is in a mainline release, and the numbers in uapi.ts belong to
 * this profile only. The base rules are the model's `next` profile (kvm-x86 next); what the two
 * series change is here, each rule naming the kernel function it mirrors.
 *
 * What changes for userspace (IN-PLACE-CONVERSION.md §1.2-1.3):
 * - KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd (guest-memfd.ts InplaceFile.setAttributes);
 *   on a VM fd it is an unknown ioctl (kvm_vm_ioctl has no case: kvm_arch_vm_ioctl -> ENOTTY, an
 *   inference from the code, not a test).
 * - the attributes are per file: kvm_is_private_gfn() becomes kvm_gmem_is_private_gfn(), and the
 *   per-VM KVM_SET_MEMORY_ATTRIBUTES supports no attribute (kvm_supported_vm_mem_attributes() = 0):
 *   PRIVATE is EINVAL, 0 passes and changes nothing (inferred from kvm_range_has_vm_memory_attributes);
 * - INIT_SHARED is offered to private-memory VMs too (b5ed1ee2a7a0), so a CoCo VM's memory can
 *   start shared and be converted in place; every guest fault of a gmem slot is served from
 *   guest_memfd (KVM_MEMSLOT_GMEM_ONLY);
 * - capabilities: KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = PRIVATE where in-place is on and the VM
 *   supports private memory (/dev/kvm: always), KVM_CAP_MEMORY_ATTRIBUTES = 0;
 * - GUEST_MEMFD_FLAG_NO_DIRECT_MAP (v12): offered where kvm_arch_gmem_supports_no_direct_map(kvm)
 *   (x86: not TDX, not SNP; can_set_direct_map() is taken to be true), and always on /dev/kvm (so
 *   only the per-VM answer is authoritative).
 *
 * Combining the two series is this model's choice (v12 was written for a tree without in-place
 * conversion): folios leave the direct map on first host fault or first guest fault, whatever their
 * attribute, and come back only when freed (kvm_gmem_free_folio), as v12 does.
 */
import type { HostKernelAccess, Vm } from '../../api.js';
import type { MemoryAttributes2 } from '../../design-api.js';
import { MemAttributes } from '../../model/attributes.js';
import { checkExtension } from '../../model/caps.js';
import { fail } from '../../model/fail.js';
import type { GmemFile } from '../../model/guest-memfd.js';
import type { ModelProcess } from '../../model/process.js';
import { getProfile, type KernelProfile } from '../../model/profiles.js';
import { KvmVm } from '../../model/vm.js';
import { VmFile } from '../../model/vm-file.js';
import { CAP, GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SIZE_N, type VmType } from '../../uapi/constants.js';
import { GuestMemfdKvm, GuestMemfdVm, withTdx } from '../guest-memfd/index.js';
import { InplaceFile, InplaceInode } from './guest-memfd.js';
import { DEFAULT_CONFIG, GUEST_MEMFD_FLAG_NO_DIRECT_MAP, type InPlaceKernelConfig, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES, SERIES } from './uapi.js';

export { InplaceFile, InplaceInode } from './guest-memfd.js';
export * from './uapi.js';

/** The pending profile: linux-next with both series, on a host that also offers SNP and TDX VMs. */
export function inplaceProfile(base = 'next'): KernelProfile {
  const p = withTdx(getProfile(base));
  return {
    ...p,
    name: `${base}+inplace`,
    version: `next-20260923 (pending: ${SERIES.inPlace}; ${SERIES.noDirectMap})`,
    vmTypes: p.vmTypes.includes('snp') ? p.vmTypes : [...p.vmTypes, 'snp'],
  };
}

/** kvm_arch_gmem_supports_no_direct_map (v12 p8, x86): can_set_direct_map() && not TDX && not SNP. */
function supportsNoDirectMap(vm: KvmVm | undefined): boolean {
  return vm === undefined || (vm.type !== 'tdx' && vm.type !== 'snp');
}

/** kvm_gmem_get_supported_flags(kvm) with both series (applied b5ed1ee2a7a0; v12 p10). */
export function inplaceGmemFlags(config: InPlaceKernelConfig, vm: KvmVm | undefined): bigint {
  let f = GUEST_MEMFD_FLAG_MMAP;
  // INIT_SHARED: kvm == NULL, or in-place conversion on, or a VM without private memory
  if (vm === undefined || config.gmemInPlaceConversion || !vm.hasPrivateMem) f |= GUEST_MEMFD_FLAG_INIT_SHARED;
  if (supportsNoDirectMap(vm)) f |= GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
  return f;
}

/** kvm_vm_ioctl_check_extension_generic for what the series change; everything else as `next`. */
function inplaceCheckExtension(profile: KernelProfile, config: InPlaceKernelConfig, cap: number, vm?: KvmVm): number {
  switch (cap) {
    case KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES:
      // 0 if !gmem_in_place_conversion || !kvm_supports_private_mem(kvm) (true for kvm == NULL)
      if (!config.gmemInPlaceConversion || (vm !== undefined && !vm.hasPrivateMem)) return 0;
      return Number(KVM_MEMORY_ATTRIBUTE_PRIVATE);
    case CAP.KVM_CAP_MEMORY_ATTRIBUTES:
      // only with CONFIG_KVM_VM_MEMORY_ATTRIBUTES; kvm_supported_vm_mem_attributes() is 0 when in-place
      if (!config.vmMemoryAttributesConfig || config.gmemInPlaceConversion) return 0;
      return checkExtension(profile, cap, vm);
    case CAP.KVM_CAP_GUEST_MEMFD_FLAGS:
      return Number(inplaceGmemFlags(config, vm));
    default:
      return checkExtension(profile, cap, vm);
  }
}

/**
 * The VM's view of attributes: with in-place conversion kvm_is_private_gfn() is
 * kvm_gmem_is_private_gfn() (memslot -> gmem file -> index -> the inode's tree; no slot or no file:
 * shared), and the per-VM ioctl supports no attribute. With it off, the per-VM xarray as before.
 */
class InplaceAttributes extends MemAttributes {
  constructor(private readonly owner: InplaceKvmVm) {
    super(owner);
  }

  /** kvm_supported_vm_mem_attributes: 0 when gmem_in_place_conversion */
  override supported(): bigint {
    return this.owner.config.gmemInPlaceConversion ? 0n : super.supported();
  }

  override isPrivate(gfn: number): boolean {
    if (!this.owner.config.gmemInPlaceConversion) return super.isPrivate(gfn);
    const slot = this.owner.memslots.find(gfn);
    const file = slot?.gmem?.file;
    if (!slot || !(file instanceof InplaceFile)) return false;
    return file.inode.isPrivateIndex((slot.gmem?.pgoff ?? 0) + gfn - slot.baseGfn);
  }
}

/** struct kvm under the in-place design. */
export class InplaceKvmVm extends KvmVm {
  override readonly attributes: MemAttributes = new InplaceAttributes(this);

  constructor(
    type: VmType,
    profile: KernelProfile,
    mm: ModelProcess['mm'],
    readonly config: InPlaceKernelConfig,
  ) {
    super(type, profile, mm);
  }
}

/** The VM fd's ioctls under the in-place design. */
export class InplaceVm extends GuestMemfdVm {
  constructor(
    proc: ModelProcess,
    fd: number,
    type: VmType,
    private readonly config: InPlaceKernelConfig,
  ) {
    super(proc, fd, type);
  }

  protected override gmemSupportedFlags(vm: KvmVm): bigint {
    return inplaceGmemFlags(this.config, vm);
  }

  protected override gmemCreate(vm: KvmVm, size: bigint, flags: bigint): GmemFile {
    const inode = new InplaceInode(size, flags, this.proc.mm, vm.profile.gmemMempolicy, this.config);
    return new InplaceFile(this.proc.nextIno(), inode, vm);
  }

  override checkExtension(cap: number): number {
    const f = this.proc.fdt.get(this.fd, 'KVM_CHECK_EXTENSION');
    if (f.kind === 'kvm' && this.profile) return inplaceCheckExtension(this.profile, this.config, cap);
    const vm = this.kvm('KVM_CHECK_EXTENSION');
    return inplaceCheckExtension(vm.profile, this.config, cap, vm);
  }

  /** KVM_SET_MEMORY_ATTRIBUTES exists only with CONFIG_KVM_VM_MEMORY_ATTRIBUTES (else kvm_arch_vm_ioctl: ENOTTY). */
  override setMemoryAttributes(a: Parameters<GuestMemfdVm['setMemoryAttributes']>[0]): void {
    if (!this.config.vmMemoryAttributesConfig) {
      this.kvm('KVM_SET_MEMORY_ATTRIBUTES');
      fail('KVM_SET_MEMORY_ATTRIBUTES', 'ENOTTY', 'CONFIG_KVM_VM_MEMORY_ATTRIBUTES is off: no per-VM attributes');
    }
    super.setMemoryAttributes(a);
  }
}

/** /dev/kvm under the in-place design; `config` is the kernel's Kconfig and module parameter. */
export class InplaceKvm extends GuestMemfdKvm {
  constructor(
    readonly config: InPlaceKernelConfig = DEFAULT_CONFIG,
    base = 'next',
  ) {
    super(inplaceProfile(base));
  }

  protected override newVm(type: VmType): KvmVm {
    return new InplaceKvmVm(type, this.kernel, this.proc.mm, this.config);
  }

  protected override newVmHandle(fd: number, type: VmType): Vm {
    const h = new InplaceVm(this.proc, fd, type, this.config);
    h.profile = this.kernel;
    return h;
  }

  override checkExtension(cap: number): number {
    const f = this.proc.fdt.get(this.fd, 'KVM_CHECK_EXTENSION');
    if (f instanceof VmFile) return inplaceCheckExtension(f.vm.profile, this.config, cap, f.vm);
    super.checkExtension(0); // the fd checks of kvm_dev_ioctl
    return inplaceCheckExtension(this.kernel, this.config, cap);
  }

  /**
   * The ioctl on any fd: a guest_memfd answers it (kvm_gmem_ioctl); /dev/kvm and a vCPU fall to
   * kvm_arch_dev_ioctl / kvm_arch_vcpu_ioctl, whose x86 default is EINVAL; a VM fd has no such case
   * (kvm_arch_vm_ioctl default: ENOTTY, inferred); any other file has no ioctl: ENOTTY.
   */
  setMemoryAttributes2(fd: number, a: MemoryAttributes2): void {
    const f = this.proc.fdt.get(fd, 'KVM_SET_MEMORY_ATTRIBUTES2');
    if (f.kind === 'kvm' || f.kind === 'kvm-vcpu')
      fail('KVM_SET_MEMORY_ATTRIBUTES2', 'EINVAL', `fd ${fd} is ${f.kind}: kvm_arch_${f.kind === 'kvm' ? 'dev' : 'vcpu'}_ioctl default`);
    if (!(f instanceof InplaceFile)) fail('KVM_SET_MEMORY_ATTRIBUTES2', 'ENOTTY', `fd ${fd} is a ${f.kind}, not a guest_memfd`);
    f.setAttributes(a);
  }

  /**
   * A folio out of the direct map (NO_DIRECT_MAP) cannot be reached by the kernel's direct-map
   * accesses: a nofault accessor (copy_from_kernel_nofault: /proc/kcore, bpf_probe_read_kernel)
   * gets -EFAULT, a plain load would oops. The model answers EFAULT (its choice of the observable).
   */
  override get hostKernel(): HostKernelAccess {
    const base = super.hostKernel;
    const zapped = (fd: number, offset: bigint, op: string) => {
      const f = this.proc.fdt.get(fd, op);
      if (f instanceof InplaceFile && offset >= 0n && f.inode.zapped.has(Number(offset / PAGE_SIZE_N))) {
        fail(op, 'EFAULT', 'folio_zap_direct_map: the folio is not in the direct map (a nofault read gets -EFAULT; a plain load would oops)');
      }
    };
    return {
      directMapRead: (fd, offset, len) => {
        zapped(fd, offset, 'direct_map_read');
        return base.directMapRead(fd, offset, len);
      },
      directMapWrite: (fd, offset, data) => {
        zapped(fd, offset, 'direct_map_write');
        base.directMapWrite(fd, offset, data);
      },
    };
  }
}
