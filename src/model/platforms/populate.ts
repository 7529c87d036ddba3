/**
 * kvm_gmem_populate (virt/kvm/guest_memfd.c, 6.11-6.18; KERNEL-SPEC G8): the only way SNP and TDX
 * put data into guest_memfd before launch. It walks [start_gfn, start_gfn + npages) page by page,
 * clipped to the end of start_gfn's memslot, and for each page:
 *   - the memslot must be a guest_memfd slot (kvm_slot_can_be_private), else EINVAL, and its file
 *     still open (kvm_gmem_get_file), else EFAULT;
 *   - __kvm_gmem_get_pfn: the binding must be this slot (EIO), the folio not poisoned (EHWPOISON);
 *   - a folio already prepared (populated, or handed to the guest by a private fault) is EEXIST;
 *   - the GFN must be PRIVATE (kvm_range_has_memory_attributes), else EINVAL;
 *   - the arch callback (sev_gmem_post_populate / tdx_gmem_post_populate) copies and measures it;
 *     on success the folio is marked prepared (up to date).
 * 7.0 (profile.populateGupFirst; GIT PULL "guest_memfd changes for 6.20", up to 2a62345b3052)
 * drops the preparation tracking, so the EEXIST step is gone (a second populate of a page reaches
 * the arch callback, which decides), and pins the source page before the folio and PRIVATE checks,
 * so an unmapped source is EFAULT even where the GFN is not PRIVATE.
 * It returns the number of pages done, or the error if the very first page failed
 * (`return ret && !i ? ret : i`); what the ioctl makes of that is the caller's (SNP: EIO, TDX: as is).
 */
import { KVM_MEM_GUEST_MEMFD, PAGE_SIZE_N } from '../../uapi/constants.js';
import type { ErrnoName } from '../../uapi/errno.js';
import type { Memslot, PrivateFile } from '../memslots.js';
import type { CocoVm } from './base.js';

export interface PopulatePage {
  readonly gfn: number;
  /** the guest_memfd folio (the model's physical page) */
  readonly page: Uint8Array;
  /** the source page at uaddr + i * 4096, when a source was given */
  readonly src: Uint8Array | undefined;
  readonly file: PrivateFile;
  readonly index: number;
  readonly slot: Memslot;
}

/** The arch callback: undefined on success, else the errno kvm_gmem_populate returns. */
export type PostPopulate = (p: PopulatePage) => ErrnoName | undefined;

export type PopulateResult = { count: number } | { errno: ErrnoName; why: string };

export function gmemPopulate(
  vm: CocoVm,
  prepared: WeakSet<Uint8Array>,
  startGfn: number,
  src: bigint | undefined,
  npages: number,
  post: PostPopulate,
): PopulateResult {
  const slot = vm.memslots.find(startGfn);
  if (!slot || !(slot.flags & KVM_MEM_GUEST_MEMFD) || !slot.gmem) return { errno: 'EINVAL', why: 'kvm_gmem_populate: no guest_memfd memslot at the GFN' };
  const file = slot.gmem.file;
  if (!file) return { errno: 'EFAULT', why: 'kvm_gmem_populate: the guest_memfd was closed (kvm_gmem_get_file)' };
  const n = Math.min(slot.npages - (startGfn - slot.baseGfn), npages);
  let err: { errno: ErrnoName; why: string } | undefined;
  let i = 0;
  // 7.0 (kvm-x86-gmem-6.20): the source page is pinned (get_user_pages_fast) before
  // __kvm_gmem_populate looks at the folio, and nothing tracks preparation any more
  const gupFirst = vm.profile.populateGupFirst;
  for (; i < n; i++) {
    const gfn = startGfn + i;
    const index = slot.gmem.pgoff + (gfn - slot.baseGfn);
    let srcPage: Uint8Array | undefined;
    if (gupFirst && src !== undefined) {
      const p = vm.mm.gup(src + BigInt(i) * PAGE_SIZE_N, false);
      if (!p) {
        err = { errno: 'EFAULT', why: `kvm_gmem_populate: get_user_pages_fast of the source at 0x${(src + BigInt(i) * PAGE_SIZE_N).toString(16)} failed` };
        break;
      }
      srcPage = p;
    }
    const pfn = file.getPfn(slot, index);
    if ('errno' in pfn) {
      err = { errno: pfn.errno, why: `__kvm_gmem_get_pfn: ${pfn.errno === 'EIO' ? 'binding does not match the memslot' : 'the folio is poisoned'}` };
      break;
    }
    const page = pfn.page;
    if (!gupFirst && prepared.has(page)) {
      err = { errno: 'EEXIST', why: `kvm_gmem_populate: GFN 0x${gfn.toString(16)} is already prepared (populated or faulted in)` };
      break;
    }
    if (!vm.attributes.isPrivate(gfn)) {
      err = { errno: 'EINVAL', why: `kvm_gmem_populate: GFN 0x${gfn.toString(16)} is not PRIVATE (KVM_SET_MEMORY_ATTRIBUTES first)` };
      break;
    }
    if (!gupFirst && src !== undefined) {
      // 6.11-6.19: the arch callback copy_from_user()s PAGE_SIZE bytes at src + i * PAGE_SIZE,
      // which need not be page aligned
      const p = copyFromUser(vm, src + BigInt(i) * PAGE_SIZE_N);
      if (!p) {
        err = { errno: 'EFAULT', why: `kvm_gmem_populate: source page at 0x${(src + BigInt(i) * PAGE_SIZE_N).toString(16)} is not mapped` };
        break;
      }
      srcPage = p;
    }
    const e = post({ gfn, page, src: srcPage, file, index, slot });
    if (e) {
      err = { errno: e, why: `post-populate callback failed at GFN 0x${gfn.toString(16)}` };
      break;
    }
    prepared.add(page);
  }
  return err && i === 0 ? err : { count: i };
}

/** copy_from_user of one page's worth of bytes at `uaddr` (any alignment), or undefined on a fault. */
function copyFromUser(vm: CocoVm, uaddr: bigint): Uint8Array | undefined {
  const off = Number(uaddr % PAGE_SIZE_N);
  const first = vm.mm.gup(uaddr - BigInt(off), false);
  if (!first || off === 0) return first ?? undefined;
  const second = vm.mm.gup(uaddr - BigInt(off) + PAGE_SIZE_N, false);
  if (!second) return undefined;
  const out = new Uint8Array(Number(PAGE_SIZE_N));
  out.set(first.subarray(off), 0);
  out.set(second.subarray(0, off), Number(PAGE_SIZE_N) - off);
  return out;
}
