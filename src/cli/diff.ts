/**
 * `guestmem diff`: the model held against the live kernel by random operation sequences, or against
 * planted bugs (--self-test). Progress goes to stderr on a TTY; results to stdout.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { KvmError, type VmType } from '../api.js';
import { kvmBackend, loadKvmModule } from '../backends/kvm.js';
import {
  type CampaignResult,
  counterexampleScenario,
  MUTANTS,
  mutantKvm,
  PathError,
  parseBatch,
  replay,
  runBatch,
  runCampaign,
  type SequenceMeta,
  type Side,
  UNCOMPARED_IDS,
} from '../diff/index.js';
import { createModelKvm, getProfile, type KernelProfile, PROFILE_NAMES } from '../model/index.js';
import { type Backend, modelBackend, parseScenario, Session, type Step, unmetRequirement } from '../scenario/index.js';
import { UserError } from './errors.js';

export interface DiffOptions {
  runs: number;
  /** --runs was given (the self-test has a larger budget of its own otherwise) */
  runsGiven?: boolean;
  seed?: number;
  steps: number;
  kernel?: string;
  json: boolean;
  replay?: string;
  path?: string;
  selfTest: boolean;
  reference: 'kvm' | 'model';
  vmType: VmType;
  /** lab kernels, comma-separated, or 'all' */
  lab?: string;
  /** a batch file to replay (inside the lab VM) */
  batch?: string;
  shrinkBudget?: number;
  timeoutSeconds?: number;
  /** --batch: start at this sequence index */
  from?: number;
}

function modelSide(profile: KernelProfile, name = `model ${profile.name}`): Side {
  return { name, open: () => createModelKvm({ kernel: profile }) };
}

/**
 * The two sides, the candidate's profile, and whether the reference has guest_memfd: the generator
 * draws from what the reference offers, as its KVM_CAP_GUEST_MEMFD says.
 */
async function sides(o: DiffOptions): Promise<{ reference: Side; candidate: Side; profile: KernelProfile; guestMemfd: boolean }> {
  if (o.reference === 'model') {
    const profile = getProfile(o.kernel && o.kernel !== 'host' ? o.kernel : '6.18');
    return { reference: modelSide(profile, 'reference model'), candidate: modelSide(profile), profile, guestMemfd: profile.guestMemfd };
  }
  const backend = await kvmBackend();
  const mod = await loadKvmModule();
  const host = backend.hostProfile();
  const profile = !o.kernel || o.kernel === 'host' ? host : getProfile(o.kernel);
  // the reference learns host faults from the kernel (kernel-checked copies), never from the rule the model has
  const reference = { name: 'kvm', open: () => mod.openKvm('/dev/kvm', { hostAccess: 'kernel-checked' }) };
  return { reference, candidate: modelSide(profile), profile, guestMemfd: host.guestMemfd };
}

/** The self-test's budget per VM type when --runs is not given: enough to find every planted bug. */
export const SELF_TEST_RUNS = 2000;

