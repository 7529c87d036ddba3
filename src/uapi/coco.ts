/**
 * The confidential-VM launch uAPI, declared once: KVM_MEMORY_ENCRYPT_OP and the SEV-SNP and TDX
 * sub-command structs it carries (arch/x86/include/uapi/asm/kvm.h: enum sev_cmd_id, struct
 * kvm_sev_cmd, kvm_sev_init, kvm_sev_snp_launch_{start,update,finish}; enum kvm_tdx_cmd_id,
 * struct kvm_tdx_cmd, kvm_tdx_init_vm, kvm_tdx_init_mem_region, kvm_tdx_capabilities), as read in
 * kvm-x86/linux @3cfc1a8e. Layouts are data (defineLayout), ioctl numbers are computed like
 * ioctls.ts; tests/coco/uapi-coco.test.ts pins every size and offset.
 *
 * Also here: the firmware/TDX-module constants the model's SNP and TDX platforms return (SEV
 * firmware status codes, PVALIDATE and TDG.MEM.PAGE.ACCEPT results), each naming its source.
 */
import { IOC_READ, IOC_WRITE, ioc, KVMIO } from './ioctls.js';
import { defineLayout } from './layout.js';
import { kvm_cpuid_entry2 } from './x86.js';

// ---- include/uapi/linux/kvm.h ----

/** `_IOWR(KVMIO, 0xba, unsigned long)`: the argument is a pointer, sized as an unsigned long (8). */
export const KVM_MEMORY_ENCRYPT_OP = ioc(IOC_READ | IOC_WRITE, KVMIO, 0xba, 8);

// ---- AMD SEV / SEV-SNP (arch/x86/include/uapi/asm/kvm.h) ----

/** enum sev_cmd_id */
export const SEV_CMD = {
  KVM_SEV_INIT: 0,
  KVM_SEV_ES_INIT: 1,
  KVM_SEV_LAUNCH_START: 2,
  KVM_SEV_LAUNCH_UPDATE_DATA: 3,
  KVM_SEV_LAUNCH_UPDATE_VMSA: 4,
  KVM_SEV_LAUNCH_SECRET: 5,
  KVM_SEV_LAUNCH_MEASURE: 6,
  KVM_SEV_LAUNCH_FINISH: 7,
  KVM_SEV_SEND_START: 8,
  KVM_SEV_SEND_UPDATE_DATA: 9,
  KVM_SEV_SEND_UPDATE_VMSA: 10,
  KVM_SEV_SEND_FINISH: 11,
  KVM_SEV_RECEIVE_START: 12,
  KVM_SEV_RECEIVE_UPDATE_DATA: 13,
  KVM_SEV_RECEIVE_UPDATE_VMSA: 14,
  KVM_SEV_RECEIVE_FINISH: 15,
  KVM_SEV_GUEST_STATUS: 16,
  KVM_SEV_DBG_DECRYPT: 17,
  KVM_SEV_DBG_ENCRYPT: 18,
  KVM_SEV_CERT_EXPORT: 19,
  KVM_SEV_GET_ATTESTATION_REPORT: 20,
  KVM_SEV_SEND_CANCEL: 21,
  /** "Second time is the charm": the VM-type-aware init (6.10) */
  KVM_SEV_INIT2: 22,
  KVM_SEV_SNP_LAUNCH_START: 100,
  KVM_SEV_SNP_LAUNCH_UPDATE: 101,
  KVM_SEV_SNP_LAUNCH_FINISH: 102,
} as const;
export type SevCmdName = keyof typeof SEV_CMD;

/** struct kvm_sev_cmd: what KVM_MEMORY_ENCRYPT_OP points at on AMD. `error` is the firmware's status. */
export const kvm_sev_cmd = defineLayout('kvm_sev_cmd', 24, {
  id: { type: 'u32', offset: 0 },
  pad0: { type: 'u32', offset: 4 },
  data: { type: 'u64', offset: 8 },
  error: { type: 'u32', offset: 16 },
  sev_fd: { type: 'u32', offset: 20 },
});

/** struct kvm_sev_init (KVM_SEV_INIT2) */
export const kvm_sev_init = defineLayout('kvm_sev_init', 48, {
  vmsa_features: { type: 'u64', offset: 0 },
  flags: { type: 'u32', offset: 8 },
  ghcb_version: { type: 'u16', offset: 12 },
  pad1: { type: 'u16', offset: 14 },
  pad2: { type: 'u32', offset: 16, count: 8 },
});

