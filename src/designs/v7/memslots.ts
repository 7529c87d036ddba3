/**
 * KVM_SET_USER_MEMORY_REGION as v7 left it (09/14, 13/14). The model's memslot code does the
 * generic checks (the private_offset checks are the guest_memfd_offset ones: same bit, same rule);
 * v7 changes which flags are valid and what binding the private side means.
 */
import { fail } from '../../model/fail.js';
import type { ModelFile } from '../../model/file.js';
import { type Memslot, Memslots, type RegionArgs } from '../../model/memslots.js';
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, PAGE_SIZE_N } from '../../uapi/constants.js';
import { MemfileBinding, type ZapTarget } from './binding.js';
import { KVM_MEM_PRIVATE, V7_PATCH } from './constants.js';

/** What these memslots need from their VM beyond struct kvm. */
export interface V7SlotOwner extends ZapTarget {
  /** kvm_arch_private_mem_supported(kvm) */
  readonly privateMemSupported: boolean;
}

export class V7Memslots extends Memslots {
  constructor(private readonly owner: V7SlotOwner & ConstructorParameters<typeof Memslots>[0]) {
    super(owner);
  }

  /**
   * check_memory_region_flags(kvm, mem) (13/14): KVM_MEM_PRIVATE only where the arch supports
   * private memory; READONLY on every x86 VM (5.19 has no protected-state VMs); and, unlike
   * upstream, no rule against dirty logging or read-only on a private slot.
   */
  protected override checkFlags(op: string, flags: number): void {
    let valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;
    if (this.owner.privateMemSupported) valid |= KVM_MEM_PRIVATE;
    if (flags & ~valid) fail(op, 'EINVAL', `${V7_PATCH.enable}: check_memory_region_flags: flags 0x${flags.toString(16)} not valid here`);
  }

  /**
   * __kvm_set_memory_region (13/14): `new->private_file = fget(mem->private_fd)`, NULL -> -EINVAL
   * (not EBADF); then kvm_prepare_memory_region registers the notifier, whose errors propagate
   * (-EOPNOTSUPP: not a shmem file). The file's size is never looked at: a slot may reach past it.
   * The slot keeps its file reference until it is deleted.
   */
  protected override bindPrivate(op: string, slot: Memslot, m: RegionArgs, fget: (fd: number) => ModelFile | undefined): void {
    const file = m.guestMemfd <= 0x7fffffff ? fget(m.guestMemfd) : undefined;
    if (!file) fail(op, 'EINVAL', `${V7_PATCH.enable}: fget(private_fd ${m.guestMemfd}) failed`);
    file.get();
    const binding = new MemfileBinding(slot, file, Number(m.guestMemfdOffset / PAGE_SIZE_N), this.owner);
    try {
      this.register(op, binding);
    } catch (e) {
      file.put();
      throw e;
    }
    slot.gmem = { file: binding, pgoff: binding.pgoff };
  }

  /** kvm_private_mem_register; the negotiated design checks the file first. */
  protected register(op: string, binding: MemfileBinding): void {
    binding.register(op);
  }
}
