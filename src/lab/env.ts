/**
 * Where the lab keeps things, the kernels it knows, and the small process helpers every stage uses.
 * Nothing here names a host: mirrors come from the machine's own apt sources (apt.ts), the cache
 * lives under the user's cache directory, never in the repository.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (or installed package) root: dist/src/lab/env.js -> ../../../ */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Committed lab files: the kernel config fragment and the /init template. */
export const LAB_DIR = join(ROOT, 'lab');

/** The lab's cache: GUESTMEM_LAB_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/guestmem-lab. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GUESTMEM_LAB_CACHE) return env.GUESTMEM_LAB_CACHE;
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'guestmem-lab');
}

export type AptSource = { kind: 'system' } | { kind: 'private'; suite: string; components: string[] };

export interface KernelSpec {
  /** What --kernel names. */
  id: string;
  /** The Debian package with the source tarball (/usr/src/linux-source-X.tar.xz). */
  package: string;
  /** Where apt finds it: the machine's own configuration, or a private one for another suite. */
  apt: AptSource;
}

/**
 * The lab's kernels. 6.12 is Debian 12/13's own kernel (the machine's apt sources have it); 7.3 comes
 * from trixie-backports, through a private apt configuration that reuses the machine's Debian mirror.
 */
export const KERNELS: readonly KernelSpec[] = [
  { id: '6.12', package: 'linux-source-6.12', apt: { kind: 'system' } },
  { id: '7.3', package: 'linux-source-7.3', apt: { kind: 'private', suite: 'trixie-backports', components: ['main'] } },
];
export const KERNEL_IDS = KERNELS.map((k) => k.id);

export function kernelSpec(id: string): KernelSpec {
  const k = KERNELS.find((x) => x.id === id);
  if (!k) throw new LabError('args', `unknown kernel ${JSON.stringify(id)}; the lab knows ${KERNEL_IDS.join(', ')}`);
  return k;
}

/** A lab stage that could not be done, with the stage named and, where one is missing, the package. */
/** What `guestmem run` inside the lab VM uses by default: the lab is there to ask the real kernel. */
export const DEFAULT_GUEST_BACKEND = 'kvm' as const;

export class LabError extends Error {
  override readonly name = 'LabError';
  constructor(
    readonly stage: string,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
  }
}

export function ensureDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

export function readJson<T>(p: string): T | undefined {
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function writeJson(p: string, v: unknown): void {
  writeFileSync(p, `${JSON.stringify(v, null, 2)}\n`);
}

/** Run a command to completion and return stdout; a failure is a LabError with the command's stderr tail. */
export function run(stage: string, cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: opts.timeoutMs ?? 600_000,
    killSignal: 'SIGKILL',
  });
  if (r.error) throw new LabError(stage, `${cmd}: ${(r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 'timed out' : r.error.message}`);
  if (r.status !== 0) {
    throw new LabError(stage, `${[cmd, ...args].join(' ')} exited with ${r.status ?? r.signal}`, tail(`${r.stdout}\n${r.stderr}`, 20));
  }
  return r.stdout;
}

/** Last n non-empty lines of a text. */
export function tail(text: string, n: number): string {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join('\n');
}

export interface StreamResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/**
 * Run a long command, feeding each output line to onLine, with a hard timeout (SIGKILL of the
 * whole process group, so make's children go too).
 */
export function runStreaming(
  cmd: string,
  args: readonly string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs: number;
    onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
    log?: (chunk: Buffer) => void;
  },
): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let timedOut = false;
    const killAll = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killAll();
    }, opts.timeoutMs);
    // If we are interrupted, do not leave a kernel build or a VM behind (the child runs in its own
    // process group, so the terminal's Ctrl-C does not reach it by itself).
    const onExit = () => killAll();
    const onSignal = (sig: NodeJS.Signals) => {
      killAll();
      detach();
      process.kill(process.pid, sig);
    };
    const detach = () => {
      process.removeListener('exit', onExit);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    };
    process.once('exit', onExit);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    for (const name of ['stdout', 'stderr'] as const) {
      let rest = '';
      child[name].on('data', (b: Buffer) => {
        opts.log?.(b);
        if (!opts.onLine) return;
        const text = rest + b.toString('utf8');
        const lines = text.split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) opts.onLine(l.replace(/\r$/, ''), name);
      });
      child[name].on('end', () => {
        if (rest && opts.onLine) opts.onLine(rest.replace(/\r$/, ''), name);
        rest = '';
      });
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      detach();
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      detach();
      resolve({ code, signal, timedOut });
    });
  });
}

/** A directory lock (mkdir is atomic) so that two lab runs do not build the same kernel at once. */
export async function withLock<T>(dir: string, what: string, timeoutMs: number, progress: (s: string) => void, fn: () => Promise<T>): Promise<T> {
  const lock = `${dir}.lock`;
  ensureDir(dirname(lock));
  const start = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = 0;
      try {
        pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        // the holder has not written its pid yet
      }
      const young = Date.now() - lockAge(lock) < 10_000;
      if ((pid && !alive(pid)) || (!pid && !young)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - start > timeoutMs) throw new LabError('lock', `${what} is locked by process ${pid} (${lock})`);
      progress(`waiting for process ${pid}, which holds ${what}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function lockAge(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const cleanups: Promise<void>[] = [];

/**
 * Remove a large tree (a built kernel source) without holding up the next stage: it is renamed out
 * of the way at once and deleted in the background; awaitCleanups() waits for the deletions.
 */
export function removeLater(p: string): void {
  if (!existsSync(p)) return;
  const trash = `${p}.trash-${process.pid}-${Date.now()}`;
  renameSync(p, trash);
  cleanups.push(rm(trash, { recursive: true, force: true }).catch(() => undefined));
}

/** Delete what an interrupted run left to removeLater() in dir. */
export function sweepTrash(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /\.trash-(\d+)-\d+$/.exec(n);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) cleanups.push(rm(join(dir, n), { recursive: true, force: true }).catch(() => undefined));
  }
}

export async function awaitCleanups(): Promise<void> {
  while (cleanups.length) await cleanups.shift();
}

export function exists(p: string): boolean {
  return existsSync(p);
}