export const kvm_sev_snp_launch_start = defineLayout('kvm_sev_snp_launch_start', 64, {
  policy: { type: 'u64', offset: 0 },
  gosvw: { type: 'u8', offset: 8, count: 16 },
  flags: { type: 'u16', offset: 24 },
  pad0: { type: 'u8', offset: 26, count: 6 },
  pad1: { type: 'u64', offset: 32, count: 4 },
});

/** KVM_SEV_SNP_PAGE_TYPE_* ("Kept in sync with firmware values for simplicity"); VMSA (2) is not a uAPI type. */
export const KVM_SEV_SNP_PAGE_TYPE = {
  NORMAL: 1,
  ZERO: 3,
  UNMEASURED: 4,
  SECRETS: 5,
  CPUID: 6,
} as const;
export const KVM_SEV_PAGE_TYPE_INVALID = 0;
export const SNP_PAGE_TYPE_NAMES = { normal: 1, zero: 3, unmeasured: 4, secrets: 5, cpuid: 6 } as const;

export const kvm_sev_snp_launch_update = defineLayout('kvm_sev_snp_launch_update', 64, {
  gfn_start: { type: 'u64', offset: 0 },
  uaddr: { type: 'u64', offset: 8 },
  len: { type: 'u64', offset: 16 },
  type: { type: 'u8', offset: 24 },
  pad0: { type: 'u8', offset: 25 },
  flags: { type: 'u16', offset: 26 },
  pad1: { type: 'u32', offset: 28 },
  pad2: { type: 'u64', offset: 32, count: 4 },
});

export const KVM_SEV_SNP_ID_BLOCK_SIZE = 96;
export const KVM_SEV_SNP_ID_AUTH_SIZE = 4096;
export const KVM_SEV_SNP_FINISH_DATA_SIZE = 32;

export const kvm_sev_snp_launch_finish = defineLayout('kvm_sev_snp_launch_finish', 88, {
  id_block_uaddr: { type: 'u64', offset: 0 },
  id_auth_uaddr: { type: 'u64', offset: 8 },
  id_block_en: { type: 'u8', offset: 16 },
  auth_key_en: { type: 'u8', offset: 17 },
  vcek_disabled: { type: 'u8', offset: 18 },
  host_data: { type: 'u8', offset: 19, count: KVM_SEV_SNP_FINISH_DATA_SIZE },
  pad0: { type: 'u8', offset: 51, count: 3 },
  flags: { type: 'u16', offset: 54 },
  pad1: { type: 'u64', offset: 56, count: 4 },
});

/**
 * SNP guest policy bits KVM 6.11-6.18 accepts in KVM_SEV_SNP_LAUNCH_START (sev.c
 * SNP_POLICY_MASK_VALID: API_MINOR 7:0, API_MAJOR 15:8, SMT 16, RSVD_MBO 17, DEBUG 19,
 * SINGLE_SOCKET 20). RSVD_MBO must be set.
 */
export const SNP_POLICY = {
  API_MINOR: 0xffn,
  API_MAJOR: 0xff00n,
  SMT: 1n << 16n,
  RSVD_MBO: 1n << 17n,
  DEBUG: 1n << 19n,
  SINGLE_SOCKET: 1n << 20n,
} as const;
export const SNP_POLICY_MASK_VALID = Object.values(SNP_POLICY).reduce((m, b) => m | b, 0n);

/** SVM_SEV_FEAT_*: VMSA SEV_FEATURES bits KVM_SEV_INIT2 may request (SNP_ACTIVE is KVM's own). */
export const SVM_SEV_FEAT = { SNP_ACTIVE: 1n << 0n, DEBUG_SWAP: 1n << 5n } as const;

/** GHCB protocol versions KVM supports (sev.c GHCB_VERSION_MIN/MAX); SNP needs 2. */
export const GHCB_VERSION_MIN = 1;
export const GHCB_VERSION_MAX = 2;

/** SEV firmware status codes (include/uapi/linux/psp-sev.h enum sev_ret_code), as kvm_sev_cmd.error carries them. */
export const SEV_RET = {
  SUCCESS: 0,
  INVALID_PLATFORM_STATE: 1,
  INVALID_GUEST_STATE: 2,
  INVALID_PARAM: 0x16,
} as const;

/** The page state PVALIDATE leaves in RMP.Validated, and its results (arch/x86/include/asm/sev.h). */
export const PVALIDATE = {
  SUCCESS: 0n,
  FAIL_INPUT: 1n,
  FAIL_SIZEMISMATCH: 6n,
  /** software-defined: rFLAGS.CF = 1, the Validated bit already had the requested value */
  FAIL_NOUPDATE: 255n,
} as const;

// ---- Intel TDX (arch/x86/include/uapi/asm/kvm.h) ----

