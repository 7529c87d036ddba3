/**
 * Who owns which fd number and which mapping, process-wide. fd numbers are a process resource: if
 * `files.close(n)` closes the number a GuestMemfd object holds, that object must learn it, or its
 * own close() would later close whatever file the kernel handed out under the same number. So
 * every fd a kvm-backend object owns is registered here, and every close goes through here.
 *
 * Ownership is explicit: objects release their fds and mappings in close()/unmap(). The
 * FinalizationRegistry below is only a safety net for objects dropped without close(): it closes
 * the fd (or unmaps the range) if, and only if, the registration is still the one it was made for.
 */
import { sys } from './sys.js';

/** An object that owns fds: told when one of its numbers was closed by someone else. */
export interface FdOwner {
  fdClosedElsewhere(fd: number): void;
}

interface FdEntry {
  /** identity of this registration; a reused fd number gets a new one */
  readonly token: object;
  readonly owner: WeakRef<FdOwner>;
  readonly what: string;
}

const fds = new Map<number, FdEntry>();

interface MapEntry {
  readonly token: object;
  readonly length: bigint;
}
const maps = new Map<bigint, MapEntry>();

const fdFinalizer = new FinalizationRegistry<{ fd: number; token: object }>(({ fd, token }) => {
  if (fds.get(fd)?.token !== token) return;
  fds.delete(fd);
  sys().close(fd);
});
const mapFinalizer = new FinalizationRegistry<{ addr: bigint; token: object }>(({ addr, token }) => {
  const e = maps.get(addr);
  if (e?.token !== token) return;
  maps.delete(addr);
  sys().munmap(addr, e.length);
});

/** Record that `owner` now owns `fd` (a number the kernel just returned). */
export function adoptFd(fd: number, owner: FdOwner, what: string): void {
  const stale = fds.get(fd);
  // The kernel handed out this number again, so whoever we thought owned it lost it to a close we
  // did not see (a raw close outside this module): tell them before the number changes hands.
  if (stale) stale.owner.deref()?.fdClosedElsewhere(fd);
  const token = {};
  fds.set(fd, { token, owner: new WeakRef(owner), what });
  fdFinalizer.register(owner, { fd, token }, token);
}

/**
 * Close an fd `owner` owns. Returns 0, or the errno close(2) gave. If the number is no longer
 * registered to `owner` (closed elsewhere), nothing is closed and 0 is returned.
 */
export function releaseFd(fd: number, owner: FdOwner): number {
  const e = fds.get(fd);
  if (e?.owner.deref() !== owner) return 0;
  fds.delete(fd);
  fdFinalizer.unregister(e.token);
  const s = sys();
  return s.close(fd) < 0 ? s.errno() : 0;
}

/** close(2) on any number (FileOps.close): the owner, if any, is told first. */
export function closeAnyFd(fd: number): { r: number; errno: number } {
  const e = fds.get(fd);
  const s = sys();
  const r = s.close(fd);
  const errno = r < 0 ? s.errno() : 0;
  // Linux releases the number even when close(2) reports an error, and EBADF means a registration
  // was already stale: either way the owner no longer holds this number.
  if (e) {
    fds.delete(fd);
    fdFinalizer.unregister(e.token);
    e.owner.deref()?.fdClosedElsewhere(fd);
  }
  return { r, errno };
}

export function fdOwnerOf(fd: number): FdOwner | undefined {
  return fds.get(fd)?.owner.deref();
}

type MapTracer = (addr: bigint, length: bigint) => void;
let tracer: MapTracer | undefined;

/**
 * Observe every mapping a backend object takes ownership of (tests use it to check afterwards
 * that none of those exact ranges is still in /proc/self/maps). Pass undefined to stop.
 */
export function traceMappings(fn: MapTracer | undefined): void {
  tracer = fn;
}

/** Register a mapping [addr, addr+length) owned by `owner` (safety net only). */
export function adoptMapping(addr: bigint, length: bigint, owner: object): void {
  tracer?.(addr, length);
  const token = {};
  maps.set(addr, { token, length });
  mapFinalizer.register(owner, { addr, token }, token);
}

/** munmap a registered mapping. Returns 0 or munmap's errno. */
export function releaseMapping(addr: bigint): number {
  const e = maps.get(addr);
  if (!e) return 0;
  maps.delete(addr);
  mapFinalizer.unregister(e.token);
  const s = sys();
  return s.munmap(addr, e.length) < 0 ? s.errno() : 0;
}

/** Numbers and mappings currently owned by kvm-backend objects (for tests and leak reports). */
export function ownedCounts(): { fds: number; mappings: number } {
  return { fds: fds.size, mappings: maps.size };
}
