/**
 * Stage "build": a kernel from Debian's linux-source package, configured as `make tinyconfig` plus the
 * committed fragment (lab/kernel.config), built with `make bzImage`. The bzImage is cached under
 * kernels/<id>-<source version>-<fragment hash>/, so a warm run builds nothing.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Apt } from './apt.js';
import {
  ensureDir,
  exists,
  type KernelSpec,
  LAB_DIR,
  LabError,
  readJson,
  removeLater,
  run,
  runStreaming,
  sweepTrash,
  tail,
  withLock,
  writeJson,
} from './env.js';
import { requirePrereqs } from './prereq.js';
import type { Progress } from './progress.js';

/** Bump when the recipe below changes in a way that changes the kernel. */
const RECIPE = 'tinyconfig+fragment+olddefconfig+bzImage/1';
export const FRAGMENT = join(LAB_DIR, 'kernel.config');

export interface KernelBuild {
  kernel: string;
  package: string;
  version: string;
  fragmentHash: string;
  bzImage: string;
  config: string;
  dir: string;
  /** True when this call built it; false when it came from the cache. */
  built: boolean;
  buildSeconds?: number;
  /** The `make bzImage` object count of the build, for progress next time. */
  objects?: number;
}

export interface BuildOptions {
  cache: string;
  progress: Progress;
  timeoutMs: number;
  /** Keep the unpacked, built source tree (for kernel hacking); removed by default. */
  keepSource?: boolean;
  /** Rebuild even when the cache has this kernel. */
  force?: boolean;
  jobs?: number;
}

export interface FragmentLine {
  name: string;
  value: string;
  /** Marked `# lab: optional` on the line before: a kernel that has no such option is fine. */
  optional?: boolean;
}

/** The fragment's CONFIG_ lines (comments and blanks skipped). */
export function parseFragment(text: string): FragmentLine[] {
  const out: FragmentLine[] = [];
  let optional = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (/^#\s*lab:\s*optional\b/.test(line)) {
      optional = true;
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (!m) throw new LabError('config', `lab/kernel.config: not a config line: ${JSON.stringify(line)}`);
    out.push({ name: m[1]!, value: m[2]!, ...(optional && { optional }) });
    optional = false;
  }
  return out;
}

/**
 * Which fragment lines the final .config does not honour (dropped by a dependency, or renamed). An
 * optional line may be absent altogether (an option this kernel does not have), not set otherwise.
 */
export function unmetFragment(fragment: readonly FragmentLine[], dotConfig: string): string[] {
  const have = new Map<string, string>();
  for (const line of dotConfig.split('\n')) {
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) have.set(set[1]!, set[2]!);
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) have.set(unset[1]!, 'n');
  }
  return fragment
    .filter((f) => !(f.optional && !have.has(f.name)) && (have.get(f.name) ?? 'n') !== f.value)
    .map((f) => `${f.name}=${f.value} (got ${have.get(f.name) ?? 'absent'})`);
}

/** The cache key part that the config decides: fragment text (normalized) and recipe. */
export function fragmentHash(text: string): string {
  const lines = parseFragment(text)
    .map((f) => `${f.optional ? '?' : ''}${f.name}=${f.value}`)
    .join('\n');
  return createHash('sha256').update(`${RECIPE}\n${lines}`).digest('hex').slice(0, 12);
}

interface Meta {
  kernel: string;
  package: string;
  version: string;
  fragmentHash: string;
  builtAt: string;
  buildSeconds: number;
  objects: number;
}

const slug = (v: string) => v.replace(/[^A-Za-z0-9.+-]/g, '_');

function fromCache(dir: string, meta: Meta): KernelBuild {
  return {
    kernel: meta.kernel,
    package: meta.package,
    version: meta.version,
    fragmentHash: meta.fragmentHash,
    bzImage: join(dir, 'bzImage'),
    config: join(dir, 'config'),
    dir,
    built: false,
    buildSeconds: meta.buildSeconds,
    objects: meta.objects,
  };
}

/** Every cached build of this kernel with this fragment, newest first. */
export function cachedKernels(cache: string, kernel: string, hash: string): KernelBuild[] {
  const root = join(cache, 'kernels');
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const out: { k: KernelBuild; t: number }[] = [];
  for (const n of names) {
    const dir = join(root, n);
    const meta = readJson<Meta>(join(dir, 'meta.json'));
    if (!meta || meta.kernel !== kernel || meta.fragmentHash !== hash || !exists(join(dir, 'bzImage'))) continue;
    out.push({ k: fromCache(dir, meta), t: statSync(join(dir, 'bzImage')).mtimeMs });
  }
  return out.sort((a, b) => b.t - a.t).map((x) => x.k);
}

