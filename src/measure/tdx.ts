/**
 * TDX MRTD (MEASUREMENT.md §2): one SHA-384 over 128-byte-aligned records, fed by the SEAMCALLs that
 * build the initial TD.
 *   TDH.MEM.PAGE.ADD(gpa):  "MEM.PAGE.ADD" ‖ 0⁴ ‖ u64 gpa ‖ 0¹⁰⁴            (page contents not measured)
 *   TDH.MR.EXTEND(gpa):     "MR.EXTEND" ‖ 0⁷ ‖ u64 gpa ‖ 0¹⁰⁴ ‖ 256 data bytes of the chunk
 * QEMU issues one KVM_TDX_INIT_MEM_REGION per TDVF section (flag MEASURE when the section has
 * MR_EXTEND). Which order the records come in depends on the stack:
 *  - 'per-page': upstream KVM ≥ 6.16 tdx_gmem_post_populate does, for each 4 KiB page, PAGE.ADD then
 *    16 × MR.EXTEND (QEMU 10.1+, the 9.x TDX trees; td-shim, virtee/tdx-measure).
 *  - 'per-section': the QEMU 8.x TDX stack added every page of a section, then extended them all.
 * The two give different MRTDs for the same image.
 */
import { PAGE } from './bytes.js';
import { check, MeasureError } from './errors.js';
import { checkLen, type Hasher, SHA384_LEN, type Sha384Factory } from './hash.js';
import { type OvmfImage, parseOvmf } from './ovmf.js';
import { parseTdvf, TDVF_ATTR, TDVF_SECTION, TDVF_SECTION_NAME, type TdvfSection } from './tdvf.js';

export type TdxOrder = 'per-page' | 'per-section';
export const TDX_ORDERS: readonly TdxOrder[] = ['per-page', 'per-section'];

/** TDX_EXTENDMR_CHUNKSIZE */
export const MR_EXTEND_CHUNK = 256;
const RECORD = 128;

/** One KVM_TDX_INIT_MEM_REGION, as QEMU's tdx_init_fw_mem_region issues it for a TDVF section. */
export interface TdxInitMemRegion {
  readonly section: TdvfSection;
  readonly gpa: bigint;
  readonly pages: number;
  /** the bytes copied in (BFV/CFV: the image at DataOffset); absent for TD_HOB/TEMP_MEM, whose contents are not measured */
  readonly source?: Uint8Array;
  /** KVM_TDX_MEASURE_MEMORY_REGION: every page is MR.EXTENDed after being added */
  readonly measure: boolean;
  readonly what: string;
}

export type TdxMeasureOp =
  | { readonly op: 'MEM.PAGE.ADD'; readonly gpa: bigint }
  | { readonly op: 'MR.EXTEND'; readonly gpa: bigint; readonly data: Uint8Array };

/** Something that takes the measurement SEAMCALLs in order (the MRTD context, or a log). */
export interface TdxMeasureSink {
  pageAdd(gpa: bigint): void;
  mrExtend(gpa: bigint, chunk: Uint8Array): void;
  /** optional fast path: the 16 MR.EXTENDs of one 4 KiB page at a page-aligned gpa */
  mrExtendPage?(gpa: bigint, page: Uint8Array): void;
}

/**
 * The INIT_MEM_REGION calls of a TD launch from OVMF, in TDVF order.
 * @example for (const r of tdxLaunchPlan(fw)) vcpu.tdxInitMemRegion(r)
 */
export function tdxLaunchPlan(image: Uint8Array | OvmfImage): TdxInitMemRegion[] {
  const img = parseOvmf(image);
  return parseTdvf(img).map((s) => {
    const pages = Number(s.memoryDataSize / BigInt(PAGE));
    const what = `${TDVF_SECTION_NAME[s.type]}[${s.index}]`;
    const measure = (s.attributes & TDVF_ATTR.MR_EXTEND) !== 0;
    const copied = s.type === TDVF_SECTION.BFV || s.type === TDVF_SECTION.CFV;
    const base = { section: s, gpa: s.memoryAddress, pages, measure, what };
    return copied ? { ...base, source: img.bytes.subarray(s.dataOffset, s.dataOffset + pages * PAGE) } : base;
  });
}

/** Feed a plan's SEAMCALLs to a sink in the given order. */
export function tdxReplay(plan: Iterable<TdxInitMemRegion>, order: TdxOrder, sink: TdxMeasureSink): void {
  check(TDX_ORDERS.includes(order), 'BAD_OPTION', `unknown TDX order ${JSON.stringify(order)} (per-page or per-section)`);
  for (const r of plan) {
    const src = r.source;
    if (r.measure) check(src !== undefined && src.length >= r.pages * PAGE, 'BAD_OPTION', `${r.what}: a measured region needs its source bytes`);
    const extend = (p: number) => {
      const gpa = r.gpa + BigInt(p * PAGE);
      const page = (src as Uint8Array).subarray(p * PAGE, (p + 1) * PAGE);
      if (sink.mrExtendPage) sink.mrExtendPage(gpa, page);
      else for (let c = 0; c < PAGE; c += MR_EXTEND_CHUNK) sink.mrExtend(gpa + BigInt(c), page.subarray(c, c + MR_EXTEND_CHUNK));
    };
    if (order === 'per-page' || !r.measure) {
      for (let p = 0; p < r.pages; p++) {
        sink.pageAdd(r.gpa + BigInt(p * PAGE));
        if (r.measure) extend(p);
      }
    } else {
      for (let p = 0; p < r.pages; p++) sink.pageAdd(r.gpa + BigInt(p * PAGE));
      for (let p = 0; p < r.pages; p++) extend(p);
    }
  }
}

