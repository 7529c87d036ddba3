/**
 * Invariants the kernel's design guarantees, checked over the whole model state. Tests run them
 * after every operation: a violation means the model let KVM keep a mapping the kernel would have
 * zapped, or let the host reach memory it may not.
 */
import { PAGE_SIZE_N } from '../uapi/constants.js';
import type { ModelKvm } from './kvm.js';

export function checkInvariants(kvm: ModelKvm): string[] {
  const problems: string[] = [];
  const mm = kvm.proc.mm;
  for (const vm of kvm.vms) {
    if (vm.destroyed) {
      if (vm.mmu.sptes.size) problems.push(`destroyed VM still has ${vm.mmu.sptes.size} SPTEs`);
      continue;
    }
    const mmu = vm.mmu;
    if (mmu.inProgress !== 0) problems.push(`mmu_invalidate_in_progress is ${mmu.inProgress} between operations`);
    for (const [gfn, s] of mmu.sptes) {
      const where = `gfn 0x${gfn.toString(16)}`;
      const slot = vm.memslots.find(gfn);
      if (slot !== s.slot) {
        problems.push(`${where}: SPTE outlived its memslot`);
        continue;
      }
      if (s.private !== vm.attributes.isPrivate(gfn) && vm.type === 'sw_protected') {
        problems.push(`${where}: ${s.private ? 'private' : 'shared'} SPTE disagrees with the attributes`);
      }
      if (s.source.kind === 'gmem') {
        const { file, index } = s.source;
        if (file.isReleased) problems.push(`${where}: SPTE from a released guest_memfd`);
        else if (slot.gmem?.file !== file) problems.push(`${where}: SPTE from a guest_memfd no longer bound to its slot`);
        if (file.peek(index) !== s.page) problems.push(`${where}: SPTE maps a punched or replaced guest_memfd page (index ${index})`);
      } else {
        if (s.private) problems.push(`${where}: private SPTE backed by host memory`);
        const page = mm.peek(s.source.hva);
        if (page !== s.page) problems.push(`${where}: SPTE maps a host page no longer at hva 0x${s.source.hva.toString(16)}`);
      }
    }
    for (const slot of vm.memslots.all()) {
      const f = slot.gmem?.file;
      if (f && (f.isReleased || f.bindingAt(slot.gmem?.pgoff ?? -1) !== slot)) problems.push(`slot ${slot.id}: guest_memfd binding inconsistent`);
    }
  }
  // The host may only reach guest_memfd pages it may fault in (a host PTE maps only those): never
  // pages of a file without INIT_SHARED, nor (in-place conversion) a page whose index is private.
  for (const m of mm.mappings) {
    const b = m.backing;
    if (!b || b.mappingKey === b.file || !m.shared) continue;
    for (const i of m.mappedIndices(0, m.pages)) {
      const f = b.file as { inode?: { hostMayFault(index: number): boolean; size: bigint } };
      if (f.inode && !f.inode.hostMayFault(m.pgoff + i)) problems.push(`host mapping at 0x${m.addr.toString(16)} reaches a private guest_memfd page`);
      if (f.inode && BigInt(m.pgoff + i) * PAGE_SIZE_N >= f.inode.size) problems.push(`host mapping reaches past the guest_memfd end`);
    }
  }
  return problems;
}
