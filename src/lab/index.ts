/**
 * The conformance lab: real kernels with software-protected VMs, booted under QEMU (TCG), running
 * guestmem inside. Stages: build (kernel from Debian's source package + lab/kernel.config, cached),
 * pack (initramfs: busybox, Node, node_modules, dist, scenarios), boot (QEMU, hard timeout),
 * collect (JSON lines from the VM's data serial port).
 */
import { readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type SequenceBatch, type SequenceResult, scenariosBatch } from '../diff/index.js';
import { parseScenario, type Scenario } from '../scenario/index.js';
import { boot, type MachineOptions } from './boot.js';
import { buildKernel, type KernelBuild } from './build.js';
import { fold, type KernelRun, type LabRecord, type LockstepSummary } from './collect.js';
import { alive, awaitCleanups, cacheDir, DEFAULT_GUEST_BACKEND, ensureDir, KERNEL_IDS, kernelSpec, LabError, ROOT, tail, writeJson } from './env.js';
import type { Job, JobCommand } from './guest.js';
import { packApp, packBase, placeScenarios, writeInitrd } from './pack.js';
import { requirePrereqs } from './prereq.js';
import { createProgress, type Progress } from './progress.js';

export { fragmentHash, type KernelBuild, parseFragment, unmetFragment } from './build.js';
export { formatKernelRun, type KernelRun, type LabRecord, probeLine } from './collect.js';
export { cacheDir, KERNEL_IDS, KERNELS, LabError } from './env.js';
export { LAB_PACKAGES, type Missing, missing } from './prereq.js';
export { createProgress, type Progress } from './progress.js';

export type GuestBackend = 'model' | 'kvm';
/**
 * The backend `guestmem run` uses inside the VM. 'model' proves the pipeline (Node, koffi, dist)
 * until src/kvm/ lands; flip this to 'kvm' then (or pass --backend kvm).
 */
export { DEFAULT_GUEST_BACKEND } from './env.js';

export interface LabCommonOptions {
  kernels?: readonly string[];
  cache?: string;
  progress?: Progress;
  /** Hard limit for one kernel's fetch + build. */
  buildTimeoutMs?: number;
  force?: boolean;
  keepSource?: boolean;
}

export interface LabRunOptions extends LabCommonOptions {
  /** Scenario files or directories; default: every scenario under scenarios/. */
  scenarios?: readonly string[];
  backend?: GuestBackend;
  /** Hard limit for one VM (boot, probe, scenarios). */
  timeoutMs?: number;
  /** Skip the raw /dev/kvm probe. */
  noProbe?: boolean;
  /**
   * After judging the scenarios' expectations, replay every runnable one in lockstep against the
   * model under this kernel's profile (`guestmem diff --batch`): default true with the kvm backend.
   */
  lockstep?: boolean;
  /** Run the kvm backend's own tests and the conformance suites' kvm side (dist/tests/kvm, dist/tests/conformance) inside the VM too: default true with the kvm backend. */
  kvmTests?: boolean;
  memoryMiB?: number;
  /** the emulated machine (QEMU binary, -cpu, -smp), for the stuck-boot experiments */
  machine?: MachineOptions;
  /** extra kernel command line */
  append?: string;
  /** boots of one job before a stuck canary counts as the result (default 4; 1 to count stuck boots) */
  bootAttempts?: number;
}

/**
 * The kvm backend's tests inside the VM: the same files as on the host (its own tests, and the /dev/kvm
 * side of the conformance suites, whose model side the host already ran), with the leak workloads cut
 * down (Node runs about 19x slower under TCG) and /dev/kvm required, so a broken device fails.
 */
export const KVM_TESTS_COMMAND: JobCommand = {
  label: 'kvm-tests',
  node: true,
  argv: ['--test', '--test-reporter=tap', '--test-concurrency=1', 'dist/tests/kvm/', 'dist/tests/conformance/'],
  env: { GUESTMEM_REQUIRE_KVM: '1', GUESTMEM_CONFORMANCE: 'kvm', GUESTMEM_LEAK_CYCLES: '20', GUESTMEM_LEAK_ROUNDS: '1' },
  parse: 'tap',
  // exit 1: some test failed; its record says which
  okStatuses: [0, 1],
};

const DEFAULT_BUILD_TIMEOUT = 30 * 60_000;
// the 6.12 run (scenarios, the kvm backend's tests, the lockstep replay) takes about 6 minutes under TCG
const DEFAULT_VM_TIMEOUT = 900_000;
const KEEP_RUNS = 12;

