/**
 * What QEMU + KVM measure when they launch an SNP guest from OVMF (MEASUREMENT.md §1.3), as a plan
 * of SNP_LAUNCH_UPDATE calls, and the launch digest that plan produces.
 *
 * Order (QEMU target/i386/sev.c; KVM sev_gmem_post_populate walks each update 4 KiB at a time in
 * ascending GPA, and LAUNCH_FINISH measures the VMSAs):
 *  1. the firmware file as NORMAL pages, mapped to end at 4 GiB;
 *  2. the OVMF SEV metadata sections in table order: SEC_MEM and SVSM_CAA as ZERO pages (GCE:
 *     SEC_MEM UNMEASURED), one SECRETS page, one CPUID page (EC2: CPUID pages after all the others),
 *     KERNEL_HASHES as one NORMAL page holding the hashes table when a kernel is given, else ZERO;
 *  3. one VMSA per vCPU at LAUNCH_FINISH, BSP first.
 * The plan is what a model VMM replays through its emulated uAPI; snpLaunchDigest folds it.
 */
import { PAGE } from './bytes.js';
import { check, MeasureError } from './errors.js';
import { SNP_PAGE_TYPE, SnpGuestContext, type SnpPageType, VMSA_GPA } from './gctx.js';
import type { Sha384Factory } from './hash.js';
import { entryU32, imageGpa, OVMF_GUID, type OvmfImage, parseOvmf, sevEsResetEip, sevHashTableArea } from './ovmf.js';
import { type SevKernelHashes, sevHashPage } from './sev-hashes.js';
import { checkNoOverlap, parseSevMetadata, SEV_SECTION, SEV_SECTION_NAME, type SevSection, sectionPages } from './sev-metadata.js';
import { BSP_EIP, buildSvsmVmsa, buildVmsa, resolveVcpuSig, VMM_TYPES, type VmmType } from './vmsa.js';

/** One SNP_LAUNCH_UPDATE (or, for VMSAs, one LAUNCH_FINISH page): `length / 4096` measured pages. */
export interface SnpLaunchUpdate {
  readonly type: SnpPageType;
  readonly gpa: bigint;
  /** bytes; a multiple of 4096 */
  readonly length: number;
  /**
   * the measured bytes of NORMAL and VMSA updates (`length` bytes). Absent for the other types:
   * their CONTENTS field is zero (QEMU fills the CPUID page, the PSP the secrets page, unmeasured).
   */
  readonly data?: Uint8Array;
  /** what the range is, for logs: 'firmware', 'SNP_SEC_MEM[0]', 'VMSA vCPU 1', … */
  readonly what: string;
}

/** One measured 4 KiB page (one PAGE_INFO step). */
export interface SnpMeasuredPage {
  readonly type: SnpPageType;
  readonly gpa: bigint;
  /** the page's bytes, for NORMAL and VMSA pages */
  readonly page?: Uint8Array;
}

export interface SnpOptions {
  /** vCPUs; each gets a VMSA (1..4096) */
  vcpus: number;
  /** QEMU CPU model (VCPU_TYPES), e.g. 'EPYC-v4'; or give vcpuSig */
  vcpuType?: string;
  /** CPUID 1.EAX signature, overriding vcpuType */
  vcpuSig?: number;
  /** SEV_FEATURES of the VMSAs (sev-snp-measure default 0x1 = SNPActive) */
  guestFeatures?: bigint;
  vmmType?: VmmType;
  /** measured direct boot (QEMU -kernel with kernel-hashes=on) */
  kernelHashes?: SevKernelHashes;
  /** a launch digest to start from instead of measuring the firmware pages (sev-snp-measure --snp-ovmf-hash) */
  ovmfHash?: Uint8Array;
}

/** KVM_MAX_VCPUS on x86-64. */
export const MAX_VCPUS = 4096;

function checkVcpus(n: number): void {
  check(Number.isInteger(n) && n >= 1 && n <= MAX_VCPUS, 'BAD_OPTION', `vCPU count ${n} is outside 1..${MAX_VCPUS}`);
}

