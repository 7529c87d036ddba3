/**
 * What a real kernel allocates for a step, estimated from the step alone, so that a user learns
 * before the lab (or a test host) falls over that a scenario asks a kernel for gigabytes the model
 * never spends: the model keeps attributes and page caches as ranges, the kernel does not.
 *
 * - KVM_SET_MEMORY_ATTRIBUTES: kvm_vm_set_mem_attributes() reserves, then stores, one xarray entry
 *   per page (xa_reserve / xa_store over [start, end)), unless the whole range already has the
 *   attributes. A 64-slot xa_node is 576 bytes on x86-64, so a dense range costs about 9 bytes a
 *   page of slab (the lab saw ~1.8 GiB of slab_unreclaimable before its OOM killer fired).
 *   Clearing attributes stores NULL, which frees nodes instead.
 * - fallocate without PUNCH_HOLE on a guest_memfd or memfd: kvm_gmem_allocate / shmem_fallocate
 *   allocate a folio for every page of the range.
 * - host writes fault in one page each; KVM_PRE_FAULT_MEMORY maps (and allocates) the range.
 */
import type { Step } from './schema.js';
import { int } from './values.js';

const PAGE = 4096n;
/** sizeof(struct xa_node) / XA_CHUNK_SIZE, rounded up: the slab cost of one attribute entry */
const XA_BYTES_PER_PAGE = 9n;

export interface KernelAllocation {
  /** bytes a real kernel would allocate */
  bytes: bigint;
  /** what for, and the kernel function that does it */
  what: string;
}

const pagesOf = (len: bigint) => (len > 0n ? (len + PAGE - 1n) / PAGE : 0n);

function num(v: unknown): bigint | undefined {
  try {
    return int(v as Parameters<typeof int>[0]);
  } catch {
    return undefined;
  }
}

/** The kernel memory a step would make a real kernel allocate (0n when it allocates little). */
export function kernelAllocation(step: Step): KernelAllocation {
  switch (step.op) {
    case 'set_memory_attributes': {
      const attrs = step.attributes;
      const setsSomething = Array.isArray(attrs) ? attrs.length > 0 : (num(attrs) ?? 0n) !== 0n;
      const size = num(step.size) ?? 0n;
      if (!setsSomething || size <= 0n) return { bytes: 0n, what: 'no attribute entries (clearing frees them)' };
      // kvm_vm_ioctl_set_mem_attributes refuses a range that wraps (EINVAL) before storing anything
      if (BigInt.asUintN(64, num(step.address) ?? 0n) + size > 1n << 64n) return { bytes: 0n, what: 'a wrapping range is refused' };
      const pages = pagesOf(size);
      return { bytes: pages * XA_BYTES_PER_PAGE, what: `xarray entries for ${pages} pages (kvm_vm_set_mem_attributes)` };
    }
    case 'fallocate': {
      const mode = step.mode;
      const punch = Array.isArray(mode) ? mode.includes('punch_hole') : ((num(mode) ?? 0n) & 2n) !== 0n;
      const len = num(step.length) ?? 0n;
      if (punch || len <= 0n) return { bytes: 0n, what: 'a punch frees pages' };
      return { bytes: pagesOf(len) * PAGE, what: `folios for ${pagesOf(len)} pages (kvm_gmem_allocate, shmem_fallocate)` };
    }
    case 'pre_fault_memory': {
      const size = num(step.size) ?? 0n;
      return { bytes: pagesOf(size) * PAGE, what: `pages mapped by KVM_PRE_FAULT_MEMORY over ${pagesOf(size)} pages (kvm_tdp_map_page)` };
    }
    default:
      return { bytes: 0n, what: '' };
  }
}

/** A human figure: 9.0 GiB, 512 MiB, 12 KiB. */
export function formatBytes(b: bigint): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = Number(b);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
