/**
 * OVMF SEV metadata, the "ASEV" block (MEASUREMENT.md §1.5; edk2 OvmfPkg/ResetVector/X64/
 * OvmfSevMetadata.asm; QEMU pc_system_parse_sev_metadata). The footer-table entry dc886566-… holds a
 * u32 offset from the end of the image to the header `"ASEV", u32 size, u32 version = 1, u32 n`,
 * followed by n items `u32 gpa, u32 size, u32 type`. Each item is guest memory the VMM populates
 * before launch: with SNP, every page of it goes through SNP_LAUNCH_UPDATE and into the digest.
 */
import { PAGE } from './bytes.js';
import { check, MeasureError } from './errors.js';
import { OVMF_GUID, type OvmfImage } from './ovmf.js';

/** Section types (OvmfSevMetadata.asm). */
export const SEV_SECTION = {
  SNP_SEC_MEM: 1,
  SNP_SECRETS: 2,
  CPUID: 3,
  SVSM_CAA: 4,
  SNP_KERNEL_HASHES: 0x10,
} as const;
export type SevSectionType = (typeof SEV_SECTION)[keyof typeof SEV_SECTION];
export const SEV_SECTION_NAME: Record<SevSectionType, string> = {
  1: 'SNP_SEC_MEM',
  2: 'SNP_SECRETS',
  3: 'CPUID',
  4: 'SVSM_CAA',
  16: 'SNP_KERNEL_HASHES',
};

export interface SevSection {
  /** position in the metadata table (0-based); the measurement follows this order */
  readonly index: number;
  readonly gpa: number;
  readonly size: number;
  readonly type: SevSectionType;
}

const HEADER = 16;
const ITEM = 12;
/** Far more sections than any OVMF has (7 today); the bound keeps a corrupt count from meaning work. */
const MAX_SECTIONS = 256;
const FOUR_GIB = 0x1_0000_0000;

/**
 * The SEV metadata sections in table order, or [] when the image has no SEV metadata entry.
 * Rejects a bad signature or version, a header or item list outside the image, a size field that does
 * not match the count, an unknown type, unaligned or 4 GiB-crossing sections, and sections that
 * overlap each other (KVM refuses to populate a page twice).
 */
export function parseSevMetadata(img: OvmfImage): SevSection[] {
  const entry = img.table.get(OVMF_GUID.SEV_METADATA);
  if (!entry) return [];
  check(entry.data.length >= 4, 'TRUNCATED', `SEV metadata table entry has ${entry.data.length} data bytes, needs 4`);
  const r = img.reader;
  const fromEnd = r.u32(entry.offset, 'SEV metadata offset');
  const start = r.length - fromEnd;
  check(fromEnd <= r.length, 'OUT_OF_RANGE', `SEV metadata offset 0x${fromEnd.toString(16)} from the end lies before the start of the image`);
  r.need(start, HEADER, 'SEV metadata header');
  const sig = String.fromCharCode(...r.slice(start, 4, 'SEV metadata signature'));
  check(sig === 'ASEV', 'BAD_SIGNATURE', `SEV metadata signature is ${JSON.stringify(sig)}, expected "ASEV"`);
  const size = r.u32(start + 4, 'SEV metadata size');
  const version = r.u32(start + 8, 'SEV metadata version');
  const n = r.u32(start + 12, 'SEV metadata item count');
  check(version === 1, 'BAD_SIGNATURE', `SEV metadata version ${version}, only 1 is defined`);
  check(n <= MAX_SECTIONS, 'ABSURD', `SEV metadata claims ${n} sections`);
  check(size === HEADER + ITEM * n, 'ABSURD', `SEV metadata size ${size} does not match ${n} sections (expected ${HEADER + ITEM * n})`);
  r.need(start, size, 'SEV metadata sections');

  const out: SevSection[] = [];
  for (let i = 0; i < n; i++) {
    const at = start + HEADER + ITEM * i;
    const gpa = r.u32(at, 'SEV section gpa');
    const len = r.u32(at + 4, 'SEV section size');
    const type = r.u32(at + 8, 'SEV section type');
    check(type in SEV_SECTION_NAME, 'UNSUPPORTED', `SEV metadata section ${i} has unknown type 0x${type.toString(16)}`);
    check(
      gpa % PAGE === 0 && len % PAGE === 0,
      'UNALIGNED',
      `SEV metadata section ${i} (gpa 0x${gpa.toString(16)}, size 0x${len.toString(16)}) is not 4 KiB aligned`,
    );
    check(gpa + len <= FOUR_GIB, 'OUT_OF_RANGE', `SEV metadata section ${i} (gpa 0x${gpa.toString(16)}, size 0x${len.toString(16)}) crosses 4 GiB`);
    out.push({ index: i, gpa, size: len, type: type as SevSectionType });
  }
  return out;
}

/**
 * The guest pages a section contributes under SNP: SECRETS and CPUID are one page at gpa whatever
 * their size (QEMU/sev-snp-measure), every other type covers [gpa, gpa+size), possibly nothing.
 */
export function sectionPages(s: SevSection): { gpa: number; pages: number } {
  if (s.type === SEV_SECTION.SNP_SECRETS || s.type === SEV_SECTION.CPUID) return { gpa: s.gpa, pages: 1 };
  return { gpa: s.gpa, pages: s.size / PAGE };
}

/** Throw OVERLAP if any two of the ranges (gpa in bytes, pages) share a page. */
export function checkNoOverlap(ranges: readonly { gpa: number; pages: number; what: string }[]): void {
  const sorted = ranges.filter((x) => x.pages > 0).sort((a, b) => a.gpa - b.gpa);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1] as (typeof sorted)[number];
    const b = sorted[i] as (typeof sorted)[number];
    if (a.gpa + a.pages * PAGE > b.gpa) {
      throw new MeasureError(
        'OVERLAP',
        `${a.what} [0x${a.gpa.toString(16)}, 0x${(a.gpa + a.pages * PAGE).toString(16)}) overlaps ${b.what} at 0x${b.gpa.toString(16)}`,
      );
    }
  }
}
