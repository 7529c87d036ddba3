/**
 * The part of Intel TDX the v7 review argued about, as the host sees it. Only what the hazards need:
 * which physical pages a TD owns (TDH.MEM.PAGE.ADD/AUG put them in the PAMT, TDH.MEM.PAGE.REMOVE
 * takes them out), what a non-TD access to such a page does, and the launch measurement (MRTD).
 *
 * Simplifications, each a choice of this model, not a claim about every TDX CPU:
 * - a host (non-TD KeyID) write to a TD-owned page is a machine check at once; on real parts the
 *   write poisons the line and the #MC comes when it is consumed (or at once, with the partial-write
 *   erratum). Either way the host process that did it is killed.
 * - a non-TD read of a TD-owned page returns zeros (TDX logical integrity: the TD-owner bit).
 * - the guest accepts every page it touches: a page AUGed after launch reads as zeros
 *   (TDG.MEM.PAGE.ACCEPT initializes it), so whatever the host left in it never reaches the TD.
 * - removing a page from the TD clears it (tdx_clear_page after TDH.MEM.PAGE.REMOVE).
 */
import { HostFault, KvmError } from '../../api.js';
import { Mmu, type Spte } from '../../model/mmu.js';
import type { KvmVm } from '../../model/vm.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../uapi/constants.js';

/** The physical pages TDX knows about, process-wide (one model host). */
export class TdxHost {
  /** page -> the TD that owns it (PAMT: PT_NDA) */
  readonly owner = new WeakMap<Uint8Array, KvmVm>();
  /** pages that entered a TD through TDH.MEM.PAGE.ADD (launch): their contents came from a source page */
  readonly added = new WeakSet<Uint8Array>();
  /** TD-owned pages a non-TD agent wrote: the next TD access consumes the poison */
  readonly poisoned = new WeakSet<Uint8Array>();

  isTdOwned(page: Uint8Array): boolean {
    return this.owner.has(page);
  }

  /** TDH.MEM.PAGE.REMOVE + tdx_clear_page: the page leaves the TD zeroed, integrity reset. */
  release(page: Uint8Array): void {
    if (!this.owner.has(page)) return;
    page.fill(0);
    this.owner.delete(page);
    this.added.delete(page);
    this.poisoned.delete(page);
  }
}

/** One TD's launch state: finalized or not, and what TDH.MR.EXTEND put into MRTD. */
export class TdState {
  /** TDH.MR.FINALIZE; the model finalizes at the first KVM_RUN */
  launched = false;
  /** gfn -> the page contents extended into the measurement */
  readonly measured = new Map<number, Uint8Array>();

  /** Does the launch measurement include `data` at `gpa`? */
  covers(gpa: bigint, data: Uint8Array): boolean {
    const m = this.measured.get(Number(gpa / PAGE_SIZE_N));
    const off = Number(gpa % PAGE_SIZE_N);
    if (!m || off + data.length > PAGE_SIZE) return false;
    return data.every((b, i) => m[off + i] === b);
  }
}

/**
 * The TD's secure EPT. Zapping a private SPTE removes the page from the TD (TDH.MEM.PAGE.REMOVE:
 * the contents are gone), and a mapping whose page was poisoned is not served: the next access
 * goes through the fault path, where the poison is consumed.
 */
export class TdxMmu extends Mmu {
  override readonly sptes: Map<number, Spte>;

  constructor(private readonly tdx: TdxHost) {
    super();
    const poisoned = tdx.poisoned;
    this.sptes = new (class extends Map<number, Spte> {
      override get(gfn: number): Spte | undefined {
        const s = super.get(gfn);
        return s?.private && poisoned.has(s.page) ? undefined : s;
      }
    })();
  }

  override zap(start: number, end: number, filter?: (s: Spte) => boolean): number {
    const removed: Uint8Array[] = [];
    const n = super.zap(start, end, (s) => {
      const go = !filter || filter(s);
      if (go && s.private) removed.push(s.page);
      return go;
    });
    for (const page of removed) this.tdx.release(page);
    return n;
  }
}

/**
 * A private mapping of `page` at `gfn` is about to be installed for `vm` (a TD or not). Returns the
 * page the guest really gets, and whether the mapping may be writable; throws the machine check a
 * TD gets for consuming a poisoned line.
 */
export function tdxMapPrivate(
  tdx: TdxHost,
  vm: KvmVm,
  td: TdState | undefined,
  page: Uint8Array,
  gfn: number,
  write: boolean,
  alloc: () => Uint8Array,
): { page: Uint8Array; writable: boolean } {
  const owner = tdx.owner.get(page);
  if (td) {
    if (tdx.poisoned.has(page)) {
      const gpa = BigInt(gfn) * PAGE_SIZE_N;
      throw new HostFault('MCE', gpa, gpa, 'the TD consumed a line poisoned by a non-TD write (TDX integrity check)');
    }
    if (owner && owner !== vm) throw new KvmError('KVM_RUN', 'EIO', 'TDH.MEM.PAGE.AUG: the page belongs to another TD');
    if (!owner) {
      // TDH.MEM.PAGE.AUG after launch, then the guest's TDG.MEM.PAGE.ACCEPT zeroes the page
      if (!tdx.added.has(page)) page.fill(0);
      tdx.owner.set(page, vm);
    }
    return { page, writable: true };
  }
  if (!owner) return { page, writable: true };
  // A VM without TDX (another technology) maps a page a TD owns: its reads see zeros, and its
  // first write poisons the TD's line. It gets a page of its own so that it keeps what it wrote.
  if (write) tdx.poisoned.add(page);
  return { page: alloc(), writable: write };
}