/** enum kvm_tdx_cmd_id */
export const TDX_CMD = {
  KVM_TDX_CAPABILITIES: 0,
  KVM_TDX_INIT_VM: 1,
  KVM_TDX_INIT_VCPU: 2,
  KVM_TDX_INIT_MEM_REGION: 3,
  KVM_TDX_FINALIZE_VM: 4,
  KVM_TDX_GET_CPUID: 5,
} as const;
export type TdxCmdName = keyof typeof TDX_CMD;

/** struct kvm_tdx_cmd: what KVM_MEMORY_ENCRYPT_OP points at on Intel. `hw_error` is a SEAMCALL status. */
export const kvm_tdx_cmd = defineLayout('kvm_tdx_cmd', 24, {
  id: { type: 'u32', offset: 0 },
  flags: { type: 'u32', offset: 4 },
  data: { type: 'u64', offset: 8 },
  hw_error: { type: 'u64', offset: 16 },
});

/**
 * struct kvm_tdx_init_vm: 256 bytes of TD_PARAMS input, then a struct kvm_cpuid2 header
 * (nent, padding) whose entries follow (tdx_td_init: BUILD_BUG_ON(sizeof(*init_vm) != 256 +
 * sizeof_field(struct kvm_tdx_init_vm, cpuid))).
 */
export const kvm_tdx_init_vm = defineLayout('kvm_tdx_init_vm', 264, {
  attributes: { type: 'u64', offset: 0 },
  xfam: { type: 'u64', offset: 8 },
  mrconfigid: { type: 'u64', offset: 16, count: 6 },
  mrowner: { type: 'u64', offset: 64, count: 6 },
  mrownerconfig: { type: 'u64', offset: 112, count: 6 },
  reserved: { type: 'u64', offset: 160, count: 12 },
  cpuid_nent: { type: 'u32', offset: 256 },
  cpuid_padding: { type: 'u32', offset: 260 },
});

/** KVM_TDX_MEASURE_MEMORY_REGION: MR.EXTEND every page KVM_TDX_INIT_MEM_REGION adds */
export const KVM_TDX_MEASURE_MEMORY_REGION = 1 << 0;

export const kvm_tdx_init_mem_region = defineLayout('kvm_tdx_init_mem_region', 24, {
  source_addr: { type: 'u64', offset: 0 },
  gpa: { type: 'u64', offset: 8 },
  nr_pages: { type: 'u64', offset: 16 },
});

/** struct kvm_tdx_capabilities, then a struct kvm_cpuid2 header at 2048 */
export const kvm_tdx_capabilities = defineLayout('kvm_tdx_capabilities', 2056, {
  supported_attrs: { type: 'u64', offset: 0 },
  supported_xfam: { type: 'u64', offset: 8 },
  kernel_tdvmcallinfo_1_r11: { type: 'u64', offset: 16 },
  user_tdvmcallinfo_1_r11: { type: 'u64', offset: 24 },
  kernel_tdvmcallinfo_1_r12: { type: 'u64', offset: 32 },
  user_tdvmcallinfo_1_r12: { type: 'u64', offset: 40 },
  reserved: { type: 'u64', offset: 48, count: 250 },
  cpuid_nent: { type: 'u32', offset: 2048 },
  cpuid_padding: { type: 'u32', offset: 2052 },
});

/** KVM_MAX_CPUID_ENTRIES: more entries in KVM_TDX_INIT_VM's cpuid is E2BIG */
export const KVM_MAX_CPUID_ENTRIES = 256;

/** TDX_TD_ATTR_* bits of kvm_tdx_init_vm.attributes (arch/x86/include/asm/shared/tdx.h). */
export const TDX_TD_ATTR = {
  DEBUG: 1n << 0n,
  SEPT_VE_DISABLE: 1n << 28n,
  PKS: 1n << 30n,
  KL: 1n << 31n,
  PERFMON: 1n << 63n,
} as const;

/** GPA width a TD may be given through CPUID 0x80000008.EAX[23:16] (setup_tdparams_eptp_controls) */
export const TDX_GPAW = [48, 52] as const;

/** TDX module status codes a TD sees in RAX (arch/x86/kvm/vmx/tdx_errno.h) */
export const TDX_STATUS = {
  SUCCESS: 0n,
  PAGE_ALREADY_ACCEPTED: 0x00000b0a00000000n,
  PAGE_SIZE_MISMATCH: 0xc0000b0b00000000n,
  OPERAND_INVALID: 0xc000010000000000n,
} as const;

/** Declared once, in x86.ts (KVM_SET_CPUID2 takes the same entries). */
export { kvm_cpuid_entry2 };
