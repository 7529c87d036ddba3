/**
 * KVM_CHECK_EXTENSION (kvm_vm_ioctl_check_extension_generic and x86 kvm_vm_ioctl_check_extension)
 * as each profile answers it, at system scope (kvm == NULL) or for one VM.
 */
import { CAP, GUEST_MEMFD_FLAG_INIT_SHARED, KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_USER_MEM_SLOTS, VM_TYPE } from '../uapi/constants.js';
import type { KernelProfile } from './profiles.js';
import type { KvmVm } from './vm.js';

export function checkExtension(profile: KernelProfile, cap: number, vm?: KvmVm): number {
  const live = profile.capsOverride?.[cap];
  if (live !== undefined && (vm === undefined || vm.type === 'default')) return live;
  const privateMem = vm === undefined || vm.hasPrivateMem;
  switch (cap) {
    case CAP.KVM_CAP_USER_MEMORY:
    case CAP.KVM_CAP_USER_MEMORY2:
    case CAP.KVM_CAP_MEMORY_FAULT_INFO:
      return 1;
    case CAP.KVM_CAP_NR_MEMSLOTS:
      return KVM_USER_MEM_SLOTS;
    case CAP.KVM_CAP_READONLY_MEM:
      return vm?.hasProtectedState ? 0 : 1;
    case CAP.KVM_CAP_X86_SMM:
      return profile.addressSpaces > 1 && !vm?.hasProtectedState ? 1 : 0;
    case CAP.KVM_CAP_MULTI_ADDRESS_SPACE:
      // kvm_vm_ioctl_check_extension_generic: kvm_arch_nr_memslot_as_ids(kvm) on a VM fd,
      // KVM_MAX_NR_ADDRESS_SPACES on /dev/kvm; a kernel without SMM has no such cap (0)
      if (profile.addressSpaces <= 1) return 0;
      return vm ? vm.memslots.nrAddressSpaces() : profile.addressSpaces;
    case CAP.KVM_CAP_EXIT_HYPERCALL:
      // KVM_EXIT_HYPERCALL_VALID_MASK: only KVM_HC_MAP_GPA_RANGE may be forwarded
      return 1 << KVM_HC_MAP_GPA_RANGE;
    case CAP.KVM_CAP_MEMORY_ATTRIBUTES:
      // kvm_supported_mem_attributes(kvm): PRIVATE for kvm == NULL or VMs with private memory
      if (!profile.memoryAttributes) return 0;
      return privateMem ? Number(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0;
    case CAP.KVM_CAP_GUEST_MEMFD:
      // #ifdef CONFIG_KVM_GUEST_MEMFD (CONFIG_KVM_PRIVATE_MEM before 6.18): else the default 0
      if (!profile.guestMemfd) return 0;
      // 6.18: 1 for every VM; 6.8: !kvm || kvm_arch_has_private_mem(kvm)
      return profile.gmemCapOnAnyVm || privateMem ? 1 : 0;
    case CAP.KVM_CAP_VM_TYPES:
      return profile.vmTypes.reduce((m, t) => m | (1 << VM_TYPE[t]), 0);
    case CAP.KVM_CAP_PRE_FAULT_MEMORY:
      return profile.preFault === 'tdp' ? 1 : 0;
    case CAP.KVM_CAP_GUEST_MEMFD_FLAGS: {
      // kvm_gmem_get_supported_flags: INIT_SHARED only where the VM has no private memory
      if (!profile.guestMemfd || profile.gmemFlags === 0n) return 0;
      const initShared = vm === undefined || !vm.hasPrivateMem;
      return Number(initShared ? profile.gmemFlags : profile.gmemFlags & ~GUEST_MEMFD_FLAG_INIT_SHARED);
    }
    default:
      return 0;
  }
}
