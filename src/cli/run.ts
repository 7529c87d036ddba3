/** `guestmem run FILE|DIR...`: load scenario files, run them on a backend, print the report. */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import {
  type Backend,
  formatHuman,
  parseScenario,
  runScenario,
  type Scenario,
  ScenarioError,
  type ScenarioResult,
  type Step,
  summarize,
  toJson,
} from '../scenario/index.js';
import { formatBytes, kernelAllocation } from '../scenario/kernel-memory.js';
import { oneLine, UserError } from './errors.js';
import { checkWritable, FileProblem, readRegularFile, scenarioPaths } from './files.js';

export { UserError } from './errors.js';

/** Far above any scenario file (the largest in scenarios/ is a few KiB); a bound for a wrong path. */
export const MAX_SCENARIO_BYTES = 16 << 20;

export interface RunOptions {
  backend: Backend;
  kernel?: string;
  json: boolean;
  verbose: boolean;
  trace?: string;
  /**
   * A file that gets a JSON line before each scenario and step and after each result, written as it
   * happens, so that a watcher (the lab's driver) knows what was running if this process dies.
   */
  progress?: string;
  /** Warn about a step that would make a real kernel allocate more than this (bytes). */
  memoryBudget?: bigint;
}

/** The JSON lines of --progress: start, step, result (and bad, for a file that did not load). */
export type ProgressLine =
  | { t: 'start'; file: string; name: string }
  | { t: 'step'; file: string; index: number; op: string }
  | { t: 'result'; result: ScenarioResult }
  | { t: 'bad'; message: string; file?: string };

function progressWriter(path: string | undefined): { write: (line: ProgressLine) => void; close: () => void } {
  if (!path) return { write: () => {}, close: () => {} };
  const fd = openSync(path, 'a');
  return { write: (line) => writeSync(fd, `${JSON.stringify(line)}\n`), close: () => closeSync(fd) };
}

/** Read and check one file: the scenario, or the one-line reason it is not one. */
export function loadFile(file: string): Scenario | string {
  try {
    const bytes = readRegularFile(file, 'scenario file', MAX_SCENARIO_BYTES);
    return parseScenario(new TextDecoder().decode(bytes), file);
  } catch (e) {
    if (e instanceof ScenarioError) return e.message;
    if (e instanceof FileProblem) return `${e.path}: ${e.problem}`;
    throw e;
  }
}

/**
 * Every bad file is reported (one line each on `err`), every good one runs. Exit status: 2 if any
 * file was bad, else 1 if a scenario failed, else 0. Output paths are checked before anything runs.
 */
export function runFiles(
  args: readonly string[],
  opts: RunOptions,
  out: (s: string) => void,
  err: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
): number {
  if (opts.trace) checkWritable(opts.trace, '--trace');
  if (opts.progress) checkWritable(opts.progress, '--progress');
  const { files, bad } = scenarioPaths(args);
  const loaded: [string, Scenario][] = [];
  for (const file of files) {
    const r = loadFile(file);
    if (typeof r === 'string') bad.push(r);
    else loaded.push([file, r]);
  }
  for (const b of bad) err(`guestmem: ${oneLine(b)}`);
  const writer = progressWriter(opts.progress);
  const progress = writer.write;
  for (const b of bad) progress({ t: 'bad', message: b });
  const results: ScenarioResult[] = [];
  for (const [file, sc] of loaded) {
    progress({ t: 'start', file, name: sc.name });
    const hooks = {
      beforeStep: (index: number, step: Step) => {
        progress({ t: 'step', file, index, op: step.op });
        if (opts.memoryBudget === undefined) return;
        const a = kernelAllocation(step);
        if (a.bytes > opts.memoryBudget)
          err(
            `guestmem: warning: ${file}: steps[${index}] (${step.op}): a real kernel would allocate about ${formatBytes(a.bytes)} (${a.what}), over the budget of ${formatBytes(opts.memoryBudget)}`,
          );
      },
    };
    try {
      const r = runScenario(sc, file, opts.backend, opts.kernel, hooks);
      results.push(r);
      progress({ t: 'result', result: r });
    } catch (e) {
      // what only running finds (a requirement the load could not judge) still names the file
      if (!(e instanceof ScenarioError)) throw e;
      bad.push(e.message);
      progress({ t: 'bad', message: e.message, file });
      err(`guestmem: ${oneLine(`${file}: ${e.message}`)}`);
    }
  }
  writer.close();
  if (results.length) out(opts.json ? toJson(results) : formatHuman(results, opts.verbose));
  if (opts.trace) {
    try {
      writeFileSync(opts.trace, toJson(results));
    } catch (e) {
      throw new UserError(`--trace ${opts.trace}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (bad.length) return 2;
  return summarize(results).failed > 0 ? 1 : 0;
}
