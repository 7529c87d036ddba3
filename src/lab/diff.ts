/**
 * The differential tester against a lab kernel: sequences are generated here against the model
 * under the kernel's profile (src/diff/batch.ts), packed into the initramfs as one batch, and
 * replayed inside the VM by `guestmem diff --batch` in lockstep: the kvm backend on the lab kernel
 * against the same model profile, every step's outcome, every mapping's bytes and every fd's fstat
 * compared as the host campaign does. Divergences are shrunk inside and come back as scenario
 * steps with the sequence results, one JSON line each, while the VM runs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmType } from '../api.js';
import { generateBatch, type SequenceBatch, type SequenceResult, UNCOMPARED_IDS } from '../diff/index.js';
import { createModelKvm, getProfile } from '../model/index.js';
import type { Step } from '../scenario/index.js';
import { parseFragment } from './build.js';
import type { KernelRun } from './collect.js';
import { awaitCleanups, kernelSpec, LAB_DIR } from './env.js';
import { type LabRunOptions, runJob } from './index.js';

export interface LabDiffOptions extends LabRunOptions {
  runs: number;
  seed: number;
  /** most commands per sequence */
  steps: number;
  vmType: VmType;
  /** replay these steps (a counterexample file) instead of generating */
  replay?: Step[];
  /** most replays spent shrinking one divergence inside the VM */
  shrinkBudget?: number;
}

export interface LabDiffResult {
  kernel: string;
  seed: number;
  vmType: VmType;
  /** sequences in the batch, and how many came back */
  planned: number;
  sequences: number;
  steps: number;
  uncompared: number;
  divergences: (SequenceResult & { divergence: NonNullable<SequenceResult['divergence']>; sequence: Step[] })[];
  generateSeconds: number;
  /** time the sequences took inside the VM (the diff command's own clock) */
  vmSeconds: number;
  run: KernelRun;
  /** the lab run completed and every planned sequence was compared */
  complete: boolean;
}

const BATCH_AT = 'lab/diff-batch.json';

/** Whether the lab's kernel config turns on CONFIG_NUMA (tinyconfig leaves it off). */
function labHasNuma(): boolean {
  return parseFragment(readFileSync(join(LAB_DIR, 'kernel.config'), 'utf8')).some((f) => f.name === 'CONFIG_NUMA' && f.value === 'y');
}

export async function labDiff(kernels: readonly string[], o: LabDiffOptions): Promise<LabDiffResult[]> {
  const out: LabDiffResult[] = [];
  for (const k of kernels) {
    kernelSpec(k);
    const profile = getProfile(k);
    const g0 = Date.now();
    const batch: SequenceBatch = o.replay
      ? { format: 'guestmem-diff-batch/1', seed: o.seed, kernel: k, vmType: o.vmType, attributes: o.vmType === 'sw_protected', sequences: [o.replay] }
      : generateBatch({
          side: { name: `model ${k}`, open: () => createModelKvm({ kernel: profile }) },
          kernel: k,
          runs: o.runs,
          seed: o.seed,
          steps: o.steps,
          vmType: o.vmType,
          // attributes, private accesses and hypercall conversions need a VM with private memory
          attributes: o.vmType === 'sw_protected',
          // the lab's kernels are tinyconfig plus lab/kernel.config: no CONFIG_NUMA, so mbind is ENOSYS
          numa: labHasNuma(),
        });
    const generateSeconds = (Date.now() - g0) / 1000;
    const results: SequenceResult[] = [];
    let summary: Record<string, unknown> | undefined;
    let steps = 0;
    const argv = ['diff', '--batch', `/${BATCH_AT}`, '--kernel', k, ...(o.shrinkBudget !== undefined ? ['--shrink-budget', String(o.shrinkBudget)] : [])];
    const run = await runJob(k, o, {
      // exit 1 = divergences found: the command ran to the end and its records say which
      commands: [{ label: 'diff', argv, parse: 'lines', okStatuses: [0, 1] }],
      files: [{ at: BATCH_AT, content: JSON.stringify(batch) }],
      backend: 'kvm',
      describe: `guestmem diff --batch (${batch.sequences.length} sequences, ${batch.vmType} VMs)`,
      onRecord: (rec, progress) => {
        if (rec.t === 'diff-summary') summary = rec;
        if (rec.t !== 'diff-sequence') return;
        const r = rec as unknown as SequenceResult;
        results.push(r);
        steps += r.steps;
        const bad = results.filter((x) => x.divergence).length;
        progress.update(`${results.length}/${batch.sequences.length} sequences, ${steps} steps, ${bad} divergence${bad === 1 ? '' : 's'}`);
      },
    });
    const divergences = results
      .filter((r): r is SequenceResult & { divergence: NonNullable<SequenceResult['divergence']> } => r.divergence !== undefined)
      .map((r) => ({ ...r, sequence: batch.sequences[r.index] ?? [] }));
    if (run.ok && results.length < batch.sequences.length)
      run.problems.push(`only ${results.length} of ${batch.sequences.length} sequences came back from the VM`);
    run.ok = run.problems.length === 0;
    out.push({
      kernel: k,
      seed: batch.seed,
      vmType: batch.vmType,
      planned: batch.sequences.length,
      sequences: results.length,
      steps,
      uncompared: results.reduce((n, r) => n + r.uncompared, 0),
      divergences,
      generateSeconds,
      vmSeconds: Number(summary?.ms ?? 0) / 1000,
      run,
      complete: run.ok && summary !== undefined,
    });
  }
  await awaitCleanups();
  return out;
}

