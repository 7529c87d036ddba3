/**
 * Campaigns in two halves, for a reference that lives elsewhere (a lab kernel under QEMU): the
 * sequences are generated where the caller is, against the model (each command's arguments depend
 * on what the earlier ones created, so generation needs a backend to answer), shipped as plain
 * scenario steps, and replayed there in lockstep against the model. A divergence is shrunk there
 * too, by replaying shorter sequences: fast-check's shrinker needs the generator, which stayed
 * behind.
 */
import fc from 'fast-check';
import type { VmType } from '../api.js';
import { parseScenario, type Scenario, ScenarioError, Session, type Step } from '../scenario/index.js';
import { commandArbitraries, emptyDiffModel } from './commands.js';
import { Divergence, Pair, type Side } from './pair.js';

/** What travels to the reference: every sequence, fully fixed, and how they were made. */
export interface SequenceBatch {
  format: 'guestmem-diff-batch/1';
  seed: number;
  /** the model profile the sequences were generated against and are compared with */
  kernel: string;
  vmType: VmType;
  attributes: boolean;
  sequences: Step[][];
  /**
   * Per sequence, where it came from (a scenario file replayed in lockstep, `guestmem lab run`):
   * its name, its own VM type, and what it requires of the kernel (scenario `requires`).
   */
  meta?: SequenceMeta[];
}

export interface SequenceMeta {
  name: string;
  vmType?: VmType;
  requires?: string[];
}

export interface GenerateOptions {
  side: Side;
  kernel: string;
  runs: number;
  seed: number;
  steps: number;
  vmType: VmType;
  attributes: boolean;
  /** the kernel that replays the batch has the NUMA syscalls (default true) */
  numa?: boolean;
}

/** The first step of every sequence (see campaign.ts start()): vCPU 0 has run once. */
export const FIRST_STEP: Step = { op: 'run', vcpu: 0, program: ['hlt'] };

/**
 * Draw `runs` sequences with fast-check's command generator, fixing each one's steps by running it
 * on the model (a model-vs-model pair, which cannot diverge).
 */
export function generateBatch(o: GenerateOptions): SequenceBatch {
  const sequences: Step[][] = [];
  const arbs = commandArbitraries({ attributes: o.attributes, ...(o.numa !== undefined && { numa: o.numa }) });
  const prop = fc.property(fc.commands(arbs, { maxCommands: o.steps, size: 'max' }), (cmds) => {
    const a = new Session(o.side.open(), o.vmType);
    const b = new Session(o.side.open(), o.vmType);
    try {
      fc.modelRun(() => {
        const model = emptyDiffModel();
        const pair = new Pair(a, b);
        pair.apply(FIRST_STEP, model);
        return { model, real: pair };
      }, cmds);
    } finally {
      a.close();
      b.close();
    }
    const steps: Step[] = [];
    for (const c of cmds) {
      const text = c.toString();
      if (text) steps.push(...(JSON.parse(`[${text}]`) as Step[]));
    }
    sequences.push(steps);
  });
  const r = fc.check(prop, { seed: o.seed, numRuns: o.runs });
  // model against itself: a failure here is a bug in the model or the generator, not a finding
  if (r.failed) throw new Error(`generating sequences failed: ${String(r.errorInstance)}`);
  return { format: 'guestmem-diff-batch/1', seed: o.seed, kernel: o.kernel, vmType: o.vmType, attributes: o.attributes, sequences };
}

export interface ReplayOutcome {
  /** steps run on both sides, the first step included */
  steps: number;
  uncompared: number;
  divergence?: Divergence;
  /** index into the replayed steps of the step that diverged */
  at?: number;
}

/**
 * Replay steps on both sides in lockstep, from a fresh KVM each: campaign.ts's first step, then the
 * steps. A scenario file starts as it does in `guestmem run`, without the first step (`bare`).
 */
