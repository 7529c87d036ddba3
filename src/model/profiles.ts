/**
 * Kernel profiles: the rules that changed between kernel versions (KERNEL-SPEC §2.L), as data.
 * Every rule that consults a profile field names it, so a reader can see where versions differ.
 */
import { CAP, GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, VM_TYPE, type VmType } from '../uapi/constants.js';
import type { ErrnoName } from '../uapi/errno.js';

export interface KernelProfile {
  readonly name: string;
  /** uname-style version this profile follows, for reports */
  readonly version: string;
  /** VM types KVM_CREATE_VM accepts (KVM_CAP_VM_TYPES) */
  readonly vmTypes: readonly VmType[];
  /**
   * Whether the kernel has guest_memfd at all (CONFIG_KVM_PRIVATE_MEM before 6.18,
   * CONFIG_KVM_GUEST_MEMFD since): without it kvm_vm_ioctl() has no KVM_CREATE_GUEST_MEMFD case
   * (ENOTTY from kvm_arch_vm_ioctl), KVM_CAP_GUEST_MEMFD{,_FLAGS} are 0 and
   * check_memory_region_flags() never accepts KVM_MEM_GUEST_MEMFD. Seen live: 6.18.44-fc-v1300.
   */
  readonly guestMemfd: boolean;
  /** guest_memfd flags kvm_gmem_get_supported_flags() allows; 0 before 6.18 (`valid_flags = 0`) */
  readonly gmemFlags: bigint;
  /** 6.18: KVM_MEM_GUEST_MEMFD valid on every VM (CONFIG_KVM_GUEST_MEMFD); before: only with private memory */
  readonly gmemSlotsOnAnyVm: boolean;
  /** 6.18: KVM_CAP_GUEST_MEMFD is 1 for every VM; 6.8: !kvm || kvm_arch_has_private_mem(kvm) */
  readonly gmemCapOnAnyVm: boolean;
  /** kvm_gmem_bind: errno for a file range already bound (EINVAL through 6.18, EEXIST in kvm-x86 next) */
  readonly bindOverlapErrno: ErrnoName;
  /** __kvm_set_memory_region: the Dec-2025 stable fix rejects toggling GUEST_MEMFD on an existing slot */
  readonly rejectGmemFlagToggle: boolean;
  /** CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES: without it KVM_SET_MEMORY_ATTRIBUTES is ENOTTY */
  readonly memoryAttributes: boolean;
  /**
   * KVM_PRE_FAULT_MEMORY: 'absent' before 6.11 (unknown vCPU ioctl), 'unsupported' where the cap
   * is 0 (shadow paging: EOPNOTSUPP), 'tdp' where it works.
   */
  readonly preFault: 'absent' | 'unsupported' | 'tdp';
  /**
   * KVM_PRE_FAULT_MEMORY never returns by itself once the vCPU's MMU root is obsolete (6.12): a
   * memslot delete or move on a default VM runs kvm_mmu_zap_all_fast(), which only *requests*
   * KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, a request vcpu_enter_guest() (KVM_RUN) handles;
   * kvm_arch_vcpu_pre_fault_memory()'s kvm_mmu_reload() reloads only a root that is INVALID_PAGE,
   * so the obsolete one stays, and kvm_tdp_map_page() retries the fault (is_page_fault_stale() ->
   * RET_PF_RETRY) until a signal is pending. Fixed by 20a6cff3b283 "KVM: x86/mmu: Check and free
   * obsolete roots in kvm_mmu_reload()" (Yan Zhao, 2025): not in 6.12.117, in 6.18 and later.
   */
  readonly preFaultObsoleteRootSpins: boolean;
  /** guest faults on slots of MMAP guest_memfds are served from guest_memfd (KVM_MEMSLOT_GMEM_ONLY, 6.18) */
  readonly gmemOnlySlots: boolean;
  /**
   * Guest code is emulated (PVM): every guest access goes through userspace_addr, and an address
   * the host cannot reach there is emulated MMIO (the x86 emulator's read/write falls back to
   * vcpu_mmio_read/write) rather than KVM_EXIT_MEMORY_FAULT.
   */
  readonly emulatedGuestAccess: boolean;
  /**
   * mmap(PROT_EXEC) of an anon-inode file (VM, vCPU, guest_memfd) is EPERM: the mount is noexec
   * (seen live on 6.18; 6.12 answers ENODEV, found by the lab)
   */
  readonly anonInodeNoexec: boolean;
  /**
   * kvm_gmem_bind computes offset + size unsigned (uoff_t, kvm-x86 next; 7.3 in the lab), so an
   * overflowing offset is EINVAL; 6.8-6.18 compute it as loff_t, where it wraps negative and passes
   */
  readonly bindOffsetUnsigned: boolean;
  /**
   * The guest_memfd bind is split in two (7ea987a90585, 7.2; 6.12.118 through stable):
   * kvm_gmem_prepare_memory_region() before kvm_arch_prepare_memory_region(), and
   * kvm_gmem_commit_memory_region() (the overlap check) after it; before, kvm_gmem_bind() did all
   * of it first.
   */
  readonly gmemBindSplit: boolean;
  /** memslot address spaces (kvm_arch_nr_memslot_as_ids): 2 with SMM, 1 without (PVM has none) */
  readonly addressSpaces: number;
  /** guest_memfd inodes carry a shared NUMA policy (vm_ops set_policy/get_policy; 6.19, 83e0e12219a4) */
  readonly gmemMempolicy: boolean;
  /**
   * MAXPHYADDR of the model host, which bounds guest frames: kvm_arch_prepare_memory_region (x86)
   * refuses a slot whose last gfn exceeds kvm_mmu_max_gfn() = 2^(shadow_phys_bits - 12) - 1 with
   * TDP (shadow_phys_bits: CPUID 0x80000008 EAX[7:0] of the host). The version profiles assume 40,
   * what QEMU's TCG gives `-cpu max` (TCG_PHYS_ADDR_BITS), i.e. the lab's kernels; bare-metal hosts
   * have 39-52 (the 'host' profile takes the probed value).
   */
  readonly physAddrBits: number;
  /**
   * kvm_gmem_populate as reworked in 7.0 (tag kvm-x86-gmem-6.20, Michael Roth): preparation tracking
   * is gone (no EEXIST for a folio already prepared), the source page is pinned with
   * get_user_pages_fast() before __kvm_gmem_get_pfn and the PRIVATE check, and
   * KVM_SEV_SNP_LAUNCH_UPDATE refuses a source that is not 4 KiB aligned. Before: 6.11-6.19 rules.
   */
  readonly populateGupFirst: boolean;
  /** Capabilities read from a live kernel, used verbatim by KVM_CHECK_EXTENSION ('host' profile). */
  readonly capsOverride?: Readonly<Record<number, number>>;
  /**
   * Confidential computing (issue 5): the SNP or TDX hardware of the model host, set by
   * withPlatform(). Such a profile accepts the platform's VM type where the kernel version has it,
   * and applies the platform's launch lifecycle in full (src/model/platforms/). A profile that only
   * lists 'snp'/'tdx' in vmTypes gets the platform's memory rules without the lifecycle gates.
   */
  readonly platform?: Platform;
}

