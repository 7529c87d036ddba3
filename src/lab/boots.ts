/**
 * The stuck-boot experiment: boot a lab kernel many times with only the canary (a guest that halts,
 * on a default and a software-protected VM) and count the boots whose nested guests never exit.
 * Under TCG about one boot in eight came up that way; this measures the rate for a QEMU, a -cpu
 * model, an -smp count, a kernel command line, and with the host idle or loaded, so that what
 * changes the rate can be found (`guestmem lab boots`).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Apt } from './apt.js';
import type { MachineOptions } from './boot.js';
import { ensureDir, LabError, run } from './env.js';
import { type LabRunOptions, runJob } from './index.js';

export interface BootsOptions extends LabRunOptions {
  kernel: string;
  count: number;
  /** busy loops on the host while the boots run (0: idle) */
  load?: number;
  onBoot?: (i: number, outcome: BootOutcome) => void;
}

export interface BootOutcome {
  /** every nested guest reached the KVM_RUN deadline */
  stuck: boolean;
  /** the canary's answer per VM type, or why there was none */
  detail: string;
  seconds: number;
}

export interface BootsResult {
  kernel: string;
  boots: number;
  stuck: number;
  /** boots that failed for another reason (no canary record at all) */
  other: number;
  seconds: number;
  machine: MachineOptions;
  append?: string;
  load: number;
}

/** Boot `count` times, one boot per job and no retry, with `load` busy loops running meanwhile. */
export async function countStuckBoots(o: BootsOptions): Promise<BootsResult> {
  const burners = Array.from({ length: o.load ?? 0 }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore', detached: false }));
  // the busy loops must not outlive an interrupted experiment
  const stop = (sig: NodeJS.Signals) => {
    for (const b of burners) b.kill('SIGKILL');
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const t0 = Date.now();
  let stuck = 0;
  let other = 0;
  try {
    for (let i = 0; i < o.count; i++) {
      const b0 = Date.now();
      const r = await runJob(o.kernel, { ...o, bootAttempts: 1 }, { commands: [], backend: 'kvm', describe: 'the canary only' });
      const c = r.records?.find((x) => x.t === 'canary');
      const outcome: BootOutcome = {
        stuck: c?.stuck === true,
        detail: c ? JSON.stringify(c.results) : (r.problems[0] ?? 'no canary record'),
        seconds: (Date.now() - b0) / 1000,
      };
      if (outcome.stuck) stuck++;
      else if (!c?.ok) other++;
      o.onBoot?.(i, outcome);
    }
  } finally {
    for (const b of burners) b.kill('SIGKILL');
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return {
    kernel: o.kernel,
    boots: o.count,
    stuck,
    other,
    seconds: (Date.now() - t0) / 1000,
    machine: o.machine ?? {},
    ...(o.append && { append: o.append }),
    load: o.load ?? 0,
  };
}

/**
 * QEMU from bookworm-backports (10.0), unpacked into the cache beside the system's one: fetched with
 * a private apt configuration (nothing under /etc/apt changes) and run from there with its own
 * firmware directory.
 */
export function backportsQemu(cache: string): MachineOptions {
  const dir = ensureDir(join(cache, 'qemu-backports'));
  const root = join(dir, 'root');
  const bin = join(root, 'usr/bin/qemu-system-x86_64');
  if (!existsSync(bin)) {
    const apt = new Apt({ kind: 'private', suite: 'bookworm-backports', components: ['main'] }, join(dir, 'apt'));
    apt.update(24 * 3600_000);
    const debs: string[] = [];
    for (const pkg of ['qemu-system-x86', 'qemu-system-data', 'qemu-system-common']) {
      const v = apt.candidate(pkg);
      if (!v) throw new LabError('fetch', `bookworm-backports has no ${pkg}`);
      debs.push(apt.download(pkg, v, join(dir, 'debs')));
    }
    for (const d of debs) run('fetch', 'dpkg-deb', ['-x', d, root]);
  }
  const share = join(root, 'usr/share/qemu');
  // the system's seabios/ipxe stay where QEMU 7.2's packages put them
  const dataDirs = [share, '/usr/share/seabios', '/usr/lib/ipxe/qemu'].filter((d) => existsSync(d) && readdirSync(d).length > 0);
  return { qemu: bin, dataDirs };
}
