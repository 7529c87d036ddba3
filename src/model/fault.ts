/**
 * The guest page-fault path (arch/x86/kvm/mmu/mmu.c: kvm_mmu_faultin_pfn, __kvm_mmu_faultin_pfn,
 * kvm_mmu_faultin_pfn_gmem, kvm_prepare_memory_fault_exit), in its order: snapshot the invalidation
 * sequence, check private/shared against the attributes, find the slot, get the page from
 * guest_memfd or from the host mapping, and install it unless an invalidation raced.
 */
import { KVM_MEM_GUEST_MEMFD, KVM_MEM_READONLY, KVM_MEMORY_EXIT_FLAG_PRIVATE, PAGE_SIZE_N, type VmType } from '../uapi/constants.js';
import type { ErrnoName } from '../uapi/errno.js';
import type { MemAttributes } from './attributes.js';
import type { HostMm } from './host.js';
import type { Memslots, PrivateFile } from './memslots.js';
import type { Mmu, Spte } from './mmu.js';
import type { KernelProfile } from './profiles.js';

/**
 * `errno` is what KVM_RUN returns with the exit; it is absent where KVM_RUN returns 0 with the exit
 * filled in (the 2022 v7 design in src/designs/v7, where the exit was a plain userspace exit).
 */
export type FaultOutcome =
  | { kind: 'mapped'; spte: Spte }
  | { kind: 'mmio' }
  | { kind: 'memory_fault'; errno?: ErrnoName; flags: bigint }
  /** KVM_RUN fails with errno and no exit information (kvm_handle_error_pfn) */
  | { kind: 'error'; errno: ErrnoName }
  | { kind: 'retry' }
  | { kind: 'obsolete_root' };

/** What the faulting vCPU brings to the fault besides the address. */
export interface FaultContext {
  /**
   * The vCPU's MMU root is obsolete (only KVM_PRE_FAULT_MEMORY on 6.12 can fault on one, see
   * profile.preFaultObsoleteRootSpins): is_page_fault_stale() returns true for every attempt that
   * gets that far, so the fault ends as 'obsolete_root' there instead of being retried for ever.
   */
  readonly obsoleteRoot?: boolean;
}

/** What the fault path reads of struct kvm; the platform only prepares private folios (kvm_arch_gmem_prepare). */
export interface FaultVm {
  readonly type: VmType;
  readonly profile: KernelProfile;
  readonly mm: HostMm;
  readonly mmu: Mmu;
  readonly memslots: Memslots;
  readonly attributes: MemAttributes;
  readonly platform: { prepare(page: Uint8Array, gfn: number, file: PrivateFile, index: number): void } | undefined;
}

/** Retries a fault may take before the model calls it a livelock (a real vCPU would spin). */
const MAX_RETRIES = 64;

export function faultIn(vm: FaultVm, gfn: number, write: boolean, isPrivate: boolean, ctx: FaultContext = {}): FaultOutcome {
  for (let i = 0; i < MAX_RETRIES; i++) {
    const r = faultOnce(vm, gfn, write, isPrivate, ctx);
    if (r.kind !== 'retry') return r;
  }
  throw new Error(`fault on gfn 0x${gfn.toString(16)} retried ${MAX_RETRIES} times: an invalidation never ended`);
}

function memoryFault(isPrivate: boolean, errno: ErrnoName = 'EFAULT'): FaultOutcome {
  // kvm_prepare_memory_fault_exit: flags carry only PRIVATE in 6.8-6.18
  return { kind: 'memory_fault', errno, flags: isPrivate ? KVM_MEMORY_EXIT_FLAG_PRIVATE : 0n };
}

