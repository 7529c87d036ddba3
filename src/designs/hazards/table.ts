/** The hazard table (hazards as rows, designs as columns) from runs, as text, Markdown or JSON. */
import { DESIGN_NAMES, DESIGN_TITLES, type DesignName } from '../registry.js';
import type { HazardRun } from './run.js';
import type { HazardFile } from './schema.js';

export interface HazardRow {
  readonly hazard: string;
  readonly concern: string;
  readonly raisedBy: string;
  readonly cells: Readonly<Record<DesignName, HazardRun>>;
}

export function hazardRows(hazards: readonly HazardFile[], runs: readonly HazardRun[]): HazardRow[] {
  return hazards.map((h) => {
    const cells = {} as Record<DesignName, HazardRun>;
    for (const d of DESIGN_NAMES) {
      const r = runs.find((x) => x.hazard === h.name && x.design === d);
      if (!r) throw new Error(`no run of hazard ${h.name} under ${d}`);
      cells[d] = r;
    }
    return { hazard: h.name, concern: h.concern, raisedBy: h.raised_by, cells };
  });
}

/** `text` in lines of at most `width` characters, broken at spaces (a longer word is cut). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = '';
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

/** The narrowest a design column gets before the table stops shrinking. */
const MIN_COLUMN = 11;

/**
 * Fixed-width text for a terminal: one row per hazard, one column per design. The table fits in
 * `width` columns (a terminal's): the widest columns are narrowed and their cells wrapped, with a
 * blank line between hazards once a cell takes more than one line. `--markdown` has the full text.
 */
export function formatText(rows: readonly HazardRow[], width = Number.POSITIVE_INFINITY): string {
  const head = ['hazard', ...DESIGN_NAMES];
  const body = rows.map((r) => [r.hazard, ...DESIGN_NAMES.map((d) => r.cells[d].label)]);
  const cols = head.map((_, i) => Math.max(...[head, ...body].map((row) => (row[i] as string).length)));
  const total = () => cols.reduce((a, b) => a + b, 0) + 2 * (cols.length - 1);
  // narrow the widest design column (never the hazard names) until the table fits
  while (total() > width) {
    let widest = 1;
    for (let i = 2; i < cols.length; i++) if ((cols[i] as number) > (cols[widest] as number)) widest = i;
    if ((cols[widest] as number) <= MIN_COLUMN) break;
    cols[widest] = (cols[widest] as number) - 1;
  }
  const lines = (row: readonly string[]): string[] => {
    const cellLines = row.map((c, i) => wrap(c, cols[i] as number));
    const n = Math.max(...cellLines.map((l) => l.length));
    return Array.from({ length: n }, (_, k) =>
      cellLines
        .map((l, i) => (l[k] ?? '').padEnd(cols[i] as number))
        .join('  ')
        .trimEnd(),
    );
  };
  const wrapped = body.some((row) => row.some((c, i) => c.length > (cols[i] as number)));
  const rendered = body.flatMap((row, i) => [...(wrapped && i > 0 ? [''] : []), ...lines(row)]);
  const legend = DESIGN_NAMES.flatMap((d) => {
    const l = wrap(`${d}: ${DESIGN_TITLES[d]}`, Math.max(20, Math.min(width, 1000) - 4));
    return l.map((x, k) => `${k ? '    ' : '  '}${x}`);
  });
  return [...lines(head), cols.map((w) => '-'.repeat(w)).join('  '), ...rendered, '', ...legend].join('\n');
}

const md = (s: string) => s.replaceAll('|', '\\|');

/** A Markdown table: the concern as the row title, the outcome per design. */
export function formatMarkdown(rows: readonly HazardRow[]): string {
  const head = `| Concern (raised by) | ${DESIGN_NAMES.join(' | ')} |`;
  const rule = `|---|${DESIGN_NAMES.map(() => '---').join('|')}|`;
  const body = rows.map((r) => `| **${md(r.concern)}** (${md(r.raisedBy)}) \`${r.hazard}\` | ${DESIGN_NAMES.map((d) => md(r.cells[d].label)).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

/** Machine-readable: every cell with its outcome and the steps that produced it. */
export function toJson(rows: readonly HazardRow[]): string {
  return JSON.stringify(
    {
      designs: DESIGN_NAMES.map((d) => ({ name: d, title: DESIGN_TITLES[d] })),
      hazards: rows.map((r) => ({
        hazard: r.hazard,
        concern: r.concern,
        raised_by: r.raisedBy,
        outcomes: Object.fromEntries(DESIGN_NAMES.map((d) => [d, { label: r.cells[d].label, ...r.cells[d].outcome, steps: r.cells[d].steps }])),
      })),
    },
    null,
    2,
  );
}