function kernelsOf(o: LabCommonOptions): string[] {
  const ks = o.kernels?.length ? [...new Set(o.kernels)] : [...KERNEL_IDS];
  for (const k of ks) kernelSpec(k);
  return ks;
}

/** Build (or find in the cache) each kernel. */
export async function labBuild(o: LabCommonOptions = {}): Promise<KernelBuild[]> {
  const cache = ensureDir(o.cache ?? cacheDir());
  const progress = o.progress ?? createProgress();
  const out: KernelBuild[] = [];
  for (const k of kernelsOf(o)) {
    out.push(
      await buildKernel(kernelSpec(k), {
        cache,
        progress,
        timeoutMs: o.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT,
        ...(o.force !== undefined && { force: o.force }),
        ...(o.keepSource !== undefined && { keepSource: o.keepSource }),
      }),
    );
  }
  await awaitCleanups();
  return out;
}

/** Scenario arguments (files or directories, recursively) -> sorted absolute file list. */
export function expandScenarios(args: readonly string[]): string[] {
  const out: string[] = [];
  const visit = (p: string) => {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      throw new LabError('args', `${p}: no such scenario file or directory`);
    }
    if (st.isDirectory()) {
      for (const n of readdirSync(p).sort()) {
        const c = join(p, n);
        if (statSync(c).isDirectory() || /\.(json|ya?ml)$/.test(n)) visit(c);
      }
    } else out.push(resolve(p));
  };
  for (const a of args) visit(a);
  if (!out.length) throw new LabError('args', `no scenario files in ${args.join(' ')}`);
  return [...new Set(out)];
}

const LOCKSTEP_BATCH = 'lab/lockstep-batch.json';
/** Boots of one job before a failed canary counts as the result (see runJob). */
const BOOT_ATTEMPTS = 4;

/** The scenario files, parsed on the host, named by their path inside /app (as the results name them). */
function parseForLockstep(placed: Map<string, string>): { name: string; scenario: Scenario }[] {
  const out: { name: string; scenario: Scenario }[] = [];
  for (const [host, inside] of placed) {
    try {
      out.push({ name: inside, scenario: parseScenario(readFileSync(host, 'utf8'), inside) });
    } catch (e) {
      throw new LabError('args', (e as Error).message);
    }
  }
  return out;
}

/** The lockstep replay's records into the run: a divergence is a problem, skips keep their reasons. */
function foldLockstep(run: KernelRun, batch: SequenceBatch, left: { name: string; reason: string }[], k: string): void {
  const results = (run.records ?? []).filter((r) => r.t === 'diff-sequence') as unknown as SequenceResult[];
  const lock: LockstepSummary = { agreed: 0, diverged: [], skipped: [...left], total: batch.sequences.length + left.length };
  for (const r of results) {
    const name = r.name ?? `sequence ${r.index}`;
    if (r.skipped) lock.skipped.push({ name, reason: r.skipped });
    else if (r.divergence) lock.diverged.push({ name, message: r.divergence.message, shrunk: r.divergence.shrunk });
    else lock.agreed++;
  }
  run.lockstep = lock;
  for (const d of lock.diverged) run.problems.push(`lockstep with model ${k}: ${d.name}: ${d.message}`);
  if (run.ok && results.length < batch.sequences.length) run.problems.push(`lockstep: only ${results.length} of ${batch.sequences.length} scenarios came back`);
  run.ok = run.problems.length === 0;
}

function runId(kernel: string): string {
  const d = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `${d}-${kernel}-${process.pid}`;
}

function renameQuietly(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    // the boot wrote no such log
  }
}

/** Keep the newest runs' logs; drop the initrd an interrupted run left behind. */
function pruneRuns(dir: string): void {
  const names = readdirSync(dir).sort();
  for (const n of names.slice(0, Math.max(0, names.length - KEEP_RUNS))) rmSync(join(dir, n), { recursive: true, force: true });
  for (const n of names) {
    const pid = Number(/-(\d+)$/.exec(n)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) rmSync(join(dir, n, 'initrd.cpio'), { force: true });
  }
}

