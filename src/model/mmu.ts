/**
 * KVM's secondary MMU for one VM: GFN -> page mappings (SPTEs), and the invalidation protocol that
 * keeps them from outliving the memory behind them (kvm_main.c kvm_mmu_invalidate_begin /
 * _range_add / _end, mmu_invalidate_retry_gfn). A fault snapshots mmu_invalidate_seq before it looks
 * up the page and installs the mapping only if no invalidation covering its GFN ran or is running.
 */
import type { Memslot, PrivateFile } from './memslots.js';

export type SpteSource = { kind: 'gmem'; file: PrivateFile; index: number } | { kind: 'hva'; hva: bigint };

export interface Spte {
  readonly page: Uint8Array;
  readonly writable: boolean;
  readonly private: boolean;
  readonly slot: Memslot;
  readonly source: SpteSource;
}

const INVALID = -1;

export class Mmu {
  readonly sptes = new Map<number, Spte>();
  /**
   * MMIO SPTEs (make_mmio_spte), GFN -> the memslots generation they were made in: GFNs with no
   * memslot that a shared guest access faulted on. Later accesses take the reserved-bit fault,
   * which kvm_mmu_page_fault never marks private ("emulated MMIO is shared-only"): while the
   * generation is current they are emulated as MMIO without looking at the attributes
   * (handle_mmio_page_fault); once it is stale (check_mmio_spte) they fault again as shared
   * accesses. The unmap path (tdp_mmu_zap_leafs) skips them, as they are not shadow-present, so
   * conversions and punches leave them; kvm_mmu_zap_all_fast and a real mapping replace them.
   */
  readonly mmioSptes = new Map<number, number>();
  /** mmu_invalidate_seq: bumped by every invalidate_end */
  seq = 0;
  /** mmu_invalidate_in_progress */
  inProgress = 0;
  /** mmu_invalidate_range_start/end (GFNs); start is INVALID while no range was added */
  rangeStart = INVALID;
  rangeEnd = INVALID;
  /** faults that found their snapshot stale and went back to the guest (RET_PF_RETRY) */
  retries = 0;
  /**
   * kvm->arch.mmu_valid_gen, counted instead of toggled: every kvm_mmu_zap_all_fast() bumps it, and a
   * vCPU root loaded under an older value is obsolete (is_obsolete_sp; for TDP MMU roots
   * kvm_tdp_mmu_invalidate_all_roots() sets role.invalid to the same effect).
   */
  validGen = 0;

  /**
   * Told of every completed invalidation (after mmu_invalidate_seq was bumped), for read-only views
   * such as the visualizer's timeline (snapshot.ts observeInvalidations). Never changes the model.
   */
  observer: ((seq: number, start: number, end: number) => void) | undefined;

  /** kvm_mmu_invalidate_begin */
  invalidateBegin(): void {
    this.inProgress++;
    if (this.inProgress === 1) {
      this.rangeStart = INVALID;
      this.rangeEnd = INVALID;
    }
  }

  /** kvm_mmu_invalidate_range_add: the first range, or the union with the ones still in progress. */
  rangeAdd(start: number, end: number): void {
    if (this.inProgress === 0) throw new Error('kvm_mmu_invalidate_range_add outside an invalidation (WARN_ON_ONCE)');
    if (this.rangeStart === INVALID) {
      this.rangeStart = start;
      this.rangeEnd = end;
    } else {
      this.rangeStart = Math.min(this.rangeStart, start);
      this.rangeEnd = Math.max(this.rangeEnd, end);
    }
  }

  /** kvm_mmu_invalidate_end: seq++ before in_progress-- so a racing fault sees one or the other. */
  invalidateEnd(): void {
    if (this.rangeStart === INVALID) throw new Error('kvm_mmu_invalidate_end without a range (WARN_ON_ONCE)');
    this.seq++;
    this.inProgress--;
    if (this.inProgress < 0) throw new Error('mmu_invalidate_in_progress underflow (KVM_BUG_ON)');
    this.observer?.(this.seq, this.rangeStart, this.rangeEnd);
  }

  /** kvm_mmu_unmap_gfn_range = range_add + zap of every SPTE in [start, end). */
  unmapGfnRange(start: number, end: number): void {
    this.rangeAdd(start, end);
    this.zap(start, end);
  }

  /** Drop the SPTEs of [start, end); cheap for huge ranges over few mappings. */
  zap(start: number, end: number, filter?: (s: Spte) => boolean): number {
    let n = 0;
    if (end - start <= this.sptes.size) {
      for (let g = start; g < end; g++) {
        const s = this.sptes.get(g);
        if (s && (!filter || filter(s)) && this.sptes.delete(g)) n++;
      }
    } else {
      for (const [g, s] of this.sptes) {
        if (g >= start && g < end && (!filter || filter(s))) {
          this.sptes.delete(g);
          n++;
        }
      }
    }
    return n;
  }

  /**
   * A deleted or moved slot loses its mappings (kvm_unmap_gfn_range on the slot, on VM types other
   * than default: see Memslots.flushShadowMemslot). Its leaves only: MMIO SPTEs are not
   * shadow-present and stay (seen in the lab on 6.12 and 7.3).
   */
  zapSlot(slot: Memslot): void {
    this.zap(slot.baseGfn, slot.baseGfn + slot.npages, (s) => s.slot === slot);
  }

  /**
   * kvm_mmu_zap_all_fast (__kvm_mmu_zap_all_fast_front_half/_back_half): a new mmu_valid_gen, every
   * root invalid and zapped, and KVM_REQ_MMU_FREE_OBSOLETE_ROOTS made to every vCPU (which only
   * vcpu_enter_guest, or a fixed kvm_mmu_reload, acts on: src/model/model-vcpu.ts).
   */
  zapAllFast(): void {
    this.sptes.clear();
    // new roots: the MMIO SPTEs go with the old ones
    this.mmioSptes.clear();
    this.validGen++;
  }

  /** mmu_invalidate_retry_gfn: is a fault that snapshotted `snapshot` stale for gfn? */
  isStale(gfn: number, snapshot: number): boolean {
    if (this.inProgress > 0 && gfn >= this.rangeStart && gfn < this.rangeEnd) return true;
    return this.seq !== snapshot;
  }

  /** Install a mapping unless the fault raced an invalidation; false means RET_PF_RETRY. */
  install(gfn: number, spte: Spte, snapshot: number): boolean {
    if (this.isStale(gfn, snapshot)) {
      this.retries++;
      return false;
    }
    this.sptes.set(gfn, spte);
    this.mmioSptes.delete(gfn);
    return true;
  }
}
