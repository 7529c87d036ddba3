/**
 * Stage "collect": the JSON lines from the VM's data port, turned into one result per kernel, and
 * the human report. The records (one JSON object per line, field `t` says which):
 *   hello     {kernel, release, version, node, uptime, cmdline}          driver started
 *   probe     {device, open, apiVersion, system, vmTypes, vms, params, swProtectedVm}   (probe.ts)
 *   scenario  {command, name, file, status, reason?, backend, kernel, stepCount, steps?}
 *   test      {command, name, status, reason?}                           a kvm backend test (node:test)
 *   command   {label, argv, status, signal, seconds, summary?, stderr?}
 *   kernel-log {warnings: [...]}                                           WARNING/BUG lines of dmesg
 *   canary    {ok, stuck, results: {default, sw_protected}, seconds}       a halting guest per VM type
 *   error     {stage, message}
 *   done      {seconds, uptime}                                            driver finished
 *   exit      {rc, uptime}                                                 written by /init after it
 */
import { PROFILES } from '../model/index.js';
import { releaseVersion } from '../scenario/kernels.js';
import type { ProbeResult } from './probe.js';

export type LabRecord = Record<string, unknown> & { t: string };

export interface ScenarioRecord {
  command: string;
  name: string;
  file: string;
  status: 'passed' | 'failed' | 'skipped';
  reason?: string;
  backend: string;
  kernel: string;
  stepCount: number;
  steps?: unknown[];
  /** the kernel's report (OOM, oops, WARN) when the scenario's process died */
  console?: string[];
}

/** One of the kvm backend's own tests, run inside the VM (tests/kvm/). */
export interface TestRecord {
  command: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  /** the skip reason (a capability the kernel lacks) or the failure's error */
  reason?: string;
}

export interface CommandRecord {
  label: string;
  argv: string[];
  status: number | null;
  signal: string | null;
  seconds: number;
  /** exit statuses that mean it ran to the end (default [0]) */
  okStatuses?: number[];
  summary?: { passed: number; failed: number; skipped: number };
  stderr?: string;
  error?: string;
  timedOut?: boolean;
  /** items whose process died on the way (out of memory, hung), each with the reason */
  deaths?: string[];
}

export interface LockstepSummary {
  total: number;
  agreed: number;
  diverged: { name: string; message: string; shrunk: unknown[] }[];
  skipped: { name: string; reason: string }[];
}

export interface KernelRun {
  kernel: string;
  /** Debian source version of the kernel that booted. */
  sourceVersion: string;
  /** uname -r inside. */
  release?: string;
  backend: string;
  ok: boolean;
  /** Why not ok, one line each. */
  problems: string[];
  timings: { buildSeconds?: number; kernelCached: boolean; packSeconds: number; bootSeconds?: number; driverSeconds?: number; wallSeconds: number };
  probe?: ProbeResult;
  scenarios: ScenarioRecord[];
  /** the kvm backend's own tests, run inside this kernel */
  tests: TestRecord[];
  commands: CommandRecord[];
  kernelWarnings: string[];
  errors: { stage: string; message: string }[];
  runDir: string;
  consoleTail?: string;
  /** the scenarios replayed in lockstep against the model under this kernel's profile */
  lockstep?: LockstepSummary;
  /** why the VM was booted a second time (a boot whose halting guest never exited), if it was */
  retried?: string;
  /** every record as it came, for callers that read their own (diff-sequence); not in result.json */
  records?: LabRecord[];
}

