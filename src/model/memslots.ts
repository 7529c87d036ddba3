/**
 * Memslots (virt/kvm/kvm_main.c: kvm_vm_ioctl_set_memory_region, __kvm_set_memory_region,
 * check_memory_region_flags, kvm_set_memslot). Every check runs before anything changes, in the
 * kernel's order, so the first failing check decides the errno and a failure leaves no trace.
 */
import {
  KVM_ADDRESS_SPACE_NUM,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_MAX_NR_PAGES,
  KVM_MEM_READONLY,
  KVM_SET_USER_MEMORY_REGION_V1_FLAGS,
  KVM_USER_MEM_SLOTS,
  PAGE_SIZE_N,
  U64_MAX,
  type VmType,
} from '../uapi/constants.js';
import type { ErrnoName } from '../uapi/errno.js';
import { fail } from './fail.js';
import type { ModelFile } from './file.js';
import { type HostMm, TASK_SIZE_MAX } from './host.js';
import type { KernelProfile } from './profiles.js';

/**
 * What backs a slot's private side: a guest_memfd file here, or, in another design (src/designs/),
 * a file bound through another mechanism. The fault path and the invariants only need this much.
 */
export interface PrivateFile {
  readonly isReleased: boolean;
  /** __kvm_gmem_get_pfn: the page at file page `index`, or the errno */
  getPfn(slot: Memslot, index: number): { page: Uint8Array } | { errno: ErrnoName };
  /** the page now at `index`, without allocating (invariants, views) */
  peek(index: number): Uint8Array | undefined;
  bindingAt(index: number): Memslot | undefined;
  unbind(slot: Memslot): void;
  /** memory_failure() on the folio at `index`: the mapping's error_remove_folio, where it has one */
  errorRemoveFolio?(index: number): void;
}

/**
 * What the memslot code calls on a guest_memfd (kvm_host.h: kvm_gmem_bind, split into
 * kvm_gmem_prepare/commit_memory_region in 7.2) once fget found a file with kvm_gmem_fops.
 */
export interface GmemBinding extends PrivateFile {
  readonly inode: { supportsMmap(): boolean; servesAllFaults(): boolean };
  bind(slot: Memslot, offset: bigint, overlapErrno: ErrnoName): void;
  prepareBind(slot: Memslot, offset: bigint): { start: number; end: number };
  commitBind(slot: Memslot, range: { start: number; end: number }, overlapErrno: ErrnoName): void;
}

/** `file->f_op == &kvm_gmem_fops`: the file's type, not its class, says it is a guest_memfd. */
function isGmem(file: ModelFile): file is ModelFile & GmemBinding {
  return file.kind === 'guest_memfd';
}

/**
 * What the memslot code reads of struct kvm: the VM's type and kernel, and its MMU for the zaps a
 * deleted or moved slot needs. Named here, so that memslots sit below struct kvm (vm.ts) as
 * kvm_memslots sit inside it.
 */
export interface MemslotsVm {
  readonly type: VmType;
  readonly profile: KernelProfile;
  readonly mm: HostMm;
  /** kvm_arch_has_private_mem */
  readonly hasPrivateMem: boolean;
  /** kvm_arch_has_readonly_mem */
  readonly hasReadonlyMem: boolean;
  readonly mmu: { zapAllFast(): void; zapSlot(slot: Memslot): void };
}

export interface Memslot {
  readonly vm: MemslotsVm;
  readonly id: number;
  readonly asId: number;
  baseGfn: number;
  readonly npages: number;
  flags: number;
  readonly userspaceAddr: bigint;
  /** slot->gmem: file is NULL once the guest_memfd file was released (kvm_gmem_release) */
  gmem: { file: PrivateFile | null; pgoff: number } | null;
  /** KVM_MEMSLOT_GMEM_ONLY (6.18): every guest fault is served from guest_memfd */
  gmemOnly: boolean;
}

/** The arguments of KVM_SET_USER_MEMORY_REGION{,2}, as the kernel reads them (u32/u64). */
export interface RegionArgs {
  slot: number;
  flags: number;
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  guestMemfdOffset: bigint;
  guestMemfd: number;
}

export class Memslots {
  /** kvm_memslots.generation (only its changes matter to the model) */
  generation = 0;
  private readonly slots = new Map<number, Memslot>();

  constructor(protected readonly vm: MemslotsVm) {}

  private static key(asId: number, id: number): number {
    return asId * 0x10000 + id;
  }