function progress(total: number, label: string): { tick(done: number, steps: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { tick() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total} sequences | {steps} steps | {eta}s left`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { steps: 0 });
  return { tick: (done, steps) => bar.update(done, { steps }), stop: () => bar.stop() };
}

function summary(r: CampaignResult, divergences: number): string {
  const rate = r.ms ? Math.round((r.steps * 1000) / r.ms) : 0;
  const left = r.uncompared ? `, ${r.uncompared} steps not compared (${UNCOMPARED_IDS})` : '';
  return `${r.sequences} sequences, ${r.steps} steps, ${divergences} divergences, ${rate} steps/s${left} (seed ${r.seed})`;
}

/** Why the reference cannot create a VM of this type, if it cannot. */
function vmTypeProblem(side: Side, vmType: VmType): string | undefined {
  let s: Session | undefined;
  try {
    s = new Session(side.open(), vmType);
    return undefined;
  } catch (e) {
    if (e instanceof KvmError) return `${side.name} cannot create a ${vmType} VM (${e.message})`;
    throw e;
  } finally {
    s?.close();
  }
}

/** A clear error, not a stack trace, when the reference cannot create the VM type at all. */
function requireVmType(side: Side, vmType: VmType): void {
  const why = vmTypeProblem(side, vmType);
  if (why) throw new UserError(`${why}: choose another --vm-type`);
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The modes of `guestmem diff` that exclude each other, named as the user typed them. */
function checkModes(o: DiffOptions): void {
  const modes = [o.selfTest && '--self-test', o.lab !== undefined && '--lab', o.batch !== undefined && '--batch'].filter(Boolean);
  if (modes.length > 1) throw new UserError(`${modes.join(' and ')} exclude each other`);
  if (o.batch !== undefined && (o.replay || o.path)) throw new UserError('--batch replays its own sequences: drop --replay and --path');
  if (o.from !== undefined && o.batch === undefined) throw new UserError('--from goes with --batch (the sequence index to start at)');
  // combinations that would silently do nothing, or something other than what was asked
  if (o.selfTest && (o.replay || o.path)) throw new UserError('--self-test runs its own sequences: drop --replay and --path');
  // --lab K --replay FILE is the replay a lab divergence prints; a fast-check path means nothing there
  if (o.lab !== undefined && o.path) throw new UserError('--lab runs its own sequences: drop --path (replay a counterexample file with --lab K --replay FILE)');
  if (o.replay && o.path) throw new UserError('--replay replays a file and --path a generated sequence: give one');
  if (o.path !== undefined && o.seed === undefined) throw new UserError('--path replays one sequence of a seed: give --seed too (both are in the report)');
  if (o.steps < 1) throw new UserError('--steps must be at least 1');
  if (o.runs < 1) throw new UserError('--runs must be at least 1');
}

export async function runDiff(o: DiffOptions, out: (s: string) => void): Promise<number> {
  checkModes(o);
  if (o.selfTest) return selfTest(o, out);
  if (o.lab !== undefined) return runLabDiff(o, out);
  if (o.batch !== undefined) return runBatchFile(o, o.batch, out);
  const { reference, candidate, profile, guestMemfd } = await sides(o);
  if (o.replay) {
    const sc = parseScenario(readText(o.replay), o.replay);
    const d = replay(sc.steps, reference, candidate, sc.vm?.type ?? o.vmType);
    out(
      o.json
        ? JSON.stringify({ file: o.replay, divergence: d ? d.message : null })
        : d
          ? `divergence: ${d.message}`
          : `no divergence: ${sc.steps.length} steps agree (${reference.name} vs ${candidate.name})`,
    );
    return d ? 1 : 0;
  }
  requireVmType(reference, o.vmType);
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  const bar = progress(o.runs, `${reference.name} vs ${candidate.name}`);
  let r: CampaignResult;
  try {
    r = runCampaign({
      reference,
      candidate,
      runs: o.runs,
      seed,
      steps: o.steps,
      vmType: o.vmType,
      attributes: o.vmType === 'sw_protected',
      guestMemfd,
      ...(o.path && { path: o.path }),
      onSequence: bar.tick,
    });
  } catch (e) {
    if (e instanceof PathError) throw new UserError(e.message);
    throw e;
  } finally {
    bar.stop();
  }
  let file: string | undefined;
  if (r.divergence) {
    mkdirSync('diff-failures', { recursive: true });
    file = join('diff-failures', `seed-${seed}-path-${r.divergence.path.replaceAll(':', '_') || 'none'}.json`);
    writeFileSync(file, `${JSON.stringify(counterexampleScenario(r, profile.name, o.vmType), null, 2)}\n`);
  }
  if (o.json) {
    out(
      JSON.stringify(
        {
          ...r,
          divergences: r.divergence ? 1 : 0,
          file: file ?? null,
          stepsPerSecond: r.ms ? Math.round((r.steps * 1000) / r.ms) : 0,
          notCompared: guestMemfd ? [] : ['guest_memfd'],
        },
        null,
        2,
      ),
    );
  } else {
    if (r.divergence) {
      out(`divergence: ${r.divergence.message}`);
      out(`shrunk to ${r.divergence.steps.length} steps (${r.divergence.shrinks} shrinks), written to ${file}`);
      out(`replay: guestmem diff --replay ${file}   or   guestmem diff --seed ${seed} --path ${r.divergence.path}`);
    }
    out(summary(r, r.divergence ? 1 : 0));
    if (!guestMemfd) {
      out(
        `not compared: guest_memfd files, bindings, punches and host mappings of them (${reference.name} has no guest_memfd: KVM_CAP_GUEST_MEMFD is 0); memory was built on memfds, and KVM_CREATE_GUEST_MEMFD's refusal was compared`,
      );
    }
  }
  return r.divergence ? 1 : 0;
}

