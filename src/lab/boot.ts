/**
 * Stage "boot": QEMU (TCG, -cpu max: AMD SVM with nested paging, so KVM inside works), with the
 * console on the first serial port (to console.log) and the data channel on the second (QEMU's
 * stdout, read live). A hard timeout kills QEMU; /init's `reboot -f` with -no-reboot ends it early.
 */

import { createWriteStream } from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { LabError, runStreaming } from './env.js';
import { requirePrereqs } from './prereq.js';

export interface BootOptions {
  bzImage: string;
  initrd: string;
  /** Where console.log and data.jsonl go. */
  runDir: string;
  timeoutMs: number;
  memoryMiB?: number;
  machine?: MachineOptions;
  /** Extra kernel command line. */
  append?: string;
  onRecord: (rec: Record<string, unknown>, line: string) => void;
}

export interface BootResult {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  seconds: number;
  consoleLog: string;
  dataLog: string;
  /** Lines on the data port that were not JSON (kept for the report). */
  noise: string[];
  qemuStderr: string;
}

/**
 * The VM's memory when none is asked for: a quarter of what the host has free (two lab VMs may run
 * at once beside the test runner), at least 1 GiB (Node, the initramfs and the scenarios need about
 * 600 MiB) and at most 4 GiB.
 */
export function defaultMemoryMiB(freeBytes = freemem()): number {
  return Math.max(1024, Math.min(4096, Math.floor(freeBytes / 4 / 2 ** 20)));
}

/** The emulated machine, for experiments with the stuck boots (guestmem lab boots). */
export interface MachineOptions {
  /** the QEMU binary (default qemu-system-x86_64 on PATH) */
  qemu?: string;
  /** firmware directories for -L (a QEMU unpacked from another suite brings its own) */
  dataDirs?: readonly string[];
  /** -cpu model (default max: AMD SVM with nested paging, under TCG) */
  cpu?: string;
  /** -smp count (default 1) */
  smp?: number;
}

export function qemuArgs(o: Pick<BootOptions, 'bzImage' | 'initrd' | 'runDir' | 'memoryMiB' | 'append' | 'machine'>): string[] {
  const m = o.machine ?? {};
  return [
    ...(m.dataDirs ?? []).flatMap((d) => ['-L', d]),
    '-accel',
    'tcg',
    '-cpu',
    m.cpu ?? 'max',
    '-smp',
    String(m.smp ?? 1),
    '-m',
    `${o.memoryMiB ?? defaultMemoryMiB()}M`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    o.bzImage,
    '-initrd',
    o.initrd,
    '-append',
    ['console=ttyS0', 'panic=-1', 'oops=panic', o.append].filter(Boolean).join(' '),
    '-serial',
    `file:${join(o.runDir, 'console.log')}`,
    '-serial',
    'stdio',
  ];
}

export async function boot(o: BootOptions): Promise<BootResult> {
  requirePrereqs(['boot']);
  const dataLog = join(o.runDir, 'data.jsonl');
  const data = createWriteStream(dataLog);
  const noise: string[] = [];
  let qemuStderr = '';
  const t0 = Date.now();
  let r: Awaited<ReturnType<typeof runStreaming>>;
  try {
    r = await runStreaming(o.machine?.qemu ?? 'qemu-system-x86_64', qemuArgs(o), {
      timeoutMs: o.timeoutMs,
      onLine: (line, stream) => {
        if (stream === 'stderr') {
          qemuStderr += `${line}\n`;
          return;
        }
        const l = line.replace(/\r/g, '');
        if (!l.trim()) return;
        data.write(`${l}\n`);
        if (l.startsWith('{')) {
          try {
            o.onRecord(JSON.parse(l) as Record<string, unknown>, l);
            return;
          } catch {
            // a torn line: keep it as noise
          }
        }
        noise.push(l);
      },
    });
  } catch (e) {
    throw new LabError('boot', `cannot start qemu-system-x86_64: ${(e as Error).message}`);
  } finally {
    await new Promise((res) => data.end(res));
  }
  const seconds = (Date.now() - t0) / 1000;
  if (/could not load PC BIOS|Could not open option rom/.test(qemuStderr)) {
    throw new LabError('boot', `QEMU has no firmware: ${qemuStderr.trim().split('\n')[0]} (package seabios)`);
  }
  return { code: r.code, signal: r.signal, timedOut: r.timedOut, seconds, consoleLog: join(o.runDir, 'console.log'), dataLog, noise, qemuStderr };
}
