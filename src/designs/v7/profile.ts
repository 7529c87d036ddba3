/**
 * The kernel the v7 series applied to (kvm/queue b9b71f43683a, 5.19-rc) as a model profile, and
 * what its KVM_CHECK_EXTENSION answered. v7 added no capability of its own (Fuad Tabba asked for one
 * so that pKVM/kvmtool could probe; KVM_CAP_GUEST_MEMFD came with guest_memfd).
 */
import { getProfile, type KernelProfile } from '../../model/profiles.js';
import { CAP, KVM_HC_MAP_GPA_RANGE, KVM_USER_MEM_SLOTS } from '../../uapi/constants.js';

/**
 * VM types: 5.19's x86 KVM_CREATE_VM takes only type 0; kvm_arch_private_mem_supported() is false
 * on kvm/queue and true for TDs in the privmem-v7-tdx tree. The model accepts 'tdx' for the TD, and
 * 'sw_protected' for a VM on which the arch hook says yes without hardware behind it (what the
 * series' selftests needed, and what upstream later named KVM_X86_SW_PROTECTED_VM).
 */
export const V7_PROFILE: KernelProfile = {
  ...getProfile('6.8'),
  name: 'v7',
  version: '5.19-rc (kvm/queue b9b71f43683a) + privmem-v7',
  vmTypes: ['default', 'sw_protected', 'tdx'],
  gmemFlags: 0n,
  gmemSlotsOnAnyVm: false,
  gmemCapOnAnyVm: false,
  rejectGmemFlagToggle: false,
  // no KVM_SET_MEMORY_ATTRIBUTES (v10), no KVM_PRE_FAULT_MEMORY (6.11)
  memoryAttributes: false,
  preFault: 'absent',
  gmemOnlySlots: false,
  gmemMempolicy: false,
};

/** kvm_vm_ioctl_check_extension_generic + x86 as of 5.19, for the capabilities guestmem knows. */
export function v7CheckExtension(cap: number): number {
  switch (cap) {
    case CAP.KVM_CAP_USER_MEMORY:
    case CAP.KVM_CAP_READONLY_MEM:
      return 1;
    case CAP.KVM_CAP_NR_MEMSLOTS:
      return KVM_USER_MEM_SLOTS;
    case CAP.KVM_CAP_EXIT_HYPERCALL:
      return 1 << KVM_HC_MAP_GPA_RANGE;
    default:
      // USER_MEMORY2, MEMORY_FAULT_INFO, MEMORY_ATTRIBUTES, GUEST_MEMFD, VM_TYPES, ... did not exist
      return 0;
  }
}
