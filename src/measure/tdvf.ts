/**
 * TDVF metadata, the "TDX metadata" of OVMF (MEASUREMENT.md §2.2; TDVF Design Guide §11; edk2
 * OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm; QEMU hw/i386/tdvf.c). The footer-table entry
 * e47a6535-… holds a u32 offset from the end of the image to the descriptor
 * `"TDVF", u32 length = 16 + 32·n, u32 version = 1, u32 n`, preceded by the GUID e9eaf9f3-…, and
 * followed by n sections `u32 DataOffset, u32 RawDataSize, u64 MemoryAddress, u64 MemoryDataSize,
 * u32 Type, u32 Attributes`. QEMU turns each section into one KVM_TDX_INIT_MEM_REGION.
 *
 * The checks are QEMU's (tdvf_parse_metadata, tdvf_parse_and_check_section_entry) plus the ones that
 * keep a model honest: data inside the file, GPAs inside the 52-bit space, no two sections on the
 * same page, and a bound on the total page count.
 */
import { guidBytes, PAGE } from './bytes.js';
import { check, MeasureError } from './errors.js';
import { OVMF_GUID, type OvmfImage } from './ovmf.js';

export const TDVF_SECTION = { BFV: 0, CFV: 1, TD_HOB: 2, TEMP_MEM: 3 } as const;
export type TdvfSectionType = (typeof TDVF_SECTION)[keyof typeof TDVF_SECTION];
export const TDVF_SECTION_NAME: Record<TdvfSectionType, string> = { 0: 'BFV', 1: 'CFV', 2: 'TD_HOB', 3: 'TEMP_MEM' };

/** Section attribute bits. PAGE_AUG is td-shim's "accept later, do not PAGE.ADD"; QEMU ignores it. */
export const TDVF_ATTR = { MR_EXTEND: 1, PAGE_AUG: 2 } as const;

export interface TdvfSection {
  readonly index: number;
  readonly dataOffset: number;
  readonly rawDataSize: number;
  readonly memoryAddress: bigint;
  readonly memoryDataSize: bigint;
  readonly type: TdvfSectionType;
  readonly attributes: number;
}

const DESCRIPTOR_GUID = guidBytes('e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae');
const HEADER = 16;
const SECTION = 32;
const MAX_SECTIONS = 256;
/** TDX guest physical addresses are at most 52 bits wide. */
const GPA_LIMIT = 1n << 52n;
/** 4 GiB of initial private memory: more than any TDVF declares, small enough to measure. */
export const TDX_MAX_PAGES = 1 << 20;

/**
 * The TDVF sections in metadata order.
 * @example parseTdvf(parseOvmf(bytes)).map((s) => s.memoryAddress)
 */
export function parseTdvf(img: OvmfImage): TdvfSection[] {
  const entry = img.table.get(OVMF_GUID.TDX_METADATA);
  if (!entry) {
    throw new MeasureError(
      'MISSING',
      img.hasTable ? 'OVMF table has no TDX metadata entry (GUID e47a6535-…)' : 'firmware has no OVMF footer table, so no TDX metadata',
    );
  }
  check(entry.data.length >= 4, 'TRUNCATED', `TDX metadata table entry has ${entry.data.length} data bytes, needs 4`);
  const r = img.reader;
  const S = r.length;
  const fromEnd = r.u32(entry.offset, 'TDX metadata offset');
  check(fromEnd <= S, 'OUT_OF_RANGE', `TDX metadata offset 0x${fromEnd.toString(16)} from the end lies before the start of the image`);
  const at = S - fromEnd;
  const guid = r.slice(at - 16, 16, 'TDX metadata GUID');
  check(
    guid.every((b, i) => b === DESCRIPTOR_GUID[i]),
    'BAD_GUID',
    `no TDX metadata GUID e9eaf9f3-… before the descriptor at 0x${at.toString(16)} (is this the code-only OVMF_CODE.fd? TDX needs the unified image)`,
  );
  const sig = String.fromCharCode(...r.slice(at, 4, 'TDVF signature'));
  check(sig === 'TDVF', 'BAD_SIGNATURE', `TDVF descriptor signature is ${JSON.stringify(sig)}, expected "TDVF"`);
  const length = r.u32(at + 4, 'TDVF length');
  const version = r.u32(at + 8, 'TDVF version');
  const n = r.u32(at + 12, 'TDVF section count');
  check(version === 1, 'BAD_SIGNATURE', `TDVF metadata version ${version}, only 1 is defined`);
  // QEMU: at least a BFV and a TD_HOB, and the length must be exact.
  check(n >= 2 && n <= MAX_SECTIONS, 'ABSURD', `TDVF metadata claims ${n} sections`);
  check(length === HEADER + SECTION * n, 'ABSURD', `TDVF length ${length} does not match ${n} sections (expected ${HEADER + SECTION * n})`);
  r.need(at, length, 'TDVF sections');

  const out: TdvfSection[] = [];
  let pages = 0;
  for (let i = 0; i < n; i++) {
    const p = at + HEADER + SECTION * i;
    const s: TdvfSection = {
      index: i,
      dataOffset: r.u32(p, 'TDVF DataOffset'),
      rawDataSize: r.u32(p + 4, 'TDVF RawDataSize'),
      memoryAddress: r.u64(p + 8, 'TDVF MemoryAddress'),
      memoryDataSize: r.u64(p + 16, 'TDVF MemoryDataSize'),
      type: r.u32(p + 24, 'TDVF Type') as TdvfSectionType,
      attributes: r.u32(p + 28, 'TDVF Attributes'),
    };
    checkSection(s, S);
    pages += Number(s.memoryDataSize / BigInt(PAGE));
    check(pages <= TDX_MAX_PAGES, 'ABSURD', `TDVF sections add up to more than ${TDX_MAX_PAGES} pages`);
    out.push(s);
  }
  checkNoGpaOverlap(out);
  return out;
}