function sectionName(s: SevSection): string {
  return `${SEV_SECTION_NAME[s.type]}[${s.index}]`;
}

/**
 * The metadata-section updates of an SNP launch (step 2), shared by the OVMF and SVSM flows.
 */
function metadataUpdates(img: OvmfImage, sections: readonly SevSection[], vmm: VmmType, kernel: SevKernelHashes | undefined): SnpLaunchUpdate[] {
  const out: SnpLaunchUpdate[] = [];
  const range = (type: SnpPageType, s: SevSection, pages: number) => {
    if (pages > 0) out.push({ type, gpa: BigInt(s.gpa), length: pages * PAGE, what: sectionName(s) });
  };
  for (const s of sections) {
    const { pages } = sectionPages(s);
    switch (s.type) {
      case SEV_SECTION.SNP_SEC_MEM:
        range(vmm === 'gce' ? SNP_PAGE_TYPE.UNMEASURED : SNP_PAGE_TYPE.ZERO, s, pages);
        break;
      case SEV_SECTION.SNP_SECRETS:
        range(SNP_PAGE_TYPE.SECRETS, s, 1);
        break;
      case SEV_SECTION.CPUID:
        // EC2 loads the CPUID page last (sev-snp-measure guest.py, snp_update_metadata_pages).
        if (vmm !== 'ec2') range(SNP_PAGE_TYPE.CPUID, s, 1);
        break;
      case SEV_SECTION.SVSM_CAA:
        range(SNP_PAGE_TYPE.ZERO, s, pages);
        break;
      case SEV_SECTION.SNP_KERNEL_HASHES:
        if (kernel) out.push({ type: SNP_PAGE_TYPE.NORMAL, gpa: BigInt(s.gpa), length: PAGE, data: kernelHashesPage(img, s, kernel), what: sectionName(s) });
        else range(SNP_PAGE_TYPE.ZERO, s, pages);
        break;
    }
  }
  if (vmm === 'ec2') for (const s of sections) if (s.type === SEV_SECTION.CPUID) range(SNP_PAGE_TYPE.CPUID, s, 1);
  if (kernel && !sections.some((s) => s.type === SEV_SECTION.SNP_KERNEL_HASHES)) {
    // sev-snp-measure's wording, so users searching for it find the same cause.
    throw new MeasureError('MISSING', "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section");
  }
  return out;
}

/** The page QEMU fills for SNP_KERNEL_HASHES: the table at the hash-table GPA's offset in the section's page. */
function kernelHashesPage(img: OvmfImage, s: SevSection, kernel: SevKernelHashes): Uint8Array {
  check(s.size === PAGE, 'UNSUPPORTED', `SNP_KERNEL_HASHES section is 0x${s.size.toString(16)} bytes; measured direct boot needs exactly one page`);
  const area = sevHashTableArea(img);
  check(area !== undefined, 'MISSING', "Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement (no SEV hash table entry)");
  check(
    area.gpa >= s.gpa && area.gpa < s.gpa + PAGE,
    'OUT_OF_RANGE',
    `SEV hash table GPA 0x${area.gpa.toString(16)} is outside the SNP_KERNEL_HASHES page at 0x${s.gpa.toString(16)}`,
  );
  return sevHashPage(kernel, area.gpa - s.gpa);
}

function vmsaUpdates(pages: Uint8Array[]): SnpLaunchUpdate[] {
  return pages.map((data, i) => ({ type: SNP_PAGE_TYPE.VMSA, gpa: VMSA_GPA, length: PAGE, data, what: `VMSA vCPU ${i}` }));
}

function overlapCheck(ranges: { gpa: number; length: number; what: string }[], sections: readonly SevSection[]): void {
  checkNoOverlap([
    ...ranges.map((r) => ({ gpa: r.gpa, pages: r.length / PAGE, what: r.what })),
    ...sections.map((s) => ({ ...sectionPages(s), what: `SEV metadata ${sectionName(s)}` })),
  ]);
}