/** Fold records into a KernelRun (the caller fills timings and the boot outcome). */
export function fold(records: readonly LabRecord[], base: Pick<KernelRun, 'kernel' | 'sourceVersion' | 'backend' | 'runDir' | 'timings'>): KernelRun {
  const run: KernelRun = { ...base, ok: false, problems: [], scenarios: [], tests: [], commands: [], kernelWarnings: [], errors: [] };
  let sawDone = false;
  let exitRc: number | undefined;
  for (const r of records) {
    switch (r.t) {
      case 'hello':
        run.release = String(r.release);
        break;
      case 'probe':
        run.probe = r as unknown as ProbeResult;
        break;
      case 'scenario':
        run.scenarios.push(r as unknown as ScenarioRecord);
        break;
      case 'test':
        run.tests.push(r as unknown as TestRecord);
        break;
      case 'command':
        run.commands.push(r as unknown as CommandRecord);
        break;
      case 'kernel-log':
        run.kernelWarnings.push(...((r.warnings as string[] | undefined) ?? []));
        break;
      case 'error':
        run.errors.push({ stage: String(r.stage), message: String(r.message) });
        break;
      case 'canary':
        if (!r.ok)
          run.problems.push(
            `a guest that only halts did not exit (${Object.entries((r.results as Record<string, string>) ?? {})
              .map(([t, x]) => `${t}: ${x}`)
              .join('; ')})${r.stuck ? ': nested guests on this boot are stuck' : ''}`,
          );
        break;
      case 'done':
        sawDone = true;
        run.timings.driverSeconds = Number(r.seconds);
        break;
      case 'exit':
        exitRc = Number(r.rc);
        break;
    }
  }
  if (!records.some((r) => r.t === 'hello')) run.problems.push('the guest driver never started (see the console log)');
  else if (!sawDone) run.problems.push('the guest driver stopped before it finished (see the console log)');
  if (run.probe && !run.probe.swProtectedVm)
    run.problems.push(`no SW_PROTECTED VM: KVM_CREATE_VM(1) -> ${describeAnswer(run.probe.vms?.sw_protected?.created ?? run.probe.open)}`);
  for (const e of run.errors) run.problems.push(`${e.stage}: ${e.message.split('\n')[0]}`);
  for (const c of run.commands) {
    const what = `${c.argv[0]?.startsWith('--') ? 'node' : 'guestmem'} ${c.argv.slice(0, 3).join(' ')}`;
    const completed = c.status !== null && (c.okStatuses ?? [0]).includes(c.status);
    if (c.timedOut) run.problems.push(`${what} hung and was killed after ${c.seconds.toFixed(0)} s`);
    else if (!completed) run.problems.push(`${what} exited with ${c.status ?? c.signal}${c.summary ? ` (${c.summary.failed} failed)` : ''}`);
    if (!completed && c.stderr) run.problems.push(`its stderr: ${headline(c.stderr)}`);
    for (const d of c.deaths ?? []) run.problems.push(`${what}: ${d}`);
  }
  for (const c of run.commands) {
    // the kvm tests (node --test, TAP): a run that passed nothing, or failed without a failed test
    // (node could not find the files, or died before its reporter), checked nothing: say so
    const s = c.summary;
    if (!s || c.timedOut || !c.argv[0]?.startsWith('--')) continue;
    const what = commandName(c);
    if (s.passed === 0) run.problems.push(`${what} passed no test (${s.failed} failed, ${s.skipped} skipped)`);
    else if (c.status !== 0 && s.failed === 0) run.problems.push(`${what} exited with ${c.status ?? c.signal} but reported no failed test`);
  }
  for (const t of run.tests.filter((x) => x.status === 'failed')) run.problems.push(`kvm test failed: ${t.name}: ${t.reason ?? ''}`.slice(0, 400));
  // the lab kernels are built with guest_memfd (lab/kernel.config): a test skipped for its absence
  // means the kernel under test is not the one the lab is for, and guest_memfd went unchecked
  const noGmem = run.tests.filter((x) => x.status === 'skipped' && /KVM_CAP_GUEST_MEMFD is 0/.test(x.reason ?? ''));
  if (noGmem.length) run.problems.push(`${noGmem.length} kvm test(s) skipped because KVM_CAP_GUEST_MEMFD is 0, in a lab kernel built with guest_memfd`);
  if (run.kernelWarnings.length) run.problems.push(`the kernel logged ${run.kernelWarnings.length} warning(s): ${run.kernelWarnings[0]}`);
  if (exitRc === undefined && sawDone) run.problems.push('/init did not report the driver exit');
  run.ok = run.problems.length === 0;
  return run;
}

