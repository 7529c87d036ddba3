/** Scenario reports: a human summary and a JSON form (bigint-free, stable field names). */
import type { ScenarioResult } from './runner.js';

export function summarize(results: readonly ScenarioResult[]): { passed: number; failed: number; skipped: number } {
  const n = { passed: 0, failed: 0, skipped: 0 };
  for (const r of results) n[r.status]++;
  return n;
}

const MARK = { passed: 'PASS', failed: 'FAIL', skipped: 'SKIP' } as const;

/** One line per scenario; failed scenarios show their steps, `verbose` shows every step. */
export function formatHuman(results: readonly ScenarioResult[], verbose = false): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${MARK[r.status]}  ${r.name}  (${r.file}, ${r.backend} ${r.kernel})${r.reason ? `\n      ${r.reason}` : ''}`);
    if (verbose || r.status === 'failed') {
      for (const s of r.steps) lines.push(`      ${s.status === 'passed' ? 'ok ' : 'ERR'} [${s.index}] ${s.op}: ${s.got}${s.reason ? `  <- ${s.reason}` : ''}`);
    }
  }
  const n = summarize(results);
  lines.push(`${n.passed} passed, ${n.failed} failed, ${n.skipped} skipped`);
  return lines.join('\n');
}

export function toJson(results: readonly ScenarioResult[]): string {
  return JSON.stringify(
    results.map((r) => ({
      name: r.name,
      file: r.file,
      status: r.status,
      ...(r.reason !== undefined && { reason: r.reason }),
      backend: r.backend,
      kernel: r.kernel,
      steps: r.steps,
    })),
    null,
    2,
  );
}