export function faultOnce(vm: FaultVm, gfn: number, write: boolean, isPrivate: boolean, ctx: FaultContext = {}): FaultOutcome {
  const mmu = vm.mmu;
  const snapshot = mmu.seq;
  // kvm_mmu_faultin_pfn: the access's privacy must match the attributes, else userspace converts
  if (isPrivate !== vm.attributes.isPrivate(gfn)) return memoryFault(isPrivate);
  const slot = vm.memslots.find(gfn);
  // kvm_handle_noslot_fault: a private access with no slot exits; a shared one is emulated MMIO,
  // and with MMIO caching (upstream's default wherever the host has spare physical-address bits)
  // leaves an MMIO SPTE behind. SNP and TDX guests reach MMIO through #VC/#VE, not through it.
  if (!slot) {
    if (isPrivate) return memoryFault(true);
    // With enable_mmio_caching (kvm.ko's default; the lab's 6.12 has it) kvm_handle_noslot_fault
    // returns RET_PF_CONTINUE so that an MMIO SPTE gets installed, which passes is_page_fault_stale()
    // first; only without caching (or for a gfn above kvm_mmu_max_gfn) is it RET_PF_EMULATE at once.
    if (ctx.obsoleteRoot) return { kind: 'obsolete_root' };
    if (vm.type === 'default' || vm.type === 'sw_protected') mmu.mmioSptes.set(gfn, vm.memslots.generation);
    return { kind: 'mmio' };
  }

  let page: Uint8Array;
  let source: Spte['source'];
  // the SPTE is writable unless the slot is read-only and, for host memory, unless hva_to_pfn
  // could not pin the page for write (fault->map_writable)
  let writable = !(slot.flags & KVM_MEM_READONLY);
  if (isPrivate || slot.gmemOnly) {
    // kvm_mmu_faultin_pfn_gmem
    if (!(slot.flags & KVM_MEM_GUEST_MEMFD) || !slot.gmem) return memoryFault(isPrivate);
    const file = slot.gmem.file;
    // kvm_gmem_get_pfn: the file was closed (slot->gmem.file NULL) -> EFAULT
    if (!file) return memoryFault(isPrivate);
    const index = slot.gmem.pgoff + (gfn - slot.baseGfn);
    const r = file.getPfn(slot, index);
    if ('errno' in r) return memoryFault(isPrivate, r.errno);
    page = r.page;
    // confidential computing: kvm_gmem_prepare_folio -> kvm_arch_gmem_prepare (SNP RMP, TDX S-EPT)
    if (isPrivate) vm.platform?.prepare(page, gfn, file, index);
    source = { kind: 'gmem', file, index };
  } else {
    // a shared write to a read-only slot: hva_to_pfn answers KVM_PFN_ERR_RO_FAULT, which
    // kvm_handle_error_pfn emulates (userspace sees an MMIO write). Only shared faults get here: a
    // private write to a read-only slot (which cannot have guest_memfd) is a memory-fault exit
    // above (found by the lab's diff, seed 101).
    if (write && slot.flags & KVM_MEM_READONLY) return { kind: 'mmio' };
    // __kvm_faultin_pfn -> hva_to_pfn: the host mapping at userspace_addr. A failure is
    // KVM_PFN_ERR_FAULT, which kvm_handle_error_pfn turns into a bare -EFAULT: no
    // KVM_EXIT_MEMORY_FAULT, whatever KVM_CAP_MEMORY_FAULT_INFO suggests (the lab's diff on 6.12
    // and 7.3; KERNEL-SPEC G2.6 said a memory-fault exit).
    const hva = slot.userspaceAddr + BigInt(gfn - slot.baseGfn) * PAGE_SIZE_N;
    const p = vm.mm.gup(hva, write);
    // emulated guest code (PVM): the emulator's access failed, so it completes as MMIO
    if (!p) return vm.profile.emulatedGuestAccess ? { kind: 'mmio' } : { kind: 'error', errno: 'EFAULT' };
    page = p;
    source = { kind: 'hva', hva };
    // hva_to_pfn: a write fault pinned with FOLL_WRITE (so it is writable, and a MAP_PRIVATE page
    // was copied); a read fault is writable only if the opportunistic FOLL_WRITE pin succeeds.
    // Without it a guest write through a read-only host mapping would reach the page (KVM_RUN
    // must fail with EFAULT), and one through MAP_PRIVATE would reach the page cache (found by the
    // kernel review of issue 14; KERNEL-SPEC G2.6).
    writable &&= write || vm.mm.writablePin(hva);
  }
  // is_page_fault_stale, under mmu_lock: a root that is obsolete (is_obsolete_sp) -> RET_PF_RETRY
  if (ctx.obsoleteRoot) return { kind: 'obsolete_root' };
  const spte: Spte = { page, writable, private: isPrivate, slot, source };
  return mmu.install(gfn, spte, snapshot) ? { kind: 'mapped', spte } : { kind: 'retry' };
}
