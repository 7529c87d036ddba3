/**
 * RangeMap, the model's per-page store (attributes, allocation, NUMA policies), against the obvious
 * per-page array on random set sequences; plus the property that makes 1 TiB conversions cheap.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RangeMap } from '../../src/model/range-map.js';

const N = 64;

for (const blockMax of [64, 2, 3])
  test(`RangeMap (blocks of ${blockMax} runs) agrees with a per-page array after any sequence of sets (get, allEqual, runs, size)`, () => {
    fc.assert(
      fc.property(fc.array(fc.record({ a: fc.nat(N), b: fc.nat(N), v: fc.nat(3) }), { maxLength: 40 }), (ops) => {
        const m = new RangeMap(0, blockMax);
        const ref = new Array<number>(N + 1).fill(0);
        for (const { a, b, v } of ops) {
          const [s, e] = a <= b ? [a, b] : [b, a];
          m.set(s, e, v);
          for (let i = s; i < e; i++) ref[i] = v;
        }
        for (let i = 0; i <= N; i++) assert.equal(m.get(i), ref[i], `page ${i}`);
        for (let s = 0; s < N; s += 7) {
          for (let e = s; e <= N; e += 5) {
            for (const v of [0, 1, 2, 3])
              assert.equal(
                m.allEqual(s, e, v),
                ref.slice(s, e).every((x) => x === v),
                `allEqual(${s}, ${e}, ${v})`,
              );
          }
        }
        // runs() covers [0, N] exactly, in order, with no two neighbours holding the same value
        const runs = [...m.runs(0, N + 1)];
        assert.equal(runs[0]?.start, 0);
        assert.equal(runs.at(-1)?.end, N + 1);
        for (let i = 1; i < runs.length; i++) {
          assert.equal(runs[i]?.start, runs[i - 1]?.end);
          assert.notEqual(runs[i]?.value, runs[i - 1]?.value);
        }
        for (const r of runs) for (let i = r.start; i < r.end; i++) assert.equal(ref[i], r.value);
        assert.equal(m.size, [...m.runs()].length, 'size counts the runs');
      }),
      { seed: 4242, numRuns: 500 },
    );
  });

test('setting 2^28 pages (1 TiB) touches two boundaries, not 2^28 entries', () => {
  const m = new RangeMap(0);
  m.set(0, 2 ** 28, 8);
  assert.equal(m.size, 2);
  assert.equal(m.get(2 ** 28 - 1), 8);
  assert.equal(m.get(2 ** 28), 0);
  m.set(12345, 12346, 0);
  assert.equal(m.size, 4);
  m.set(0, 2 ** 28, 8);
  assert.equal(m.size, 2, 'overwriting the whole range coalesces the hole away');
});
