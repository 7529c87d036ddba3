/**
 * The calls that only some model designs have (src/designs/): the 2022 v7 uAPI (memfd_create flags,
 * memfd seals, the _ext memslot struct, KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION, the TDX launch path)
 * and host events the review argued about (page migration and reclaim, the pages behind a GPA).
 * It sits beside api.ts so that the designs implement it and scenario/ runs it without either
 * importing the other. A backend whose objects lack a call answers the step with a scenario error
 * naming it: nothing here invents what a kernel would say.
 */
import type { HostMapping, UserspaceMemoryRegion } from './api.js';

/** kvm_userspace_memory_region_ext (v7 09/14): the v1 struct plus the private fd and offset. */
export interface UserspaceMemoryRegionExt extends UserspaceMemoryRegion {
  privateOffset: bigint;
  privateFd: number;
}
/** struct kvm_enc_region */
export interface EncRegion {
  addr: bigint;
  size: bigint;
}
export interface TdxInitMemRegion {
  source: HostMapping;
  sourceOffset: bigint;
  gpa: bigint;
  npages: bigint;
  measure: boolean;
}
/** What a design's Kvm may add. */
export interface DesignKvmOps {
  /** memfd_create(2) with flags (MFD_*) */
  memfdCreateFlags?(name: string, flags: number): number;
  /** fcntl(2): F_ADD_SEALS, F_GET_SEALS */
  fcntl?(fd: number, cmd: number, arg?: number): number;
  /** the kernel tries to migrate the page at `offset` of the file behind fd */
  mmMigrate?(fd: number, offset: bigint): void;
  /** the kernel tries to reclaim it: 'swapped', or why it stayed */
  mmReclaim?(fd: number, offset: bigint): string;
  /**
   * pin_user_pages(FOLL_LONGTERM | FOLL_WRITE) over part of a mapping (a device's DMA pin, the
   * selftests' gup_test PIN_LONGTERM): the device's view of the pinned pages; unmap() unpins.
   */
  pinUserPages?(map: HostMapping, offset: bigint, length: bigint): HostMapping;
  /** fork(2): the child's copy of a MAP_SHARED file mapping (it faults its pages in itself) */
  fork?(map: HostMapping): HostMapping;
  /**
   * KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fd (in-place conversion, pending): throws a
   * KvmError whose data has `error_offset` when the kernel copied the struct back.
   */
  setMemoryAttributes2?(fd: number, a: MemoryAttributes2): void;
}
/** struct kvm_memory_attributes2 (128 bytes; src/designs/inplace/uapi.ts has the layout) */
export interface MemoryAttributes2 {
  /** byte offset into the guest_memfd file (a union with `address`) */
  offset: bigint;
  size: bigint;
  attributes: bigint;
  flags: bigint;
  /** reserved[11] */
  reserved?: readonly bigint[];
}
/** What a design's Vm may add. */
export interface DesignVmOps {
  setUserMemoryRegionExt?(r: UserspaceMemoryRegionExt): void;
  memoryEncryptRegRegion?(r: EncRegion): void;
  memoryEncryptUnregRegion?(r: EncRegion): void;
  tdxInitMemRegion?(r: TdxInitMemRegion): void;
  tdxMeasurementCovers?(gpa: bigint, data: Uint8Array): boolean;
  /** pages allocated for one GPA: shared side plus private side */
  backingPages?(gpa: bigint): number;
}

/** The v7 flag values by their scenario names (the designs' kernel constants are checked against these in tests). */
export const DESIGN_FLAGS = {
  mfd: { cloexec: 0x1, allow_sealing: 0x2, hugetlb: 0x4, inaccessible: 0x8 },
  seals: { seal: 0x1, shrink: 0x2, grow: 0x4, write: 0x8, future_write: 0x10, auto_allocate: 0x20 },
  mem: { log_dirty_pages: 1 << 0, readonly: 1 << 1, private: 1 << 2 },
  fcntl: { add_seals: 1033, get_seals: 1034 },
} as const;
