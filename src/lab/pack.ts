/**
 * Stage "pack": the initramfs, in two concatenated cpio archives.
 *  - base (cached by the identity of its inputs): busybox, this Node binary and the shared
 *    libraries it and koffi's native module need, and the project's production node_modules;
 *  - app (every run): /init from lab/init.sh, the job, package.json, dist/src and the scenarios.
 * The kernel unpacks both; nothing is compressed, which boots faster under TCG than gunzip would.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, lstatSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { CpioWriter } from './cpio.js';
import { ensureDir, exists, LAB_DIR, LabError, ROOT } from './env.js';
import type { Job } from './guest.js';
import { requirePrereqs, which } from './prereq.js';

/** Bump when the base layer's layout changes. */
const BASE_FORMAT = 'base/1';
/** Where the app lives inside the VM. */
export const APP = '/app';
/** The test folders under dist/tests the VM gets: the kvm backend's tests, the conformance suites and their support code. */
export const KVM_TEST_DIRS = ['kvm', 'conformance', 'support'] as const;
/** The serial port the driver writes JSON lines to (the console is ttyS0). */
export const DATA_PORT = '/dev/ttyS1';

interface BaseFile {
  /** Path inside the initramfs. */
  at: string;
  /** Host file whose content goes there. */
  from: string;
  mode: number;
}

/** Shared libraries (and the ELF interpreter) an executable or .node module needs, per ldd. */
export function sharedLibs(binary: string): string[] {
  const r = spawnSync('ldd', [binary], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (/not a dynamic executable|statically linked/.test(out)) return [];
  if (r.status !== 0) throw new LabError('pack', `ldd ${binary} failed: ${out.trim()}`);
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)\s*\(/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line);
    if (m) libs.push(m[1]!);
    else if (/=>\s*not found/.test(line)) throw new LabError('pack', `${binary}: ${line.trim()}`);
  }
  return libs;
}

/** The installed production packages under node_modules (dev-only ones, per package-lock, left out). */
export function productionPackages(root: string): string[] {
  const lockPath = join(root, 'package-lock.json');
  let lock: { packages?: Record<string, { dev?: boolean }> } = {};
  try {
    lock = JSON.parse(readFileSync(lockPath, 'utf8')) as typeof lock;
  } catch {
    throw new LabError('pack', `cannot read ${lockPath}: the lab packs the production node_modules listed there`);
  }
  const out: string[] = [];
  for (const [p, meta] of Object.entries(lock.packages ?? {})) {
    // type declarations are not needed at run time (some locks do not mark them dev)
    if (!p.startsWith('node_modules/') || meta.dev || p.startsWith('node_modules/@types/')) continue;
    // nested node_modules of a package are walked with it
    if (p.indexOf('/node_modules/', 1) > 0) continue;
    if (exists(join(root, p, 'package.json'))) out.push(p);
  }
  if (!out.some((p) => p === 'node_modules/koffi')) {
    throw new LabError('pack', 'node_modules/koffi is not installed: run npm ci (the lab needs koffi for ioctls inside the VM)');
  }
  return out.sort();
}

function walk(dir: string, keep: (rel: string) => boolean, base = dir, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) walk(p, keep, base, out);
    else if ((st.isFile() || st.isSymbolicLink()) && keep(relative(base, p))) out.push(p);
  }
  return out;
}

/** Everything the base layer holds, as (inside path, host file). */
export function baseFiles(root: string): BaseFile[] {
  requirePrereqs(['pack']);
  const files: BaseFile[] = [];
  const busybox = which('busybox');
  if (!busybox) throw new LabError('pack', 'busybox not found (package busybox-static)');
  const node = realpathSync(process.execPath);
  files.push({ at: 'bin/busybox', from: realpathSync(busybox), mode: 0o755 });
  files.push({ at: 'bin/node', from: node, mode: 0o755 });
  const nativeMods: string[] = [];
  for (const pkg of productionPackages(root)) {
    for (const f of walk(join(root, pkg), () => true)) {
      const st = statSync(f);
      if (!st.isFile()) continue;
      files.push({ at: join(APP.slice(1), relative(root, f)), from: f, mode: st.mode & 0o111 ? 0o755 : 0o644 });
      if (f.endsWith('.node')) nativeMods.push(f);
    }
  }
  const libs = new Set<string>();
  for (const b of [busybox, node]) for (const l of sharedLibs(b)) libs.add(l);
  // Native modules for another libc (koffi ships a musl build too) cannot load here anyway.
  for (const m of nativeMods) {
    try {
      for (const l of sharedLibs(m)) libs.add(l);
    } catch {
      // not loadable on this machine: not needed inside either
    }
  }
  for (const l of [...libs].sort()) files.push({ at: l.slice(1), from: realpathSync(l), mode: 0o755 });
  return files;
}

