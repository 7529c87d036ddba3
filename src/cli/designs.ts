/**
 * `guestmem designs`: every hazard of designs/hazards/ run under every design (the 2022 v7 uAPI, the
 * negotiated variant its review proposed, upstream guest_memfd), printed as a table of outcomes.
 * Nothing in the table is typed in: each cell is what that design's model did.
 * Exit status: 0 every hazard ran; 1 a hazard could not run (its file is wrong for a design); 2 usage.
 */
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type HazardRun, runHazards } from '../designs/hazards/run.js';

export { HazardRunError } from '../designs/hazards/run.js';
export { HazardFileError } from '../designs/hazards/schema.js';

import { type HazardFile, HazardFileError, parseHazard } from '../designs/hazards/schema.js';
import { formatMarkdown, formatText, hazardRows, toJson } from '../designs/hazards/table.js';
import { DESIGN_NAMES, type DesignName } from '../designs/registry.js';
import { FileProblem, readRegularFile } from './files.js';

/** designs/hazards/ of this package (dist/src/cli/ -> the package root). */
export { HAZARDS_DIR } from './hazards-dir.js';

import { HAZARDS_DIR } from './hazards-dir.js';

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
