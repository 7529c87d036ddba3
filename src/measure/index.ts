/**
 * Launch measurement from real firmware (DESIGN.md "measure/"): the SNP launch digest, SEV/SEV-ES
 * digests and TDX MRTD of an OVMF image, as pure functions over bytes with the hash injected.
 * Browser-safe: no Node API anywhere in this folder. See ../../../shared/spec/MEASUREMENT.md.
 */
export { fromHex, guidBytes, guidToString, toHex } from './bytes.js';
export { MeasureError, type MeasureErrorCode } from './errors.js';
export { hasContents, PAGE_INFO_LEN, SNP_PAGE_TYPE, SNP_PAGE_TYPE_NAME, SnpGuestContext, type SnpPageType, VMSA_GPA } from './gctx.js';
export type { Hasher, HashFactory, Sha256Factory, Sha384Factory } from './hash.js';
export { imageGpa, OVMF_GUID, type OvmfImage, type OvmfTableEntry, parseOvmf, sevEsResetEip, sevHashTableArea } from './ovmf.js';
export { type SevEsOptions, type SevOptions, sevEsLaunchDigest, sevLaunchDigest } from './sev.js';
export { cmdlineBytes, SEV_HASH_TABLE_PADDED, type SevKernelHashes, sevHashPage, sevHashTable, sevKernelHashes } from './sev-hashes.js';
export { parseSevMetadata, SEV_SECTION, SEV_SECTION_NAME, type SevSection, type SevSectionType } from './sev-metadata.js';
export {
  MAX_VCPUS,
  type SnpLaunchUpdate,
  type SnpMeasuredPage,
  type SnpOptions,
  type SvsmOptions,
  snpDigestOfPlan,
  snpLaunchDigest,
  snpLaunchPlan,
  snpMeasuredPages,
  snpOvmfHash,
  svsmLaunchDigest,
  svsmLaunchPlan,
} from './snp.js';
export { parseTdvf, TDVF_ATTR, TDVF_SECTION, TDVF_SECTION_NAME, TDX_MAX_PAGES, type TdvfSection, type TdvfSectionType } from './tdvf.js';
export {
  MR_EXTEND_CHUNK,
  TDX_ORDERS,
  type TdxInitMemRegion,
  type TdxMeasureOp,
  type TdxMeasureSink,
  TdxMrtdContext,
  type TdxOptions,
  type TdxOrder,
  tdxLaunchPlan,
  tdxMeasureOps,
  tdxMrExtendHeader,
  tdxMrtd,
  tdxPageAddRecord,
  tdxReplay,
} from './tdx.js';
export { BSP_EIP, buildSvsmVmsa, buildVmsa, cpuSig, resolveVcpuSig, VCPU_TYPES, VMM_TYPES, type VmmType, type VmsaOptions } from './vmsa.js';
