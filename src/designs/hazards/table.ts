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

/** Fixed-width text for a terminal: one row per hazard, one column per design. */
export function formatText(rows: readonly HazardRow[]): string {
  const head = ['hazard', ...DESIGN_NAMES];
  const body = rows.map((r) => [r.hazard, ...DESIGN_NAMES.map((d) => r.cells[d].label)]);
  const width = head.map((_, i) => Math.max(...[head, ...body].map((row) => (row[i] as string).length)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => c.padEnd(width[i] as number))
      .join('  ')
      .trimEnd();
  const legend = DESIGN_NAMES.map((d) => `  ${d}: ${DESIGN_TITLES[d]}`);
  return [line(head), line(width.map((w) => '-'.repeat(w))), ...body.map(line), '', ...legend].join('\n');
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
