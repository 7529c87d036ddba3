/**
 * What every benchmark section shares: --quick (tiny counts that only prove a section runs), medians
 * of rounds, the load line printed with each section (this machine is shared, so the load says how
 * far to trust the absolute figures; ratios are always taken in the same run), and progress on stderr.
 */
import { availableParallelism, loadavg } from 'node:os';

export const quick = process.argv.includes('--quick');

/** `full` in a real run, `small` under --quick. */
export function count(full: number, small: number): number {
  return quick ? small : full;
}

export const ROUNDS = count(7, 2);

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** Median and min over `rounds` rounds of `n` calls of f, in ns per call. */
export function nsPerOp(n: number, f: (i: number) => void, rounds = ROUNDS): { med: number; min: number } {
  // the rows before this one leave their garbage (hundreds of MiB of pages): collect it first, so
  // that a row pays for its own collections only (sections run with --expose-gc)
  (globalThis as { gc?: () => void }).gc?.();
  for (let i = 0; i < Math.min(n, 1000); i++) f(i); // warm-up: JIT, first-touch of structures
  const ts: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f(i);
    ts.push(Number(process.hrtime.bigint() - t0) / n);
  }
  return { med: median(ts), min: Math.min(...ts) };
}

export function loadLine(): string {
  return `1-minute load average ${loadavg()[0]?.toFixed(2)} on ${availableParallelism()} CPUs`;
}

export function progress(what: string): void {
  process.stderr.write(`bench: ${what}\n`);
}

/** A duration in ns, in the unit that reads best. */
export function fmt(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  const r = a / b;
  return r >= 10 ? `${r.toFixed(0)}x` : `${r.toFixed(2)}x`;
}

export function print(lines: readonly string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}
