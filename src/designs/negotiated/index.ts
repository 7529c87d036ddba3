/**
 * The variant the v7 thread proposed instead of a uAPI flag (David Hildenbrand on 05/14, 5 and 19
 * Aug 2022: "fail registering the notifier if anything is already mapped"): there is no
 * MFD_INACCESSIBLE; a plain memfd becomes inaccessible, unmovable and unreclaimable when KVM binds
 * it, which is exactly what v7's memfile_register_notifier already did with KVM_MEMFILE_FLAGS; and
 * the binding is refused while the file has any mapping.
 *
 * Decisions the proposal left open, taken here: the refusal is EBUSY (a mapping is in the way, as
 * for F_SEAL_WRITE's mapping_deny_writable); only mappings are checked, not the file's contents
 * or other bindings (that was the proposal); and the flags stay after the last binding goes, as
 * v7's memfile_unregister_notifier leaves them.
 */
import { fail } from '../../model/fail.js';
import type { KernelProfile } from '../../model/profiles.js';
import type { VmType } from '../../uapi/constants.js';
import type { MemfileBinding } from '../v7/binding.js';
import { MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_HUGETLB } from '../v7/constants.js';
import { V7Kvm } from '../v7/kvm.js';
import { V7Memslots } from '../v7/memslots.js';
import { V7_PROFILE } from '../v7/profile.js';
import { V7KvmVm } from '../v7/vm.js';

export const NEGOTIATED_PROFILE: KernelProfile = { ...V7_PROFILE, name: 'negotiated', version: `${V7_PROFILE.version}, bind-time negotiation` };

/** Binding a file that has mappings is refused: the check David Hildenbrand asked for. */
export class NegotiatedMemslots extends V7Memslots {
  protected override register(op: string, binding: MemfileBinding): void {
    // mapping_mapped(): any VMA of the file, shared or private, writable or not
    const mapped = binding.slot.vm.mm.mappings.some((m) => m.backing?.mappingKey === binding.file);
    if (mapped) fail(op, 'EBUSY', 'negotiated binding: the private fd is mapped (memfile_register_notifier refuses mapped files)');
    super.register(op, binding);
  }
}

export class NegotiatedKvmVm extends V7KvmVm {
  protected override createMemslots(): V7Memslots {
    return new NegotiatedMemslots(this);
  }
}

export class NegotiatedKvm extends V7Kvm {
  constructor(profile: KernelProfile = NEGOTIATED_PROFILE) {
    super(profile);
  }

  /** No MFD_INACCESSIBLE: memfd_create's flags are the ones of 5.19 (0x8 is an unknown flag, EINVAL). */
  protected override get mfdAllFlags(): number {
    return MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB;
  }

  protected override newVm(type: VmType): NegotiatedKvmVm {
    return new NegotiatedKvmVm(type, this.kernel, this.proc.mm);
  }
}