/** A lab counterexample as a scenario file: `guestmem diff --lab K --replay FILE` runs it again. */
export function labCounterexample(r: LabDiffResult, d: LabDiffResult['divergences'][number]): Record<string, unknown> {
  return {
    name: `lab diff counterexample (kernel ${r.kernel}, seed ${r.seed}, sequence ${d.index})`,
    description:
      `Found by guestmem diff --lab ${r.kernel}: ${d.divergence.message}. Shrunk inside the VM from ${d.sequence.length} to ${d.divergence.shrunk.length} steps ` +
      `(${d.divergence.replays} replays). Replay: guestmem diff --lab ${r.kernel} --replay THIS_FILE.`,
    kernel: r.kernel,
    vm: { type: r.vmType },
    steps: d.divergence.shrunk,
  };
}

export function formatLabDiff(r: LabDiffResult): string {
  const lines: string[] = [];
  const rate = r.vmSeconds ? Math.round(r.steps / r.vmSeconds) : 0;
  const left = r.uncompared ? `, ${r.uncompared} steps not compared (${UNCOMPARED_IDS})` : '';
  lines.push(
    `${r.complete && !r.divergences.length ? 'PASS' : 'FAIL'}  lab ${r.kernel} (${r.run.sourceVersion}${r.run.release ? `, uname ${r.run.release}` : ''}), ${r.vmType} VMs: ` +
      `${r.sequences}/${r.planned} sequences, ${r.steps} steps, ${r.divergences.length} divergences, ${rate} steps/s in the VM${left} (seed ${r.seed})`,
  );
  const t = r.run.timings;
  lines.push(
    `      generated in ${r.generateSeconds.toFixed(1)} s; ${t.kernelCached ? 'cached kernel' : `kernel built in ${t.buildSeconds ?? '?'} s`}, boot ${t.bootSeconds?.toFixed(1) ?? '?'} s, ` +
      `sequences ${r.vmSeconds.toFixed(1)} s, wall ${t.wallSeconds.toFixed(1)} s`,
  );
  if (r.run.retried) lines.push(`      RETRIED: ${r.run.retried}`);
  for (const d of r.divergences) lines.push(`      divergence in sequence ${d.index}: ${d.divergence.message.slice(0, 300)}`);
  for (const p of r.run.problems) lines.push(`      problem: ${p}`);
  if (!r.run.ok) {
    lines.push(`      logs: ${r.run.runDir}/console.log, ${r.run.runDir}/data.jsonl`);
    if (r.run.consoleTail) lines.push(...r.run.consoleTail.split('\n').map((l) => `      | ${l}`));
  }
  return lines.join('\n');
}