const MMAP_FLAGS = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;

const v6_8: KernelProfile = {
  name: '6.8',
  version: '6.8',
  vmTypes: ['default', 'sw_protected'],
  guestMemfd: true,
  gmemFlags: 0n,
  gmemSlotsOnAnyVm: false,
  gmemCapOnAnyVm: false,
  bindOverlapErrno: 'EINVAL',
  gmemBindSplit: false,
  rejectGmemFlagToggle: false,
  memoryAttributes: true,
  preFault: 'absent',
  // kvm_mmu_reload() is the same as in 6.12, but without KVM_PRE_FAULT_MEMORY only KVM_RUN calls it
  preFaultObsoleteRootSpins: false,
  gmemOnlySlots: false,
  gmemMempolicy: false,
  addressSpaces: 2,
  emulatedGuestAccess: false,
  anonInodeNoexec: false,
  bindOffsetUnsigned: false,
  physAddrBits: 40,
  populateGupFirst: false,
};

/**
 * 6.12 as Debian ships it in the lab (6.12.118): stable brought guest_memfd binding changes that
 * 6.12.0 lacks (the lab's source package, checked line by line):
 *  - 6.12.64: "KVM: Disallow toggling KVM_MEM_GUEST_MEMFD on an existing memslot";
 *  - 6.12.114: "KVM: guest_memfd: Treat memslot binding offset+size as unsigned";
 *  - 6.12.118: the bind split into kvm_gmem_prepare/commit_memory_region(), whose commit answers
 *    EEXIST for a file range already bound (mainline 7.2, 7ea987a90585).
 * Not backported: the obsolete-root fix of kvm_mmu_reload() and anon_inodefs' SB_I_NOEXEC.
 */
