/**
 * Stage "boot": QEMU (TCG, -cpu max: AMD SVM with nested paging, so KVM inside works), with the
 * console on the first serial port (to console.log) and the data channel on the second (QEMU's
 * stdout, read live). A hard timeout kills QEMU; /init's `reboot -f` with -no-reboot ends it early.
 */

import { createWriteStream, readFileSync } from 'node:fs';
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

/**
 * The TSC frequency for the lab kernel's command line (tsc_early_khz). Under TCG the guest's TSC runs
 * at the host's (QEMU's cpu_get_tsc is the host tick counter), but the guest kernel calibrates it
 * against the emulated PIT, and on a busy host that fails ("tsc: Unable to calibrate against PIT ...
 * Marking TSC unstable due to could not calculate TSC khz"): tsc_khz stays 0, and then KVM never
 * enters a guest: kvm_guest_time_update() sees get_cpu_tsc_khz() == 0, re-requests
 * KVM_REQ_CLOCK_UPDATE and returns 1, and vcpu_enter_guest() goes round again until a signal. That
 * was the lab's "stuck boot" (every nested guest at its first instruction). Telling the kernel the
 * frequency skips the calibration. The host's "cpu MHz" is the TSC rate on the VMs this runs on
 * (constant_tsc, tsc_known_freq); any non-zero value keeps KVM going.
 */
export function hostTscKhz(cpuinfo?: string): number {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      text = '';
    }
  }
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(text)?.[1]);
  return Number.isFinite(mhz) && mhz > 0 ? Math.round(mhz * 1000) : DEFAULT_TSC_KHZ;
}

/** When the host does not say: 2 GHz, still far better than 0 for KVM. */
const DEFAULT_TSC_KHZ = 2_000_000;

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
    ['console=ttyS0', 'panic=-1', 'oops=panic', `tsc_early_khz=${hostTscKhz()}`, o.append].filter(Boolean).join(' '),
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