/** Build, pack, boot and collect, kernel after kernel. */
export async function labRun(o: LabRunOptions = {}): Promise<KernelRun[]> {
  const backend = o.backend ?? DEFAULT_GUEST_BACKEND;
  const files = expandScenarios(o.scenarios?.length ? o.scenarios : [join(ROOT, 'scenarios')]);
  const placed = placeScenarios(files);
  const lockstep = (o.lockstep ?? true) && backend === 'kvm';
  const parsed = lockstep ? parseForLockstep(placed) : [];
  const results: KernelRun[] = [];
  for (const k of kernelsOf(o)) {
    let scenarios = 0;
    let tests = 0;
    let replays = 0;
    const { batch, left } = scenariosBatch(k, parsed);
    const commands: JobCommand[] = [{ label: 'run', argv: ['run', '--backend', backend, '--json', ...placed.values()], parse: 'run-json' }];
    if ((o.kvmTests ?? true) && backend === 'kvm') commands.push(KVM_TESTS_COMMAND);
    // exit 1 = some scenario diverged: it ran to the end, its records say which
    if (lockstep) commands.push({ label: 'lockstep', argv: ['diff', '--batch', `/${LOCKSTEP_BATCH}`, '--kernel', k], parse: 'lines', okStatuses: [0, 1] });
    const run = await runJob(k, o, {
      commands,
      scenarios: placed,
      ...(lockstep && { files: [{ at: LOCKSTEP_BATCH, content: JSON.stringify(batch) }] }),
      backend,
      describe: `guestmem run --backend ${backend} (${files.length} files)`,
      onRecord: (rec, progress) => {
        if (rec.t === 'scenario') progress.update(`${++scenarios} scenario results`);
        if (rec.t === 'test') progress.update(`${scenarios} scenario results; ${++tests} kvm backend tests`);
        if (rec.t === 'diff-sequence')
          progress.update(`${scenarios} scenario results; ${++replays}/${batch.sequences.length} replayed in lockstep with model ${k}`);
      },
    });
    if (lockstep) foldLockstep(run, batch, left, k);
    results.push(run);
  }
  await awaitCleanups();
  return results;
}

export interface LabJob {
  commands: JobCommand[];
  /** scenario files to place under /app (host path -> path inside /app) */
  scenarios?: Map<string, string>;
  /** more files for the VM, by path inside the initramfs */
  files?: { at: string; content: string }[];
  backend: string;
  /** what the VM does after the probe, for the progress line */
  describe: string;
  /** every record as it arrives (the progress line is the caller's to update) */
  onRecord?: (rec: LabRecord, progress: Progress) => void;
}

/**
 * One kernel, one VM: build (or find) the kernel, pack the initramfs with the job, boot it under
 * QEMU with a hard timeout, and fold the JSON lines that come back.
 */