/**
 * The SNP launch of OVMF as QEMU/KVM perform it, update by update.
 * @example for (const u of snpLaunchPlan(fw, { vcpus: 2, vcpuType: 'EPYC-v4' })) vm.snpLaunchUpdate(u)
 */
export function snpLaunchPlan(image: Uint8Array | OvmfImage, opts: SnpOptions): SnpLaunchUpdate[] {
  const img = parseOvmf(image);
  checkVcpus(opts.vcpus);
  const vmm = opts.vmmType ?? 'qemu';
  check(VMM_TYPES.includes(vmm), 'BAD_OPTION', `unknown VMM type ${JSON.stringify(vmm)}`);
  if (opts.ovmfHash) check(opts.ovmfHash.length === 48, 'BAD_OPTION', `the OVMF hash seed must be 48 bytes, got ${opts.ovmfHash.length}`);
  const vcpuSig = resolveVcpuSig({ ...opts, vmm });
  const sevFeatures = opts.guestFeatures ?? 1n;
  const sections = parseSevMetadata(img);
  // sev-snp-measure builds the AP VMSA even for one vCPU, so a missing reset block is an error there
  // too; matching it keeps "no footer table" from silently producing a digest QEMU could not.
  const apEip = sevEsResetEip(img);
  const fwGpa = imageGpa(img);
  overlapCheck([{ gpa: fwGpa, length: img.bytes.length, what: 'firmware' }], sections);

  const updates: SnpLaunchUpdate[] = [];
  if (!opts.ovmfHash) updates.push({ type: SNP_PAGE_TYPE.NORMAL, gpa: BigInt(fwGpa), length: img.bytes.length, data: img.bytes, what: 'firmware' });
  updates.push(...metadataUpdates(img, sections, vmm, opts.kernelHashes));
  const bsp = buildVmsa({ eip: BSP_EIP, sevFeatures, vcpuSig, vmm });
  const ap = opts.vcpus > 1 ? buildVmsa({ eip: apEip, sevFeatures, vcpuSig, vmm }) : bsp;
  updates.push(...vmsaUpdates(Array.from({ length: opts.vcpus }, (_, i) => (i === 0 ? bsp : ap))));
  return updates;
}

/** Every measured page of a plan, in order (KVM walks each update 4 KiB at a time). */
export function* snpMeasuredPages(plan: Iterable<SnpLaunchUpdate>): Generator<SnpMeasuredPage> {
  for (const u of plan) {
    for (let off = 0; off < u.length; off += PAGE) {
      const gpa = u.gpa + BigInt(off);
      if (u.data) yield { type: u.type, gpa, page: u.data.subarray(off, off + PAGE) };
      else yield { type: u.type, gpa };
    }
  }
}

/**
 * Fold a plan into the launch digest. `seed` is the digest to start from (48 zero bytes at
 * SNP_LAUNCH_START); `onPageInfo` sees every 112-byte PAGE_INFO before it is hashed.
 */
export function snpDigestOfPlan(
  plan: Iterable<SnpLaunchUpdate>,
  sha: Sha384Factory,
  seed?: Uint8Array,
  onPageInfo?: (pageInfo: Uint8Array) => void,
): Uint8Array {
  const g = new SnpGuestContext(sha, seed, onPageInfo);
  // snpMeasuredPages without its per-page objects: this loop runs once per guest page.
  for (const u of plan) {
    for (let off = 0; off < u.length; off += PAGE) g.measure(u.type, u.gpa + BigInt(off), u.data?.subarray(off, off + PAGE));
  }
  return g.digest();
}

/**
 * The SNP launch digest (the attestation report's MEASUREMENT) of an OVMF launch.
 * @example toHex(snpLaunchDigest(fw, { vcpus: 4, vcpuType: 'EPYC-Milan', guestFeatures: 0x21n }, sha384))
 */
