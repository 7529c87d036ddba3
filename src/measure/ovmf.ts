/**
 * The OVMF GUIDed footer table (MEASUREMENT.md §1.4; edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm,
 * parsed by QEMU's pc_system_parse_ovmf_flash). The last 32 bytes of the image hold the reset vector;
 * just before them sits the footer entry `u16 total_len || GUID 96b582de-…`. Going backwards from the
 * footer, each entry is laid out `data || u16 entry_len || GUID`, entry_len counting the 18-byte
 * trailer. SEV and TDX both find their metadata through this table.
 *
 * No footer GUID means no table (not an error: QEMU and sev-snp-measure carry on without it). A
 * table that claims more bytes than the image has, or an entry shorter than its own trailer, is.
 */
import { guidBytes, PAGE, Reader } from './bytes.js';
import { check, MeasureError } from './errors.js';

export const OVMF_GUID = {
  TABLE_FOOTER: '96b582de-1fb2-45f7-baea-a366c55a082d',
  SEV_ES_RESET_BLOCK: '00f771de-1a7e-4fcb-890e-68c77e2fb44e',
  SEV_METADATA: 'dc886566-984a-4798-a75e-5585a7bf67cc',
  SEV_HASH_TABLE: '7255371f-3a3b-4b04-927b-1da6efa8d454',
  SEV_SECRET_BLOCK: '4c2eb361-7d9b-4cc3-8081-127c90d3d294',
  TDX_METADATA: 'e47a6535-984a-4798-865e-4685a7bf8ec2',
  SVSM_INFO: 'a789a612-0597-4c4b-a49f-cbb1fe9d1ddd',
} as const;

/** Bytes from the end of the image to the end of the table: the reset-vector area. */
const RESET_AREA = 32;
/** u16 length + GUID at the end of every entry, the footer included. */
const TRAILER = 18;
const FOUR_GIB = 0x1_0000_0000;

export interface OvmfTableEntry {
  readonly guid: string;
  /** the entry's data bytes (a view into the image) */
  readonly data: Uint8Array;
  /** file offset of data[0] */
  readonly offset: number;
}

/** A firmware image with its footer table parsed. Metadata is parsed on demand (sev-metadata.ts, tdvf.ts). */
export interface OvmfImage {
  readonly bytes: Uint8Array;
  readonly reader: Reader;
  /** entries by lower-case GUID string; empty when the image has no footer table */
  readonly table: ReadonlyMap<string, OvmfTableEntry>;
  readonly hasTable: boolean;
}

/**
 * Parse the footer table of a firmware image. The image must be a whole number of 4 KiB pages (it is
 * mapped page by page below 4 GiB) and at most 4 GiB.
 * @example const img = parseOvmf(bytes); img.table.get(OVMF_GUID.SEV_ES_RESET_BLOCK)
 */
