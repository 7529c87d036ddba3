/**
 * What each lab stage needs from the machine, as Debian packages: a missing one is named in the
 * error, with the apt-get line that installs it.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { LabError } from './env.js';

export type Stage = 'build' | 'pack' | 'boot';

interface Need {
  /** A command on PATH, or an absolute path (a header, a firmware file). */
  what: string;
  package: string;
  /** Any of these satisfies the need (an absolute path list). */
  anyOf?: string[];
}

const NEEDS: Record<Stage, Need[]> = {
  build: [
    { what: 'apt-get', package: 'apt' },
    { what: 'apt-cache', package: 'apt' },
    { what: 'dpkg-deb', package: 'dpkg' },
    { what: 'tar', package: 'tar' },
    { what: 'xz', package: 'xz-utils' },
    { what: 'make', package: 'make' },
    { what: 'gcc', package: 'gcc' },
    { what: 'bc', package: 'bc' },
    { what: 'bison', package: 'bison' },
    { what: 'flex', package: 'flex' },
    { what: 'perl', package: 'perl' },
    // objtool (x86-64) links libelf
    { what: 'libelf headers', package: 'libelf-dev', anyOf: ['/usr/include/gelf.h', '/usr/include/libelf.h'] },
  ],
  pack: [
    { what: 'busybox', package: 'busybox-static' },
    { what: 'ldd', package: 'libc-bin' },
  ],
  boot: [
    { what: 'qemu-system-x86_64', package: 'qemu-system-x86' },
    {
      what: 'SeaBIOS (bios-256k.bin)',
      package: 'seabios',
      anyOf: ['/usr/share/seabios/bios-256k.bin', '/usr/share/qemu/bios-256k.bin', '/usr/local/share/qemu/bios-256k.bin'],
    },
  ],
};

/** The absolute path of a command on PATH, or undefined. */
export function which(cmd: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface Missing {
  what: string;
  package: string;
}

export function missing(stages: readonly Stage[]): Missing[] {
  const out: Missing[] = [];
  for (const s of stages) {
    for (const n of NEEDS[s]) {
      const ok = n.anyOf ? n.anyOf.some((p) => existsSync(p)) : which(n.what) !== undefined;
      if (!ok && !out.some((m) => m.what === n.what)) out.push({ what: n.what, package: n.package });
    }
  }
  return out;
}

export function describeMissing(m: readonly Missing[]): string {
  const pkgs = [...new Set(m.map((x) => x.package))];
  return `missing ${m.map((x) => (x.what === x.package ? x.what : `${x.what} (package ${x.package})`)).join(', ')}; install with: apt-get install ${pkgs.join(' ')}`;
}

/** Throw a LabError naming every missing package for these stages. */
export function requirePrereqs(stages: readonly Stage[]): void {
  const m = missing(stages);
  if (m.length) throw new LabError(stages.join('+'), describeMissing(m));
}

/** Every Debian package the lab uses (for CI and the README). */
export const LAB_PACKAGES = [...new Set(Object.values(NEEDS).flatMap((ns) => ns.map((n) => n.package)))];