export function snpLaunchDigest(image: Uint8Array | OvmfImage, opts: SnpOptions, sha: Sha384Factory): Uint8Array {
  return snpDigestOfPlan(snpLaunchPlan(image, opts), sha, opts.ovmfHash);
}

/**
 * The digest after the firmware pages alone (sev-snp-measure --mode snp:ovmf-hash), which can seed
 * later computations through SnpOptions.ovmfHash.
 */
export function snpOvmfHash(image: Uint8Array | OvmfImage, sha: Sha384Factory): Uint8Array {
  const img = parseOvmf(image);
  parseSevMetadata(img); // reject a malformed image here too, as the reference tool does
  return snpDigestOfPlan([{ type: SNP_PAGE_TYPE.NORMAL, gpa: BigInt(imageGpa(img)), length: img.bytes.length, data: img.bytes, what: 'firmware' }], sha);
}

export interface SvsmOptions {
  vcpus: number;
  vcpuType?: string;
  vcpuSig?: number;
  /** size of the OVMF_VARS flash QEMU maps just below the OVMF code; the SVSM image ends where it starts */
  varsSize: number;
}

/**
 * SNP with Coconut SVSM (sev-snp-measure --mode snp:svsm, coconut-svsm QEMU): OVMF pages, then the
 * SVSM image pages ending below the OVMF vars, then the SVSM's own SEV metadata, then identical
 * SVSM VMSAs for every vCPU.
 */
export function svsmLaunchPlan(ovmf: Uint8Array | OvmfImage, svsm: Uint8Array | OvmfImage, opts: SvsmOptions): SnpLaunchUpdate[] {
  const o = parseOvmf(ovmf);
  const s = parseOvmf(svsm);
  checkVcpus(opts.vcpus);
  check(Number.isSafeInteger(opts.varsSize) && opts.varsSize >= 0, 'BAD_OPTION', `OVMF vars size ${opts.varsSize} is not a byte count`);
  check(opts.varsSize % PAGE === 0, 'UNALIGNED', `OVMF vars size 0x${opts.varsSize.toString(16)} is not a multiple of 4 KiB`);
  const vcpuSig = resolveVcpuSig(opts);
  const ovmfGpa = imageGpa(o);
  const svsmGpa = imageGpa(s, ovmfGpa - opts.varsSize);
  const sections = parseSevMetadata(s);
  const entry = entryU32(s, OVMF_GUID.SVSM_INFO, 'SVSM info');
  check(entry !== undefined, 'MISSING', 'SVSM image has no SVSM info entry (GUID a789a612-…) in its table');
  const eip = svsmGpa + entry;
  check(eip <= 0xffffffff, 'OUT_OF_RANGE', `SVSM entry point 0x${eip.toString(16)} is above 4 GiB`);
  overlapCheck(
    [
      { gpa: ovmfGpa, length: o.bytes.length, what: 'OVMF' },
      { gpa: svsmGpa, length: s.bytes.length, what: 'SVSM' },
    ],
    sections,
  );
  const vmsa = buildSvsmVmsa(eip, vcpuSig);
  return [
    { type: SNP_PAGE_TYPE.NORMAL, gpa: BigInt(ovmfGpa), length: o.bytes.length, data: o.bytes, what: 'OVMF' },
    { type: SNP_PAGE_TYPE.NORMAL, gpa: BigInt(svsmGpa), length: s.bytes.length, data: s.bytes, what: 'SVSM' },
    ...metadataUpdates(s, sections, 'qemu', undefined),
    ...vmsaUpdates(Array.from({ length: opts.vcpus }, () => vmsa)),
  ];
}

export function svsmLaunchDigest(ovmf: Uint8Array | OvmfImage, svsm: Uint8Array | OvmfImage, opts: SvsmOptions, sha: Sha384Factory): Uint8Array {
  return snpDigestOfPlan(svsmLaunchPlan(ovmf, svsm, opts), sha);
}
