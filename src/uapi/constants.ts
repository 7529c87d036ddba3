/**
 * ABI constants from include/uapi/linux/kvm.h, asm/kvm_para.h and the VFS headers, declared once.
 * KERNEL-SPEC §1.3 pins every value; tests/uapi-layout.test.ts checks them.
 */
import { capNumber } from './registry.js';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_SIZE_N = BigInt(PAGE_SIZE);

export const KVM_API_VERSION = 12;

/**
 * Capability numbers (KVM_CHECK_EXTENSION).
 * The capabilities this project asks kernels about: mainline numbers only, from the registry
 * (src/uapi/registry.ts), so a probe that iterates CAP never asks a kernel about a pending
 * series' number (which a mainline kernel answers for another capability).
 */
export const CAP = {
  KVM_CAP_USER_MEMORY: capNumber('KVM_CAP_USER_MEMORY'),
  KVM_CAP_NR_MEMSLOTS: capNumber('KVM_CAP_NR_MEMSLOTS'),
  KVM_CAP_READONLY_MEM: capNumber('KVM_CAP_READONLY_MEM'),
  KVM_CAP_X86_SMM: capNumber('KVM_CAP_X86_SMM'),
  KVM_CAP_MULTI_ADDRESS_SPACE: capNumber('KVM_CAP_MULTI_ADDRESS_SPACE'),
  KVM_CAP_EXIT_HYPERCALL: capNumber('KVM_CAP_EXIT_HYPERCALL'),
  KVM_CAP_USER_MEMORY2: capNumber('KVM_CAP_USER_MEMORY2'),
  KVM_CAP_MEMORY_FAULT_INFO: capNumber('KVM_CAP_MEMORY_FAULT_INFO'),
  KVM_CAP_MEMORY_ATTRIBUTES: capNumber('KVM_CAP_MEMORY_ATTRIBUTES'),
  KVM_CAP_GUEST_MEMFD: capNumber('KVM_CAP_GUEST_MEMFD'),
  KVM_CAP_VM_TYPES: capNumber('KVM_CAP_VM_TYPES'),
  KVM_CAP_PRE_FAULT_MEMORY: capNumber('KVM_CAP_PRE_FAULT_MEMORY'),
  KVM_CAP_GUEST_MEMFD_FLAGS: capNumber('KVM_CAP_GUEST_MEMFD_FLAGS'),
} as const;
/** Pending-series capabilities: numbers for designs and the model's own variants, never probed. */
export const PENDING_CAP = {
  KVM_CAP_MEMORY_ATTRIBUTES2: capNumber('KVM_CAP_MEMORY_ATTRIBUTES2', 'any'),
} as const;
export type CapName = keyof typeof CAP;

/** x86 VM types (KVM_CREATE_VM argument); KVM_CAP_VM_TYPES is a bitmask of these. */
export const VM_TYPE = {
  default: 0,
  sw_protected: 1,
  sev: 2,
  sev_es: 3,
  snp: 4,
  tdx: 5,
} as const;
export type VmType = keyof typeof VM_TYPE;
export const VM_TYPE_NAMES = Object.keys(VM_TYPE) as VmType[];

/** KVM_CREATE_GUEST_MEMFD flags. */
export const GUEST_MEMFD_FLAG_MMAP = 1n << 0n;
export const GUEST_MEMFD_FLAG_INIT_SHARED = 1n << 1n;
export const GUEST_MEMFD_FLAGS = { mmap: GUEST_MEMFD_FLAG_MMAP, init_shared: GUEST_MEMFD_FLAG_INIT_SHARED } as const;

/** kvm_userspace_memory_region{,2}.flags. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEM_GUEST_MEMFD = 1 << 2;
export const MEM_FLAGS = {
  log_dirty_pages: KVM_MEM_LOG_DIRTY_PAGES,
  readonly: KVM_MEM_READONLY,
  guest_memfd: KVM_MEM_GUEST_MEMFD,
} as const;
/** kvm_vm_ioctl: flags the v1 ioctl accepts (KVM_SET_USER_MEMORY_REGION_V1_FLAGS). */
export const KVM_SET_USER_MEMORY_REGION_V1_FLAGS = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;

