/**
 * A step function over page indices [0, 2^53): the value of every index, stored as the sorted
 * boundaries where it changes. It stands in for the kernel's per-page xarrays where the model needs
 * whole-range operations to be cheap: setting 2^28 pages (1 TiB) touches two boundaries, not 2^28
 * entries. Indices are JS numbers: GFNs and file page offsets are below 2^52.
 */
// Scratch for the at most three boundaries one set() writes: set() never re-enters, and the model
// is single-threaded, so one pair serves every map without a garbage array per call.
const scratchStarts = [0, 0, 0];
const scratchValues = [0, 0, 0];

export class RangeMap {
  // starts[i] is where run i begins; run i covers [starts[i], starts[i+1]) and holds values[i].
  // starts[0] is always 0, so every index has a value.
  private starts: number[] = [0];
  private values: number[];

  constructor(readonly initial = 0) {
    this.values = [initial];
  }

  /** Index of the run containing k. */
  private run(k: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.starts[mid] as number) <= k) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  get(k: number): number {
    return this.values[this.run(k)] as number;
  }

  /** True if every index in [start, end) holds `value` (kvm_range_has_memory_attributes). */
  allEqual(start: number, end: number, value: number): boolean {
    if (start >= end) return true;
    const i = this.run(start);
    if (this.values[i] !== value) return false;
    const next = this.starts[i + 1];
    return next === undefined || next >= end;
  }

  /**
   * Set [start, end) to value. The runs it touches are replaced by at most three (the head of the
   * first, the new run, the tail of the last) and merged with equal neighbours in the same single
   * splice, so the map stays coalesced (no two adjacent runs hold the same value) and a call costs
   * two binary searches plus one splice, whatever the range. Setting what is already there returns
   * before anything is written: punching an unallocated range is the common case on close.
   */
  set(start: number, end: number, value: number): void {
    if (start >= end) return;
    const starts = this.starts;
    const values = this.values;
    const i = this.run(start);
    const next = starts[i + 1];
    if (values[i] === value && (next === undefined || next >= end)) return;
    const j = next !== undefined && next <= end ? this.run(end) : i;
    const endValue = values[j] as number;
    // replace runs [lo, hi) by the new boundaries; `last` is the value of the run before them
    const lo = i;
    let hi = j + 1;
    let last = lo > 0 ? values[lo - 1] : undefined;
    let n = 0;
    const s3 = scratchStarts;
    const v3 = scratchValues;
    const head = starts[i] as number;
    if (head < start) {
      s3[n] = head;
      v3[n++] = last = values[i] as number;
    }
    if (value !== last) {
      s3[n] = start;
      v3[n++] = last = value;
    }
    if (endValue !== last) {
      s3[n] = end;
      v3[n++] = last = endValue;
    }
    // the run after j begins past end; if it now equals the run before it, it merges too
    if (hi < starts.length && values[hi] === last) hi++;
    this.replace(lo, hi, s3, v3, n);
  }

  /**
   * starts/values[lo, hi) := the first n entries of s/v: in place when the count is unchanged, else
   * one splice per array with the entries as arguments (splice moves the tail with a memmove;
   * copyWithin on a JS array goes element by element, about 100x slower with 8k runs held).
   */
  private replace(lo: number, hi: number, s: number[], v: number[], n: number): void {
    const starts = this.starts;
    const values = this.values;
    const removed = hi - lo;
    if (removed === n) {
      for (let k = 0; k < n; k++) {
        starts[lo + k] = s[k] as number;
        values[lo + k] = v[k] as number;
      }
    } else if (n === 0) {
      starts.splice(lo, removed);
      values.splice(lo, removed);
    } else if (n === 1) {
      starts.splice(lo, removed, s[0] as number);
      values.splice(lo, removed, v[0] as number);
    } else if (n === 2) {
      starts.splice(lo, removed, s[0] as number, s[1] as number);
      values.splice(lo, removed, v[0] as number, v[1] as number);
    } else {
      starts.splice(lo, removed, s[0] as number, s[1] as number, s[2] as number);
      values.splice(lo, removed, v[0] as number, v[1] as number, v[2] as number);
    }
  }

  /** The runs intersecting [start, end), clipped to it. */
  *runs(start = 0, end = Number.MAX_SAFE_INTEGER): Generator<{ start: number; end: number; value: number }> {
    if (start >= end) return;
    for (let i = this.run(start); i < this.starts.length; i++) {
      const s = Math.max(this.starts[i] as number, start);
      if (s >= end) return;
      const e = Math.min(this.starts[i + 1] ?? Number.MAX_SAFE_INTEGER, end);
      yield { start: s, end: e, value: this.values[i] as number };
    }
  }

  /** Number of runs: what the structure costs, independent of how many pages it covers. */
  get size(): number {
    return this.starts.length;
  }
}
