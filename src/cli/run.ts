/** `guestmem run FILE...`: load scenario files, run them on a backend, print the report. */
import { readFileSync, writeFileSync } from 'node:fs';
import { type Backend, formatHuman, parseScenario, runScenario, type ScenarioResult, summarize, toJson } from '../scenario/index.js';

export interface RunOptions {
  backend: Backend;
  kernel?: string;
  json: boolean;
  verbose: boolean;
  trace?: string;
}

export function runFiles(files: readonly string[], opts: RunOptions, out: (s: string) => void): number {
  const results: ScenarioResult[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const sc = parseScenario(text, file);
    results.push(runScenario(sc, file, opts.backend, opts.kernel));
  }
  out(opts.json ? toJson(results) : formatHuman(results, opts.verbose));
  if (opts.trace) writeFileSync(opts.trace, toJson(results));
  return summarize(results).failed > 0 ? 1 : 0;
}

/** An error in what the user gave us: printed as one line, exit status 2. */
export class UserError extends Error {
  override readonly name = 'UserError';
}
