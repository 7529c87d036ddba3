/**
 * `guestmem diff`: the model held against the live kernel by random operation sequences, or against
 * planted bugs (--self-test). Progress goes to stderr on a TTY; results to stdout.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import type { VmType } from '../api.js';
import { type CampaignResult, counterexampleScenario, MUTANTS, replay, runCampaign, type Side, UNCOMPARED_ACCESSES } from '../diff/index.js';
import { createModelKvm, getProfile, type KernelProfile } from '../model/index.js';
import { parseScenario } from '../scenario/index.js';
import { kvmBackend, loadKvmModule } from './kvm-backend.js';
import { UserError } from './run.js';

export interface DiffOptions {
  runs: number;
  seed?: number;
  steps: number;
  kernel?: string;
  json: boolean;
  replay?: string;
  path?: string;
  selfTest: boolean;
  reference: 'kvm' | 'model';
  vmType: VmType;
}

function modelSide(profile: KernelProfile, name = `model ${profile.name}`): Side {
  return { name, open: () => createModelKvm({ kernel: profile }) };
}

async function sides(o: DiffOptions): Promise<{ reference: Side; candidate: Side; profile: KernelProfile }> {
  if (o.reference === 'model') {
    const profile = getProfile(o.kernel && o.kernel !== 'host' ? o.kernel : '6.18');
    return { reference: modelSide(profile, 'reference model'), candidate: modelSide(profile), profile };
  }
  const backend = await kvmBackend();
  const mod = await loadKvmModule();
  const profile = !o.kernel || o.kernel === 'host' ? backend.hostProfile() : getProfile(o.kernel);
  return { reference: { name: 'kvm', open: () => mod.openKvm() }, candidate: modelSide(profile), profile };
}

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
  const left = r.uncompared ? `, ${r.uncompared} guest runs not compared (${UNCOMPARED_ACCESSES.id})` : '';
  return `${r.sequences} sequences, ${r.steps} steps, ${divergences} divergences, ${rate} steps/s${left} (seed ${r.seed})`;
}

export async function runDiff(o: DiffOptions, out: (s: string) => void): Promise<number> {
  if (o.selfTest) return selfTest(o, out);
  const { reference, candidate, profile } = await sides(o);
  if (o.replay) {
    let text: string;
    try {
      text = readFileSync(o.replay, 'utf8');
    } catch (e) {
      throw new UserError(`${o.replay}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const sc = parseScenario(text, o.replay);
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
      ...(o.path && { path: o.path }),
      onSequence: bar.tick,
    });
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
      JSON.stringify({ ...r, divergences: r.divergence ? 1 : 0, file: file ?? null, stepsPerSecond: r.ms ? Math.round((r.steps * 1000) / r.ms) : 0 }, null, 2),
    );
  } else {
    if (r.divergence) {
      out(`divergence: ${r.divergence.message}`);
      out(`shrunk to ${r.divergence.steps.length} steps (${r.divergence.shrinks} shrinks), written to ${file}`);
      out(`replay: guestmem diff --replay ${file}   or   guestmem diff --seed ${seed} --path ${r.divergence.path}`);
    }
    out(summary(r, r.divergence ? 1 : 0));
  }
  return r.divergence ? 1 : 0;
}

/** Every planted bug must be found by a campaign of the correct model against the broken one. */
async function selfTest(o: DiffOptions, out: (s: string) => void): Promise<number> {
  const profile = getProfile(o.kernel && o.kernel !== 'host' ? o.kernel : '6.18');
  const reference = modelSide(profile, 'model');
  const rows: { bug: string; rule: string; found: boolean; sequences: number; steps: number; vmType: string; divergence?: string }[] = [];
  for (const m of MUTANTS) {
    const candidate = modelSide({ ...profile, plantedBugs: new Set([m.bug]) }, `mutant ${m.bug}`);
    let row: (typeof rows)[number] = { bug: m.bug, rule: m.rule, found: false, sequences: 0, steps: 0, vmType: '' };
    for (const vmType of ['default', 'sw_protected'] as const) {
      const bar = progress(o.runs, m.bug);
      let r: CampaignResult;
      try {
        r = runCampaign({
          reference,
          candidate,
          runs: o.runs,
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