function baseKey(files: readonly BaseFile[]): string {
  const h = createHash('sha256').update(BASE_FORMAT);
  for (const f of files) {
    const st = statSync(f.from);
    h.update(`\n${f.at}\0${f.from}\0${st.size}\0${st.mtimeMs}\0${f.mode}`);
  }
  return h.digest('hex').slice(0, 16);
}

/** The cached base archive for this machine's busybox/node/node_modules, built when missing. */
export function packBase(cache: string, root = ROOT): { path: string; built: boolean; files: number; libDirs: string[] } {
  const files = baseFiles(root);
  const libDirs = [...new Set(files.filter((f) => /\.so(\.|$)/.test(f.at)).map((f) => `/${dirname(f.at)}`))];
  const dir = ensureDir(join(cache, 'initramfs'));
  const path = join(dir, `base-${baseKey(files)}.cpio`);
  if (exists(path)) return { path, built: false, files: files.length, libDirs };
  const tmp = `${path}.${process.pid}.tmp`;
  const w = new CpioWriter(tmp);
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'lab', 'app']) w.dir(d);
  w.charDevice('dev/console', 5, 1, 0o600);
  w.charDevice('dev/null', 1, 3, 0o666);
  w.symlink('bin/sh', 'busybox');
  for (const f of files) w.copy(f.at, f.from, f.mode);
  w.finish();
  renameSync(tmp, path);
  // Only the newest base is kept: it is rebuilt from the machine in seconds.
  for (const n of readdirSync(dir)) if (n.startsWith('base-') && n.endsWith('.cpio') && join(dir, n) !== path) rmSync(join(dir, n), { force: true });
  return { path, built: true, files: files.length, libDirs };
}

/** Host scenario file -> path inside /app, so that the JSON results can be mapped back. */
export function placeScenarios(files: readonly string[], root = ROOT): Map<string, string> {
  const out = new Map<string, string>();
  files.forEach((f, i) => {
    const abs = resolve(f);
    const rel = relative(root, abs);
    out.set(abs, !rel.startsWith('..') && !isAbsolute(rel) ? rel : join('lab-extra', String(i), abs.split('/').pop()!));
  });
  return out;
}

export interface AppLayer {
  job: Job;
  /** Host path -> path relative to /app. */
  scenarios: Map<string, string>;
  /** More files, by path inside the initramfs (no leading slash), e.g. a diff batch under lab/. */
  files?: readonly { at: string; content: string }[];
}

/** The per-run archive: /init, the job, the project's dist/src and package.json, the scenarios. */
export function packApp(layer: AppLayer, libDirs: readonly string[], root = ROOT): Buffer {
  const dist = join(root, 'dist', 'src');
  if (!exists(join(dist, 'cli', 'main.js')) || !exists(join(dist, 'lab', 'guest.js'))) {
    throw new LabError('pack', `${dist} has no cli/main.js or lab/guest.js: build the project first (npx tsc -b)`);
  }
  const w = new CpioWriter();
  const init = readFileSync(join(LAB_DIR, 'init.sh'), 'utf8')
    .replaceAll('@@DATA@@', DATA_PORT)
    .replaceAll('@@LIBPATH@@', libDirs.join(':'))
    .replaceAll('@@DRIVER@@', `${APP}/dist/src/lab/guest.js`)
    .replaceAll('@@JOB@@', '/lab/job.json');
  if (/@@[A-Z]+@@/.test(init)) throw new LabError('pack', `lab/init.sh has an unknown field ${/@@[A-Z]+@@/.exec(init)![0]}`);
  w.file('init', init, 0o755);
  w.file('lab/job.json', `${JSON.stringify(layer.job, null, 2)}\n`);
  w.copy('app/package.json', join(root, 'package.json'));
  for (const f of walk(dist, (rel) => rel.endsWith('.js') || rel.endsWith('.json'))) w.copy(join('app', relative(root, f)), f);
  // the kvm backend's own tests and what they import, run inside the VM (a job's 'kvm-tests')
  for (const sub of KVM_TEST_DIRS) {
    const d = join(root, 'dist', 'tests', sub);
    if (!exists(d)) throw new LabError('pack', `${d} is missing: build the project first (npx tsc -b)`);
    for (const f of walk(d, (rel) => rel.endsWith('.js'))) w.copy(join('app', relative(root, f)), f);
  }
  for (const [host, inside] of layer.scenarios) {
    if (!w.has(join('app', inside))) w.copy(join('app', inside), host);
  }
  for (const f of layer.files ?? []) {
    if (w.has(f.at)) throw new LabError('pack', `${f.at} is packed twice`);
    w.file(f.at, f.content);
  }
  return w.finish();
}

/** base + app, concatenated into the file QEMU loads. */
export function writeInitrd(out: string, base: string, app: Buffer): number {
  copyFileSync(base, out);
  appendFileSync(out, app);
  return statSync(out).size;
}
