/**
 * The one error class of measure/. Every malformed input (a truncated image, a bad GUID or signature,
 * a section outside the image or overlapping another, an absurd count, a missing table entry, a bad
 * option) is a MeasureError with a stable code; no other exception leaves the parsers, and no read
 * goes outside the image (tests/measure/fuzz.test.ts holds the code to that).
 */

export type MeasureErrorCode =
  /** the image (or a structure inside it) ends before the bytes a field needs */
  | 'TRUNCATED'
  /** a signature ("ASEV", "TDVF") or version that is not the one defined */
  | 'BAD_SIGNATURE'
  /** a GUID that must be present at a fixed place is not */
  | 'BAD_GUID'
  /** a section or table whose bytes or GPAs fall outside the image or the address space */
  | 'OUT_OF_RANGE'
  /** two measured ranges cover the same guest page (KVM would refuse the second population) */
  | 'OVERLAP'
  /** a count or size no real firmware has (number of sections, pages, vCPUs) */
  | 'ABSURD'
  /** an address or size that is not a multiple of 4 KiB */
  | 'UNALIGNED'
  /** a table entry or section the requested measurement needs is absent */
  | 'MISSING'
  /** a section type, attribute or GUID listed twice that the VMM being modelled would refuse */
  | 'UNSUPPORTED'
  /** a caller option out of range (vCPU count, type, hash lengths) */
  | 'BAD_OPTION';

export class MeasureError extends Error {
  override readonly name = 'MeasureError';
  constructor(
    readonly code: MeasureErrorCode,
    message: string,
  ) {
    super(message);
  }
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** Throw a MeasureError when cond is false (one rule per line at the call site, like the kernel's checks). */
export function check(cond: boolean, code: MeasureErrorCode, message: string): asserts cond {
  if (!cond) throw new MeasureError(code, message);
}
