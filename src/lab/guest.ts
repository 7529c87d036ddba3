/**
 * The lab's driver inside the VM: `node /app/dist/src/lab/guest.js /lab/job.json`, started by /init
 * with stdout on the data serial port. It prints JSON lines only (see Record in collect.ts): who it
 * is (hello), the raw /dev/kvm probe, one line per scenario of each guestmem command, a line per
 * command, and done. Diagnostics go to stderr, which /init sends to the console.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { release, uptime, version } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Vm } from '../api.js';
import type { ProgressLine } from '../cli/run.js';
import { probeKvm } from './probe.js';
import { deathReason, dmesg, freshFile, kernelVerdict, protectSelf, runChild } from './supervise.js';

export interface JobCommand {
  /** What the results call this command ('run'). */
  label: string;
  /** Arguments of dist/src/cli/main.js, or of node itself with `node`. */
  argv: string[];
  /** argv goes to node rather than to the guestmem CLI (the kvm backend's own test files). */
  node?: boolean;
  /** more environment for this command */
  env?: Record<string, string>;
  /**
   * 'run-json': stdout is `guestmem run --json`; each scenario becomes a line. 'lines': the command
   * writes result records (JSON lines with a `t`) itself, straight to the data port as they come,
   * so that the host sees progress (`guestmem diff --batch`). 'tap': stdout is node:test's TAP;
   * each top-level test becomes a line.
   */
  parse?: 'run-json' | 'lines' | 'tap';
  /** Exit statuses that mean the command ran to the end (its records tell the outcome); default [0]. */
  okStatuses?: number[];
}

export interface Job {
  kernel: string;
  probe: boolean;
  commands: JobCommand[];
  /**
   * A command still running after this long is killed and reported with its stderr, so that a hang
   * inside the VM still brings back what the command said (the host's timeout would lose it).
   */
  commandTimeoutMs?: number;
  /** Run a halting guest on each VM type before the commands; stop if one does not exit. */
  canary?: boolean;
  /** a scenario step (or lockstep sequence) with no progress for this long is a hang (default 150 s) */
  stepTimeoutMs?: number;
}

const APP = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(APP, 'dist/src/cli/main.js');

/** The first line of a kernel WARN/BUG/oops report. */
const KERNEL_SPLAT = /\bWARNING: CPU: \d+ PID: \d+|\bBUG: |kernel BUG at|\bOops: |general protection fault/;