export function replaySteps(steps: readonly Step[], reference: Side, candidate: Side, vmType: VmType, bare = false): ReplayOutcome {
  const a = new Session(reference.open(), vmType);
  const b = new Session(candidate.open(), vmType);
  const pair = new Pair(a, b);
  const m = emptyDiffModel();
  const first = bare ? 0 : 1;
  try {
    if (!bare) pair.apply(FIRST_STEP, m);
    for (const s of steps) pair.apply({ ...s, expect: undefined } as Step, m);
    return { steps: pair.steps, uncompared: pair.uncompared };
  } catch (e) {
    if (!(e instanceof Divergence)) throw e;
    // pair.steps counts the diverging step; the first step is not in `steps`
    return { steps: pair.steps, uncompared: pair.uncompared, divergence: e, at: pair.steps - 1 - first };
  } finally {
    a.close();
    b.close();
  }
}

export interface ShrinkResult {
  steps: Step[];
  divergence: Divergence;
  replays: number;
}

/**
 * A shorter sequence with the same kind of divergence: cut after the diverging step, then drop
 * steps one at a time from the end backwards, keeping each drop after which the sequence still
 * diverges the same way (same `what`, e.g. "set_memory_attributes outcome"). One pass is quadratic
 * in replayed steps; `budget` caps the replays.
 */
export function shrinkSequence(
  steps: readonly Step[],
  first: { divergence: Divergence; at: number },
  replayOne: (s: readonly Step[]) => ReplayOutcome,
  budget = 200,
): ShrinkResult {
  let best = steps.slice(0, first.at + 1);
  let divergence = first.divergence;
  let replays = 0;
  const same = (d: Divergence | undefined) => d !== undefined && d.what === first.divergence.what;
  // the diverging step itself stays; everything before it is a candidate
  for (let i = best.length - 2; i >= 0 && replays < budget; i--) {
    const candidate = [...best.slice(0, i), ...best.slice(i + 1)];
    const r = replayOne(candidate);
    replays++;
    if (same(r.divergence) && r.at !== undefined) {
      best = candidate.slice(0, r.at + 1);
      divergence = r.divergence as Divergence;
      i = Math.min(i, best.length - 1);
    }
  }
  return { steps: best, divergence, replays };
}

/** One sequence's result, as a JSON line: what the lab sends back. */
export interface SequenceResult {
  t: 'diff-sequence';
  index: number;
  /** the sequence's name (meta), when it has one */
  name?: string;
  /** why the sequence was not run here (a requirement this kernel does not meet) */
  skipped?: string;
  steps: number;
  uncompared: number;
  ms: number;
  divergence?: {
    message: string;
    what: string;
    reference: string;
    candidate: string;
    /** the step that diverged, as given */
    at: number;
    /** the shrunk sequence (without the implicit first step) */
    shrunk: Step[];
    replays: number;
  };
}

/** Run a batch: every sequence in lockstep, each divergence shrunk; results one by one. */
export function runBatch(
  batch: SequenceBatch,
  reference: Side,
  candidate: Side,
  emit: (r: SequenceResult) => void,
  opts: {
    shrinkBudget?: number;
    skip?: (meta: SequenceMeta & { vmType: VmType }) => string | undefined;
    /** start at this sequence (a run that died at the one before resumes here) */
    from?: number;
  } = {},
): { sequences: number; steps: number; uncompared: number; divergences: number; skipped: number } {
  const total = { sequences: 0, steps: 0, uncompared: 0, divergences: 0, skipped: 0 };
  batch.sequences.forEach((steps, index) => {
    if (index < (opts.from ?? 0)) return;
    const t0 = Date.now();
    const meta = batch.meta?.[index];
    const vmType = meta?.vmType ?? batch.vmType;
    const named = meta ? { name: meta.name } : {};
    const skipped = opts.skip?.({ ...(meta ?? { name: `sequence ${index}` }), vmType });
    if (skipped) {
      total.skipped++;
      emit({ t: 'diff-sequence', index, ...named, skipped, steps: 0, uncompared: 0, ms: 0 });
      return;
    }
    // sequences from scenario files (meta) start as the scenario does
    const bare = meta !== undefined;
    const r = replaySteps(steps, reference, candidate, vmType, bare);
    total.sequences++;
    total.steps += r.steps;
    total.uncompared += r.uncompared;
    const result: SequenceResult = { t: 'diff-sequence', index, ...named, steps: r.steps, uncompared: r.uncompared, ms: 0 };
    if (r.divergence && r.at !== undefined) {
      total.divergences++;
      const s = shrinkSequence(steps, { divergence: r.divergence, at: r.at }, (c) => replaySteps(c, reference, candidate, vmType, bare), opts.shrinkBudget);
      const d = s.divergence;
      result.divergence = { message: d.message, what: d.what, reference: d.reference, candidate: d.candidate, at: r.at, shrunk: s.steps, replays: s.replays };
    }
    result.ms = Date.now() - t0;
    emit(result);
  });
  return total;
}