  /** The slot containing gfn in address space 0 (gfn_to_memslot). */
  find(gfn: number): Memslot | undefined {
    for (const s of this.slots.values()) if (s.asId === 0 && gfn >= s.baseGfn && gfn < s.baseGfn + s.npages) return s;
    return undefined;
  }

  all(): Memslot[] {
    return [...this.slots.values()];
  }

  /** The slots without a copy: for paths that only read them (every conversion walks them). */
  values(): IterableIterator<Memslot> {
    return this.slots.values();
  }

  /**
   * KVM_SET_USER_MEMORY_REGION (v1 = true) or KVM_SET_USER_MEMORY_REGION2. `op` names the ioctl in
   * errors where another design reaches this path through its own ioctl (src/designs/v7: the v1
   * ioctl with the _ext struct).
   */
  set(m: RegionArgs, v1: boolean, fget: (fd: number) => ModelFile | undefined, op = v1 ? 'KVM_SET_USER_MEMORY_REGION' : 'KVM_SET_USER_MEMORY_REGION2'): void {
    const profile = this.vm.profile;
    // kvm_vm_ioctl: the v1 struct cannot carry guest_memfd, so only v1 flags pass
    if (v1 && m.flags & ~KVM_SET_USER_MEMORY_REGION_V1_FLAGS) fail(op, 'EINVAL', 'kvm_vm_ioctl: flag not valid for the v1 ioctl');
    // kvm_vm_ioctl_set_memory_region: user slot ids stop below the internal slots
    if ((m.slot & 0xffff) >= KVM_USER_MEM_SLOTS) fail(op, 'EINVAL', 'kvm_vm_ioctl_set_memory_region: slot id out of range');
    this.checkFlags(op, m.flags);

    const asId = m.slot >>> 16;
    const id = m.slot & 0xffff;
    const gmem = (m.flags & KVM_MEM_GUEST_MEMFD) !== 0;
    // __kvm_set_memory_region: general sanity checks
    if (m.memorySize % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', '__kvm_set_memory_region: memory_size not page aligned');
    if (m.guestPhysAddr % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', '__kvm_set_memory_region: guest_phys_addr not page aligned');
    if (m.userspaceAddr % PAGE_SIZE_N !== 0n || m.memorySize > TASK_SIZE_MAX || m.userspaceAddr > TASK_SIZE_MAX - m.memorySize) {
      fail(op, 'EINVAL', '__kvm_set_memory_region: userspace_addr unaligned or not a user address (access_ok)');
    }
    if (gmem && (m.guestMemfdOffset % PAGE_SIZE_N !== 0n || m.guestMemfdOffset + m.memorySize > U64_MAX)) {
      fail(op, 'EINVAL', '__kvm_set_memory_region: guest_memfd_offset unaligned or offset+size wraps');
    }
    if (asId >= this.nrAddressSpaces()) fail(op, 'EINVAL', '__kvm_set_memory_region: address space id out of range');
    if (m.guestPhysAddr + m.memorySize > U64_MAX) fail(op, 'EINVAL', '__kvm_set_memory_region: guest_phys_addr+memory_size wraps');
    if (m.memorySize / PAGE_SIZE_N > KVM_MEM_MAX_NR_PAGES) fail(op, 'EINVAL', '__kvm_set_memory_region: more than KVM_MEM_MAX_NR_PAGES pages');

    const old = this.slots.get(Memslots.key(asId, id));
    if (m.memorySize === 0n) {
      if (!old) fail(op, 'EINVAL', '__kvm_set_memory_region: deleting a slot that does not exist');
      this.delete(old);
      return;
    }
    const baseGfn = Number(m.guestPhysAddr / PAGE_SIZE_N);
    const npages = Number(m.memorySize / PAGE_SIZE_N);
    let change: 'create' | 'move' | 'flags';
    if (!old) {
      change = 'create';
    } else {
      // "Private memslots are immutable, they can only be deleted."
      if (gmem) fail(op, 'EINVAL', '__kvm_set_memory_region: guest_memfd memslots are immutable');
      const toggled = profile.rejectGmemFlagToggle ? KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD : KVM_MEM_READONLY;
      if (m.userspaceAddr !== old.userspaceAddr || npages !== old.npages || (m.flags ^ old.flags) & toggled) {
        fail(op, 'EINVAL', '__kvm_set_memory_region: userspace_addr, size or READONLY/GUEST_MEMFD of an existing slot changed');
      }
      if (baseGfn !== old.baseGfn) change = 'move';
      else if (m.flags !== old.flags) change = 'flags';
      else return;
    }
    if ((change === 'create' || change === 'move') && this.overlaps(asId, id, baseGfn, baseGfn + npages)) {
      fail(op, 'EEXIST', 'kvm_check_memslot_overlap: GPA range overlaps another memslot');
    }

    if (change === 'create') {
      const slot: Memslot = { vm: this.vm, id, asId, baseGfn, npages, flags: m.flags, userspaceAddr: m.userspaceAddr, gmem: null, gmemOnly: false };
      if (gmem && profile.gmemBindSplit) {
        // 7.2 (7ea987a90585; 6.12.118 through stable): kvm_gmem_prepare_memory_region() checks the
        // file and range, kvm_arch_prepare_memory_region() the largest frame, and only then
        // kvm_gmem_commit_memory_region() binds, answering EEXIST for a range bound already (found
        // by the lab's diff on 7.3.4: a slot past 2^40 over a bound range is EINVAL, not EEXIST)
        const { file, range } = this.prepareGmem(op, slot, m, fget);
        if (this.beyondMaxGfn(m.guestPhysAddr, m.memorySize)) {
          fail(op, 'EINVAL', `kvm_arch_prepare_memory_region: last gfn above kvm_mmu_max_gfn() (MAXPHYADDR ${profile.physAddrBits})`);
        }
        file.commitBind(slot, range, profile.bindOverlapErrno);
        slot.gmemOnly = profile.gmemOnlySlots && file.inode.servesAllFaults();
      } else {
        // __kvm_set_memory_region binds guest_memfd before kvm_set_memslot(), whose
        // kvm_prepare_memory_region() runs the arch check below; on failure it unbinds (out_unbind)
        if (gmem) this.bindPrivate(op, slot, m, fget);
        if (this.beyondMaxGfn(m.guestPhysAddr, m.memorySize)) {
          slot.gmem?.file?.unbind(slot);
          fail(op, 'EINVAL', `kvm_arch_prepare_memory_region: last gfn above kvm_mmu_max_gfn() (MAXPHYADDR ${profile.physAddrBits})`);
        }
      }
      this.slots.set(Memslots.key(asId, id), slot);
      this.newGeneration();
      return;
    }
    // Only a non-gmem slot gets here (gmem slots are immutable).
    const slot = old as Memslot;
    if (change === 'move') {
      if (this.beyondMaxGfn(m.guestPhysAddr, m.memorySize)) {
        fail(op, 'EINVAL', `kvm_arch_prepare_memory_region: last gfn above kvm_mmu_max_gfn() (MAXPHYADDR ${profile.physAddrBits})`);
      }
      // kvm_invalidate_memslot -> kvm_arch_flush_shadow_memslot on the old range
      this.flushShadowMemslot(slot);
      slot.baseGfn = baseGfn;
    }
    slot.flags = m.flags;
    this.newGeneration();
  }

  /**
   * kvm_swap_active_memslots: every change publishes a new memslots generation; MMIO SPTEs carry
   * the generation they were made in (check_mmio_spte), so all of them become stale at once.
   */
  private newGeneration(): void {
    this.generation++;
  }

  /**
   * kvm_arch_prepare_memory_region (arch/x86/kvm/x86.c; added in 2022 with kvm_mmu_max_gfn(),
   * so in every profile's release), for CREATE
   * and MOVE: `if ((new->base_gfn + new->npages - 1) > kvm_mmu_max_gfn()) return -EINVAL;` where
   * kvm_mmu_max_gfn() (arch/x86/kvm/mmu.h) is 2^(shadow_phys_bits - PAGE_SHIFT) - 1 with TDP, the
   * host's MAXPHYADDR (profile.physAddrBits), not the guest's. A failure here comes after the
   * guest_memfd bind, so a bad guest_memfd fd is EBADF even for a slot above the largest frame.
   */
  private beyondMaxGfn(gpa: bigint, size: bigint): boolean {
    const maxGfn = (1n << BigInt(this.vm.profile.physAddrBits - 12)) - 1n;
    return (gpa + size) / PAGE_SIZE_N - 1n > maxGfn;
  }

  /** kvm_gmem_prepare_memory_region: fget -> EBADF; not a guest_memfd -> EINVAL; the range checks. */
  protected prepareGmem(
    op: string,
    slot: Memslot,
    m: RegionArgs,
    fget: (fd: number) => ModelFile | undefined,
  ): { file: GmemBinding; range: { start: number; end: number } } {
    const file = fget(m.guestMemfd);
    if (!file) fail(op, 'EBADF', `kvm_gmem_prepare_memory_region: fd ${m.guestMemfd} is not open`);
    if (!isGmem(file)) fail(op, 'EINVAL', `kvm_gmem_prepare_memory_region: fd ${m.guestMemfd} is not a guest_memfd`);
    return { file, range: file.prepareBind(slot, m.guestMemfdOffset) };
  }

  /** kvm_gmem_bind: fget -> EBADF; not a guest_memfd -> EINVAL; then the file's own checks. */
  protected bindPrivate(op: string, slot: Memslot, m: RegionArgs, fget: (fd: number) => ModelFile | undefined): void {
    const file = fget(m.guestMemfd);
    if (!file) fail(op, 'EBADF', `kvm_gmem_bind: fd ${m.guestMemfd} is not open`);
    if (!isGmem(file)) fail(op, 'EINVAL', `kvm_gmem_bind: fd ${m.guestMemfd} is not a guest_memfd`);
    file.bind(slot, m.guestMemfdOffset, this.vm.profile.bindOverlapErrno);
    slot.gmemOnly = this.vm.profile.gmemOnlySlots && file.inode.servesAllFaults();
  }

  /** check_memory_region_flags */
  protected checkFlags(op: string, flags: number): void {
    const profile = this.vm.profile;
    let valid = KVM_MEM_LOG_DIRTY_PAGES;
    // 6.18: IS_ENABLED(CONFIG_KVM_GUEST_MEMFD), any VM; before: kvm_arch_has_private_mem(), which
    // is false without CONFIG_KVM_PRIVATE_MEM (E2)
    if (profile.guestMemfd && (profile.gmemSlotsOnAnyVm || this.vm.hasPrivateMem)) valid |= KVM_MEM_GUEST_MEMFD;
    // "Dirty logging private memory is not currently supported."
    if (flags & KVM_MEM_GUEST_MEMFD) valid &= ~KVM_MEM_LOG_DIRTY_PAGES;
    // GUEST_MEMFD is incompatible with read-only memslots (kvm_arch_has_readonly_mem)
    if (this.vm.hasReadonlyMem && !(flags & KVM_MEM_GUEST_MEMFD)) valid |= KVM_MEM_READONLY;
    if (flags & ~valid) fail(op, 'EINVAL', `check_memory_region_flags: flags 0x${flags.toString(16)} not valid here`);
  }

  /**
   * kvm_arch_nr_memslot_as_ids: "SMM is currently unsupported for guests with private memory", so
   * a VM with private memory (software-protected included; found by the lab's diff) has one
   * address space; other VMs have the SMM one too where the kernel has SMM.
   */
  nrAddressSpaces(): number {
    return this.vm.hasPrivateMem ? 1 : Math.min(KVM_ADDRESS_SPACE_NUM, this.vm.profile.addressSpaces);
  }

  private overlaps(asId: number, id: number, start: number, end: number): boolean {
    for (const s of this.slots.values()) {
      if (s.asId !== asId || s.id === id) continue;
      if (s.baseGfn < end && start < s.baseGfn + s.npages) return true;
    }
    return false;
  }

  /** KVM_MR_DELETE: zap the slot's mappings (kvm_invalidate_memslot), free it, unbind its guest_memfd range. */
  delete(slot: Memslot): void {
    this.flushShadowMemslot(slot);
    this.remove(slot);
  }

  private remove(slot: Memslot): void {
    this.slots.delete(Memslots.key(slot.asId, slot.id));
    this.newGeneration();
    slot.gmem?.file?.unbind(slot);
  }

  /**
   * kvm_arch_flush_shadow_memslot (x86, 6.12+), for a slot being deleted or moved: on a
   * KVM_X86_DEFAULT_VM with KVM_X86_QUIRK_SLOT_ZAP_ALL (enabled unless userspace disables it, which
   * the model does not offer) kvm_mmu_zap_all_fast(), which also makes every vCPU's root obsolete;
   * on other VM types only the slot's SPTEs (kvm_unmap_gfn_range). (6.8 always zapped all, but has
   * no KVM_PRE_FAULT_MEMORY, the one place an obsolete root shows.)
   */
  private flushShadowMemslot(slot: Memslot): void {
    if (this.vm.type === 'default') this.vm.mmu.zapAllFast();
    else this.vm.mmu.zapSlot(slot);
  }

  /** kvm_free_memslots at VM destruction (the SPTEs go with the VM's MMU; dropped here with their slots). */
  clear(): void {
    for (const s of [...this.slots.values()]) {
      this.vm.mmu.zapSlot(s);
      this.remove(s);
    }
  }
}
