/**
 * "Did you mean": the nearest valid name to a misspelt one, by edit distance. Small on purpose (the
 * lists are a few dozen names), so no dependency.
 */

/**
 * Edit distance: insert, delete, substitute, and swap two neighbours (the commonest typo, 'gmme'),
 * each costing 1 (optimal string alignment).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => d[i]?.[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1), at(i - 1, j) + 1, at(i, j - 1) + 1);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

/**
 * The candidate closest to `word`, if it is close enough to be what was meant: at most a third of
 * the word's letters wrong (at least 1, at most 3), compared case-insensitively.
 */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  const limit = Math.min(3, Math.max(1, Math.floor(w.length / 3)));
  let best: string | undefined;
  let bestD = limit + 1;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

/** `unknown errno 'EINVALL'` + ` (did you mean 'EINVAL'?)` when one is near. */
export function unknownName(what: string, word: string, candidates: Iterable<string>): string {
  const n = nearest(word, candidates);
  return `unknown ${what} '${word}'${n === undefined ? '' : ` (did you mean '${n}'?)`}`;
}