/** x86: KVM_USER_MEM_SLOTS = KVM_MEM_SLOTS_NUM (32767) - KVM_INTERNAL_MEM_SLOTS (3). */
export const KVM_USER_MEM_SLOTS = 32764;
export const KVM_ADDRESS_SPACE_NUM = 2;
/** KVM_MEM_MAX_NR_PAGES: (1UL << 31) - 1 */
export const KVM_MEM_MAX_NR_PAGES = (1n << 31n) - 1n;

export const KVM_MEMORY_ATTRIBUTE_PRIVATE = 1n << 3n;
export const MEMORY_ATTRIBUTES = { private: KVM_MEMORY_ATTRIBUTE_PRIVATE } as const;

/** kvm_run exit reasons. */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTERNAL_ERROR: 17,
  MEMORY_FAULT: 39,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1n << 3n;
export const KVM_EXIT_HYPERCALL_LONG_MODE = 1n << 0n;

/** Hypercalls (include/uapi/linux/kvm_para.h, arch/x86/include/uapi/asm/kvm_para.h). */
export const KVM_HC_MAP_GPA_RANGE = 12;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_4K = 0;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_2M = 1;
export const KVM_MAP_GPA_RANGE_PAGE_SZ_1G = 2;
export const KVM_MAP_GPA_RANGE_ENCRYPTED = 1 << 4;
export const KVM_MAP_GPA_RANGE_DECRYPTED = 0;
export const MAP_GPA_RANGE_ATTRS = { encrypted: KVM_MAP_GPA_RANGE_ENCRYPTED, decrypted: 0 } as const;

/** fallocate(2) modes (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_NO_HIDE_STALE = 0x04;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;
export const FALLOC_FL_UNSHARE_RANGE = 0x40;
export const FALLOC_MODES = {
  keep_size: FALLOC_FL_KEEP_SIZE,
  punch_hole: FALLOC_FL_PUNCH_HOLE,
  no_hide_stale: FALLOC_FL_NO_HIDE_STALE,
  collapse_range: FALLOC_FL_COLLAPSE_RANGE,
  zero_range: FALLOC_FL_ZERO_RANGE,
  insert_range: FALLOC_FL_INSERT_RANGE,
  unshare_range: FALLOC_FL_UNSHARE_RANGE,
} as const;

/** mmap(2) prot and flags. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const PROT = { read: PROT_READ, write: PROT_WRITE, exec: PROT_EXEC } as const;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_FLAGS = { shared: MAP_SHARED, private: MAP_PRIVATE, shared_validate: MAP_SHARED_VALIDATE } as const;

/** lseek whence. */
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

/** The gmem inode's st_mode in 6.8-6.18: a regular file, 0600 (anon_inode_make_secure_inode). */
export const GMEM_ST_MODE = 0o100600;

/** Limits the VFS applies to fallocate (MAX_LFS_FILESIZE on 64-bit). */
export const MAX_LFS_FILESIZE = (1n << 63n) - 1n;

/** Masks for interpreting u64 and signed loff_t at the uAPI boundary. */
export const U64_MAX = (1n << 64n) - 1n;
export const U32_MAX = (1n << 32n) - 1n;

/** madvise(2) advice values (asm-generic/mman-common.h). */
export const MADV = {
  normal: 0,
  dontneed: 4,
  remove: 9,
  hugepage: 14,
  nohugepage: 15,
  collapse: 25,
} as const;

/** Memory policy modes (uapi/linux/mempolicy.h). */
export const MPOL = {
  default: 0,
  preferred: 1,
  bind: 2,
  interleave: 3,
  local: 4,
  preferred_many: 5,
  weighted_interleave: 6,
} as const;
export const MPOL_MAX = 7;
/** get_mempolicy flag: the policy governing an address */
export const MPOL_F_ADDR = 2;
/** MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING, carried in the mode argument */
export const MPOL_MODE_FLAGS = (1 << 15) | (1 << 14) | (1 << 13);