/** Resolve the source version apt offers now; the cache answers if it has that version built. */
export async function buildKernel(spec: KernelSpec, o: BuildOptions): Promise<KernelBuild> {
  const fragText = readFileSync(FRAGMENT, 'utf8');
  const hash = fragmentHash(fragText);
  const p = o.progress;

  p.stage(`kernel ${spec.id}`, 'resolving the source version');
  let apt: Apt | undefined;
  let version: string | undefined;
  let why = '';
  try {
    apt = new Apt(spec.apt, join(o.cache, 'apt', spec.id));
    try {
      apt.update(6 * 3600_000);
    } catch (e) {
      why = (e as Error).message;
    }
    version = apt.candidate(spec.package);
  } catch (e) {
    why = (e as Error).message;
  }
  if (!version) {
    // Offline, or apt lost the package: a cached build of the same fragment still answers.
    const cached = cachedKernels(o.cache, spec.id, hash)[0];
    if (cached && !o.force) {
      p.warn(`kernel ${spec.id}: apt cannot resolve ${spec.package} (${why || 'no candidate'}); using the cached ${cached.version}`);
      p.done(`kernel ${spec.id} ${cached.version} (cached)`);
      return cached;
    }
    const hint =
      spec.apt.kind === 'system'
        ? `apt knows no package ${spec.package}: run apt-get update (as root); the machine's apt sources need a Debian suite that ships it (bookworm or trixie)`
        : `apt knows no package ${spec.package} in ${spec.apt.suite}`;
    throw new LabError(
      'fetch',
      why ? `cannot resolve ${spec.package} through ${spec.apt.kind === 'system' ? 'apt' : `apt (${spec.apt.suite})`}: ${why}` : hint,
    );
  }

  const dir = join(o.cache, 'kernels', `${spec.id}-${slug(version)}-${hash}`);
  const metaPath = join(dir, 'meta.json');
  const have = readJson<Meta>(metaPath);
  if (have && exists(join(dir, 'bzImage')) && !o.force) {
    p.done(`kernel ${spec.id} ${version} (cached)`);
    return fromCache(dir, have);
  }

  requirePrereqs(['build']);
  return withLock(
    dir,
    `the ${spec.id} kernel build`,
    o.timeoutMs,
    (s) => p.update(s),
    async () => {
      const again = readJson<Meta>(metaPath);
      if (again && exists(join(dir, 'bzImage')) && !o.force) {
        p.done(`kernel ${spec.id} ${version} (built meanwhile by another run)`);
        return fromCache(dir, again);
      }
      const t0 = Date.now();
      const work = ensureDir(join(o.cache, 'work', spec.id));
      removeLater(join(work, 'src'));
      sweepTrash(join(o.cache, 'work'));
      const srcRoot = ensureDir(join(work, 'src'));
      const log = join(work, 'build.log');
      writeFileSync(log, '');

      p.update(`downloading ${spec.package} ${version} from ${apt!.description}`);
      let deb: string;
      try {
        deb = apt!.download(spec.package, version, join(work, 'deb'));
      } catch (e) {
        // Stale private lists can name a file the mirror no longer has: refresh once.
        if (spec.apt.kind !== 'private') throw e;
        apt!.update(0, true);
        deb = apt!.download(spec.package, version, join(work, 'deb'));
      }

      p.update(`unpacking ${spec.package} ${version}`);
      const tarball = extractTarball(deb, srcRoot, spec.package);
      run('unpack', 'tar', ['-xf', tarball, '-C', srcRoot], { timeoutMs: 600_000 });
      rmSync(tarball, { force: true });
      rmSync(deb, { force: true });
      const tree = readdirSync(srcRoot)
        .map((n) => join(srcRoot, n))
        .find((d) => exists(join(d, 'Makefile')) && exists(join(d, 'Kconfig')));
      if (!tree) throw new LabError('unpack', `${spec.package} ${version}: no kernel tree in the tarball`);

      p.update('configuring (tinyconfig + lab/kernel.config)');
      const env = { ...process.env, KBUILD_BUILD_USER: 'guestmem', KBUILD_BUILD_HOST: 'lab', LC_ALL: 'C' };
      const mk = (args: string[]) => {
        const out = run('config', 'make', args, { cwd: tree, env, timeoutMs: 300_000 });
        appendFileSync(log, out);
      };
      mk(['tinyconfig']);
      const merge = run('config', join(tree, 'scripts/kconfig/merge_config.sh'), ['-m', '.config', FRAGMENT], { cwd: tree, env });
      appendFileSync(log, merge);
      mk(['olddefconfig']);
      const dotConfig = readFileSync(join(tree, '.config'), 'utf8');
      const unmet = unmetFragment(parseFragment(fragText), dotConfig);
      if (unmet.length) {
        throw new LabError('config', `kernel ${spec.id} ${version}: lab/kernel.config lines that did not survive olddefconfig: ${unmet.join(', ')}`);
      }

      const jobs = o.jobs ?? Math.max(1, cpus().length);
      const expected =
        cachedKernels(o.cache, spec.id, hash)[0]?.objects ?? readJson<{ objects?: number }>(join(o.cache, 'work', `${spec.id}.stats.json`))?.objects;
      let objects = 0;
      let last = '';
      const remaining = Math.max(1000, o.timeoutMs - (Date.now() - t0));
      p.update(`make -j${jobs} bzImage`);
      const r = await runStreaming('make', [`-j${jobs}`, 'bzImage'], {
        cwd: tree,
        env,
        timeoutMs: remaining,
        log: (b) => appendFileSync(log, b),
        onLine: (line) => {
          const m = /^\s+(CC|AS|LD|AR|HOSTCC|OBJCOPY)\s+(\S+)/.exec(line);
          if (!m) return;
          if (m[1] === 'CC' || m[1] === 'AS') objects++;
          last = m[2]!;
          p.update(`make bzImage: ${objects}${expected ? `/${expected}` : ''} objects, ${last}`, expected ? Math.min(0.99, objects / expected) : undefined);
        },
      });
      if (r.timedOut)
        throw new LabError(
          'build',
          `kernel ${spec.id} ${version}: make bzImage did not finish within ${Math.round(o.timeoutMs / 1000)} s`,
          `build log: ${log}`,
        );
      if (r.code !== 0) {
        throw new LabError(
          'build',
          `kernel ${spec.id} ${version}: make bzImage failed (exit ${r.code ?? r.signal})`,
          `${tail(readFileSync(log, 'utf8'), 25)}\nbuild log: ${log}`,
        );
      }
      const image = join(tree, 'arch/x86/boot/bzImage');
      if (!exists(image)) throw new LabError('build', `kernel ${spec.id} ${version}: make succeeded but left no arch/x86/boot/bzImage`);

      const buildSeconds = Math.round((Date.now() - t0) / 100) / 10;
      const tmp = `${dir}.tmp`;
      rmSync(tmp, { recursive: true, force: true });
      ensureDir(tmp);
      writeFileSync(join(tmp, 'bzImage'), readFileSync(image));
      writeFileSync(join(tmp, 'config'), dotConfig);
      writeFileSync(join(tmp, 'build.log'), readFileSync(log));
      const meta: Meta = { kernel: spec.id, package: spec.package, version, fragmentHash: hash, builtAt: new Date().toISOString(), buildSeconds, objects };
      writeJson(join(tmp, 'meta.json'), meta);
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
      writeJson(join(o.cache, 'work', `${spec.id}.stats.json`), { objects });
      pruneKernels(o.cache, spec.id, dir);
      if (!o.keepSource) removeLater(work);
      p.done(`kernel ${spec.id} ${version} built in ${buildSeconds} s`);
      return { ...fromCache(dir, meta), built: true };
    },
  );
}

