#!/usr/bin/env node
/** The guestmem command: a thin shell over the library (parse flags, call, print). */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { KvmError } from '../api.js';
import { PROFILE_NAMES } from '../model/profiles.js';
import { registerDesigns } from './designs-command.js';
import { oneLineErrors, reportError, UserError } from './errors.js';
import { registerLab } from './lab.js';
import { registerMeasure } from './measure.js';
import { registerUi } from './ui.js';

// What a command runs loads when it runs: the scenario schema, the model, the designs, the kvm
// backend and the differential tester are not every command's start-up cost.
const kvmBackend = async () => (await import('../backends/kvm.js')).kvmBackend();
const loadKvmModule = async () => (await import('../backends/kvm.js')).loadKvmModule();

const out = (s: string) => process.stdout.write(`${s}\n`);

function profileOption(): Option {
  return new Option('--kernel <profile>', 'kernel profile the model follows').choices([...PROFILE_NAMES]);
}

function backendOption(): Option {
  return new Option('--backend <backend>', 'model, or kvm for the real /dev/kvm').choices(['model', 'kvm']).default('model');
}

/** The version of this package (dist/src/cli/ -> the package root). */
const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command('guestmem')
  .description('KVM guest private memory (guest_memfd): an errno-exact model, a driver for /dev/kvm, and tools')
  .version(VERSION, '-V, --version', 'print the version of guestmem')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program
  .command('run')
  .description('run scenario files; exit 0 only if every step met its expectation')
  .argument('<files...>', 'scenario files (.json, .yaml), or directories of them (searched recursively)')
  .addOption(backendOption())
  .addOption(profileOption())
  .option('--json', 'print results as JSON')
  .option('-v, --verbose', 'show every step')
  .option('--trace <out>', 'write the step-by-step results as JSON to this file')
  .option('--progress <file>', 'append a JSON line before each scenario and step and after each result (for a watcher)')
  .option('--memory-budget <MiB>', 'warn about a step that would make a real kernel allocate more than this', positiveIntArg, 1024)
  .action(
    async (
      files: string[],
      o: { backend: string; kernel?: string; json?: boolean; verbose?: boolean; trace?: string; progress?: string; memoryBudget: number },
    ) => {
      const [{ runFiles }, { modelBackend }, { DESIGNS }] = await Promise.all([
        import('./run.js'),
        import('../scenario/index.js'),
        import('../designs/registry.js'),
      ]);
      const backend =
        o.backend === 'kvm' ? await kvmBackend() : modelBackend({ designs: DESIGNS, ...(o.kernel === 'host' && { host: (await kvmBackend()).hostProfile() }) });
      process.exitCode = runFiles(
        files,
        {
          backend,
          ...(o.kernel && { kernel: o.kernel }),
          json: !!o.json,
          verbose: !!o.verbose,
          ...(o.trace && { trace: o.trace }),
          ...(o.progress && { progress: o.progress }),
          memoryBudget: BigInt(o.memoryBudget) << 20n,
        },
        out,
      );
    },
  );

program
  .command('caps')
  .description('what the model offers, beside what /dev/kvm offers (probed read-only)')
  .addOption(profileOption())
  .option('--json', 'print as JSON')
  .action(async (o: { kernel?: string; json?: boolean }) => {
    const { capsReport } = await import('./caps.js');
    out(await capsReport(o.kernel ?? '6.18', !!o.json));
  });

