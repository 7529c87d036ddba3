/**
 * A campaign: random command sequences (fast-check model-based testing), each run in lockstep on a
 * reference and a candidate backend. The first divergence is shrunk to a minimal sequence and
 * returned as scenario steps with the seed and path that replay it.
 */
import fc from 'fast-check';
import type { VmType } from '../api.js';
import { Session, type Step } from '../scenario/index.js';
import { FIRST_STEP, replaySteps } from './batch.js';
import { commandArbitraries, type DiffModel, emptyDiffModel } from './commands.js';
import { Divergence, Pair, type Side } from './pair.js';

export type { Side } from './pair.js';

export interface CampaignOptions {
  reference: Side;
  candidate: Side;
  runs: number;
  seed: number;
  /** most commands per sequence */
  steps: number;
  vmType?: VmType;
  /** include KVM_SET_MEMORY_ATTRIBUTES commands */
  attributes?: boolean;
  /** the reference has guest_memfd (default true): without it memory is built on memfds */
  guestMemfd?: boolean;
  /**
   * replay one sequence: the path from an earlier report, fast-check's run path and the commands'
   * replay path joined by '~' (both are needed to rebuild a shrunk command list)
   */
  path?: string;
  onSequence?: (done: number, steps: number) => void;
}

export interface CampaignResult {
  sequences: number;
  steps: number;
  /** steps not compared (UNCOMPARED_ACCESSES, UNCOMPARED_SLOT_ADDRESS), run on both sides and left out */
  uncompared: number;
  ms: number;
  seed: number;
  divergence?: {
    message: string;
    path: string;
    /** the shrunk counterexample, as scenario steps */
    steps: Step[];
    shrinks: number;
  };
}

/**
 * Both sides start the same way: vCPU 0 has run once, so the reserved code slot (and its host
 * mapping) exists before any generated mapping does, and a later munmap leaves a hole that only
 * the sequence's own mmaps can fill.
 */
function start(pair: Pair, m: DiffModel): void {
  pair.apply(FIRST_STEP, m);
}

export function runCampaign(o: CampaignOptions): CampaignResult {
  const t0 = Date.now();
  let sequences = 0;
  let steps = 0;
  let uncompared = 0;
  const arbs = commandArbitraries({ attributes: o.attributes ?? false, guestMemfd: o.guestMemfd ?? true });
  const [runPath, replayPath] = (o.path ?? '').split('~');
  const commands = fc.commands(arbs, { maxCommands: o.steps, size: 'max', ...(replayPath && { replayPath }) });
  const prop = fc.property(commands, (cmds) => {
    const a = new Session(o.reference.open(), o.vmType ?? 'default');
    const b = new Session(o.candidate.open(), o.vmType ?? 'default');
    const pair = new Pair(a, b);
    try {
      fc.modelRun(() => {
        const model = emptyDiffModel();
        start(pair, model);
        return { model, real: pair };
      }, cmds);
    } finally {
      steps += pair.steps;
      uncompared += pair.uncompared;
      sequences++;
      a.close();
      b.close();
      o.onSequence?.(sequences, steps);
    }
  });
  let details: fc.RunDetails<[Iterable<fc.Command<DiffModel, Pair>>]>;
  try {
    details = fc.check(prop, { seed: o.seed, numRuns: o.runs, ...(o.path !== undefined && { path: runPath, endOnFailure: true }) });
  } catch (e) {
    // fast-check walks the path before running anything: a path that is not one of this seed's
    // sequences is the user's input, not a crash
    if (o.path !== undefined && e instanceof Error && /Unable to replay/.test(e.message)) throw new PathError(o.path, o.seed);
    throw e;
  }
  const result: CampaignResult = { sequences, steps, uncompared, ms: Date.now() - t0, seed: o.seed };
  if (details.failed) {
    const err = details.errorInstance;
    if (!(err instanceof Divergence)) throw err;
    const cmds = details.counterexample?.[0] as Iterable<fc.Command<DiffModel, Pair>> | undefined;
    // the commands' own replay path (in their printed form) rebuilds the shrunk list on replay
    const rp = /replayPath="([^"]*)"/.exec(String(cmds ?? ''))?.[1];
    const shrunk: Step[] = [];
    for (const c of cmds ?? []) {
      const text = c.toString();
      if (text) shrunk.push(...(JSON.parse(`[${text}]`) as Step[]));
    }
    const path = `${details.counterexamplePath ?? ''}${rp ? `~${rp}` : ''}`;
    result.divergence = { message: err.message, path, steps: shrunk, shrinks: details.numShrinks };
  }
  return result;
}

/** A --path that names no sequence of its seed's campaign. */
export class PathError extends Error {
  constructor(
    readonly path: string,
    readonly seed: number,
  ) {
    super(`--path ${path}: not a sequence of seed ${seed} with these --runs/--steps/--vm-type (paths come from a divergence report)`);
  }
}

/** A counterexample as a scenario file that `guestmem run` and `guestmem diff --replay` accept. */
export function counterexampleScenario(r: CampaignResult, kernel: string, vmType: VmType): Record<string, unknown> {
  const d = r.divergence;
  return {
    name: `diff counterexample (seed ${r.seed}, path ${d?.path ?? ''})`,
    description: `Found by guestmem diff: ${d?.message ?? ''}. Replay: guestmem diff --seed ${r.seed} --path ${d?.path ?? ''}, or guestmem diff --replay THIS_FILE.`,
    kernel,
    vm: { type: vmType },
    steps: d?.steps ?? [],
  };
}

/** Replay a scenario's steps on both sides in lockstep; the first divergence, or undefined. */
export function replay(stepsIn: readonly Step[], reference: Side, candidate: Side, vmType: VmType = 'default'): Divergence | undefined {
  return replaySteps(stepsIn, reference, candidate, vmType).divergence;
}
