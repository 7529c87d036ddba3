/**
 * A step function over page indices [0, 2^53): the value of every index, stored as the sorted
 * boundaries where it changes. It stands in for the kernel's per-page xarrays where the model needs
 * whole-range operations to be cheap: setting 2^28 pages (1 TiB) touches two boundaries, not 2^28
 * entries. Indices are JS numbers: GFNs and file page offsets are below 2^52.
 */
/**
 * The runs are kept in blocks of at most `blockMax` (64) consecutive runs, found by a binary search
 * over the blocks' first starts: a set() that adds or drops a boundary moves entries of one block,
 * not of every run held (with thousands of scattered private pages a flat sorted array spent most
 * of a 4 KiB conversion moving the tail of its arrays).
 */
// Scratch for the at most three boundaries one set() writes: set() never re-enters, and the model
// is single-threaded, so one pair serves every map without a garbage array per call.
const scratchStarts = [0, 0, 0];
const scratchValues = [0, 0, 0];

export class RangeMap {
  // Block b holds runs whose starts are bs[b] (sorted) with values bv[b]; a run covers
  // [its start, the next run's start). mins[b] === bs[b][0]; bs[0][0] is always 0, so every index
  // has a value, and no block is empty.
  private readonly bs: number[][] = [[0]];
  private readonly bv: number[][];
  private readonly mins: number[] = [0];
  private count = 1;

  constructor(
    readonly initial = 0,
    private readonly blockMax = 64,
  ) {
    this.bv = [[initial]];
  }

  /** The block holding the run that contains k. */
  private block(k: number): number {
    return RangeMap.runIn(this.mins, k);
  }

  /** The last index of sorted `starts` whose value is <= k (k is at or past starts[0]): the run, or block, containing k. */
  private static runIn(starts: readonly number[], k: number): number {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= k) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Where the run after run i of block b starts (undefined: it is the last run). */
  private startAfter(b: number, i: number): number | undefined {
    const s = this.bs[b] as number[];
    return i + 1 < s.length ? s[i + 1] : this.mins[b + 1];
  }

  get(k: number): number {
    const b = this.block(k);
    return (this.bv[b] as number[])[RangeMap.runIn(this.bs[b] as number[], k)] as number;
  }

  /** True if every index in [start, end) holds `value` (kvm_range_has_memory_attributes). */
  allEqual(start: number, end: number, value: number): boolean {
    if (start >= end) return true;
    const b = this.block(start);
    const i = RangeMap.runIn(this.bs[b] as number[], start);
    if ((this.bv[b] as number[])[i] !== value) return false;
    const next = this.startAfter(b, i);
    return next === undefined || next >= end;
  }

  /**
   * Set [start, end) to value. The runs it touches are replaced by at most three (the head of the
   * first, the new run, the tail of the last) and merged with equal neighbours, so the map stays
   * coalesced (no two adjacent runs hold the same value): two binary searches and the entries of
   * one block moved, whatever the range. Setting what is already there returns before anything is
   * written: punching an unallocated range is the common case on close.
   */
  set(start: number, end: number, value: number): void {
    if (start >= end) return;
    const b = this.block(start);
    const S = this.bs[b] as number[];
    const V = this.bv[b] as number[];
    const i = RangeMap.runIn(S, start);
    const next = this.startAfter(b, i);
    if (V[i] === value && (next === undefined || next >= end)) return;
    let bj = b;
    let j = i;
    if (next !== undefined && next <= end) {
      bj = this.block(end);
      j = RangeMap.runIn(this.bs[bj] as number[], end);
    }
    const endValue = (this.bv[bj] as number[])[j] as number;
    let last = i > 0 ? V[i - 1] : b > 0 ? (this.bv[b - 1] as number[]).at(-1) : undefined;
    // the at most three new boundaries, in scratch arrays: this runs on every conversion
    const ns = scratchStarts;
    const nv = scratchValues;
    let n = 0;
    const head = S[i] as number;
    if (head < start) {
      ns[n] = head;
      nv[n++] = last = V[i] as number;
    }
    if (value !== last) {
      ns[n] = start;
      nv[n++] = last = value;
    }
    if (endValue !== last) {
      ns[n] = end;
      nv[n++] = last = endValue;
    }
    // The run after j begins past end; if it now equals the run before it, it merges too.
    const SJ = this.bs[bj] as number[];
    const VJ = this.bv[bj] as number[];
    const mergeInBlock = j + 1 < SJ.length && VJ[j + 1] === last;
    const mergeNextBlock = j + 1 === SJ.length && bj + 1 < this.bs.length && (this.bv[bj + 1] as number[])[0] === last;
    if (b === bj && !mergeNextBlock) {
      const removed = j - i + 1 + (mergeInBlock ? 1 : 0);
      RangeMap.replace(S, V, i, removed, n);
      this.count += n - removed;
      this.settle(b, b + 1, S, V);
      return;
    }
    // Runs spanning blocks: rebuild blocks b..lastBlock from what is left of them.
    const lastBlock = mergeNextBlock ? bj + 1 : bj;
    const tailFrom = mergeNextBlock ? 1 : j + 1 + (mergeInBlock ? 1 : 0);
    const outS = S.slice(0, i).concat(ns.slice(0, n), (this.bs[lastBlock] as number[]).slice(tailFrom));
    const outV = V.slice(0, i).concat(nv.slice(0, n), (this.bv[lastBlock] as number[]).slice(tailFrom));
    let before = 0;
    for (let k = b; k <= lastBlock; k++) before += (this.bs[k] as number[]).length;
    this.count += outS.length - before;
    this.settle(b, lastBlock + 1, outS, outV);
  }