/** A command as the VM ran it: the guestmem CLI, or node itself (the kvm-tests job), scenario files left out. */
function commandName(c: CommandRecord): string {
  const args = c.argv.filter((a) => !a.endsWith('.json') && !a.endsWith('.yaml')).join(' ');
  return c.argv[0]?.startsWith('--') ? `node ${args}` : `guestmem ${args}`;
}

/** The line of a stderr tail that says what went wrong: a thrown error's message, else the last line. */
export function headline(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /^(\w*Error|guestmem:)\b/.test(l)) ?? lines.at(-1) ?? '';
}

export function describeAnswer(a: { ok: number } | { errno: string } | undefined): string {
  if (!a) return '?';
  return 'errno' in a ? a.errno : String(a.ok);
}

const hex = (n: number | undefined) => (n === undefined ? '?' : `0x${n.toString(16)}`);

/** The probe in one line: caps that matter to guest_memfd, and what a SW_PROTECTED VM answered. */
export function probeLine(p: ProbeResult | undefined): string {
  if (!p) return 'probe: no result';
  if ('errno' in p.open) return `probe: open ${p.device} -> ${p.open.errno}`;
  const s = p.system ?? {};
  const sw = p.vms?.sw_protected;
  const gm = sw?.guestMemfd ?? {};
  const parts = [
    `SW_PROTECTED VM ${p.swProtectedVm ? 'created' : `not created (${describeAnswer(sw?.created)})`}`,
    `VM_TYPES=${hex(s.VM_TYPES)} (${(p.vmTypes ?? []).join(', ')})`,
    `MEMORY_ATTRIBUTES=${hex(s.MEMORY_ATTRIBUTES)}`,
    `GUEST_MEMFD=${s.GUEST_MEMFD ?? '?'}`,
    `GUEST_MEMFD_FLAGS=${hex(s.GUEST_MEMFD_FLAGS)}`,
    `EXIT_HYPERCALL=${hex(s.EXIT_HYPERCALL)}`,
    `PRE_FAULT_MEMORY=${s.PRE_FAULT_MEMORY ?? '?'}`,
  ];
  if (sw?.caps) parts.push(`SW VM: GUEST_MEMFD_FLAGS=${hex(sw.caps.GUEST_MEMFD_FLAGS)}, MEMORY_ATTRIBUTES=${hex(sw.caps.MEMORY_ATTRIBUTES)}`);
  if (sw?.guestMemfd)
    parts.push(
      `gmem flags none/mmap/init_shared -> ${['none', 'mmap', 'init_shared'].map((k) => (gm[k] && 'errno' in gm[k]! ? gm[k]!.errno : 'ok')).join('/')}`,
    );
  if (sw?.setMemoryAttributesPrivate)
    parts.push(`SET_MEMORY_ATTRIBUTES(private) -> ${'errno' in sw.setMemoryAttributesPrivate ? sw.setMemoryAttributesPrivate.errno : 'ok'}`);
  return parts.join('; ');
}

const secs = (s: number | undefined) => (s === undefined ? '?' : `${s.toFixed(1)} s`);

/** The human report for one kernel. */
/**
 * The release the lab ran against the release the model's profile of that name describes: a
 * stable update the profile does not know may have changed rules (6.12.117 -> .118 did), so the
 * report says so on its own line rather than comparing silently.
 */
