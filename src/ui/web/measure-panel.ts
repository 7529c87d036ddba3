/**
 * The measurement panel: a firmware image (and kernel/initrd/cmdline) read from the user's disk in
 * the page, hashed with @noble/hashes (synchronous and streaming, as measure/ needs; WebCrypto is
 * neither), through the same src/measure/ functions `guestmem measure` calls. Nothing is uploaded.
 */
import { sha256, sha384 } from '@noble/hashes/sha2.js';
import {
  type HashFactory,
  imageGpa,
  MeasureError,
  parseOvmf,
  type SevKernelHashes,
  SNP_PAGE_TYPE_NAME,
  sevEsLaunchDigest,
  sevKernelHashes,
  sevLaunchDigest,
  snpLaunchDigest,
  snpLaunchPlan,
  type TdxOrder,
  tdxLaunchPlan,
  tdxMrtd,
  toHex,
  VCPU_TYPES,
} from '../../measure/index.js';

export const nobleSha384: HashFactory = Object.assign(() => sha384.create(), { oneShot: (b: Uint8Array) => sha384(b) });
export const nobleSha256: HashFactory = Object.assign(() => sha256.create(), { oneShot: (b: Uint8Array) => sha256(b) });

export type Mode = 'snp' | 'seves' | 'sev' | 'tdx';

export interface MeasureInput {
  mode: Mode;
  firmware: Uint8Array;
  kernel?: Uint8Array | undefined;
  initrd?: Uint8Array | undefined;
  append?: string | undefined;
  vcpus: number;
  vcpuType: string;
  guestFeatures: bigint;
  tdxOrder: TdxOrder;
}

export interface MeasuredRange {
  readonly what: string;
  readonly gpa: bigint;
  readonly bytes: number;
}

export const VCPU_TYPE_NAMES = Object.keys(VCPU_TYPES);

function kernelHashes(i: MeasureInput): SevKernelHashes | undefined {
  if (!i.kernel) return undefined;
  return sevKernelHashes(
    { kernel: i.kernel, ...(i.initrd && { initrd: i.initrd }), ...(i.append !== undefined && i.append !== '' && { append: i.append }) },
    nobleSha256,
  );
}

/** The digest and what was measured, as `guestmem measure --mode <mode>` computes it. */
export function measure(i: MeasureInput): { digest: string; ranges: MeasuredRange[] } {
  if (i.initrd && !i.kernel) throw new MeasureError('BAD_OPTION', 'an initrd needs a kernel');
  const kh = kernelHashes(i);
  const withKh = kh ? { kernelHashes: kh } : {};
  switch (i.mode) {
    case 'tdx': {
      const d = tdxMrtd(i.firmware, { order: i.tdxOrder }, nobleSha384);
      const ranges = tdxLaunchPlan(i.firmware).map((r) => ({
        what: `${r.what}${r.measure ? ' (MR.EXTEND)' : ' (added, not extended)'}`,
        gpa: r.gpa,
        bytes: r.pages * 4096,
      }));
      return { digest: toHex(d), ranges };
    }
    case 'snp': {
      const opts = { vcpus: i.vcpus, vcpuType: i.vcpuType, guestFeatures: i.guestFeatures, ...withKh };
      const d = snpLaunchDigest(i.firmware, opts, nobleSha384);
      const ranges = snpLaunchPlan(i.firmware, opts).map((u) => ({ what: SNP_PAGE_TYPE_NAME[u.type], gpa: u.gpa, bytes: u.length }));
      return { digest: toHex(d), ranges };
    }
    case 'seves':
    case 'sev': {
      const d =
        i.mode === 'seves'
          ? sevEsLaunchDigest(i.firmware, { vcpus: i.vcpus, vcpuType: i.vcpuType, ...withKh }, nobleSha256)
          : sevLaunchDigest(i.firmware, { ...withKh }, nobleSha256);
      const img = parseOvmf(i.firmware);
      const ranges: MeasuredRange[] = [{ what: 'OVMF image (LAUNCH_UPDATE_DATA)', gpa: BigInt(imageGpa(img)), bytes: img.bytes.length }];
      if (i.mode === 'seves') ranges.push({ what: `${i.vcpus} VMSA(s) (LAUNCH_UPDATE_VMSA)`, gpa: 0n, bytes: i.vcpus * 4096 });
      return { digest: toHex(d), ranges };
    }
  }
}
