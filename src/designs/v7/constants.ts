/**
 * The v7 uAPI ("KVM: mm: fd-based approach for supporting KVM guest private memory", Chao Peng,
 * 6 Jul 2022, <20220706082016.2603916-1-chao.p.peng@linux.intel.com>), declared once. Each value
 * names the patch that added it; layouts and ioctl numbers are computed like src/uapi's.
 */
import { defineLayout } from '../../uapi/layout.js';

// include/uapi/linux/memfd.h
export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
/** v7 05/14 mm/memfd: Introduce MFD_INACCESSIBLE flag */
export const MFD_INACCESSIBLE = 0x0008;
/** MFD_HUGE_MASK << MFD_HUGE_SHIFT: the huge page size bits allowed with MFD_HUGETLB */
export const MFD_HUGE_BITS = 0x3f << 26;
export const MFD_FLAGS = { cloexec: MFD_CLOEXEC, allow_sealing: MFD_ALLOW_SEALING, hugetlb: MFD_HUGETLB, inaccessible: MFD_INACCESSIBLE } as const;
/** memfd_create: MFD_NAME_MAX_LEN = NAME_MAX - strlen("memfd:") */
export const MFD_NAME_MAX_LEN = 255 - 6;

// include/uapi/linux/fcntl.h
export const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;
/** v7 01/14 mm: Add F_SEAL_AUTO_ALLOCATE seal to memfd (Suggested-by: Sean Christopherson) */
export const F_SEAL_AUTO_ALLOCATE = 0x0020;
export const SEALS = {
  seal: F_SEAL_SEAL,
  shrink: F_SEAL_SHRINK,
  grow: F_SEAL_GROW,
  write: F_SEAL_WRITE,
  future_write: F_SEAL_FUTURE_WRITE,
  auto_allocate: F_SEAL_AUTO_ALLOCATE,
} as const;
/** mm/memfd.c F_ALL_SEALS after 01/14 */
export const F_ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_AUTO_ALLOCATE;

// include/linux/memfile_notifier.h (v7 03/14 mm: Introduce memfile_notifier): kernel-internal
export const MEMFILE_F_USER_INACCESSIBLE = 1 << 0;
export const MEMFILE_F_UNMOVABLE = 1 << 1;
export const MEMFILE_F_UNRECLAIMABLE = 1 << 2;
export const MEMFILE_F_ALLOWED_MASK = MEMFILE_F_USER_INACCESSIBLE | MEMFILE_F_UNMOVABLE | MEMFILE_F_UNRECLAIMABLE;
/** v7 13/14 KVM: Enable and expose KVM_MEM_PRIVATE: what KVM registers every private memslot with */
export const KVM_MEMFILE_FLAGS = MEMFILE_F_USER_INACCESSIBLE | MEMFILE_F_UNMOVABLE | MEMFILE_F_UNRECLAIMABLE;

// include/uapi/linux/kvm.h
/** v7 09/14 KVM: Extend the memslot to support fd-based private memory (bit 2, like KVM_MEM_GUEST_MEMFD later) */
export const KVM_MEM_PRIVATE = 1 << 2;
export const V7_MEM_FLAGS = { log_dirty_pages: 1 << 0, readonly: 1 << 1, private: KVM_MEM_PRIVATE } as const;
/** v7 10/14 KVM: Add KVM_EXIT_MEMORY_FAULT exit (KVM_EXIT_NOTIFY was 36) */
export const KVM_EXIT_MEMORY_FAULT_V7 = 37;
/** v7 10/14: `#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1 << 0)` in a __u32 flags (upstream: 1ULL << 3) */
export const KVM_MEMORY_EXIT_FLAG_PRIVATE_V7 = 1n << 0n;

/** v7 09/14: the v1 struct followed by the private fd; byte-for-byte upstream's kvm_userspace_memory_region2 */
export const kvm_userspace_memory_region_ext = defineLayout('kvm_userspace_memory_region_ext', 160, {
  slot: { type: 'u32', offset: 0 },
  flags: { type: 'u32', offset: 4 },
  guest_phys_addr: { type: 'u64', offset: 8 },
  memory_size: { type: 'u64', offset: 16 },
  userspace_addr: { type: 'u64', offset: 24 },
  private_offset: { type: 'u64', offset: 32 },
  private_fd: { type: 'u32', offset: 40 },
  pad1: { type: 'u32', offset: 44 },
  pad2: { type: 'u64', offset: 48, count: 14 },
});

/** struct kvm_enc_region (SEV's, reused by v7 11/14 with GPA semantics) */
export const kvm_enc_region = defineLayout('kvm_enc_region', 16, {
  addr: { type: 'u64', offset: 0 },
  size: { type: 'u64', offset: 8 },
});

const ioc = (dir: number, nr: number, size: number) => dir * 2 ** 30 + ((size & 0x3fff) << 16) + (0xae << 8) + nr;
/** v7 09/14: the same number as ever, _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region); the kernel reads flags first */
export const KVM_SET_USER_MEMORY_REGION = ioc(1, 0x46, 32);
/** v7 11/14: SEV's _IOR(KVMIO, 0xbb, struct kvm_enc_region), GPA semantics when private memory is supported */
export const KVM_MEMORY_ENCRYPT_REG_REGION = ioc(2, 0xbb, kvm_enc_region.size);
export const KVM_MEMORY_ENCRYPT_UNREG_REGION = ioc(2, 0xbc, kvm_enc_region.size);

/** Patches of the series, for citations in errors and reports. */
export const V7_PATCH = {
  seal: 'v7 01/14 mm: Add F_SEAL_AUTO_ALLOCATE seal to memfd',
  sealTest: 'v7 02/14 selftests/memfd: Add tests for F_SEAL_AUTO_ALLOCATE',
  notifier: 'v7 03/14 mm: Introduce memfile_notifier',
  shmem: 'v7 04/14 mm/shmem: Support memfile_notifier',
  inaccessible: 'v7 05/14 mm/memfd: Introduce MFD_INACCESSIBLE flag',
  memslot: 'v7 09/14 KVM: Extend the memslot to support fd-based private memory',
  exit: 'v7 10/14 KVM: Add KVM_EXIT_MEMORY_FAULT exit',
  regions: 'v7 11/14 KVM: Register/unregister the guest private memory regions',
  fault: 'v7 12/14 KVM: Handle page fault for private memory',
  enable: 'v7 13/14 KVM: Enable and expose KVM_MEM_PRIVATE',
  manpage: 'v7 14/14 memfd_create.2: Describe MFD_INACCESSIBLE flag',
} as const;