/** The measurement SEAMCALLs as a list (for a launch log; `data` views the image). */
export function tdxMeasureOps(plan: Iterable<TdxInitMemRegion>, order: TdxOrder = 'per-page'): TdxMeasureOp[] {
  const ops: TdxMeasureOp[] = [];
  tdxReplay(plan, order, {
    pageAdd: (gpa) => ops.push({ op: 'MEM.PAGE.ADD', gpa }),
    mrExtend: (gpa, data) => ops.push({ op: 'MR.EXTEND', gpa, data }),
  });
  return ops;
}

const ADD_TAG = new TextEncoder().encode('MEM.PAGE.ADD');
const EXTEND_TAG = new TextEncoder().encode('MR.EXTEND');

const U64_MAX = (1n << 64n) - 1n;
function halves(gpa: bigint): [number, number] {
  if (gpa < 0n || gpa > U64_MAX) throw new MeasureError('BAD_OPTION', `GPA 0x${gpa.toString(16)} is not a u64`);
  return [Number(gpa & 0xffffffffn), Number(gpa >> 32n)];
}

/** The 128-byte TDH.MEM.PAGE.ADD record. */
export function tdxPageAddRecord(gpa: bigint): Uint8Array {
  const b = new Uint8Array(RECORD);
  b.set(ADD_TAG);
  new DataView(b.buffer).setBigUint64(16, gpa, true);
  return b;
}

/** The 128-byte TDH.MR.EXTEND header (the 256 chunk bytes follow it in the hash). */
export function tdxMrExtendHeader(gpa: bigint): Uint8Array {
  const b = new Uint8Array(RECORD);
  b.set(EXTEND_TAG);
  new DataView(b.buffer).setBigUint64(16, gpa, true);
  return b;
}

/**
 * MRTD being built (TDH.MNG.INIT … TDH.MR.FINALIZE). Records are gathered into a 64 KiB buffer and
 * handed to the hash in large updates: per-record update() calls cost more than the hashing itself
 * (MEASUREMENT.md §7).
 * @example const m = new TdxMrtdContext(sha384); m.pageAdd(0x800000n); toHex(m.digest())
 */
export class TdxMrtdContext implements TdxMeasureSink {
  private readonly h: Hasher;
  private readonly buf = new Uint8Array(64 * 1024);
  private readonly view = new DataView(this.buf.buffer);
  private n = 0;
  private done = false;

  constructor(sha: Sha384Factory) {
    this.h = sha();
  }

  private room(bytes: number): void {
    if (this.done) throw new MeasureError('BAD_OPTION', 'MRTD already finalized');
    if (this.n + bytes > this.buf.length) this.flush();
  }
  private flush(): void {
    if (this.n > 0) this.h.update(this.buf.subarray(0, this.n));
    this.n = 0;
  }
  /** A 128-byte record header; gpa as two u32 halves so the per-chunk path needs no bigint. */
  private header(tag: Uint8Array, lo: number, hi: number): void {
    const n = this.n;
    this.buf.fill(0, n, n + RECORD);
    this.buf.set(tag, n);
    this.view.setUint32(n + 16, lo, true);
    this.view.setUint32(n + 20, hi, true);
    this.n = n + RECORD;
  }

  pageAdd(gpa: bigint): void {
    const [lo, hi] = halves(gpa);
    this.room(RECORD);
    this.header(ADD_TAG, lo, hi);
  }

  mrExtend(gpa: bigint, chunk: Uint8Array): void {
    if (chunk.length !== MR_EXTEND_CHUNK) throw new MeasureError('BAD_OPTION', `MR.EXTEND takes ${MR_EXTEND_CHUNK} bytes, got ${chunk.length}`);
    const [lo, hi] = halves(gpa);
    this.room(RECORD + MR_EXTEND_CHUNK);
    this.header(EXTEND_TAG, lo, hi);
    this.buf.set(chunk, this.n);
    this.n += MR_EXTEND_CHUNK;
  }

  mrExtendPage(gpa: bigint, page: Uint8Array): void {
    if (page.length !== PAGE || (gpa & 0xfffn) !== 0n) throw new MeasureError('BAD_OPTION', 'mrExtendPage takes one 4 KiB page at a page-aligned GPA');
    // Page aligned, so lo + c never carries into hi (lo <= 2^32 - 4096).
    const [lo, hi] = halves(gpa);
    for (let c = 0; c < PAGE; c += MR_EXTEND_CHUNK) {
      this.room(RECORD + MR_EXTEND_CHUNK);
      this.header(EXTEND_TAG, lo + c, hi);
      this.buf.set(page.subarray(c, c + MR_EXTEND_CHUNK), this.n);
      this.n += MR_EXTEND_CHUNK;
    }
  }

  /** TDH.MR.FINALIZE: the MRTD. The context cannot be extended afterwards. */
  digest(): Uint8Array {
    this.flush();
    this.done = true;
    const d = this.h.digest();
    checkLen(d, SHA384_LEN);
    return d;
  }
}

export interface TdxOptions {
  /** default 'per-page' (upstream KVM) */
  order?: TdxOrder;
}

/**
 * MRTD of a TD launched from this OVMF image.
 * @example toHex(tdxMrtd(fw, { order: 'per-page' }, sha384))
 */
export function tdxMrtd(image: Uint8Array | OvmfImage, opts: TdxOptions, sha: Sha384Factory): Uint8Array {
  const plan = tdxLaunchPlan(image);
  const m = new TdxMrtdContext(sha);
  tdxReplay(plan, opts.order ?? 'per-page', m);
  return m.digest();
}