/** Reject a batch file that is not one (a user may pass any file to --batch). */
export function parseBatch(text: string, name: string): SequenceBatch {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError(`${name}: not JSON: ${(e as Error).message}`);
  }
  const b = v as Partial<SequenceBatch> | null;
  if (!b || typeof b !== 'object' || b.format !== 'guestmem-diff-batch/1')
    throw new ScenarioError(`${name}: not a guestmem diff batch (format guestmem-diff-batch/1)`);
  if (!Array.isArray(b.sequences) || !b.sequences.every(Array.isArray)) throw new ScenarioError(`${name}: "sequences" must be an array of step arrays`);
  const vmTypeOk = (t: unknown) => t === 'default' || t === 'sw_protected';
  if (!vmTypeOk(b.vmType)) throw new ScenarioError(`${name}: "vmType" must be default or sw_protected`);
  if (b.meta !== undefined) {
    if (!Array.isArray(b.meta) || b.meta.length !== b.sequences.length) throw new ScenarioError(`${name}: "meta" must have one entry per sequence`);
    b.meta.forEach((m, i) => {
      if (!m || typeof m.name !== 'string') throw new ScenarioError(`${name}: meta[${i}].name must be a string`);
      if (m.vmType !== undefined && !vmTypeOk(m.vmType)) throw new ScenarioError(`${name}: meta[${i}].vmType must be default or sw_protected`);
      if (m.requires !== undefined && !(Array.isArray(m.requires) && m.requires.every((r) => typeof r === 'string')))
        throw new ScenarioError(`${name}: meta[${i}].requires must be an array of strings`);
    });
  }
  if (typeof b.kernel !== 'string' || typeof b.seed !== 'number') throw new ScenarioError(`${name}: "kernel" (string) and "seed" (number) are required`);
  // every step through the scenario schema, so a hand-edited batch fails here with the step named
  // (an empty sequence is valid: it runs only the first step)
  const sequences = b.sequences.map((steps, i) =>
    steps.length ? parseScenario(JSON.stringify({ name: `sequence ${i}`, steps }), `${name} sequence ${i}`).steps : [],
  );
  return { ...(b as SequenceBatch), attributes: b.attributes === true, sequences };
}

/**
 * Scenario files as a batch, to replay in lockstep against the model (what `guestmem lab run` does
 * after judging their expectations): every step of every scenario compared, expectations ignored,
 * so a scenario written for another kernel is a comparison too. Scenarios of a model-only design or
 * of a VM type the batch cannot carry are left out, each with the reason.
 */
export function scenariosBatch(
  kernel: string,
  scenarios: readonly { name: string; scenario: Scenario }[],
): { batch: SequenceBatch; left: { name: string; reason: string }[] } {
  const sequences: Step[][] = [];
  const meta: SequenceMeta[] = [];
  const left: { name: string; reason: string }[] = [];
  for (const { name, scenario: sc } of scenarios) {
    const vmType = sc.vm?.type ?? 'default';
    if (sc.design) left.push({ name, reason: `design ${sc.design}: a model variant, not a kernel` });
    else if (vmType !== 'default' && vmType !== 'sw_protected')
      left.push({ name, reason: `a ${vmType} VM: the lockstep comparison covers default and sw_protected VMs` });
    else {
      sequences.push(sc.steps.map((s) => ({ ...s, expect: undefined }) as Step));
      meta.push({ name, vmType, ...(sc.requires?.length && { requires: [...sc.requires] }) });
    }
  }
  return { batch: { format: 'guestmem-diff-batch/1', seed: 0, kernel, vmType: 'default', attributes: false, sequences, meta }, left };
}