export function unknownRelease(kernel: string, release: string | undefined): string | undefined {
  if (!release) return `kernel ${kernel}: the guest did not report its release; the model's profile could not be checked against it`;
  const profile = PROFILES[kernel];
  const ran = releaseVersion(release)?.join('.');
  const knows = profile && releaseVersion(profile.version)?.join('.');
  if (!profile) return `kernel ${kernel} (${release}) has no model profile: its results are not the model's rules`;
  if (ran !== knows)
    return `this kernel is ${release}, the model's ${kernel} profile describes ${profile.version}: rules changed in between are not in the model`;
  return undefined;
}

export function formatKernelRun(r: KernelRun, verbose = false): string {
  const lines: string[] = [];
  const t = r.timings;
  lines.push(
    `${r.ok ? 'PASS' : 'FAIL'}  kernel ${r.kernel} (${r.sourceVersion}${r.release ? `, uname ${r.release}` : ''}): ` +
      `${t.kernelCached ? 'cached kernel' : `built in ${secs(t.buildSeconds)}`}, pack ${secs(t.packSeconds)}, boot ${secs(t.bootSeconds)}, driver ${secs(t.driverSeconds)}, wall ${secs(t.wallSeconds)}`,
  );
  const unknown = unknownRelease(r.kernel, r.release);
  if (unknown) lines.push(`      WARNING: ${unknown}`);
  lines.push(`      ${probeLine(r.probe)}`);
  for (const c of r.commands) {
    const s = c.summary;
    lines.push(`      ${commandName(c)}: ${s ? `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped` : `exit ${c.status}`} (${secs(c.seconds)})`);
  }
  if (r.lockstep) {
    const l = r.lockstep;
    lines.push(
      `      lockstep with model ${r.kernel}: ${l.agreed} scenarios agreed step by step, ${l.diverged.length} diverged, ${l.skipped.length} not replayed`,
    );
    const why = new Map<string, number>();
    for (const x of l.skipped) {
      const reason = x.reason.replace(/^requires (\S+):.*/, 'requires $1');
      why.set(reason, (why.get(reason) ?? 0) + 1);
    }
    if (verbose) for (const [w, n] of why) lines.push(`        not replayed: ${n} x ${w}`);
  }
  const testSkips = new Map<string, number>();
  for (const x of r.tests) {
    if (x.status === 'skipped') testSkips.set(x.reason ?? 'no reason given', (testSkips.get(x.reason ?? 'no reason given') ?? 0) + 1);
    else if (x.status === 'failed' || verbose)
      lines.push(`      ${x.status === 'failed' ? 'FAILED ' : 'passed '} kvm test: ${x.name}${x.reason ? `: ${x.reason}` : ''}`);
  }
  for (const [why, n] of testSkips) lines.push(`      SKIPPED ${n} kvm test${n === 1 ? '' : 's'}: ${why}`);
  const skips = new Map<string, number>();
  for (const sc of r.scenarios) {
    if (!verbose && sc.status === 'passed') continue;
    if (!verbose && sc.status === 'skipped') {
      const why = sc.reason ?? 'no reason given';
      skips.set(why, (skips.get(why) ?? 0) + 1);
      continue;
    }
    lines.push(`      ${sc.status.toUpperCase().padEnd(7)} ${sc.name}  (${sc.file}, ${sc.backend} ${sc.kernel})${sc.reason ? `: ${sc.reason}` : ''}`);
    for (const l of sc.console ?? []) lines.push(`        | ${l}`);
  }
  for (const [why, n] of skips) lines.push(`      SKIPPED ${n} scenario${n === 1 ? '' : 's'}: ${why}`);
  if (r.retried) lines.push(`      RETRIED: ${r.retried}`);
  for (const p of r.problems) lines.push(`      problem: ${p}`);
  if (!r.ok) {
    lines.push(`      logs: ${r.runDir}/console.log, ${r.runDir}/data.jsonl`);
    if (r.consoleTail) lines.push(...r.consoleTail.split('\n').map((l) => `      | ${l}`));
  }
  return lines.join('\n');
}
