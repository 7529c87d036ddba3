/**
 * `guestmem lab build|run`: real kernels with software-protected VMs under QEMU, guestmem inside.
 * Exit status: 0 every kernel passed; 1 a kernel run found a problem (failed scenario, no
 * SW_PROTECTED VM, kernel warning, timeout); 3 a lab stage could not be done (missing package,
 * apt, kernel build, QEMU), with the stage named.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
// The lab's driver, builder and progress bars load when a lab command runs, not with every command.
import { cacheDir, DEFAULT_GUEST_BACKEND, KERNEL_IDS, LabError } from '../lab/env.js';

const labModule = () => import('../lab/index.js');
const createProgress = async () => (await import('../lab/progress.js')).createProgress();

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

/** A whole count (0 allowed: --load 0). */
function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 100000) throw new InvalidArgumentError('expected a whole number');
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
        const builds = await (await labModule()).labBuild({
          ...(o.kernel && { kernels: o.kernel }),
          buildTimeoutMs: o.buildTimeout * 1000,
          force: !!o.force,
          keepSource: !!o.keepSource,
          progress: await createProgress(),
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
          const { labRun, formatKernelRun } = await labModule();
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
            progress: await createProgress(),
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

  lab
    .command('boots')
    .description('boot a lab kernel N times with only the canary and count the boots whose nested guests never exit')
    .addOption(new Option('--kernel <id>', 'lab kernel').choices([...KERNEL_IDS]).makeOptionMandatory())
    .addOption(new Option('--count <n>', 'boots').argParser(count).default(50))
    .addOption(
      new Option('--qemu <which>', "the system's QEMU or bookworm-backports' (fetched into the cache)").choices(['system', 'backports']).default('system'),
    )
    .option('--cpu <model>', 'QEMU -cpu model (default max)')
    .addOption(new Option('--smp <n>', 'QEMU -smp count (default 1)').argParser(count))
    .option('--append <args>', 'more kernel command line, e.g. nokaslr')
    .addOption(new Option('--load <n>', 'busy loops on the host while the VMs boot').argParser(count).default(0))
    .addOption(new Option('--memory <MiB>', 'memory of each VM').argParser(mib))
    .option('--json', 'print the result as JSON')
    .action(
      (o: {
        kernel: string;
        count: number;
        qemu: 'system' | 'backports';
        cpu?: string;
        smp?: number;
        append?: string;
        load: number;
        memory?: number;
        json?: boolean;
      }) =>
        guarded(async () => {
          const { backportsQemu, countStuckBoots } = await import('../lab/boots.js');
          const progress = await createProgress();
          const machine = {
            ...(o.qemu === 'backports' && backportsQemu(cacheDir())),
            ...(o.cpu && { cpu: o.cpu }),
            ...(o.smp !== undefined && { smp: o.smp }),
          };
          const r = await countStuckBoots({
            kernel: o.kernel,
            kernels: [o.kernel],
            count: o.count,
            load: o.load,
            machine,
            ...(o.append && { append: o.append }),
            ...(o.memory !== undefined && { memoryMiB: o.memory }),
            progress,
            onBoot: (i, b) => progress.done(`boot ${i + 1}/${o.count}: ${b.stuck ? 'STUCK' : 'ok'} in ${b.seconds.toFixed(1)} s ${b.detail}`),
          });
          if (o.json) out(JSON.stringify(r, null, 2));
          else
            out(
              `kernel ${r.kernel}, qemu ${o.qemu}, -cpu ${machine.cpu ?? 'max'}, -smp ${machine.smp ?? 1}${r.append ? `, append '${r.append}'` : ''}, load ${r.load}: ${r.stuck} of ${r.boots} boots stuck (${((100 * r.stuck) / r.boots).toFixed(1)}%), ${r.other} failed otherwise, ${r.seconds.toFixed(0)} s`,
            );
          return 0;
        }),
    );
}
