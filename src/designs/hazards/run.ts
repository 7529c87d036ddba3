/**
 * Running a hazard under a design and reading its outcome off what happened. The outcome is never
 * written in the hazard file: a refusal is the errno (or signal) a staged step actually got, a
 * damage label is recorded only when its probe's observation matched.
 */
import type { Kvm } from '../../api.js';
import { opDef } from '../../scenario/ops/index.js';
import { judge, Session, type Tagged } from '../../scenario/runner.js';
import { createDesignKvm, DESIGN_NAMES, type DesignName } from '../registry.js';
import { type HazardFile, type HazardStep, stepsFor } from './schema.js';

export type HazardOutcome =
  /** the state the hazard needs cannot be built: `by` is how the precondition step was refused */
  | { readonly kind: 'prevented'; readonly op: string; readonly index: number; readonly by: string }
  /** the hazardous call (or a probe of its effect) was refused */
  | { readonly kind: 'refused'; readonly op: string; readonly index: number; readonly by: string }
  /** the hazard went through and the probes saw these damages */
  | { readonly kind: 'damage'; readonly damages: readonly string[] }
  /** the hazard went through and no probe saw damage */
  | { readonly kind: 'no damage' };

export interface HazardStepResult {
  readonly index: number;
  readonly op: string;
  readonly got: string;
  readonly note?: string;
}

export interface HazardRun {
  readonly hazard: string;
  readonly design: DesignName;
  readonly outcome: HazardOutcome;
  /** the outcome as one table cell */
  readonly label: string;
  readonly steps: readonly HazardStepResult[];
}

/** A hazard's plumbing failed: the file is wrong for this design, not the design unsafe. */
export class HazardRunError extends Error {
  override readonly name = 'HazardRunError';
}

export function outcomeLabel(o: HazardOutcome): string {
  switch (o.kind) {
    case 'prevented':
      return `prevented (${o.op}: ${o.by})`;
    case 'refused':
      return `refused: ${o.by} at ${o.op}`;
    case 'damage':
      return o.damages.join('; ');
    case 'no damage':
      return 'no damage';
  }
}

/** What refused the step, if it was refused: the errno, the signal, or why reclaim kept the page. */
function refusal(t: Tagged): string | undefined {
  const o = t.outcome;
  if (o.kind === 'errno') return o.errno;
  if (o.kind === 'fault') return o.fault.signal;
  const d = opDef(t.op);
  return d.errno?.(o.value) ?? d.refused?.(o.value);
}

/**
 * Run `h` under `design` on a fresh model process (`open` makes it: tests pass variants to see what
 * a design without one of its rules would suffer). Invariants are not checked: damage may break them.
 */
export function runHazard(h: HazardFile, design: DesignName, file = `${h.name}.json`, open: (d: DesignName) => Kvm = createDesignKvm): HazardRun {
  const steps = stepsFor(h, design, file);
  const kvm = open(design);
  const session = new Session(kvm, h.vm.type);
  const results: HazardStepResult[] = [];
  const damages: string[] = [];
  const done = (outcome: HazardOutcome): HazardRun => ({ hazard: h.name, design, outcome, label: outcomeLabel(outcome), steps: results });
  try {
    for (let i = 0; i < steps.length; i++) {
      const { step, stage, damage } = steps[i] as HazardStep;
      let r: ReturnType<Session['step']>;
      try {
        r = session.step(step);
      } catch (e) {
        throw new HazardRunError(`${h.name} under ${design}: steps[${i}] (${step.op}): ${(e as Error).message}`);
      }
      const refused = refusal(r);
      if (damage !== undefined) {
        const miss = judge(step, r);
        if (!miss) {
          damages.push(damage);
          results.push({ index: i, op: step.op, got: r.got, note: `damage: ${damage}` });
          // a machine check kills whoever consumed it: nothing after it runs
          if (r.outcome.kind === 'fault' && r.outcome.fault.signal === 'MCE') break;
          continue;
        }
        results.push({ index: i, op: step.op, got: r.got, note: `no damage (${miss})` });
        if (refused && damages.length === 0) return done({ kind: 'refused', op: step.op, index: i, by: refused });
        continue;
      }
      if (refused && stage) {
        results.push({ index: i, op: step.op, got: r.got, note: `${stage} refused` });
        // once damage was seen, a later refusal does not undo it
        if (damages.length) break;
        return done({ kind: stage === 'precondition' ? 'prevented' : 'refused', op: step.op, index: i, by: refused });
      }
      const miss = judge(step, r);
      results.push({ index: i, op: step.op, got: r.got, ...(miss && { note: miss }) });
      if (miss) throw new HazardRunError(`${h.name} under ${design}: steps[${i}] (${step.op}): ${miss}`);
    }
    return done(damages.length ? { kind: 'damage', damages } : { kind: 'no damage' });
  } finally {
    session.close();
  }
}

/** Every hazard under every design: the table `guestmem designs` prints. */
export function runHazards(hazards: readonly { file: string; hazard: HazardFile }[], designs: readonly DesignName[] = DESIGN_NAMES): HazardRun[] {
  const out: HazardRun[] = [];
  for (const { file, hazard } of hazards) for (const d of designs) out.push(runHazard(hazard, d, file));
  return out;
}