function dmesgLines(): string[] | undefined {
  const r = spawnSync('dmesg', [], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : undefined;
}

function emit(rec: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(rec, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}\n`);
}

async function main(jobPath: string): Promise<number> {
  const t0 = Date.now();
  const job = JSON.parse(readFileSync(jobPath, 'utf8')) as Job;
  let cmdline = '';
  try {
    cmdline = readFileSync('/proc/cmdline', 'utf8').trim();
  } catch {
    // not Linux
  }
  emit({ t: 'hello', kernel: job.kernel, release: release(), version: version(), node: process.version, uptime: uptime(), cmdline });
  let bad = false;
  const before = dmesgLines();
  if (job.probe) {
    try {
      const p = await probeKvm();
      emit({ ...p });
      if (!p.swProtectedVm) bad = true;
    } catch (e) {
      emit({ t: 'error', stage: 'probe', message: (e as Error).message });
      bad = true;
    }
  }
  // A guest that only halts, on each VM type: under TCG a boot has come up whose nested guests
  // never exit (every KVM_RUN hits the deadline). That is the machine, not the kernel under test;
  // the host boots again once when it sees this record fail (src/lab/index.ts runJob).
  if (job.canary) {
    const c = await canary();
    emit({ t: 'canary', ...c });
    if (!c.ok) {
      emit({ t: 'done', seconds: (Date.now() - t0) / 1000, uptime: uptime() });
      return 1;
    }
  }
  protectSelf();
  for (const c of job.commands) {
    const s = Date.now();
    if (c.parse === 'run-json' || c.parse === 'lines') {
      const r = c.parse === 'run-json' ? await superviseRun(c, job) : await superviseBatch(c, job);
      emit({
        t: 'command',
        label: c.label,
        argv: c.argv,
        status: r.status,
        signal: null,
        seconds: (Date.now() - s) / 1000,
        ...(c.okStatuses && { okStatuses: c.okStatuses }),
        ...(c.parse === 'run-json' && { summary: r.summary }),
        ...(r.deaths.length && { deaths: r.deaths }),
        ...(r.stderr && { stderr: r.stderr }),
      });
      if (!(c.okStatuses ?? [0]).includes(r.status)) bad = true;
      continue;
    }
    const r = spawnSync(process.execPath, c.node ? c.argv : [CLI, ...c.argv], {
      cwd: APP,
      encoding: 'utf8',
      maxBuffer: 1 << 30,
      env: { ...process.env, ...c.env },
      ...(job.commandTimeoutMs !== undefined && { timeout: job.commandTimeoutMs, killSignal: 'SIGKILL' as const }),
    });
    const seconds = (Date.now() - s) / 1000;
    const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
    process.stderr.write(r.stderr ?? '');
    const summary = { passed: 0, failed: 0, skipped: 0 };
    if (c.parse === 'tap') {
      for (const t of parseTap(r.stdout ?? '')) {
        summary[t.status]++;
        emit({ t: 'test', command: c.label, ...t });
      }
    }
    const stderr = (r.stderr ?? '').trim().split('\n').slice(-20).join('\n');
    emit({
      t: 'command',
      label: c.label,
      argv: c.argv,
      status: r.status,
      signal: r.signal,
      seconds,
      ...(c.okStatuses && { okStatuses: c.okStatuses }),
      ...(c.parse === 'tap' ? { summary } : { stdout: (r.stdout ?? '').slice(-20000) }),
      ...(stderr && { stderr }),
      ...(timedOut && { timedOut, error: `killed after ${job.commandTimeoutMs} ms` }),
      ...(r.error && !timedOut && { error: r.error.message }),
    });
    if (r.status === null || !(c.okStatuses ?? [0]).includes(r.status)) bad = true;
  }
  // A WARN or BUG in the kernel while the scenarios ran is a finding even if every step passed.
  const after = dmesgLines();
  if (after) emit({ t: 'kernel-log', warnings: after.slice(before?.length ?? 0).filter((l) => KERNEL_SPLAT.test(l)) });
  emit({ t: 'done', seconds: (Date.now() - t0) / 1000, uptime: uptime() });
  return bad ? 1 : 0;
}

/** The end of a supervised command: its exit status as the whole command's, and what died on the way. */
interface Supervised {
  status: number;
  summary: { passed: number; failed: number; skipped: number };
  /** one line per item whose process died (out of memory, hung, killed), with the reason */
  deaths: string[];
  stderr: string;
}

/** Per step: far above a step's own deadlines (KVM_RUN 60 s, pre-fault 5 s in the lab). */
const STEP_TIMEOUT_MS = Number(process.env.GUESTMEM_LAB_STEP_TIMEOUT_MS) || 150_000;

/** A lockstep sequence may be silent while its divergence is shrunk (up to the shrink budget's replays). */
const BATCH_SILENCE_MS = 600_000;

const tailOf = (s: string) => s.trim().split('\n').slice(-20).join('\n');

/**
 * `guestmem run --json FILES` with --progress: results come from the progress file as each scenario
 * ends; a scenario whose process dies is reported failed with the reason, and the run starts again
 * on the files after it.
 */
async function superviseRun(c: JobCommand, job: Job): Promise<Supervised> {
  const isFile = (a: string) => /\.(json|ya?ml)$/.test(a);
  const flags = c.argv.filter((a) => !isFile(a));
  let files = c.argv.filter(isFile);
  const summary = { passed: 0, failed: 0, skipped: 0 };
  const deaths: string[] = [];
  let stderr = '';
  let status = 0;
  for (let round = 0; files.length > 0; round++) {
    const progress = freshFile(`/tmp/run-progress-${round}.jsonl`);
    const before = dmesg().length;
    let size = 0;
    const end = await runChild([process.execPath, CLI, ...flags, '--progress', progress, ...files], {
      cwd: APP,
      env: { ...process.env, ...c.env },
      stepTimeoutMs: job.stepTimeoutMs ?? STEP_TIMEOUT_MS,
      progressed: () => {
        const now = statSync(progress).size;
        if (now === size) return false;
        size = now;
        return true;
      },
    });
    stderr = tailOf(`${stderr}\n${end.stderr}`);
    const lines = readFileSync(progress, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ProgressLine);
    const done = new Set<string>();
    let running: { file: string; name: string; at: string } | undefined;
    for (const l of lines) {
      if (l.t === 'bad' && l.file !== undefined && running?.file === l.file) {
        // the scenario stopped with a usage error the load could not see: reported, not a death
        summary.failed++;
        done.add(l.file);
        emit({
          t: 'scenario',
          command: c.label,
          name: running.name,
          file: l.file,
          status: 'failed',
          reason: l.message,
          backend: 'kvm',
          kernel: job.kernel,
          stepCount: 0,
        });
        running = undefined;
      } else if (l.t === 'start') running = { file: l.file, name: l.name, at: 'its start' };
      else if (l.t === 'step' && running) running.at = `steps[${l.index}] (${l.op})`;
      else if (l.t === 'result') {
        const x = l.result;
        summary[x.status]++;
        done.add(x.file);
        running = undefined;
        const { steps, ...head } = x;
        emit({ t: 'scenario', command: c.label, ...head, stepCount: steps.length, ...(x.status !== 'passed' && { steps }) });
      }
    }
    const normal = !end.hung && end.signal === null && (end.status === 0 || end.status === 1 || end.status === 2);
    if (normal && !running) {
      status = Math.max(status, end.status ?? 0);
      break;
    }
    if (!running) {
      // it died before any scenario started: nothing to skip past, so nothing to retry
      deaths.push(`guestmem run died before its first scenario (${end.signal ?? end.status})`);
      status = 1;
      break;
    }
    const k = kernelVerdict(dmesg().slice(before));
    const reason = deathReason(running.at, end, k);
    deaths.push(`${running.file}: ${reason}`);
    summary.failed++;
    status = 1;
    emit({
      t: 'scenario',
      command: c.label,
      name: running.name,
      file: running.file,
      status: 'failed',
      reason,
      backend: 'kvm',
      kernel: job.kernel,
      stepCount: 0,
      ...(k.excerpt.length && { console: k.excerpt }),
    });
    const culprit = running.file;
    files = files.filter((f) => !done.has(f) && f !== culprit);
  }
  return { status, summary, deaths, stderr };
}

/**
 * `guestmem diff --batch FILE`: its JSON lines pass through as they come; a sequence whose process
 * dies is reported as diverged with the reason, and the batch resumes after it (--from). One
 * summary line closes it, the sum of every round's.
 */
async function superviseBatch(c: JobCommand, job: Job): Promise<Supervised> {
  const batchAt = c.argv[c.argv.indexOf('--batch') + 1] ?? '';
  const batch = JSON.parse(readFileSync(batchAt, 'utf8')) as { sequences: unknown[]; meta?: { name?: string }[] };
  const total: Record<string, number> = {};
  let tail: Record<string, unknown> = {};
  const deaths: string[] = [];
  let stderr = '';
  let status = 0;
  for (let from = 0; from < batch.sequences.length; ) {
    let last = from - 1;
    const before = dmesg().length;
    const end = await runChild([process.execPath, CLI, ...c.argv, ...(from > 0 ? ['--from', String(from)] : [])], {
      cwd: APP,
      env: { ...process.env, ...c.env },
      // a diverging sequence is shrunk before its line comes: many replays, so a longer silence
      stepTimeoutMs: Math.max(job.stepTimeoutMs ?? STEP_TIMEOUT_MS, BATCH_SILENCE_MS),
      progressed: () => false,
      onStdoutLine: (line) => {
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (rec.t === 'diff-summary') {
          for (const [key, v] of Object.entries(rec)) if (typeof v === 'number' && key !== 'seed') total[key] = (total[key] ?? 0) + v;
          tail = rec;
          return;
        }
        if (rec.t === 'diff-sequence') last = Number(rec.index);
        process.stdout.write(`${line}\n`);
      },
    });
    stderr = tailOf(`${stderr}\n${end.stderr}`);
    const normal = !end.hung && end.signal === null && (end.status === 0 || end.status === 1);
    if (normal) {
      status = Math.max(status, end.status ?? 0);
      break;
    }
    const index = last + 1;
    if (index >= batch.sequences.length) break;
    const k = kernelVerdict(dmesg().slice(before));
    const reason = deathReason(`sequence ${index}`, end, k);
    const name = batch.meta?.[index]?.name;
    deaths.push(`${name ?? `sequence ${index}`}: ${reason}`);
    status = 1;
    total.divergences = (total.divergences ?? 0) + 1;
    emit({
      t: 'diff-sequence',
      index,
      ...(name && { name }),
      steps: 0,
      uncompared: 0,
      ms: 0,
      divergence: { message: reason, what: 'the replay died', reference: '', candidate: '', at: 0, shrunk: [], replays: 0 },
      ...(k.excerpt.length && { console: k.excerpt }),
    });
    from = index + 1;
  }
  emit({ ...tail, ...total, t: 'diff-summary' });
  return { status, summary: { passed: 0, failed: 0, skipped: 0 }, deaths, stderr };
}

export interface TapTest {
  /** the test file (node:test runs one subtest per file) */
  file?: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  /** the skip reason, or the failure's error message */
  reason?: string;
}

/**
 * node:test's TAP, read at the level of each file's tests. `node --test` nests every test of a file
 * under a subtest named after the file; the file level is kept as `file`. A test's YAML block gives
 * a failure its error.
 */
export function parseTap(tap: string): TapTest[] {
  const out: TapTest[] = [];
  const lines = tap.split('\n');
  // the depth of a file's tests: one level in when node --test names files, else the top level
  const nested = lines.some((l) => /^# Subtest: .*\.js$/.test(l));
  const depth = nested ? '    ' : '';
  let file: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    const f = /^# Subtest: (.*\.js)$/.exec(l);
    if (nested && f) file = f[1];
    const m = new RegExp(`^${depth}(not ok|ok) \\d+ - (.*?)(?: # (SKIP)(?: (.*))?)?$`).exec(l);
    if (!m) continue;
    const [, ok, name, directive, why] = m as unknown as [string, string, string, string | undefined, string | undefined];
    const t: TapTest = {
      ...(file && { file }),
      name,
      status: directive === 'SKIP' ? 'skipped' : ok === 'ok' ? 'passed' : 'failed',
    };
    if (why) t.reason = why;
    if (t.status === 'failed') {
      // the YAML block below: keep its error line(s)
      const block: string[] = [];
      for (let j = i + 1; j < lines.length && (lines[j] as string).startsWith(`${depth}  `); j++) block.push((lines[j] as string).trim());
      const at = block.findIndex((b) => b.startsWith('error:'));
      if (at >= 0)
        t.reason = block
          .slice(at, at + 6)
          .join(' ')
          .slice(0, 600);
    }
    out.push(t);
  }
  return out;
}

const CANARY_DEADLINE_MS = 20_000;

/**
 * `stuck`: a guest reached the KVM_RUN deadline, the one failure a second boot can cure. A VM type
 * the kernel cannot create is not a canary failure (the probe reports a missing SW_PROTECTED VM).
 */
async function canary(): Promise<{ ok: boolean; stuck: boolean; results: Record<string, string>; seconds: number }> {
  const t0 = Date.now();
  const { openKvm } = await import('../kvm/index.js');
  const { KvmError } = await import('../api.js');
  const results: Record<string, string> = {};
  let ok = true;
  let stuck = false;
  for (const type of ['default', 'sw_protected'] as const) {
    const kvm = openKvm('/dev/kvm', { runTimeoutMs: CANARY_DEADLINE_MS });
    try {
      let vm: Vm;
      try {
        vm = kvm.createVm(type);
      } catch (e) {
        if (!(e instanceof KvmError)) throw e;
        results[type] = `no ${type} VM here (${e.message})`;
        continue;
      }
      const vcpu = vm.createVcpu(0);
      vcpu.load([{ op: 'hlt' }]);
      results[type] = vcpu.run().reason;
    } catch (e) {
      results[type] = (e as Error).message.split('\n')[0] ?? String(e);
      if (e instanceof KvmError && e.op === 'KVM_RUN' && e.errno === 'EINTR') stuck = true;
    } finally {
      kvm.close();
    }
    if (results[type] !== 'hlt' && !results[type]?.startsWith('no ')) ok = false;
  }
  return { ok, stuck, results, seconds: (Date.now() - t0) / 1000 };
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] === self) {
  main(process.argv[2] ?? '/lab/job.json').then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      emit({ t: 'error', stage: 'driver', message: (e as Error).stack ?? String(e) });
      process.exitCode = 1;
    },
  );
}
