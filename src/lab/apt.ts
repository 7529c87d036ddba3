/**
 * Kernel source through apt. A kernel from the machine's own suites is looked up with the machine's
 * apt configuration; one from another suite (trixie-backports) gets a private apt configuration in
 * the cache, whose mirror and keyring are read from the machine's own apt sources. The private
 * configuration never touches /etc/apt or /var/lib/apt, and needs no root.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AptSource, ensureDir, LabError, run } from './env.js';

export interface SourceEntry {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
  enabled: boolean;
}

/** Parse deb822 (.sources) text into entries. */
export function parseDeb822(text: string): SourceEntry[] {
  const out: SourceEntry[] = [];
  for (const para of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let key: string | undefined;
    for (const raw of para.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^[ \t]/.test(raw) && key) {
        fields.set(key, `${fields.get(key)}\n${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m) {
        key = m[1]!.toLowerCase();
        fields.set(key, m[2]!.trim());
      }
    }
    if (!fields.has('uris')) continue;
    const list = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    const signedBy = fields.get('signed-by');
    out.push({
      types: list('types'),
      uris: list('uris'),
      suites: list('suites'),
      components: list('components'),
      ...(signedBy !== undefined && { signedBy }),
      enabled: (fields.get('enabled') ?? 'yes').toLowerCase() !== 'no',
    });
  }
  return out;
}

/** Parse one-line-style (sources.list) text into entries. */
export function parseOneLine(text: string): SourceEntry[] {
  const out: SourceEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const opts = new Map(
      (m[2] ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((o) => o.split('=') as [string, string]),
    );
    const signedBy = opts.get('signed-by');
    out.push({
      types: [m[1]!],
      uris: [m[3]!],
      suites: [m[4]!],
      components: (m[5] ?? '').split(/\s+/).filter(Boolean),
      ...(signedBy !== undefined && { signedBy }),
      enabled: true,
    });
  }
  return out;
}

const DEBIAN_SUITE = /^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|oldstable|oldoldstable|testing|unstable)(-updates|-backports)?$/;
const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface Mirror {
  uri: string;
  /** A keyring path for signed-by, when the machine's entry names one (or Debian's is installed). */
  signedBy?: string;
}

/** The machine's Debian mirror: the first enabled `deb` entry for a Debian suite with `main`. */
export function pickMirror(entries: readonly SourceEntry[], keyringExists: (p: string) => boolean): Mirror | undefined {
  for (const e of entries) {
    if (!e.enabled || !e.types.includes('deb') || !e.components.includes('main')) continue;
    if (!e.suites.some((s) => DEBIAN_SUITE.test(s))) continue;
    const uri = e.uris.find((u) => !/security/.test(u));
    if (!uri) continue;
    const key =
      e.signedBy && !e.signedBy.includes('\n') && e.signedBy.startsWith('/') ? e.signedBy : keyringExists(DEFAULT_KEYRING) ? DEFAULT_KEYRING : undefined;
    return { uri: uri.replace(/\/+$/, ''), ...(key !== undefined && { signedBy: key }) };
  }
  return undefined;
}

/** Read /etc/apt/sources.list and sources.list.d/ (both formats). */
export function machineSources(etc = '/etc/apt'): SourceEntry[] {
  const out: SourceEntry[] = [];
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  out.push(...parseOneLine(read(join(etc, 'sources.list'))));
  let names: string[] = [];
  try {
    names = readdirSync(join(etc, 'sources.list.d')).sort();
  } catch {
    // none
  }
  for (const n of names) {
    const p = join(etc, 'sources.list.d', n);
    if (n.endsWith('.sources')) out.push(...parseDeb822(read(p)));
    else if (n.endsWith('.list')) out.push(...parseOneLine(read(p)));
  }
  return out;
}

/** How to call apt-get/apt-cache for one kernel's source: the machine's config or a private one. */
export class Apt {
  readonly options: string[];
  readonly description: string;

  constructor(
    readonly source: AptSource,
    readonly dir: string,
  ) {
    const root = process.getuid?.() === 0;
    // As root apt would drop to _apt for downloads, which cannot write into the user's cache.
    const common = root ? ['-o', 'APT::Sandbox::User=root'] : [];
    if (source.kind === 'system') {
      this.options = common;
      this.description = "the machine's apt sources";
      return;
    }
    const mirror = pickMirror(machineSources(), (p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
    if (!mirror) {
      throw new LabError('fetch', `no Debian mirror in the machine's apt sources (/etc/apt/sources.list, sources.list.d/): cannot reach ${source.suite}`);
    }
    ensureDir(join(dir, 'lists', 'partial'));
    ensureDir(join(dir, 'cache', 'archives', 'partial'));
    const list = join(dir, 'sources.list');
    const opt = mirror.signedBy ? ` [signed-by=${mirror.signedBy}]` : '';
    writeFileSync(list, `deb${opt} ${mirror.uri} ${source.suite} ${source.components.join(' ')}\n`);
    this.options = [
      ...common,
      '-o',
      `Dir::Etc::sourcelist=${list}`,
      '-o',
      'Dir::Etc::sourceparts=-',
      '-o',
      `Dir::State::Lists=${join(dir, 'lists')}`,
      '-o',
      `Dir::Cache=${join(dir, 'cache')}`,
      '-o',
      'Dir::State::status=/dev/null',
      '-o',
      'Dir::Etc::preferencesparts=-',
    ];
    this.description = `${source.suite} (private apt configuration in ${dir})`;
  }

  /** Refresh a private configuration's package lists (at most every maxAgeMs unless forced). */
  update(maxAgeMs: number, force = false): void {
    if (this.source.kind === 'system') return;
    const stamp = join(this.dir, 'updated');
    let age = Number.POSITIVE_INFINITY;
    try {
      age = Date.now() - statSync(stamp).mtimeMs;
    } catch {
      // never updated
    }
    if (!force && age < maxAgeMs) return;
    run('fetch', 'apt-get', [...this.options, '-q', 'update'], { timeoutMs: 300_000 });
    writeFileSync(stamp, new Date().toISOString());
  }

  /** The version apt would fetch, or undefined when apt does not know the package. */
  candidate(pkg: string): string | undefined {
    const out = run('fetch', 'apt-cache', [...this.options, 'policy', pkg]);
    const m = /Candidate:\s*(\S+)/.exec(out);
    return m && m[1] !== '(none)' ? m[1] : undefined;
  }

  /** Download pkg=version into dir; returns the .deb path. */
  download(pkg: string, version: string, into: string): string {
    ensureDir(into);
    for (const f of readdirSync(into)) if (f.startsWith(`${pkg}_`)) rmSync(join(into, f), { force: true });
    run('fetch', 'apt-get', [...this.options, '-q', 'download', `${pkg}=${version}`], { cwd: into, timeoutMs: 1_800_000 });
    const deb = readdirSync(into).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new LabError('fetch', `apt-get download ${pkg}=${version} left no .deb in ${into}`);
    return join(into, deb);
  }
}
