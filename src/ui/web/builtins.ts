/**
 * The scenario files that ship with guestmem, bundled as text into the page: the examples, the
 * kernel selftests, the coco and regression suites, in-place conversion (once it exists), and the
 * design hazards. Text, never code: the page parses them like any file a user opens.
 */
const SCENARIOS = import.meta.glob(['../../../scenarios/**/*.json', '../../../scenarios/**/*.yaml'], { eager: true, query: '?raw', import: 'default' });
const HAZARDS = import.meta.glob('../../../designs/hazards/*.json', { eager: true, query: '?raw', import: 'default' });

export interface Builtin {
  /** 'examples/punch-hole-zeroes.json' */
  readonly path: string;
  /** 'examples' */
  readonly group: string;
  readonly text: string;
}

function list(files: Record<string, string>, prefix: string): Builtin[] {
  return Object.entries(files)
    .map(([p, text]) => {
      const path = p.slice(p.indexOf(prefix) + prefix.length);
      return { path, group: path.includes('/') ? path.slice(0, path.indexOf('/')) : '', text };
    })
    .sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
}

/** Groups first in this order, the rest after. */
const ORDER = ['examples', 'in-place-conversion', 'kernel-selftests', 'coco', 'regressions', 'v7'];

export const BUILTIN_SCENARIOS: readonly Builtin[] = list(SCENARIOS, '/scenarios/').sort(
  (a, b) => (ORDER.indexOf(a.group) + 1 || 99) - (ORDER.indexOf(b.group) + 1 || 99) || a.path.localeCompare(b.path, 'en', { numeric: true }),
);
export const BUILTIN_HAZARDS: readonly Builtin[] = list(HAZARDS, '/hazards/');
