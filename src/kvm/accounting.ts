/**
 * What the process holds, as the kernel sees it: open fds (/proc/self/fd) and mappings
 * (/proc/self/maps lines). Leak tests compare these before and after a workload.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Number of open fds of this process (the directory listing's own fd excluded). */
export function countOpenFds(): number {
  return listOpenFds().length;
}

/** Open fds with what they link to, e.g. [7, 'anon_inode:[kvm-gmem]']. */
export function listOpenFds(): [number, string][] {
  const out: [number, string][] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    try {
      out.push([fd, readlinkSync(`/proc/self/fd/${name}`)]);
    } catch {
      // the fd readdir itself used, closed by the time we look
    }
  }
  return out;
}

/** Number of mappings (VMAs) of this process. */
export function countMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.length > 0).length;
}

/** The /proc/self/maps lines, for diagnosing a leak. */
export function listMappings(): string[] {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
}
