/**
 * What a VMM does when the guest converts memory (QEMU's kvm_convert_memory, the selftest's
 * handle_exit_hypercall): set the attributes first, then discard the side that is no longer used,
 * so that private and shared copies of a page never both hold data. Converting to private drops the
 * shared page (MADV_DONTNEED on the host memory); converting to shared punches the guest_memfd.
 */
import type { GuestMemfd, HostMapping, VcpuExit, Vm } from '../api.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  KVM_HC_MAP_GPA_RANGE,
  KVM_MAP_GPA_RANGE_ENCRYPTED,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
  MADV,
  PAGE_SIZE_N,
} from '../uapi/constants.js';

/** One guest RAM region: a GPA range backed by a guest_memfd (private) and host memory (shared). */
export interface RamRegion {
  gpa: bigint;
  size: bigint;
  gmem: GuestMemfd;
  gmemOffset: bigint;
  /** the memslot's userspace_addr mapping: shared memory */
  shared: HostMapping;
}

export interface Conversion {
  gpa: bigint;
  size: bigint;
  toPrivate: boolean;
  /** what started it */
  cause: 'hypercall' | 'memory_fault';
}

export class ConversionHandler {
  readonly log: Conversion[] = [];

  constructor(
    private readonly vm: Vm,
    private readonly regions: readonly RamRegion[],
  ) {}

  /** Set the attributes of [gpa, gpa+size), then discard the other side in every region it covers. */
  convert(gpa: bigint, size: bigint, toPrivate: boolean, cause: Conversion['cause']): void {
    this.vm.setMemoryAttributes({ address: gpa, size, attributes: toPrivate ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n, flags: 0n });
    for (const r of this.regions) {
      const lo = gpa > r.gpa ? gpa : r.gpa;
      // biome-ignore lint/complexity/useMathMinMax: bigint operands (Math.min takes numbers)
      const hi = gpa + size < r.gpa + r.size ? gpa + size : r.gpa + r.size;
      if (lo >= hi) continue;
      if (toPrivate) r.shared.madvise(lo - r.gpa, hi - lo, MADV.dontneed);
      else r.gmem.fallocate(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, r.gmemOffset + (lo - r.gpa), hi - lo);
    }
    this.log.push({ gpa, size, toPrivate, cause });
  }

  /**
   * Handle a conversion exit. Returns the hypercall return value to pass to the next KVM_RUN
   * (0 = success), or undefined if the exit is not a conversion.
   */
  handle(exit: VcpuExit): bigint | undefined {
    if (exit.reason === 'hypercall' && exit.hypercall && exit.hypercall.nr === BigInt(KVM_HC_MAP_GPA_RANGE)) {
      const [gpa = 0n, npages = 0n, attrs = 0n] = exit.hypercall.args;
      this.convert(gpa, npages * PAGE_SIZE_N, (attrs & BigInt(KVM_MAP_GPA_RANGE_ENCRYPTED)) !== 0n, 'hypercall');
      return 0n;
    }
    if (exit.reason === 'memory_fault' && exit.memoryFault && exit.errno === 'EFAULT') {
      const mf = exit.memoryFault;
      this.convert(mf.gpa, mf.size, (mf.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0n, 'memory_fault');
      return 0n;
    }
    return undefined;
  }
}

/**
 * KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fd (in-place conversion, pending in linux-next): the
 * VMM's way to the design's call, passed in by whoever built the VM (vmm/ sees only api.ts).
 */
export type SetGmemAttributes = (gmemFd: number, offset: bigint, size: bigint, attributes: bigint) => void;

/**
 * The in-place way (QEMU's in-place conversion patches, the selftests' gmem_set_private/shared): one
 * guest_memfd holds both sides, so a conversion is one attribute change on the file, with no
 * discard and no second copy: the page keeps its contents (software-protected VMs) and the host's
 * mapping of it is zapped by the kernel when it goes private. A pinned page makes the kernel answer
 * EAGAIN; this handler lets that error reach the caller, which must unpin and retry.
 */
export class InPlaceConversionHandler extends ConversionHandler {
  constructor(
    vm: Vm,
    private readonly ramRegions: readonly RamRegion[],
    private readonly setAttributes2: SetGmemAttributes,
  ) {
    super(vm, ramRegions);
  }

  override convert(gpa: bigint, size: bigint, toPrivate: boolean, cause: Conversion['cause']): void {
    for (const r of this.ramRegions) {
      const lo = gpa > r.gpa ? gpa : r.gpa;
      // biome-ignore lint/complexity/useMathMinMax: bigint operands (Math.min takes numbers)
      const hi = gpa + size < r.gpa + r.size ? gpa + size : r.gpa + r.size;
      if (lo >= hi) continue;
      this.setAttributes2(r.gmem.fd, r.gmemOffset + (lo - r.gpa), hi - lo, toPrivate ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0n);
    }
    this.log.push({ gpa, size, toPrivate, cause });
  }
}