/** Every planted bug must be found by a campaign of the correct model against the broken one. */
async function selfTest(o: DiffOptions, out: (s: string) => void): Promise<number> {
  const profile = getProfile(o.kernel && o.kernel !== 'host' ? o.kernel : '6.18');
  const reference = modelSide(profile, 'model');
  const rows: { bug: string; rule: string; found: boolean; sequences: number; steps: number; vmType: string; divergence?: string }[] = [];
  for (const m of MUTANTS) {
    const candidate: Side = { name: `mutant ${m.bug}`, open: () => mutantKvm(m.bug, profile) };
    let row: (typeof rows)[number] = { bug: m.bug, rule: m.rule, found: false, sequences: 0, steps: 0, vmType: '' };
    for (const vmType of ['default', 'sw_protected'] as const) {
      const bar = progress(o.runsGiven ? o.runs : SELF_TEST_RUNS, m.bug);
      let r: CampaignResult;
      try {
        r = runCampaign({
          reference,
          candidate,
          runs: o.runsGiven ? o.runs : SELF_TEST_RUNS,
          seed: o.seed ?? 1,
          steps: o.steps,
          vmType,
          attributes: vmType === 'sw_protected',
          onSequence: bar.tick,
        });
      } finally {
        bar.stop();
      }
      row = { ...row, sequences: row.sequences + r.sequences, steps: row.steps + r.steps, vmType };
      if (r.divergence) {
        row = { ...row, found: true, divergence: r.divergence.message };
        break;
      }
    }
    rows.push(row);
  }
  if (o.json) out(JSON.stringify(rows, null, 2));
  else {
    for (const r of rows)
      out(
        `${r.found ? 'found  ' : 'MISSED '} ${r.bug} (${r.rule}) after ${r.sequences} sequences on a ${r.vmType} VM${r.divergence ? `\n         ${r.divergence.slice(0, 200)}` : ''}`,
      );
    out(`${rows.filter((r) => r.found).length} of ${rows.length} planted bugs found`);
  }
  return rows.every((r) => r.found) ? 0 : 1;
}

/**
 * `--batch FILE`: replay generated sequences (src/diff/batch.ts) against the model under the
 * batch's kernel profile, one JSON line per sequence, then a summary line. This is what
 * `--lab` runs inside the VM; exit 1 when a sequence diverged.
 */
