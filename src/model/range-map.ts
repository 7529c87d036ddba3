/**
 * A step function over page indices [0, 2^53): the value of every index, stored as the sorted
 * boundaries where it changes. It stands in for the kernel's per-page xarrays where the model needs
 * whole-range operations to be cheap: setting 2^28 pages (1 TiB) touches two boundaries, not 2^28
 * entries. Indices are JS numbers: GFNs and file page offsets are below 2^52.
 */
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

  /** Set [start, end) to value. */
  set(start: number, end: number, value: number): void {
    if (start >= end) return;
    const endValue = this.get(end);
    const i = this.run(start);
    let j = i;
    while (j + 1 < this.starts.length && (this.starts[j + 1] as number) <= end) j++;
    // Runs i..j are touched. Rebuild that stretch as: [head of run i] [start,end)=value [end..]=endValue.
    const newStarts: number[] = [];
    const newValues: number[] = [];
    if ((this.starts[i] as number) < start) {
      newStarts.push(this.starts[i] as number);
      newValues.push(this.values[i] as number);
    }
    newStarts.push(start);
    newValues.push(value);
    const afterJ = this.starts[j + 1];
    if (afterJ === undefined || afterJ > end) {
      newStarts.push(end);
      newValues.push(endValue);
    }
    this.starts.splice(i, j - i + 1, ...newStarts);
    this.values.splice(i, j - i + 1, ...newValues);
    this.coalesce(Math.max(0, i - 1), i + newStarts.length + 1);
  }

  private coalesce(from: number, to: number): void {
    for (let k = Math.min(to, this.starts.length - 1); k > from; k--) {
      if (this.values[k] === this.values[k - 1]) {
        this.starts.splice(k, 1);
        this.values.splice(k, 1);
      }
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