  /**
   * s/v[at, at+removed) := the first n scratch entries: in place when the count is unchanged, else
   * one splice per array with the entries as arguments (no array made per call).
   */
  private static replace(s: number[], v: number[], at: number, removed: number, n: number): void {
    const ns = scratchStarts;
    const nv = scratchValues;
    if (removed === n) {
      for (let k = 0; k < n; k++) {
        s[at + k] = ns[k] as number;
        v[at + k] = nv[k] as number;
      }
    } else if (n === 0) {
      s.splice(at, removed);
      v.splice(at, removed);
    } else if (n === 1) {
      s.splice(at, removed, ns[0] as number);
      v.splice(at, removed, nv[0] as number);
    } else if (n === 2) {
      s.splice(at, removed, ns[0] as number, ns[1] as number);
      v.splice(at, removed, nv[0] as number, nv[1] as number);
    } else {
      s.splice(at, removed, ns[0] as number, ns[1] as number, ns[2] as number);
      v.splice(at, removed, nv[0] as number, nv[1] as number, nv[2] as number);
    }
  }

  /** Blocks [from, to) := the runs s/v, split into blocks of at most blockMax (none if empty). */
  private settle(from: number, to: number, s: number[], v: number[]): void {
    if (s.length > 0 && s.length <= this.blockMax) {
      if (to - from === 1 && this.bs[from] === s) {
        this.mins[from] = s[0] as number;
        return;
      }
      this.bs.splice(from, to - from, s);
      this.bv.splice(from, to - from, v);
      this.mins.splice(from, to - from, s[0] as number);
      return;
    }
    const half = Math.max(1, this.blockMax >>> 1);
    const ps: number[][] = [];
    const pv: number[][] = [];
    for (let k = 0; k < s.length; k += half) {
      ps.push(s.slice(k, k + half));
      pv.push(v.slice(k, k + half));
    }
    this.bs.splice(from, to - from, ...ps);
    this.bv.splice(from, to - from, ...pv);
    this.mins.splice(from, to - from, ...ps.map((x) => x[0] as number));
  }

  /** The runs intersecting [start, end), clipped to it. */
  *runs(start = 0, end = Number.MAX_SAFE_INTEGER): Generator<{ start: number; end: number; value: number }> {
    if (start >= end) return;
    let b = this.block(start);
    let i = RangeMap.runIn(this.bs[b] as number[], start);
    for (; b < this.bs.length; b++, i = 0) {
      const S = this.bs[b] as number[];
      const V = this.bv[b] as number[];
      for (; i < S.length; i++) {
        const s = Math.max(S[i] as number, start);
        if (s >= end) return;
        const e = Math.min(this.startAfter(b, i) ?? Number.MAX_SAFE_INTEGER, end);
        yield { start: s, end: e, value: V[i] as number };
      }
    }
  }

  /** Number of runs: what the structure costs, independent of how many pages it covers. */
  get size(): number {
    return this.count;
  }
}