/** Keep the new build and the one before it of this kernel (other versions or fragments); drop older ones. */
function pruneKernels(cache: string, kernel: string, keep: string): void {
  const root = join(cache, 'kernels');
  const builds = readdirSync(root)
    .filter((n) => n.startsWith(`${kernel}-`) && !n.endsWith('.lock') && !n.endsWith('.tmp') && join(root, n) !== keep)
    .map((n) => ({ dir: join(root, n), t: statSync(join(root, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const b of builds.slice(1)) rmSync(b.dir, { recursive: true, force: true });
}

/** Pull /usr/src/linux-source-X.tar.xz out of the .deb (dpkg-deb -x), without the docs. */
function extractTarball(deb: string, into: string, pkg: string): string {
  const listing = run('unpack', 'dpkg-deb', ['--contents', deb]);
  const member = /\s(\.\/usr\/src\/linux-source-[^\s/]+\.tar\.(?:xz|gz|bz2|zst))\s*$/m.exec(listing)?.[1];
  if (!member) throw new LabError('unpack', `${pkg}: no /usr/src/linux-source-*.tar.* in ${deb}`);
  const out = join(into, member.split('/').pop()!);
  // dpkg-deb --fsys-tarfile | tar -xO member > out
  run('unpack', 'sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO "$2" > "$3"', 'sh', deb, member, out], { timeoutMs: 600_000 });
  if (statSync(out).size === 0) throw new LabError('unpack', `${pkg}: ${member} is empty in ${deb}`);
  return out;
}