program
  .command('demo')
  .description('model: a software-protected guest converts memory private <-> shared, step by step; kvm: a guest on guest_memfd memory')
  .addOption(backendOption())
  .addOption(profileOption().default('6.18'))
  .option('--design <name>', 'inplace: the same guest under in-place conversion (pending, linux-next) beside guest_memfd, with both footprints')
  .action(async (o: { kernel: string; backend: string; design?: string }) => {
    if (o.design !== undefined) {
      if (o.design !== 'inplace') throw new UserError(`demo --design ${o.design}: only "inplace" has a demo`);
      if (o.backend === 'kvm') throw new UserError('demo --design inplace: the design is a model (in-place conversion is not in any released kernel)');
      process.exitCode = (await import('./demo-inplace.js')).runInplaceDemo(out);
      return;
    }
    if (o.backend === 'kvm') {
      const mod = await loadKvmModule();
      const avail = mod.kvmAvailable();
      if (!avail.ok) throw new UserError(`--backend kvm: ${avail.reason}`);
      process.exitCode = (await import('./demo.js')).runKvmDemo(mod.openKvm(), out);
    } else {
      const [{ runDemo }, { modelProfile }] = await Promise.all([import('./demo.js'), import('./profile.js')]);
      const profile = await modelProfile(o.kernel);
      try {
        process.exitCode = runDemo(profile, out);
      } catch (e) {
        // a profile without software-protected VMs (the host's, a 6.8 kernel): say so, not a stack
        if (!(e instanceof KvmError)) throw e;
        throw new UserError(`demo --kernel ${o.kernel}: ${e.message}; the demo needs sw_protected VMs (try --kernel 6.18)`);
      }
    }
  });

program
  .command('diff')
  .description('hold the model against the live kernel (or a lab kernel) with random operation sequences (fast-check)')
  .option('--runs <n>', 'sequences to run', parseIntArg, 100)
  .option('--seed <n>', 'random seed (printed, to replay)', parseIntArg)
  .option('--steps <n>', 'most commands per sequence', parseIntArg, 30)
  .option('--path <p>', "replay one sequence: fast-check's path from a report (with --seed)")
  .option('--replay <file>', 'replay a counterexample scenario file on both sides')
  .option('--self-test', 'find the planted bugs in broken model variants; exit 0 only if all are found')
  .option('--lab <kernels>', 'hold the model against lab kernels under QEMU instead (6.12, 7.3, comma-separated, or all)')
  .option('--batch <file>', 'replay a batch of generated sequences (what --lab runs inside the VM); JSON lines out')
  .option('--shrink-budget <n>', 'most replays spent shrinking one divergence (--batch, --lab)', parseIntArg)
  .option('--from <index>', 'with --batch: start at this sequence (the lab resumes a run that died there)', parseIntArg)
  .option('--timeout <seconds>', 'hard limit for one lab VM (--lab)', positiveIntArg, 600)
  .addOption(new Option('--reference <backend>', 'what the model is held against').choices(['kvm', 'model']).default('kvm'))
  .addOption(new Option('--vm-type <type>', 'VM type of each sequence (default: default; sw_protected with --lab)').choices(['default', 'sw_protected']))
  .addOption(profileOption())
  .option('--json', 'print the result as JSON')
  .action(
    async (
      o: {
        runs: number;
        seed?: number;
        steps: number;
        path?: string;
        replay?: string;
        selfTest?: boolean;
        lab?: string;
        batch?: string;
        shrinkBudget?: number;
        from?: number;
        timeout: number;
        reference: 'kvm' | 'model';
        vmType?: 'default' | 'sw_protected';
        kernel?: string;
        json?: boolean;
      },
      cmd: Command,
    ) => {
      const { runDiff } = await import('./diff.js');
      process.exitCode = await runDiff(
        {
          runs: o.runs,
          runsGiven: cmd.getOptionValueSource('runs') === 'cli',
          steps: o.steps,
          json: !!o.json,
          selfTest: !!o.selfTest,
          reference: o.reference,
          vmType: o.vmType ?? (o.lab ? 'sw_protected' : 'default'),
          timeoutSeconds: o.timeout,
          ...(o.seed !== undefined && { seed: o.seed }),
          ...(o.path && { path: o.path }),
          ...(o.replay && { replay: o.replay }),
          ...(o.kernel && { kernel: o.kernel }),
          ...(o.lab && { lab: o.lab }),
          ...(o.batch && { batch: o.batch }),
          ...(o.shrinkBudget !== undefined && { shrinkBudget: o.shrinkBudget }),
          ...(o.from !== undefined && { from: o.from }),
        },
        out,
      );
    },
  );

registerMeasure(program);
registerDesigns(program);
registerLab(program);
registerUi(program);
oneLineErrors(program);

function positiveIntArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function parseIntArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.exit(reportError(e));
}
