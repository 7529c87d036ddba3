/**
 * The lab's driver inside the VM: `node /app/dist/src/lab/guest.js /lab/job.json`, started by /init
 * with stdout on the data serial port. It prints JSON lines only (see Record in collect.ts): who it
 * is (hello), the raw /dev/kvm probe, one line per scenario of each guestmem command, a line per
 * command, and done. Diagnostics go to stderr, which /init sends to the console.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release, uptime, version } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Vm } from '../api.js';
import { probeKvm } from './probe.js';

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
}

/** Keep serial traffic small: passed scenarios report their step count, others every step. */
interface RunJsonResult {
  name: string;
  file: string;
  status: string;
  reason?: string;
  backend: string;
  kernel: string;
  steps: unknown[];
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
  for (const c of job.commands) {
    const s = Date.now();
    const r = spawnSync(process.execPath, c.node ? c.argv : [CLI, ...c.argv], {
      cwd: APP,
      encoding: 'utf8',
      maxBuffer: 1 << 30,
      env: { ...process.env, ...c.env },
      ...(c.parse === 'lines' && { stdio: ['ignore', 'inherit', 'pipe'] as ['ignore', 'inherit', 'pipe'] }),
      ...(job.commandTimeoutMs !== undefined && { timeout: job.commandTimeoutMs, killSignal: 'SIGKILL' as const }),
    });
    const seconds = (Date.now() - s) / 1000;
    const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
    process.stderr.write(r.stderr ?? '');
    const summary = { passed: 0, failed: 0, skipped: 0 };
    if (c.parse === 'run-json' && (r.status === 0 || r.status === 1)) {
      try {
        const results = JSON.parse(r.stdout) as RunJsonResult[];
        for (const x of results) {
          if (x.status === 'passed' || x.status === 'failed' || x.status === 'skipped') summary[x.status]++;
          const { steps, ...head } = x;
          emit({ t: 'scenario', command: c.label, ...head, stepCount: steps.length, ...(x.status !== 'passed' && { steps }) });
        }
      } catch (e) {
        emit({ t: 'error', stage: c.label, message: `cannot parse the JSON of guestmem ${c.argv[0]}: ${(e as Error).message}` });
        bad = true;
      }
    }
    if (c.parse === 'tap') {
      for (const t of parseTap(r.stdout ?? '')) {
        if (t.status !== 'failed' && t.status !== 'passed' && t.status !== 'skipped') continue;
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
      ...(c.parse === 'run-json' || c.parse === 'tap' ? { summary } : c.parse === 'lines' ? {} : { stdout: (r.stdout ?? '').slice(-20000) }),
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

export interface TapTest {
  /** the test file (node:test runs one subtest per file) */
  file?: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped' | 'todo';
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
    const m = new RegExp(`^${depth}(not ok|ok) \\d+ - (.*?)(?: # (SKIP|TODO)(?: (.*))?)?$`).exec(l);
    if (!m) continue;
    const [, ok, name, directive, why] = m as unknown as [string, string, string, string | undefined, string | undefined];
    const t: TapTest = {
      ...(file && { file }),
      name,
      status: directive === 'SKIP' ? 'skipped' : directive === 'TODO' ? 'todo' : ok === 'ok' ? 'passed' : 'failed',
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