export function parseOvmf(bytes: Uint8Array | OvmfImage): OvmfImage {
  if (!(bytes instanceof Uint8Array)) return bytes;
  const size = bytes.length;
  check(size > 0, 'TRUNCATED', 'firmware image is empty');
  check(size % PAGE === 0, 'UNALIGNED', `firmware image size 0x${size.toString(16)} is not a multiple of 4 KiB`);
  check(size <= FOUR_GIB, 'ABSURD', `firmware image of 0x${size.toString(16)} bytes does not fit below 4 GiB`);
  const reader = new Reader(bytes);
  const table = new Map<string, OvmfTableEntry>();
  const footerAt = size - RESET_AREA - TRAILER;
  if (footerAt < 0 || !sameBytes(bytes, footerAt + 2, FOOTER)) return { bytes, reader, table, hasTable: false };

  const total = reader.u16(footerAt, 'OVMF footer length');
  check(total >= TRAILER, 'TRUNCATED', `OVMF footer table length ${total} is shorter than the footer itself`);
  const start = footerAt - (total - TRAILER);
  check(start >= 0, 'OUT_OF_RANGE', `OVMF footer table (${total} bytes) extends before the start of the image`);
  // Walk backwards from the footer. QEMU and sev-snp-measure both stop when fewer than a trailer's
  // bytes remain, so a short remainder is padding, not an error.
  let end = footerAt;
  while (end - start >= TRAILER) {
    const len = reader.u16(end - TRAILER, 'OVMF table entry length');
    const guid = reader.guid(end - 16, 'OVMF table entry GUID');
    check(len >= TRAILER, 'TRUNCATED', `OVMF table entry ${guid} has length ${len}, shorter than its 18-byte trailer`);
    check(end - len >= start, 'OUT_OF_RANGE', `OVMF table entry ${guid} (length ${len}) runs past the start of the table`);
    // QEMU takes the entry nearest the footer, sev-snp-measure the farthest; a repeated GUID would
    // make the two disagree, so refuse it.
    check(!table.has(guid), 'UNSUPPORTED', `OVMF table lists GUID ${guid} twice`);
    const offset = end - len;
    table.set(guid, { guid, data: bytes.subarray(offset, end - TRAILER), offset });
    end -= len;
  }
  return { bytes, reader, table, hasTable: true };
}

const FOOTER = guidBytes(OVMF_GUID.TABLE_FOOTER);

function sameBytes(hay: Uint8Array, at: number, needle: Uint8Array): boolean {
  if (at < 0 || at + needle.length > hay.length) return false;
  for (let i = 0; i < needle.length; i++) if (hay[at + i] !== needle[i]) return false;
  return true;
}

/** The u32 at the start of a table entry's data (every entry measure/ uses starts with one). */
export function entryU32(img: OvmfImage, guid: string, name: string, index = 0): number | undefined {
  const e = img.table.get(guid);
  if (!e) return undefined;
  if (e.data.length < 4 * (index + 1))
    throw new MeasureError('TRUNCATED', `OVMF table entry ${name} has ${e.data.length} data bytes, needs ${4 * (index + 1)}`);
  return img.reader.u32(e.offset + 4 * index, name);
}

/** The AP reset EIP from the SEV-ES reset block; SEV-ES and SNP need it to build AP VMSAs. */
export function sevEsResetEip(img: OvmfImage): number {
  const eip = entryU32(img, OVMF_GUID.SEV_ES_RESET_BLOCK, 'SEV-ES reset block');
  if (eip === undefined) {
    throw new MeasureError(
      'MISSING',
      img.hasTable ? 'OVMF table has no SEV-ES reset block (GUID 00f771de-…)' : 'firmware has no OVMF footer table, so no SEV-ES reset block',
    );
  }
  return eip;
}

/**
 * The SEV hash table area (GPA, size) for measured direct boot, or undefined when absent or at GPA 0
 * (how OVMF builds without kernel-hashes support say "unsupported"). Only the GPA is needed; the
 * size, when the entry carries it, is informational.
 */
export function sevHashTableArea(img: OvmfImage): { gpa: number; size: number } | undefined {
  const gpa = entryU32(img, OVMF_GUID.SEV_HASH_TABLE, 'SEV hash table');
  if (gpa === undefined || gpa === 0) return undefined;
  const e = img.table.get(OVMF_GUID.SEV_HASH_TABLE) as OvmfTableEntry;
  return { gpa, size: e.data.length >= 8 ? img.reader.u32(e.offset + 4, 'SEV hash table size') : 0 };
}

/** Guest-physical base of an image mapped to end at `endAt` (4 GiB for the firmware flash). */
export function imageGpa(img: OvmfImage, endAt = FOUR_GIB): number {
  const gpa = endAt - img.bytes.length;
  check(gpa >= 0, 'OUT_OF_RANGE', `an image of 0x${img.bytes.length.toString(16)} bytes cannot end at 0x${endAt.toString(16)}`);
  return gpa;
}