function checkSection(s: TdvfSection, fileSize: number): void {
  const name = `TDVF section ${s.index}`;
  check(s.type in TDVF_SECTION_NAME, 'UNSUPPORTED', `${name} has type ${s.type}; QEMU supports BFV, CFV, TD_HOB and TEMP_MEM`);
  check(
    (s.attributes & ~TDVF_ATTR.MR_EXTEND) === 0,
    'UNSUPPORTED',
    `${name} has attributes 0x${s.attributes.toString(16)}; only MR_EXTEND (bit 0) is defined for OVMF`,
  );
  check(s.memoryAddress % BigInt(PAGE) === 0n, 'UNALIGNED', `${name} MemoryAddress 0x${s.memoryAddress.toString(16)} is not 4 KiB aligned`);
  check(s.memoryDataSize % BigInt(PAGE) === 0n, 'UNALIGNED', `${name} MemoryDataSize 0x${s.memoryDataSize.toString(16)} is not 4 KiB aligned`);
  check(
    s.memoryDataSize >= BigInt(s.rawDataSize),
    'ABSURD',
    `${name} RawDataSize 0x${s.rawDataSize.toString(16)} exceeds MemoryDataSize 0x${s.memoryDataSize.toString(16)}`,
  );
  check(
    s.memoryAddress + s.memoryDataSize <= GPA_LIMIT,
    'OUT_OF_RANGE',
    `${name} at 0x${s.memoryAddress.toString(16)} extends past the 52-bit guest physical space`,
  );
  const copied = s.type === TDVF_SECTION.BFV || s.type === TDVF_SECTION.CFV;
  if (copied) {
    check(s.rawDataSize > 0, 'ABSURD', `${name} (${TDVF_SECTION_NAME[s.type]}) has no raw data`);
    // QEMU hands KVM the flash mapping at DataOffset for MemoryDataSize bytes; all of it must be in the file.
    check(
      BigInt(s.dataOffset) + s.memoryDataSize <= BigInt(fileSize),
      'OUT_OF_RANGE',
      `${name} data [0x${s.dataOffset.toString(16)}, +0x${s.memoryDataSize.toString(16)}) lies outside the 0x${fileSize.toString(16)}-byte image`,
    );
  } else {
    check(s.rawDataSize === 0, 'ABSURD', `${name} (${TDVF_SECTION_NAME[s.type]}) must not carry raw data`);
    check((s.attributes & TDVF_ATTR.MR_EXTEND) === 0, 'UNSUPPORTED', `${name} (${TDVF_SECTION_NAME[s.type]}) has no data to extend but sets MR_EXTEND`);
  }
}

function checkNoGpaOverlap(sections: readonly TdvfSection[]): void {
  const sorted = sections
    .filter((s) => s.memoryDataSize > 0n)
    .sort((a, b) => (a.memoryAddress < b.memoryAddress ? -1 : a.memoryAddress > b.memoryAddress ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1] as TdvfSection;
    const b = sorted[i] as TdvfSection;
    if (a.memoryAddress + a.memoryDataSize > b.memoryAddress) {
      throw new MeasureError(
        'OVERLAP',
        `TDVF section ${a.index} [0x${a.memoryAddress.toString(16)}, +0x${a.memoryDataSize.toString(16)}) overlaps section ${b.index} at 0x${b.memoryAddress.toString(16)}`,
      );
    }
  }
}