const v6_12: KernelProfile = {
  ...v6_8,
  name: '6.12',
  version: '6.12.118',
  bindOverlapErrno: 'EEXIST',
  gmemBindSplit: true,
  bindOffsetUnsigned: true,
  preFault: 'tdp',
  preFaultObsoleteRootSpins: true,
  // "KVM: Disallow toggling KVM_MEM_GUEST_MEMFD on an existing memslot" (Dec 2025, Cc stable) is in
  // 6.12.117, the lab's 6.12 (found by the lab's diff, seed 303); 6.12 releases before it accepted
  // the toggle, as 6.8 does here
  rejectGmemFlagToggle: true,
};

/** 6.18 as read off a live 6.18.44 (KERNEL-SPEC's LIVE results; it has the toggle fix). */
const v6_18: KernelProfile = {
  name: '6.18',
  version: '6.18.44',
  vmTypes: ['default', 'sw_protected'],
  guestMemfd: true,
  gmemFlags: MMAP_FLAGS,
  gmemSlotsOnAnyVm: true,
  gmemCapOnAnyVm: true,
  bindOverlapErrno: 'EINVAL',
  gmemBindSplit: false,
  rejectGmemFlagToggle: true,
  memoryAttributes: true,
  preFault: 'tdp',
  preFaultObsoleteRootSpins: false,
  gmemOnlySlots: true,
  gmemMempolicy: false,
  addressSpaces: 2,
  emulatedGuestAccess: false,
  anonInodeNoexec: true,
  bindOffsetUnsigned: false,
  physAddrBits: 40,
  populateGupFirst: false,
};

/**
 * 6.19: guest_memfd gets its own filesystem and inode (kvm_gmem_fs, fd link '/[kvm-gmem] (deleted)',
 * mounted MNT_NOEXEC) and a shared NUMA mempolicy (mbind on its mapping; selftests test_mbind,
 * test_numa_allocation): GIT PULL "guest_memfd: NUMA support ... for 6.19", 83e0e12219a4. The toggle
 * fix 9935df5333aa is in 6.19-rc1.
 */
const v6_19: KernelProfile = { ...v6_18, name: '6.19', version: '6.19', gmemMempolicy: true };
/** 7.0 (the cycle called 6.20): kvm_gmem_populate reworked (populateGupFirst), tag kvm-x86-gmem-6.20. */
const v7_0: KernelProfile = { ...v6_19, name: '7.0', version: '7.0', populateGupFirst: true };
/**
 * 7.1.4: 7.1's guest_memfd changes (6dad5447c7bf no FGP_ACCESSED) are not visible through the uAPI;
 * stable 7.1.4 carries eba85fee7fc6 "Treat memslot binding offset+size as unsigned".
 */
const v7_1: KernelProfile = { ...v7_0, name: '7.1', version: '7.1.4', bindOffsetUnsigned: true };
/** 7.2 (Debian sid's 7.2.13): 7ea987a90585 overlapping bindings are EEXIST (tag kvm-x86-gmem-7.2). */
const v7_2: KernelProfile = { ...v7_1, name: '7.2', version: '7.2.13', bindOverlapErrno: 'EEXIST', gmemBindSplit: true };
/** 7.3 as the lab boots it (trixie-backports' 7.3.4); no guest_memfd tag merged in 7.3. */
const v7_3: KernelProfile = { ...v7_2, name: '7.3', version: '7.3.4' };
const next: KernelProfile = { ...v7_3, name: 'next', version: 'kvm-x86 next' };

