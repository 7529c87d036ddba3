/** `guestmem designs`: its flags; what it runs loads only when it runs. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { oneLine } from './errors.js';
import { HAZARDS_DIR } from './hazards-dir.js';

export function registerDesigns(program: Command): void {
  program
    .command('designs')
    .description(
      "the v7 review's hazards (and in-place conversion's) run under v7, the negotiated variant, guest_memfd and in-place conversion (model): a table of outcomes",
    )
    .option('--json', 'print every outcome, with the steps that produced it, as JSON')
    .option('--markdown', 'print the table as Markdown (the full text of every cell; the text table fits the terminal)')
    .option('-v, --verbose', 'after the table, every run step by step')
    .option('--hazards <dir>', 'directory of hazard files', HAZARDS_DIR)
    .action(async (o: { json?: boolean; markdown?: boolean; verbose?: boolean; hazards: string }) => {
      // the designs, the model and the hazard runner load when this command runs
      const { designsReport, formatReport, HazardFileError, HazardRunError, textWidth } = await import('./designs.js');
      let report: ReturnType<typeof designsReport>;
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
