/**
 * `guestmem designs`: every hazard of designs/hazards/ run under every design (the 2022 v7 uAPI, the
 * negotiated variant its review proposed, upstream guest_memfd), printed as a table of outcomes.
 * Nothing in the table is typed in: each cell is what that design's model did.
 * Exit status: 0 every hazard ran; 1 a hazard could not run (its file is wrong for a design); 2 usage.
 */
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { type HazardRun, HazardRunError, runHazards } from '../designs/hazards/run.js';
import { type HazardFile, HazardFileError, parseHazard } from '../designs/hazards/schema.js';
import { formatMarkdown, formatText, hazardRows, toJson } from '../designs/hazards/table.js';
import { DESIGN_NAMES, type DesignName } from '../designs/registry.js';
import { oneLine } from './errors.js';
import { FileProblem, readRegularFile } from './files.js';

/** designs/hazards/ of this package (dist/src/cli/ -> the package root). */
export const HAZARDS_DIR = fileURLToPath(new URL('../../../designs/hazards/', import.meta.url));

export interface LoadedHazard {
  readonly file: string;
  readonly hazard: HazardFile;
}

/**
 * Every hazard file in `dir`, in file-name order (the files are numbered). Errors name the file by
 * its full path: `--hazards` may point anywhere.
 */
export function loadHazards(dir: string = HAZARDS_DIR): LoadedHazard[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  if (files.length === 0) throw new HazardFileError(`${resolve(dir)}: no hazard files (*.json) in this directory`);
  return files.map((f) => {
    const path = resolve(dir, f);
    let text: string;
    try {
      text = readRegularFile(path, 'hazard file', 1 << 20).toString('utf8');
    } catch (e) {
      if (e instanceof FileProblem) throw new HazardFileError(`${path}: ${e.problem}`);
      throw e;
    }
    return { file: f, hazard: parseHazard(text, path) };
  });
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

/** The width `designs` fits its text table to: the terminal's, or 100 columns when not a terminal. */
export const textWidth = (): number => process.stdout.columns || 100;

export function formatReport(r: DesignsReport, format: 'text' | 'json' | 'markdown', verbose = false, width = Number.POSITIVE_INFINITY): string {
  const rows = hazardRows(
    r.hazards.map((h) => h.hazard),
    r.runs,
  );
  if (format === 'json') return toJson(rows);
  if (format === 'markdown') return formatMarkdown(rows);
  const text = formatText(rows, width);
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
    .option('--markdown', 'print the table as Markdown (the full text of every cell; the text table fits the terminal)')
    .option('-v, --verbose', 'after the table, every run step by step')
    .option('--hazards <dir>', 'directory of hazard files', HAZARDS_DIR)
    .action((o: { json?: boolean; markdown?: boolean; verbose?: boolean; hazards: string }) => {
      let report: DesignsReport;
      try {
        report = designsReport(o.hazards);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') {
          process.stderr.write(`guestmem designs: --hazards ${resolve(o.hazards)}: cannot read: ${code}\n`);
          process.exitCode = 2;
          return;
        }
        if (!(e instanceof HazardFileError || e instanceof HazardRunError)) throw e;
        process.stderr.write(`guestmem designs: ${oneLine(e.message)}\n`);
        // a bad file is bad input (2); a good file that a design cannot run is a finding (1)
        process.exitCode = e instanceof HazardFileError ? 2 : 1;
        return;
      }
      process.stdout.write(`${formatReport(report, o.json ? 'json' : o.markdown ? 'markdown' : 'text', !!o.verbose, textWidth())}\n`);
    });
}
