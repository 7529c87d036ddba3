/**
 * Per-GFN memory attributes (kvm_main.c: kvm_vm_ioctl_set_mem_attributes, kvm_vm_set_mem_attributes).
 * The kernel keeps them in an xarray, one entry per page; here they are a RangeMap, so converting a
 * 1 TiB range is one operation. Attributes belong to the VM, not to memslots: they can be set where
 * no slot exists and outlive slot deletion.
 */
import type { MemoryAttributes } from '../api.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SIZE_N, U64_MAX } from '../uapi/constants.js';
import { fail } from './fail.js';
import type { Memslots } from './memslots.js';
import type { Mmu } from './mmu.js';
import { RangeMap } from './range-map.js';

const OP = 'KVM_SET_MEMORY_ATTRIBUTES';

/** What an attribute change reads of struct kvm: which attributes it supports, the slots and the MMU to zap. */
export interface AttributesVm {
  readonly hasPrivateMem: boolean;
  readonly mmu: Mmu;
  readonly memslots: Memslots;
}

export class MemAttributes {
  readonly map = new RangeMap(0);

  constructor(private readonly vm: AttributesVm) {}

  /** kvm_supported_mem_attributes */
  supported(): bigint {
    return this.vm.hasPrivateMem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n;
  }

  /** kvm_mem_is_private */
  isPrivate(gfn: number): boolean {
    return (BigInt(this.map.get(gfn)) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0n;
  }

  set(a: MemoryAttributes): void {
    // kvm_vm_ioctl_set_mem_attributes, in order, each EINVAL
    if (a.flags !== 0n) fail(OP, 'EINVAL', 'flags must be 0');
    if (a.attributes & ~this.supported()) fail(OP, 'EINVAL', 'attribute not supported by this VM');
    if (a.size === 0n || a.address + a.size > U64_MAX) fail(OP, 'EINVAL', 'size is 0 or address+size wraps');
    if (a.address % PAGE_SIZE_N !== 0n || a.size % PAGE_SIZE_N !== 0n) fail(OP, 'EINVAL', 'address or size not page aligned');
    const start = Number(a.address / PAGE_SIZE_N);
    const end = Number((a.address + a.size) / PAGE_SIZE_N);
    this.apply(start, end, Number(a.attributes));
  }

  /**
   * kvm_vm_set_mem_attributes: nothing to do if the range already holds the value; otherwise, for
   * the memslots the range touches, begin an invalidation and zap (pre hook), store, then end it.
   * The RangeMap cannot fail part way, which is what the kernel's xa_reserve pass guarantees.
   */
  apply(start: number, end: number, value: number): void {
    if (this.map.allEqual(start, end, value)) return;
    const mmu = this.vm.mmu;
    // one pass over the slots, no intermediate arrays: this runs on every conversion
    let begun = false;
    for (const slot of this.vm.memslots.values()) {
      const s = Math.max(start, slot.baseGfn);
      const e = Math.min(end, slot.baseGfn + slot.npages);
      if (s >= e) continue;
      if (!begun) mmu.invalidateBegin();
      begun = true;
      mmu.unmapGfnRange(s, e);
    }
    this.map.set(start, end, value);
    if (begun) mmu.invalidateEnd();
  }
}
