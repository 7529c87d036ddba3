/**
 * `guestmem designs`: every hazard of designs/hazards/ run under every design (the 2022 v7 uAPI, the
 * negotiated variant its review proposed, upstream guest_memfd), printed as a table of outcomes.
 * Nothing in the table is typed in: each cell is what that design's model did.
 * Exit status: 0 every hazard ran; 1 a hazard could not run (its file is wrong for a design); 2 usage.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { type HazardRun, HazardRunError, runHazards } from '../designs/hazards/run.js';
import { type HazardFile, HazardFileError, parseHazard } from '../designs/hazards/schema.js';
import { formatMarkdown, formatText, hazardRows, toJson } from '../designs/hazards/table.js';
import { DESIGN_NAMES, type DesignName } from '../designs/registry.js';

/** designs/hazards/ of this package (dist/src/cli/ -> the package root). */
export const HAZARDS_DIR = fileURLToPath(new URL('../../../designs/hazards/', import.meta.url));

export interface LoadedHazard {
  readonly file: string;
  readonly hazard: HazardFile;
}

/** Every hazard file in `dir`, in file-name order (the files are numbered). */
export function loadHazards(dir: string = HAZARDS_DIR): LoadedHazard[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, hazard: parseHazard(readFileSync(join(dir, f), 'utf8'), f) }));
}

export interface DesignsReport {
  readonly hazards: readonly LoadedHazard[];
  readonly runs: readonly HazardRun[];
}

/** Run every hazard under `designs`. */
export function designsReport(dir: string = HAZARDS_DIR, designs: readonly DesignName[] = DESIGN_NAMES): DesignsReport {
  const hazards = loadHazards(dir);
  return { hazards, runs: runHazards(hazards, designs) };
}

export function formatReport(r: DesignsReport, format: 'text' | 'json' | 'markdown', verbose = false): string {
  const rows = hazardRows(
    r.hazards.map((h) => h.hazard),
    r.runs,
  );
  if (format === 'json') return toJson(rows);
  if (format === 'markdown') return formatMarkdown(rows);
  const text = formatText(rows);
  if (!verbose) return text;
  const detail = r.runs.map(
    (run) =>
      `\n${run.hazard} under ${run.design}: ${run.label}\n${run.steps.map((s) => `  [${s.index}] ${s.op}: ${s.got}${s.note ? `  (${s.note})` : ''}`).join('\n')}`,
  );
  return [text, ...detail].join('\n');
}

export function registerDesigns(program: Command): void {
  program
    .command('designs')
    .description("the v7 review's hazards run under v7, the negotiated variant and guest_memfd (model): a table of outcomes")
    .option('--json', 'print every outcome, with the steps that produced it, as JSON')
    .option('--markdown', 'print the table as Markdown')
    .option('-v, --verbose', 'after the table, every run step by step')
    .option('--hazards <dir>', 'directory of hazard files', HAZARDS_DIR)
    .action((o: { json?: boolean; markdown?: boolean; verbose?: boolean; hazards: string }) => {
      let report: DesignsReport;
      try {
        report = designsReport(o.hazards);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') {
          process.stderr.write(`guestmem designs: cannot read ${o.hazards}: ${code}\n`);
          process.exitCode = 2;
          return;
        }
        if (!(e instanceof HazardFileError || e instanceof HazardRunError)) throw e;
        process.stderr.write(`guestmem designs: ${e.message}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`${formatReport(report, o.json ? 'json' : o.markdown ? 'markdown' : 'text', !!o.verbose)}\n`);
    });
}