// ---- Confidential-computing platforms (issue 5). KVM_CAP_VM_TYPES reports what the kernel *and*
// the hardware support, so SNP and TDX are not in the version profiles above (the model host has
// neither); '<version>+snp' and '<version>+tdx' model the same kernel on an SNP or a TDX host. ----

export type Platform = 'snp' | 'tdx';
export const PLATFORMS: readonly Platform[] = ['snp', 'tdx'];
/** KERNEL-SPEC §1.4 / §2.L: KVM_X86_SNP_VM (4) arrived in 6.11, KVM_X86_TDX_VM (5) in 6.16 */
export const PLATFORM_SINCE: Readonly<Record<Platform, readonly [number, number]>> = { snp: [6, 11], tdx: [6, 16] };

/** Whether a profile's kernel version has the platform's VM type ('kvm-x86 next' has everything). */
export function versionHasPlatform(p: KernelProfile, platform: Platform): boolean {
  const m = /^(\d+)\.(\d+)/.exec(p.version);
  if (!m) return true;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  const [sMaj, sMin] = PLATFORM_SINCE[platform];
  return maj > sMaj || (maj === sMaj && min >= sMin);
}

/**
 * The same kernel on a host with SNP or TDX hardware: KVM_CREATE_VM accepts the platform's type if
 * the version has it (a 6.8 kernel on an SNP host still has no KVM_X86_SNP_VM).
 */
export function withPlatform(base: KernelProfile, platform: Platform): KernelProfile {
  const vmTypes = versionHasPlatform(base, platform) && !base.vmTypes.includes(platform) ? [...base.vmTypes, platform] : base.vmTypes;
  return { ...base, name: `${base.name}+${platform}`, vmTypes, platform };
}

const PLATFORM_PROFILES: Record<string, KernelProfile> = Object.fromEntries(
  [v6_12, v6_18, v6_19, v7_0, v7_1, v7_2, v7_3, next].flatMap((b) =>
    PLATFORMS.filter((pl) => versionHasPlatform(b, pl)).map((pl) => [`${b.name}+${pl}`, withPlatform(b, pl)]),
  ),
);

export const PROFILES: Readonly<Record<string, KernelProfile>> = {
  '6.8': v6_8,
  '6.12': v6_12,
  '6.18': v6_18,
  '6.19': v6_19,
  '7.0': v7_0,
  '7.1': v7_1,
  '7.2': v7_2,
  '7.3': v7_3,
  next,
  // confidential-computing hosts (see withPlatform): 6.12+snp, 6.18+snp, 6.18+tdx, 7.3+…, next+…
  ...PLATFORM_PROFILES,
};
/** The version profiles of PROFILES, by name, in order. */
export const VERSION_PROFILE_NAMES = ['6.8', '6.12', '6.18', '6.19', '7.0', '7.1', '7.2', '7.3', 'next'] as const;
/** The confidential-computing hosts of PROFILES (withPlatform on each version that has the VM type), in order. */
export const COCO_PROFILE_NAMES = [
  '6.12+snp',
  '6.18+snp',
  '6.18+tdx',
  '6.19+snp',
  '6.19+tdx',
  '7.0+snp',
  '7.0+tdx',
  '7.1+snp',
  '7.1+tdx',
  '7.2+snp',
  '7.2+tdx',
  '7.3+snp',
  '7.3+tdx',
  'next+snp',
  'next+tdx',
] as const;
/**
 * Every kernel name the model answers to: the version profiles, the confidential-computing hosts,
 * and 'host' (hostProfile, built from a probe of the live kernel). Spelled out rather than derived
 * from PROFILES so that the names are types too; tests/model/profiles.test.ts holds the two equal.
 */
export const PROFILE_NAMES = [...VERSION_PROFILE_NAMES, ...COCO_PROFILE_NAMES, 'host'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];
export const DEFAULT_PROFILE = '6.18';

