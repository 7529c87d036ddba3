/**
 * A private memslot's side of the memfile_notifier (v7 09/14 struct kvm_memory_slot gains
 * private_file, private_offset and a notifier; 13/14 registers it). It is what the model's fault
 * path and invariants see behind a slot (PrivateFile): pages come from the store's get_pfn, and
 * the store's invalidations zap the slot's GFNs.
 */
import type { ModelFile } from '../../model/file.js';
import type { Memslot, PrivateFile } from '../../model/memslots.js';
import type { ErrnoName } from '../../uapi/errno.js';
import { KVM_MEMFILE_FLAGS } from './constants.js';
import { MemfileNode, MemfileNotifier, memfileRegisterNotifier, memfileUnregisterNotifier } from './memfile-notifier.js';

const U64 = (1n << 64n) - 1n;

/** What the binding needs from its VM: kvm_zap_gfn_range. */
export interface ZapTarget {
  zapGfnRange(start: number, end: number): void;
}

export class MemfileBinding implements PrivateFile {
  readonly notifier: MemfileNotifier;
  private released = false;
  private node: MemfileNode = new MemfileNode();

  constructor(
    readonly slot: Memslot,
    readonly file: ModelFile,
    /** private_offset >> PAGE_SHIFT */
    readonly pgoff: number,
    private readonly vm: ZapTarget,
  ) {
    this.notifier = new MemfileNotifier({ invalidate: (start, end) => this.invalidate(start, end) });
  }

  /**
   * kvm_private_mem_register (13/14): memfile_register_notifier(private_file, KVM_MEMFILE_FLAGS).
   * KVM, not the file's creator, imposes USER_INACCESSIBLE | UNMOVABLE | UNRECLAIMABLE here.
   */
  register(op: string, flags = KVM_MEMFILE_FLAGS): void {
    memfileRegisterNotifier(op, this.file, flags, this.notifier);
    this.node = this.notifier.bs?.lookupMemfileNode(this.file) ?? this.node;
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** kvm_private_mem_get_pfn: slot->notifier.bs->get_pfn(private_file, index) */
  getPfn(_slot: Memslot, index: number): { page: Uint8Array } | { errno: ErrnoName } {
    const bs = this.notifier.bs;
    if (!bs) return { errno: 'EFAULT' };
    return bs.getPfn(this.file, index);
  }

  peek(index: number): Uint8Array | undefined {
    return this.notifier.bs?.peek(this.file, index);
  }

  bindingAt(index: number): Memslot | undefined {
    return index >= this.pgoff && index < this.pgoff + this.slot.npages ? this.slot : undefined;
  }

  /** kvm_free_memslot (13/14): kvm_private_mem_unregister, then fput(private_file). */
  unbind(slot: Memslot): void {
    if (this.released) return;
    memfileUnregisterNotifier(this.notifier, this.node);
    this.released = true;
    if (slot.gmem) slot.gmem.file = null;
    this.file.put();
  }

  /**
   * kvm_memfile_notifier_invalidate (13/14), with its unsigned arithmetic: file pages [start, end)
   * become the slot's GFNs, clipped to the slot only where the range reaches past its ends. A range
   * entirely below private_offset wraps; the computed end then lies below the start and nothing is
   * zapped, unless base_gfn is small enough for the wrap to land above it.
   */
  private invalidate(start: number, end: number): void {
    const s = this.slot;
    const base = BigInt(this.pgoff);
    const baseGfn = BigInt(s.baseGfn);
    let startGfn = baseGfn;
    let endGfn = baseGfn + BigInt(s.npages);
    if (BigInt(start) > base) startGfn = baseGfn + BigInt(start) - base;
    if (BigInt(end) < base + BigInt(s.npages)) endGfn = (baseGfn + ((BigInt(end) - base) & U64)) & U64;
    if (startGfn >= endGfn) return;
    this.vm.zapGfnRange(Number(startGfn), endGfn > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(endGfn));
  }
}
