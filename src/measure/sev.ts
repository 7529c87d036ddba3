/**
 * SEV and SEV-ES launch digests (MEASUREMENT.md §1.8). These are not PAGE_INFO chains: the PSP runs
 * one SHA-256 over everything LAUNCH_UPDATE_DATA / LAUNCH_UPDATE_VMSA encrypt, in order:
 *   SEV:    firmware || [padded kernel-hashes table]
 *   SEV-ES: firmware || [padded kernel-hashes table] || VMSA_0 || … || VMSA_{n-1}   (SEV_FEATURES 0)
 * The result is GCTX.LD; the report's HMAC'd measurement additionally needs the TIK and nonce.
 */
import { check } from './errors.js';
import { checkLen, SHA256_LEN, type Sha256Factory } from './hash.js';
import { type OvmfImage, parseOvmf, sevEsResetEip, sevHashTableArea } from './ovmf.js';
import { type SevKernelHashes, sevHashTable } from './sev-hashes.js';
import { parseSevMetadata } from './sev-metadata.js';
import { MAX_VCPUS } from './snp.js';
import { BSP_EIP, buildVmsa, resolveVcpuSig, VMM_TYPES, type VmmType } from './vmsa.js';

export interface SevOptions {
  kernelHashes?: SevKernelHashes;
}

export interface SevEsOptions extends SevOptions {
  vcpus: number;
  vcpuType?: string;
  vcpuSig?: number;
  vmmType?: VmmType;
}

function withTable(img: OvmfImage, h: Sha256Factory, kernel: SevKernelHashes | undefined) {
  // The reference tool parses the SEV metadata in every mode; a malformed block is an error here too.
  parseSevMetadata(img);
  const ctx = h();
  ctx.update(img.bytes);
  if (kernel) {
    check(sevHashTableArea(img) !== undefined, 'MISSING', "Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement");
    ctx.update(sevHashTable(kernel));
  }
  return ctx;
}

/** SEV (no ES) launch digest: SHA-256 of the firmware and, with a kernel, the hashes table. */
export function sevLaunchDigest(image: Uint8Array | OvmfImage, opts: SevOptions, sha256: Sha256Factory): Uint8Array {
  const d = withTable(parseOvmf(image), sha256, opts.kernelHashes).digest();
  checkLen(d, SHA256_LEN);
  return d;
}

/** SEV-ES launch digest: as SEV, then every vCPU's VMSA (BSP first, APs from the reset block). */
export function sevEsLaunchDigest(image: Uint8Array | OvmfImage, opts: SevEsOptions, sha256: Sha256Factory): Uint8Array {
  const img = parseOvmf(image);
  check(Number.isInteger(opts.vcpus) && opts.vcpus >= 1 && opts.vcpus <= MAX_VCPUS, 'BAD_OPTION', `vCPU count ${opts.vcpus} is outside 1..${MAX_VCPUS}`);
  const vmm = opts.vmmType ?? 'qemu';
  check(VMM_TYPES.includes(vmm), 'BAD_OPTION', `unknown VMM type ${JSON.stringify(vmm)}`);
  const vcpuSig = resolveVcpuSig({ ...opts, vmm });
  const apEip = sevEsResetEip(img);
  const ctx = withTable(img, sha256, opts.kernelHashes);
  const bsp = buildVmsa({ eip: BSP_EIP, sevFeatures: 0n, vcpuSig, vmm });
  const ap = opts.vcpus > 1 ? buildVmsa({ eip: apEip, sevFeatures: 0n, vcpuSig, vmm }) : bsp;
  for (let i = 0; i < opts.vcpus; i++) ctx.update(i === 0 ? bsp : ap);
  const d = ctx.digest();
  checkLen(d, SHA256_LEN);
  return d;
}