export function getProfile(name: string): KernelProfile {
  const p = PROFILES[name];
  if (!p) throw new Error(`unknown kernel profile '${name}' (known: ${Object.keys(PROFILES).join(', ')}, host)`);
  return p;
}

/** What a capability probe of a live kernel reports; enough to build the 'host' profile. */
export interface ProbedCaps {
  /** kernel release, e.g. '6.18.44' */
  readonly release: string;
  /**
   * the GPA width the live kernel accepts for memslots (kvm_mmu_max_gfn() + 1 = 2^(bits - 12)): the
   * host MAXPHYADDR with TDP, 52 with shadow paging; probed by asking for slots (kvm/caps.ts)
   */
  readonly physAddrBits?: number;
  /** KVM_CHECK_EXTENSION on /dev/kvm for every probed capability */
  readonly system: Readonly<Record<number, number>>;
  /** what tiny guest programs showed (kvm backend probeCaps with guest: true) */
  readonly guest?: {
    /** a guest_memfd-only slot without a host mapping serves guest faults (6.18 GMEM_ONLY with TDP) */
    readonly gmemFaultsWithoutHva?: boolean | undefined;
    /** a guest access through an hva with nothing mapped exits as MMIO (guest code is emulated) */
    readonly emulatedAccess?: boolean | undefined;
    /** KVM_HC_MAP_GPA_RANGE reaches userspace as KVM_EXIT_HYPERCALL */
    readonly hypercallExit: boolean;
  };
}

/**
 * The 'host' profile: the version's rules, with every capability-driven switch taken from the probe,
 * so the model refuses what the live kernel refuses (ENOTTY attributes, EOPNOTSUPP pre-fault, ...).
 */
export function hostProfile(caps: ProbedCaps): KernelProfile {
  const [maj = 0, min = 0] = caps.release.split('.').map((x) => Number.parseInt(x, 10));
  const base =
    maj > 7 || (maj === 7 && min >= 3)
      ? v7_3
      : maj === 7
        ? ([v7_0, v7_1, v7_2][min] ?? v7_2)
        : maj === 6 && min >= 19
          ? v6_19
          : maj === 6 && min >= 18
            ? v6_18
            : maj === 6 && min >= 12
              ? v6_12
              : v6_8;
  const cap = (c: number) => caps.system[c] ?? 0;
  const typesMask = cap(CAP.KVM_CAP_VM_TYPES) || 1;
  const vmTypes = (Object.entries(VM_TYPE) as [VmType, number][]).filter(([, v]) => typesMask & (1 << v)).map(([k]) => k);
  const preFault: KernelProfile['preFault'] = base.preFault === 'absent' ? 'absent' : cap(CAP.KVM_CAP_PRE_FAULT_MEMORY) ? 'tdp' : 'unsupported';
  return {
    ...base,
    name: 'host',
    version: caps.release,
    vmTypes,
    // KVM_CAP_GUEST_MEMFD at system scope is 1 wherever the config is on, on every version
    // (6.8: `!kvm || ...`; 6.18: 1), so 0 there means no guest_memfd in this kernel
    guestMemfd: cap(CAP.KVM_CAP_GUEST_MEMFD) !== 0,
    gmemFlags: BigInt(cap(CAP.KVM_CAP_GUEST_MEMFD_FLAGS)),
    memoryAttributes: cap(CAP.KVM_CAP_MEMORY_ATTRIBUTES) !== 0,
    preFault,
    // KVM_CAP_MULTI_ADDRESS_SPACE answers KVM_ADDRESS_SPACE_NUM; 0 means a single address space
    addressSpaces: cap(CAP.KVM_CAP_MULTI_ADDRESS_SPACE) || 1,
    // where guest code is emulated through userspace_addr (PVM), guest_memfd never serves a fault
    gmemOnlySlots: base.gmemOnlySlots && caps.guest?.gmemFaultsWithoutHva !== false && caps.guest?.emulatedAccess !== true,
    emulatedGuestAccess: caps.guest?.emulatedAccess ?? caps.guest?.gmemFaultsWithoutHva === false,
    physAddrBits: caps.physAddrBits ?? base.physAddrBits,
    capsOverride: caps.system,
  };
}
