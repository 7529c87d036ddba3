/**
 * The hazard file format (designs/hazards/*.json). A hazard is one concern from the v7 review played
 * under every design: a scenario whose steps are ordinary scenario steps, where a step that must
 * differ between designs says so with `by_design`, and two extra keys say what a step means:
 * - `stage`: "precondition" (building the state the hazard needs) or "hazard" (the hazardous call).
 *   If such a step is refused, that is the outcome: `prevented` at a precondition (the design
 *   cannot even express the situation), `refused: ERRNO at op` at the hazard.
 * - `damage`: this step is a probe, and its `expect` describes the damage. If what happens matches,
 *   the damage is recorded; if the probe is refused, that refusal is the outcome.
 * Every other step is plumbing and must meet its `expect` (or succeed), else the run is an error.
 */
import { z } from 'zod';
import { type Step, StepSchema, VmTypeName } from '../../scenario/schema.js';
import { DESIGN_NAMES, type DesignName } from '../registry.js';

export const Stage = z.enum(['precondition', 'hazard']);
const Meta = { stage: Stage.optional(), damage: z.string().min(1).optional() };

/** `by_design` keys: a design name or a comma list of them; a value of null means "no step here". */
const ByDesign = z.object({ by_design: z.record(z.string(), z.record(z.string(), z.unknown()).nullable()), ...Meta, comment: z.string().optional() }).strict();
const PlainStep = z.object({ op: z.string(), ...Meta }).passthrough();

export const HazardFileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/, 'expected a short id like "mapped-at-bind"'),
    concern: z.string().min(1),
    raised_by: z.string().min(1),
    description: z.string().optional(),
    vm: z.object({ type: VmTypeName }).strict(),
    steps: z.array(z.union([ByDesign, PlainStep])).min(1),
  })
  .strict();
export type HazardFile = z.infer<typeof HazardFileSchema>;

export interface HazardStep {
  readonly step: Step;
  readonly stage?: z.infer<typeof Stage>;
  readonly damage?: string;
}

/** A problem with a hazard file itself. */
export class HazardFileError extends Error {
  override readonly name = 'HazardFileError';
}

function parseStep(raw: Record<string, unknown>, where: string): Step {
  const r = StepSchema.safeParse(raw);
  if (!r.success) throw new HazardFileError(`${where}: ${r.error.issues.map((i) => `${i.path.join('.') || '(step)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** The steps of `h` under `design`, validated as scenario steps. */
export function stepsFor(h: HazardFile, design: DesignName, file: string): HazardStep[] {
  const out: HazardStep[] = [];
  h.steps.forEach((raw, i) => {
    const where = `${file}: steps[${i}]`;
    if ('by_design' in raw && raw.by_design !== undefined) {
      const b = raw as z.infer<typeof ByDesign>;
      const covered = new Map<string, Record<string, unknown> | null>();
      for (const [keys, step] of Object.entries(b.by_design)) {
        for (const k of keys.split(',').map((x) => x.trim())) {
          if (!(DESIGN_NAMES as readonly string[]).includes(k)) throw new HazardFileError(`${where}.by_design: unknown design "${k}"`);
          if (covered.has(k)) throw new HazardFileError(`${where}.by_design: design "${k}" given twice`);
          covered.set(k, step);
        }
      }
      const missing = DESIGN_NAMES.filter((d) => !covered.has(d));
      if (missing.length) throw new HazardFileError(`${where}.by_design: no entry for ${missing.join(', ')} (use null for "no step")`);
      const chosen = covered.get(design);
      if (chosen) out.push({ step: parseStep(chosen, `${where}.by_design.${design}`), ...meta(b) });
      return;
    }
    const { stage, damage, ...step } = raw as z.infer<typeof PlainStep>;
    out.push({ step: parseStep(step, where), ...meta({ stage, damage }) });
  });
  return out;
}

function meta(m: { stage?: z.infer<typeof Stage> | undefined; damage?: string | undefined }): Pick<HazardStep, 'stage' | 'damage'> {
  return { ...(m.stage !== undefined && { stage: m.stage }), ...(m.damage !== undefined && { damage: m.damage }) };
}

/** Parse a hazard file's JSON text. */
export function parseHazard(text: string, file: string): HazardFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new HazardFileError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const r = HazardFileSchema.safeParse(data);
  if (!r.success) throw new HazardFileError(`${file}: ${r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`);
  // every design's steps must parse, so a typo shows up even in a design the caller does not run
  for (const d of DESIGN_NAMES) stepsFor(r.data, d, file);
  return r.data;
}
