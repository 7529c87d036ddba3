/**
 * The SNP launch digest (GCTX.LD) fold (MEASUREMENT.md §1.1; SNP firmware ABI PAGE_INFO). LD starts
 * as 48 zero bytes at SNP_LAUNCH_START; every 4 KiB page SNP_LAUNCH_UPDATE (or LAUNCH_FINISH, for
 * VMSAs) takes in does LD := SHA-384(PAGE_INFO), with PAGE_INFO the 112 bytes
 *   0x00 LD | 0x30 CONTENTS | 0x60 u16 0x70 | 0x62 type | 0x63 IMI=0 | 0x64..0x67 VMPL perms, rsvd = 0 | 0x68 u64 GPA
 * CONTENTS is SHA-384 of the page for NORMAL and VMSA pages and zero for the others.
 */
import { PAGE } from './bytes.js';
import { check, MeasureError } from './errors.js';
import { checkLen, hashOnce, SHA384_LEN, type Sha384Factory } from './hash.js';

/** PAGE_TYPE values (SNP ABI; KVM_SEV_SNP_PAGE_TYPE_* use the same numbers, VMSA excepted). */
export const SNP_PAGE_TYPE = {
  NORMAL: 1,
  VMSA: 2,
  ZERO: 3,
  UNMEASURED: 4,
  SECRETS: 5,
  CPUID: 6,
} as const;
export type SnpPageType = (typeof SNP_PAGE_TYPE)[keyof typeof SNP_PAGE_TYPE];
export const SNP_PAGE_TYPE_NAME: Record<SnpPageType, string> = { 1: 'NORMAL', 2: 'VMSA', 3: 'ZERO', 4: 'UNMEASURED', 5: 'SECRETS', 6: 'CPUID' };

/**
 * Where SNP_LAUNCH_FINISH records VMSA pages: GPA (u64)-1, page aligned, bits above 51 clear
 * (sev-snp-measure gctx.py; KVM's INITIAL_VMSA_GPA).
 */
export const VMSA_GPA = 0x0000_ffff_ffff_f000n;

export const PAGE_INFO_LEN = 0x70;
const ZERO48 = new Uint8Array(SHA384_LEN);
const U64_MAX = (1n << 64n) - 1n;

/** Types whose CONTENTS field is the page's SHA-384 (the rest measure 48 zero bytes). */
export function hasContents(t: SnpPageType): boolean {
  return t === SNP_PAGE_TYPE.NORMAL || t === SNP_PAGE_TYPE.VMSA;
}

/**
 * The launch digest being built. `measure()` is one 4 KiB step as KVM's sev_gmem_post_populate
 * (or snp_launch_update_vmsa) performs it; `update()` is the raw PAGE_INFO step for callers that
 * already hold the page digest (a launch log replay).
 * @example
 *   const g = new SnpGuestContext(sha384);
 *   g.measure(SNP_PAGE_TYPE.NORMAL, 0xffff0000n, page0);
 *   g.measure(SNP_PAGE_TYPE.ZERO, 0x800000n);
 *   toHex(g.digest())
 */
export class SnpGuestContext {
  private readonly info = new Uint8Array(PAGE_INFO_LEN);
  private readonly view = new DataView(this.info.buffer);
  /** number of PAGE_INFO steps so far */
  steps = 0;

  constructor(
    private readonly sha: Sha384Factory,
    seed: Uint8Array = ZERO48,
    /** called with each PAGE_INFO just before it is hashed (a view: copy it to keep it) */
    private readonly onPageInfo?: (pageInfo: Uint8Array) => void,
  ) {
    check(seed.length === SHA384_LEN, 'BAD_OPTION', `launch digest seed must be 48 bytes, got ${seed.length}`);
    this.info.set(seed, 0);
    this.view.setUint16(0x60, PAGE_INFO_LEN, true);
  }

  /** One page: hash it if its type carries contents, then fold. */
  measure(type: SnpPageType, gpa: bigint, page?: Uint8Array): void {
    if (hasContents(type)) {
      // Hot path (one call per page): no message is built unless the check fails.
      if (page?.length !== PAGE) throw new MeasureError('BAD_OPTION', `a ${SNP_PAGE_TYPE_NAME[type]} page needs its 4096 bytes`);
      this.update(type, gpa, hashOnce(this.sha, page, SHA384_LEN));
    } else this.update(type, gpa, ZERO48);
  }

  /** The PAGE_INFO step with a given CONTENTS digest. */
  update(type: SnpPageType, gpa: bigint, contents: Uint8Array): void {
    checkLen(contents, SHA384_LEN);
    if (gpa < 0n || gpa > U64_MAX || (gpa & 0xfffn) !== 0n) throw new MeasureError('BAD_OPTION', `page GPA 0x${gpa.toString(16)} is not a 4 KiB aligned u64`);
    const info = this.info;
    info.set(contents, 0x30);
    info[0x62] = type;
    this.view.setBigUint64(0x68, gpa, true);
    this.onPageInfo?.(info);
    info.set(hashOnce(this.sha, info, SHA384_LEN), 0);
    this.steps++;
  }

  /** The current launch digest (a copy). */
  digest(): Uint8Array {
    return this.info.slice(0, SHA384_LEN);
  }
}