export async function runJob(k: string, o: LabRunOptions, j: LabJob): Promise<KernelRun> {
  const cache = ensureDir(o.cache ?? cacheDir());
  const progress = o.progress ?? createProgress();
  // Fail before a long kernel build when QEMU or busybox is missing.
  requirePrereqs(['pack', 'boot']);
  const wall0 = Date.now();
  const spec = kernelSpec(k);
  const build = await buildKernel(spec, {
    cache,
    progress,
    timeoutMs: o.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT,
    ...(o.force !== undefined && { force: o.force }),
    ...(o.keepSource !== undefined && { keepSource: o.keepSource }),
  });

  const pack0 = Date.now();
  progress.stage(`pack ${k}`, 'initramfs: busybox, node, node_modules, dist, job');
  const base = packBase(cache);
  const job: Job = {
    kernel: k,
    probe: !o.noProbe,
    commands: j.commands,
    // leave the VM time to report a hung command before the host's hard timeout
    commandTimeoutMs: Math.max(10_000, (o.timeoutMs ?? DEFAULT_VM_TIMEOUT) - 30_000),
    canary: !o.noProbe,
  };
  const app = packApp({ job, scenarios: j.scenarios ?? new Map(), ...(j.files && { files: j.files }) }, base.libDirs);
  const runsRoot = ensureDir(join(cache, 'runs'));
  pruneRuns(runsRoot);
  const runDir = ensureDir(join(runsRoot, runId(k)));
  writeJson(join(runDir, 'job.json'), job);
  const initrd = join(runDir, 'initrd.cpio');
  const size = writeInitrd(initrd, base.path, app);
  const packSeconds = (Date.now() - pack0) / 1000;
  progress.done(`pack ${k}: ${(size / 2 ** 20).toFixed(0)} MiB initramfs${base.built ? ' (base layer rebuilt)' : ''}`);

  progress.stage(`boot ${k}`, `qemu: ${build.version}`);
  let records: LabRecord[] = [];
  let bootSeconds: number | undefined;
  let booted: Awaited<ReturnType<typeof boot>>;
  let retried: string | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      records = [];
      const t0 = Date.now();
      booted = await boot({
        bzImage: build.bzImage,
        initrd,
        runDir,
        timeoutMs: o.timeoutMs ?? DEFAULT_VM_TIMEOUT,
        ...(o.memoryMiB !== undefined && { memoryMiB: o.memoryMiB }),
        ...(o.machine && { machine: o.machine }),
        ...(o.append && { append: o.append }),
        onRecord: (raw) => {
          const rec = raw as LabRecord;
          records.push(rec);
          if (rec.t === 'hello') {
            bootSeconds = (Date.now() - t0) / 1000;
            progress.update(`booted ${String(rec.release)} in ${bootSeconds.toFixed(1)} s; probing /dev/kvm`);
          } else if (rec.t === 'probe') progress.update(`SW_PROTECTED VM ${rec.swProtectedVm ? 'created' : 'NOT created'}; a halting guest on each VM type`);
          else if (rec.t === 'canary' && rec.ok) progress.update(j.describe);
          j.onRecord?.(rec, progress);
        },
      });
      // A boot whose nested guests never exit (under TCG, about one boot in eight on this 2-core
      // machine, more under load; the vCPU never fetches its first instruction) says nothing about the
      // kernel: boot again, up to BOOT_ATTEMPTS times in all, and say so in the result.
      const c = records.find((r) => r.t === 'canary');
      if (attempt >= (o.bootAttempts ?? BOOT_ATTEMPTS) || !c?.stuck) break;
      const why = `boot ${attempt}: a halting guest did not exit (${Object.entries((c.results as Record<string, string>) ?? {})
        .map(([t, r]) => `${t}: ${r}`)
        .join('; ')}); booted again`;
      retried = retried ? `${retried}; ${why}` : why;
      // keep the stuck boot's logs beside the next one's, for whoever looks for the cause
      for (const f of ['console.log', 'data.jsonl']) renameQuietly(join(runDir, f), join(runDir, f.replace('.', `.boot${attempt}.`)));
      progress.done(`boot ${k}: ${why}`);
      progress.stage(`boot ${k}`, `qemu: ${build.version} (boot ${attempt + 1})`);
    }
  } finally {
    rmSync(initrd, { force: true });
  }
  const run = fold(records, {
    kernel: k,
    sourceVersion: build.version,
    backend: j.backend,
    runDir,
    timings: {
      ...(build.built && build.buildSeconds !== undefined && { buildSeconds: build.buildSeconds }),
      kernelCached: !build.built,
      packSeconds,
      ...(bootSeconds !== undefined && { bootSeconds }),
      wallSeconds: 0,
    },
  });
  run.records = records;
  if (retried) run.retried = retried;
  if (booted.timedOut) run.problems.unshift(`timeout: the VM did not finish within ${Math.round((o.timeoutMs ?? DEFAULT_VM_TIMEOUT) / 1000)} s and was killed`);
  else if (booted.code !== 0) run.problems.unshift(`qemu exited with ${booted.code ?? booted.signal}: ${booted.qemuStderr.trim().split('\n')[0] ?? ''}`);
  if (booted.noise.length) writeJson(join(runDir, 'noise.json'), booted.noise);
  run.ok = run.problems.length === 0;
  run.timings.wallSeconds = (Date.now() - wall0) / 1000;
  if (!run.ok) {
    try {
      const text = readFileSync(booted.consoleLog, 'utf8');
      run.consoleTail = tail(text, 15);
      // a panic ends the VM at once: say so first, with the kernel's reason
      const panic = /Kernel panic - not syncing: (.*)/.exec(text);
      if (panic) run.problems.unshift(`the lab kernel panicked: ${panic[1]?.trim()}`);
    } catch {
      // no console output at all
    }
  }
  writeJson(join(runDir, 'result.json'), { ...run, records: undefined });
  progress.done(`boot ${k}: ${run.ok ? 'ok' : 'FAILED'} in ${booted.seconds.toFixed(1)} s`);
  pruneRuns(runsRoot);
  return run;
}
