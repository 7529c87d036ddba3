/**
 * struct kvm_vcpu and its fd (kvm_vcpu_fops): the architectural state a guest program runs on, and
 * the vCPU's MMU root. The ioctls on the fd (KVM_RUN, KVM_PRE_FAULT_MEMORY) are model-vcpu.ts.
 */
import type { GuestProgram } from '../api.js';
import type { KvmVm } from './vm.js';
import { VmRefFile } from './vm-file.js';

/** The vCPU's anon-inode file ("kvm-vcpu"): holds its VM, and the architectural state. */
export class VcpuFile extends VmRefFile {
  readonly kind = 'kvm-vcpu';
  program: GuestProgram | undefined;
  pc = 0;
  /** an exit that the next KVM_RUN completes (complete_userspace_io) */
  pending: 'hypercall' | 'mmio_read' | undefined;
  /** the guest's RAX after the last hypercall: what a guest would see as the return value */
  hypercallRet = 0n;
  /**
   * vcpu->arch.mmu->root: undefined while it is INVALID_PAGE (a new vCPU, or after
   * kvm_mmu_free_obsolete_roots), else the mmu_valid_gen it was loaded under (kvm_mmu_load); it is
   * obsolete once the VM's generation moved on (Mmu.zapAllFast).
   */
  rootGen: number | undefined;

  constructor(
    ino: bigint,
    vm: KvmVm,
    readonly id: number,
  ) {
    super(ino, vm);
  }
  // release (VmRefFile) only drops the VM reference, as kvm_vcpu_release does: the vCPU stays in
  // kvm->vcpu_array (and its id taken, kvm_get_vcpu_by_id) until kvm_destroy_vm -> kvm_destroy_vcpus.
}

/** is_obsolete_root: the vCPU holds a root from before the last kvm_mmu_zap_all_fast. */
export function rootObsolete(v: VcpuFile): boolean {
  return v.rootGen !== undefined && v.rootGen !== v.vm.mmu.validGen;
}

/** kvm_mmu_free_obsolete_roots: an obsolete root is freed, i.e. root.hpa = INVALID_PAGE. */
export function freeObsoleteRoots(v: VcpuFile): void {
  if (rootObsolete(v)) v.rootGen = undefined;
}

/**
 * kvm_mmu_reload (arch/x86/kvm/mmu.h): kvm_mmu_load() only if root.hpa is INVALID_PAGE. Since
 * 20a6cff3b283 it first handles KVM_REQ_MMU_FREE_OBSOLETE_ROOTS (kvm_mmu_free_obsolete_roots); 6.12's
 * does not, so a root made obsolete since it was loaded stays (profile.preFaultObsoleteRootSpins).
 */
export function mmuReload(v: VcpuFile): void {
  if (!v.vm.profile.preFaultObsoleteRootSpins) freeObsoleteRoots(v);
  v.rootGen ??= v.vm.mmu.validGen;
}