async function runBatchFile(o: DiffOptions, file: string, out: (s: string) => void): Promise<number> {
  const batch = parseBatch(readText(file), file);
  const kernel = o.kernel ?? batch.kernel;
  if (!PROFILE_NAMES.includes(kernel as (typeof PROFILE_NAMES)[number])) throw new UserError(`${file}: kernel ${kernel} is not a model profile`);
  const { reference, candidate } = await sides({ ...o, kernel });
  if (!batch.meta) requireVmType(reference, batch.vmType);
  // Sequences from scenario files carry their own VM type and requirements: the reference decides
  // which it can run, as `guestmem run` would (the same requirement checks).
  const facts: Backend = o.reference === 'kvm' ? await kvmBackend() : modelBackend({ kernel: getProfile(kernel === 'host' ? '6.18' : kernel) });
  const vmTypes = new Map<VmType, string | undefined>();
  const skip = (m: SequenceMeta & { vmType: VmType }): string | undefined => {
    if (!vmTypes.has(m.vmType)) vmTypes.set(m.vmType, vmTypeProblem(reference, m.vmType));
    const noVm = vmTypes.get(m.vmType);
    if (noVm) return noVm;
    for (const req of m.requires ?? []) {
      const kvm = reference.open();
      try {
        const why = unmetRequirement(kvm, req, facts.numaNodes, facts.guest?.bind(facts));
        if (why) return `requires ${req}: ${why}`;
      } finally {
        kvm.close();
      }
    }
    return undefined;
  };
  const t0 = Date.now();
  const total = runBatch(batch, reference, candidate, (r) => out(JSON.stringify(r)), {
    ...(o.shrinkBudget !== undefined && { shrinkBudget: o.shrinkBudget }),
    ...(o.from !== undefined && { from: o.from }),
    ...(batch.meta && { skip }),
  });
  out(JSON.stringify({ t: 'diff-summary', ...total, ms: Date.now() - t0, reference: reference.name, candidate: candidate.name, seed: batch.seed }));
  return total.divergences ? 1 : 0;
}

/** `--lab KERNELS`: sequences made here, replayed inside each lab kernel against the model. */
async function runLabDiff(o: DiffOptions, out: (s: string) => void): Promise<number> {
  const { KERNEL_IDS, LabError, createProgress } = await import('../lab/index.js');
  const { labDiff, labCounterexample, formatLabDiff } = await import('../lab/diff.js');
  const kernels = o.lab === 'all' ? [...KERNEL_IDS] : (o.lab ?? '').split(',').map((k) => k.trim());
  for (const k of kernels) if (!KERNEL_IDS.includes(k)) throw new UserError(`--lab: unknown lab kernel '${k}' (choose from ${KERNEL_IDS.join(', ')}, or all)`);
  if (o.reference !== 'kvm' || o.path || o.kernel)
    throw new UserError('--lab holds each lab kernel against its own model profile: drop --reference, --path and --kernel');
  let replaySteps: Step[] | undefined;
  let vmType = o.vmType;
  if (o.replay) {
    const sc = parseScenario(readText(o.replay), o.replay);
    replaySteps = sc.steps;
    vmType = sc.vm?.type === 'default' || sc.vm?.type === 'sw_protected' ? sc.vm.type : vmType;
  }
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  try {
    const results = await labDiff(kernels, {
      runs: o.runs,
      seed,
      steps: o.steps,
      vmType,
      timeoutMs: (o.timeoutSeconds ?? 600) * 1000,
      progress: createProgress(),
      ...(replaySteps && { replay: replaySteps }),
      ...(o.shrinkBudget !== undefined && { shrinkBudget: o.shrinkBudget }),
    });
    const files: string[] = [];
    for (const r of results) {
      for (const d of r.divergences) {
        mkdirSync('diff-failures', { recursive: true });
        const file = join('diff-failures', `lab-${r.kernel}-${r.vmType}-seed-${r.seed}-seq-${d.index}.json`);
        writeFileSync(file, `${JSON.stringify(labCounterexample(r, d), null, 2)}\n`);
        files.push(file);
      }
    }
    if (o.json)
      out(
        JSON.stringify(
          results.map(({ run, ...r }) => ({ ...r, run: { ...run, records: undefined } })),
          null,
          2,
        ),
      );
    else {
      for (const r of results) out(formatLabDiff(r));
      for (const f of files) out(`counterexample written to ${f}; replay: guestmem diff --lab ${/lab-([^-]+)-/.exec(f)?.[1]} --replay ${f}`);
    }
    return results.every((r) => r.complete && !r.divergences.length) ? 0 : 1;
  } catch (e) {
    if (!(e instanceof LabError)) throw e;
    process.stderr.write(`\nguestmem diff --lab: ${e.stage}: ${e.message}\n`);
    if (e.detail) process.stderr.write(`${e.detail.replace(/^/gm, '  ')}\n`);
    return e.stage === 'args' ? 2 : 3;
  }
}
