/**
 * Reading the files a user names, safely: a path that is not a regular file (/dev/zero, a FIFO, a
 * directory) or is larger than such a file can be is refused before a byte is read, so a wrong path
 * is one line, never an endless read.
 */
import { accessSync, closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from './errors.js';

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** A MiB count for messages. */
const mib = (n: number) => `${Math.round((n / 1048576) * 10) / 10} MiB`;

/** A file that cannot be used: `problem` is what is wrong with `path` ("not a regular file"). */
export class FileProblem extends UserError {
  constructor(
    readonly path: string,
    readonly problem: string,
    message: string,
  ) {
    super(message);
  }
}

/** The bytes of a regular file of at most `max` bytes; `what` names it in errors ("firmware"). */
export function readRegularFile(path: string, what: string, max: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new FileProblem(path, `cannot read: ${errCode(e)}`, `cannot read ${what} ${path}: ${errCode(e)}`);
  }
  const refuse = (problem: string) => new FileProblem(path, problem, `${what} ${path}: ${problem}`);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse('not a regular file');
    if (st.size > max) throw refuse(`${mib(st.size)} is larger than a ${what} can be (at most ${mib(max)})`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new FileProblem(path, `cannot read: ${errCode(e)}`, `cannot read ${what} ${path}: ${errCode(e)}`);
  } finally {
    closeSync(fd);
  }
}

const SCENARIO_RE = /\.(json|ya?ml)$/i;

/**
 * The scenario files behind `run`'s arguments: a file as given, a directory searched recursively for
 * *.json, *.yaml and *.yml (sorted). An argument that is neither is reported, not fatal.
 */
export function scenarioPaths(args: readonly string[]): { files: string[]; bad: string[] } {
  const files: string[] = [];
  const bad: string[] = [];
  const walk = (dir: string): number => {
    let n = 0;
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) n += walk(p);
      else if (SCENARIO_RE.test(e.name)) {
        files.push(p);
        n++;
      }
    }
    return n;
  };
  for (const a of args) {
    let isDir = false;
    try {
      isDir = statSync(a).isDirectory();
    } catch {
      // a missing file is reported when it is read, as any unreadable file is
    }
    if (!isDir) files.push(a);
    else {
      try {
        if (walk(a) === 0) bad.push(`${a}: no scenario files (*.json, *.yaml, *.yml) in this directory`);
      } catch (e) {
        bad.push(`${a}: cannot read: ${errCode(e)}`);
      }
    }
  }
  return { files, bad };
}

/** Refuse an output path that cannot be written, before any work is done (`--trace OUT`). */
export function checkWritable(path: string, flag: string): void {
  const dir = dirname(resolve(path));
  try {
    if (!statSync(dir).isDirectory()) throw new UserError(`${flag} ${path}: ${dir} is not a directory`);
    accessSync(dir, constants.W_OK);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = errCode(e);
    throw new UserError(`${flag} ${path}: ${code === 'ENOENT' ? `the directory ${dir} does not exist` : `cannot write in ${dir}: ${code}`}`);
  }
  try {
    if (statSync(path).isDirectory()) throw new UserError(`${flag} ${path}: is a directory`);
  } catch (e) {
    if (e instanceof UserError) throw e;
    // it does not exist yet: it will be created
  }
}
