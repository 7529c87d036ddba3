/**
 * The x86 page-fault path as v7 12/14 changed it (kvm_faultin_pfn -> kvm_faultin_pfn_private).
 * Differences from upstream's path (src/model/fault.ts), each from the patch:
 * - only a KVM_MEM_PRIVATE slot compares the access with the attributes; elsewhere, and where no
 *   slot exists, privacy is ignored (no slot: emulated MMIO, private or not);
 * - a mismatch is RET_PF_USER: KVM_EXIT_MEMORY_FAULT with KVM_RUN returning 0, flags bit 0;
 * - a private page comes from the memfile store's get_pfn (shmem allocates on demand); if get_pfn
 *   fails the fault is RET_PF_RETRY, forever;
 * - a shared page that cannot be had (hva_to_pfn fails) is kvm_handle_bad_page: KVM_RUN -EFAULT,
 *   with no exit information (KVM_CAP_MEMORY_FAULT_INFO came in 6.8).
 */
import { KvmError } from '../../api.js';
import type { FaultOutcome } from '../../model/fault.js';
import type { Spte } from '../../model/mmu.js';
import type { KvmVm } from '../../model/vm.js';
import { KVM_MEM_READONLY, PAGE_SIZE_N } from '../../uapi/constants.js';
import type { TdState, TdxHost } from '../host/tdx.js';
import { tdxMapPrivate } from '../host/tdx.js';
import { KVM_MEM_PRIVATE, KVM_MEMORY_EXIT_FLAG_PRIVATE_V7, V7_PATCH } from './constants.js';

const MAX_RETRIES = 64;

export interface V7FaultVm extends KvmVm {
  readonly td: TdState | undefined;
  readonly tdxHost: TdxHost;
}

export function faultInV7(vm: V7FaultVm, gfn: number, write: boolean, isPrivate: boolean): FaultOutcome {
  for (let i = 0; i < MAX_RETRIES; i++) {
    const r = faultOnceV7(vm, gfn, write, isPrivate);
    if (r.kind !== 'retry') return r;
  }
  throw new Error(`${V7_PATCH.fault}: fault on gfn 0x${gfn.toString(16)} retried ${MAX_RETRIES} times (RET_PF_RETRY forever: the vCPU livelocks)`);
}

function faultOnceV7(vm: V7FaultVm, gfn: number, write: boolean, isPrivate: boolean): FaultOutcome {
  const mmu = vm.mmu;
  const snapshot = mmu.seq;
  const slot = vm.memslots.find(gfn);
  // kvm_faultin_pfn: no memslot -> KVM_PFN_NOSLOT -> MMIO emulation, whatever the access's privacy
  if (!slot) return { kind: 'mmio' };
  if (slot.flags & KVM_MEM_PRIVATE) {
    // kvm_faultin_pfn_private: fault->is_private != kvm_mem_is_private() -> RET_PF_USER (KVM_RUN returns 0)
    if (isPrivate !== vm.attributes.isPrivate(gfn)) return { kind: 'memory_fault', flags: isPrivate ? KVM_MEMORY_EXIT_FLAG_PRIVATE_V7 : 0n };
    if (isPrivate) {
      if (write && slot.flags & KVM_MEM_READONLY) return { kind: 'mmio' };
      const binding = slot.gmem?.file;
      if (!binding || !slot.gmem) throw new Error('v7: a KVM_MEM_PRIVATE slot without its memfile binding');
      const index = slot.gmem.pgoff + (gfn - slot.baseGfn);
      const r = binding.getPfn(slot, index);
      // kvm_private_mem_get_pfn failed -> RET_PF_RETRY: the guest re-faults
      if ('errno' in r) return { kind: 'retry' };
      const got = tdxMapPrivate(vm.tdxHost, vm, vm.td, r.page, gfn, write, () => vm.mm.allocPage(0));
      return install(vm, gfn, snapshot, { page: got.page, writable: got.writable, private: true, slot, source: { kind: 'gmem', file: binding, index } });
    }
  }
  // a write to a read-only slot is emulated: userspace sees an MMIO write
  if (write && slot.flags & KVM_MEM_READONLY) return { kind: 'mmio' };
  // __gfn_to_pfn_memslot -> hva_to_pfn; failure -> kvm_handle_bad_page -> -EFAULT
  const hva = slot.userspaceAddr + BigInt(gfn - slot.baseGfn) * PAGE_SIZE_N;
  const page = vm.mm.gup(hva, write);
  if (!page) throw new KvmError('KVM_RUN', 'EFAULT', `kvm_handle_bad_page: no host page at hva 0x${hva.toString(16)} (gfn 0x${gfn.toString(16)})`);
  // the patch maps with fault->is_private as the access had it, even on a slot without KVM_MEM_PRIVATE
  return install(vm, gfn, snapshot, { page, writable: !(slot.flags & KVM_MEM_READONLY), private: isPrivate, slot, source: { kind: 'hva', hva } });
}

function install(vm: KvmVm, gfn: number, snapshot: number, spte: Spte): FaultOutcome {
  return vm.mmu.install(gfn, spte, snapshot) ? { kind: 'mapped', spte } : { kind: 'retry' };
}
