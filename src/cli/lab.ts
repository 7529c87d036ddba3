/**
 * `guestmem lab build|run`: real kernels with software-protected VMs under QEMU, guestmem inside.
 * Exit status: 0 every kernel passed; 1 a kernel run found a problem (failed scenario, no
 * SW_PROTECTED VM, kernel warning, timeout); 3 a lab stage could not be done (missing package,
 * apt, kernel build, QEMU), with the stage named.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_GUEST_BACKEND, formatKernelRun, KERNEL_IDS, LabError, labBuild, labRun } from '../lab/index.js';
import { createProgress } from '../lab/progress.js';

const out = (s: string) => process.stdout.write(`${s}\n`);

function collectKernels(v: string, prev: string[] | undefined): string[] {
  const ks = v.split(',').map((s) => s.trim());
  for (const k of ks) {
    if (!KERNEL_IDS.includes(k)) throw new InvalidArgumentError(`choose from ${KERNEL_IDS.join(', ')}`);
  }
  return [...(prev ?? []), ...ks];
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

/** VM memory in MiB: whole, and enough for Node and the initramfs inside. */
function mib(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 512 || n > 65536) throw new InvalidArgumentError('expected a whole number of MiB from 512 to 65536');
  return n;
}

const kernelOption = () =>
  new Option('--kernel <version>', `kernel to use (${KERNEL_IDS.join('|')}); repeat or comma-separate; default: all`).argParser(collectKernels);
const buildTimeoutOption = () => new Option('--build-timeout <seconds>', 'hard limit for fetching and building one kernel').argParser(seconds).default(1800);

async function guarded(fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (e) {
    if (!(e instanceof LabError)) throw e;
    process.stderr.write(`\nguestmem lab: ${e.stage}: ${e.message}\n`);
    if (e.detail) process.stderr.write(`${e.detail.replace(/^/gm, '  ')}\n`);
    process.exitCode = e.stage === 'args' ? 2 : 3;
  }
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('conformance lab: real kernels with software-protected VMs under QEMU, running guestmem inside')
    .addHelpText(
      'after',
      '\nKernels come from Debian source packages through apt and are cached (by source version and\n' +
        'config-fragment hash) under $XDG_CACHE_HOME/guestmem-lab (default ~/.cache/guestmem-lab), or GUESTMEM_LAB_CACHE.',
    );

  lab
    .command('build')
    .description('fetch and build the lab kernels (a cached build is reused); print where they are')
    .addOption(kernelOption())
    .addOption(buildTimeoutOption())
    .option('--force', 'rebuild even when the cache has the kernel')
    .option('--keep-source', 'keep the built source tree in the cache (work/<kernel>)')
    .option('--json', 'print the builds as JSON')
    .action((o: { kernel?: string[]; buildTimeout: number; force?: boolean; keepSource?: boolean; json?: boolean }) =>
      guarded(async () => {
        const builds = await labBuild({
          ...(o.kernel && { kernels: o.kernel }),
          buildTimeoutMs: o.buildTimeout * 1000,
          force: !!o.force,
          keepSource: !!o.keepSource,
          progress: createProgress(),
        });
        if (o.json) out(JSON.stringify(builds, null, 2));
        else for (const b of builds) out(`${b.kernel}  ${b.version}  ${b.built ? `built in ${b.buildSeconds} s` : 'cached'}  ${b.bzImage}`);
        return 0;
      }),
    );

  lab
    .command('run')
    .description('boot each lab kernel under QEMU and run the scenarios inside with guestmem run; exit 0 only if all pass')
    .argument('[scenarios...]', 'scenario files or directories (default: scenarios/)')
    .addOption(kernelOption())
    .addOption(new Option('--backend <backend>', 'backend of guestmem run inside the VM').choices(['model', 'kvm']).default(DEFAULT_GUEST_BACKEND))
    .addOption(
      new Option('--timeout <seconds>', 'hard limit for one VM: boot, probe, scenarios, the kvm backend tests and the lockstep replay')
        .argParser(seconds)
        .default(900),
    )
    .addOption(buildTimeoutOption())
    .option('--no-probe', 'skip the raw /dev/kvm probe inside the VM')
    .option('--no-lockstep', 'skip replaying the scenarios in lockstep against the model (guestmem diff --batch)')
    .option('--no-kvm-tests', "skip the kvm backend's own tests (dist/tests/kvm) inside the VM")
    .addOption(new Option('--memory <MiB>', 'memory of each VM (default: a quarter of the free memory, 1-4 GiB)').argParser(mib))
    .option('--json', 'print the results as JSON')
    .option('-v, --verbose', 'list passed scenarios too')
    .action(
      (
        scenarios: string[],
        o: {
          kernel?: string[];
          backend: 'model' | 'kvm';
          timeout: number;
          buildTimeout: number;
          probe: boolean;
          lockstep: boolean;
          kvmTests: boolean;
          memory?: number;
          json?: boolean;
          verbose?: boolean;
        },
      ) =>
        guarded(async () => {
          const runs = await labRun({
            ...(o.kernel && { kernels: o.kernel }),
            scenarios,
            backend: o.backend,
            timeoutMs: o.timeout * 1000,
            buildTimeoutMs: o.buildTimeout * 1000,
            noProbe: !o.probe,
            lockstep: o.lockstep,
            kvmTests: o.kvmTests,
            ...(o.memory !== undefined && { memoryMiB: o.memory }),
            progress: createProgress(),
          });
          if (o.json) out(JSON.stringify(runs, null, 2));
          else {
            for (const r of runs) out(formatKernelRun(r, !!o.verbose));
            const bad = runs.filter((r) => !r.ok).length;
            out(`${runs.length - bad} kernel(s) passed, ${bad} failed`);
          }
          return runs.every((r) => r.ok) ? 0 : 1;
        }),
    );
}
