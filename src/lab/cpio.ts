/**
 * A writer for the "newc" cpio format that the kernel unpacks as its initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Written here, not with cpio(1), so
 * that packing needs no extra package, no root for device nodes, and gives the same bytes for the
 * same inputs (fixed mtime and uid/gid 0). Archives may be concatenated: the kernel unpacks each in
 * turn, later entries replacing earlier ones.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { posix } from 'node:path';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export interface CpioEntry {
  path: string;
  mode: number;
  data?: Uint8Array;
  rdev?: [number, number];
}

/** Serialize one entry's header and name (the data follows, padded to 4 bytes). */
function header(ino: number, e: CpioEntry, size: number): Buffer {
  const name = Buffer.from(`${e.path}\0`, 'utf8');
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
  const [rmaj, rmin] = e.rdev ?? [0, 0];
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  const h = `070701${hex(ino)}${hex(e.mode)}${hex(0)}${hex(0)}${hex(e.mode & S_IFDIR ? 2 : 1)}${hex(0)}${hex(size)}${hex(0)}${hex(0)}${hex(rmaj)}${hex(rmin)}${hex(name.length)}${hex(0)}`;
  const head = Buffer.concat([Buffer.from(h, 'ascii'), name]);
  return Buffer.concat([head, Buffer.alloc(pad4(head.length))]);
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** Builds an archive in order; parents are added automatically, each path at most once. */
export class CpioWriter {
  private readonly seen = new Set<string>();
  private ino = 1;
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;
  private sink: number | undefined;

  /** With a path the archive streams to that file; without, finish() returns it. */
  constructor(outPath?: string) {
    if (outPath !== undefined) this.sink = openSync(outPath, 'w');
  }

  get size(): number {
    return this.bytes;
  }

  private emit(b: Uint8Array): void {
    if (b.length === 0) return;
    this.bytes += b.length;
    if (this.sink !== undefined) writeSync(this.sink, b);
    else this.chunks.push(b);
  }

  private add(e: CpioEntry): void {
    const path = normalize(e.path);
    if (this.seen.has(path)) throw new Error(`cpio: ${path} added twice`);
    const parent = posix.dirname(path);
    if (parent !== '.' && !this.seen.has(parent)) this.dir(parent);
    this.seen.add(path);
    const data = e.data ?? new Uint8Array(0);
    this.emit(header(this.ino++, { ...e, path }, data.length));
    this.emit(data);
    this.emit(Buffer.alloc(pad4(data.length)));
  }

  has(path: string): boolean {
    return this.seen.has(normalize(path));
  }

  dir(path: string, mode = 0o755): this {
    this.add({ path, mode: S_IFDIR | mode });
    return this;
  }

  file(path: string, data: Uint8Array | string, mode = 0o644): this {
    this.add({ path, mode: S_IFREG | mode, data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data });
    return this;
  }

  /** A host file's content, under another path; the mode keeps only the permission bits asked for. */
  copy(path: string, from: string, mode = 0o644): this {
    return this.file(path, readFileSync(from), mode);
  }

  symlink(path: string, target: string): this {
    this.add({ path, mode: S_IFLNK | 0o777, data: Buffer.from(target, 'utf8') });
    return this;
  }

  charDevice(path: string, major: number, minor: number, mode = 0o600): this {
    this.add({ path, mode: S_IFCHR | mode, rdev: [major, minor] });
    return this;
  }

  /** Write the trailer; returns the whole archive when it was built in memory. */
  finish(): Buffer {
    const trailer = header(0, { path: 'TRAILER!!!', mode: 0 }, 0);
    this.emit(trailer);
    // Pad the archive to 512 bytes, as cpio(1) does; concatenated archives stay aligned.
    this.emit(Buffer.alloc((512 - (this.bytes % 512)) % 512));
    if (this.sink !== undefined) {
      closeSync(this.sink);
      this.sink = undefined;
      return Buffer.alloc(0);
    }
    return Buffer.concat(this.chunks);
  }
}

function normalize(p: string): string {
  const n = posix.normalize(p).replace(/^\/+/, '');
  if (n === '' || n === '.' || n.startsWith('..')) throw new Error(`cpio: bad path ${JSON.stringify(p)}`);
  return n;
}

export interface ParsedEntry {
  path: string;
  mode: number;
  size: number;
  rdev: [number, number];
  data: Buffer;
}

/** Read a (possibly concatenated) newc archive back: for tests and for `lab` diagnostics. */
export function parseCpio(buf: Buffer): ParsedEntry[] {
  const out: ParsedEntry[] = [];
  let off = 0;
  while (off + 110 <= buf.length) {
    if (buf[off] === 0) {
      off += 4; // zero padding between concatenated archives (entries are 4-byte aligned)
      continue;
    }
    const magic = buf.toString('ascii', off, off + 6);
    if (magic !== '070701') throw new Error(`cpio: bad magic at ${off}`);
    const field = (i: number) => Number.parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const rdev: [number, number] = [field(9), field(10)];
    const namesize = field(11);
    const name = buf.toString('utf8', off + 110, off + 110 + namesize - 1);
    let p = off + 110 + namesize;
    p += pad4(p);
    const data = buf.subarray(p, p + size);
    p += size;
    p += pad4(p);
    off = p;
    if (name === 'TRAILER!!!') continue;
    out.push({ path: name, mode, size, rdev, data });
  }
  return out;
}
