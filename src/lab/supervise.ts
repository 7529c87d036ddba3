/**
 * Inside the lab VM: run a guestmem command so that one scenario (or one lockstep sequence) that
 * kills its process cannot take the others with it. The command reports as it goes (`guestmem run
 * --progress`, or `diff --batch`'s JSON lines); when it dies the supervisor knows what was running,
 * reads the kernel's log for why (the OOM killer, an oops, a WARN), reports that one item as failed
 * with the reason and the console lines, and starts the command again on the items after it.
 *
 * - The child runs in the memory cgroup lab/init.sh made (GUESTMEM_LAB_CGROUP), so a run that
 *   exhausts memory meets the cgroup's limit and OOM killer while the kernel still has memory for
 *   the driver; and with oom_score_adj 1000 (the driver itself -1000), so that where there is no
 *   cgroup the kernel's OOM killer still ends the run, never the driver.
 * - An item with no progress for `stepTimeoutMs` is a hang: the supervisor notes where the process
 *   waits (/proc/PID/wchan, /proc/PID/syscall), kills it, and names the step.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

/** What the kernel said while an item ran: the OOM report, oopses and WARNs, and the slab it held. */
export interface KernelVerdict {
  oom: boolean;
  /** the OOM was the runs' memory cgroup's, not the whole kernel's */
  cgroup?: boolean;
  /** slab_unreclaimable at the OOM report, in MiB */
  slabMiB?: number;
  /** the first lines of each WARN/BUG/oops/OOM report */
  excerpt: string[];
}

const SPLAT = /\bWARNING: CPU: \d+ PID: \d+|\bBUG: |kernel BUG at|\bOops: |general protection fault|Kernel panic/;
// the global OOM killer says "Out of memory: Killed process", a memory cgroup's "Memory cgroup out of memory: ..."
const OOM = /[Oo]ut of memory: Killed process|invoked oom-killer/;

export function dmesg(): string[] {
  const r = spawnSync('dmesg', [], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}

/** Read the kernel's lines since an item started (dmesg lines after `from`). */
export function kernelVerdict(lines: readonly string[]): KernelVerdict {
  const oom = lines.some((l) => OOM.test(l));
  // show_mem(): "... slab_reclaimable:N slab_unreclaimable:M ..." in pages (or kB); a memory
  // cgroup's OOM report prints its memory.stat instead: "slab_unreclaimable N" in bytes
  let slabMiB: number | undefined;
  for (const l of lines) {
    const m = /slab_unreclaimable:(\d+)(kB)?/.exec(l);
    if (m) slabMiB = Math.round(m[2] ? Number(m[1]) / 1024 : (Number(m[1]) * 4) / 1024);
    const c = /\bslab_unreclaimable (\d+)$/.exec(l.trim());
    if (c) slabMiB = Math.round(Number(c[1]) / (1 << 20));
  }
  const excerpt: string[] = [];
  lines.forEach((l, i) => {
    if (SPLAT.test(l) || OOM.test(l)) excerpt.push(...lines.slice(i, i + 4));
  });
  const cgroup = lines.some((l) => /Memory cgroup out of memory/.test(l));
  return { oom, ...(cgroup && { cgroup }), ...(slabMiB !== undefined && { slabMiB }), excerpt: excerpt.slice(0, 24) };
}

/** Where a process waits: its wchan and the syscall it is in (/proc/PID/syscall: number first). */
export function whereIs(pid: number): string {
  const read = (f: string) => {
    try {
      return readFileSync(`/proc/${pid}/${f}`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const sc = read('syscall').split(' ')[0];
  const wchan = read('wchan');
  const parts = [sc && sc !== 'running' ? `in syscall ${sc}${sc === '16' ? ' (ioctl)' : ''}` : sc, wchan && wchan !== '0' ? `waiting in ${wchan}` : ''];
  return parts.filter(Boolean).join(', ') || 'state unknown';
}

export interface ChildEnd {
  status: number | null;
  signal: NodeJS.Signals | null;
  /** killed by the supervisor for making no progress */
  hung?: { seconds: number; where: string };
  stderr: string;
}

/**
 * Start `argv` under the OOM policy above; `onActivity` is polled and returns true when the child
 * made progress. Resolves when the child ends (or after it was killed for a hang).
 */
export function runChild(
  argv: readonly string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; stepTimeoutMs: number; onStdoutLine?: (line: string) => void; progressed: () => boolean },
): Promise<ChildEnd> {
  return new Promise((resolve) => {
    // exec keeps the pid, so the cgroup and the adjustment apply to the command itself
    const cgroup = opts.env.GUESTMEM_LAB_CGROUP ? 'echo $$ > "$GUESTMEM_LAB_CGROUP/cgroup.procs" || exit 125; ' : '';
    const child: ChildProcess = spawn('/bin/sh', ['-c', `${cgroup}echo 1000 > /proc/self/oom_score_adj; exec "$@"`, 'sh', ...argv], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let buf = '';
    let last = Date.now();
    let hung: ChildEnd['hung'];
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20000);
    });
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        last = Date.now();
        opts.onStdoutLine?.(line);
        nl = buf.indexOf('\n');
      }
    });
    const timer = setInterval(() => {
      if (opts.progressed()) last = Date.now();
      const idle = Date.now() - last;
      if (idle > opts.stepTimeoutMs && child.pid !== undefined && !hung) {
        hung = { seconds: Math.round(idle / 1000), where: whereIs(child.pid) };
        child.kill('SIGKILL');
      }
    }, 500);
    child.on('close', (status, signal) => {
      clearInterval(timer);
      if (buf && opts.onStdoutLine) opts.onStdoutLine(buf);
      resolve({ status, signal, ...(hung && { hung }), stderr });
    });
  });
}

/** Protect the driver from the OOM killer (it must live to report). */
export function protectSelf(): void {
  try {
    writeFileSync('/proc/self/oom_score_adj', '-1000');
  } catch {
    // not Linux, or not allowed: the child's +1000 still makes it the first choice
  }
}

/** A fresh, empty file for a child's progress lines. */
export function freshFile(path: string): string {
  if (existsSync(path)) rmSync(path);
  writeFileSync(path, '');
  return path;
}

/** Why an item's process died, in one line, from how it ended and what the kernel said. */
export function deathReason(at: string, end: ChildEnd, k: KernelVerdict): string {
  if (end.hung) return `hung at ${at}: no progress for ${end.hung.seconds} s (the process was ${end.hung.where}); killed`;
  if (k.oom)
    return `out of memory in the lab kernel at ${at}: the ${k.cgroup ? "memory cgroup's " : ''}OOM killer ended the run${k.slabMiB !== undefined ? `; the kernel held ${k.slabMiB} MiB of slab (slab_unreclaimable)` : ''}`;
  const how = end.signal ? `was killed by ${end.signal}` : `exited with ${end.status}`;
  const splat = k.excerpt.find((l) => SPLAT.test(l));
  return `the run ${how} at ${at}${splat ? `; the kernel said: ${splat.trim()}` : ''}`;
}
