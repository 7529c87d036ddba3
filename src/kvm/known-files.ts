/**
 * What this process knows about guest_memfd files it created, by inode: their size and creation
 * flags. A host mapping needs both to tell, before touching a page, whether the kernel would answer
 * the access with SIGBUS (KERNEL-SPEC D5), and neither can be read back from the kernel: fstat
 * gives the size, but INIT_SHARED is visible nowhere. mmap of a gmem fd this process did not create
 * (or whose creating object and every dup are gone) therefore falls back to kernel-checked access.
 *
 * Entries are reference counted by the objects that can still reach the file (the GuestMemfd, each
 * dup made through FileOps, each mapping), so an inode number the kernel reuses later is never
 * mistaken for an old file.
 */

export interface GmemInfo {
  /** st_dev of the anon-inode filesystem the gmem inode lives on: (dev, ino) names the file */
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly flags: bigint;
}

/** A reference on one registration; releasing it never touches a newer entry for the same inode. */
export interface GmemRef {
  readonly info: GmemInfo;
}

interface Entry extends GmemRef {
  refs: number;
}

const table = new Map<bigint, Entry>();

/** A gmem file was just created: its inode is new, so any older entry is stale. */
export function registerGmem(info: GmemInfo): GmemRef {
  const e: Entry = { info, refs: 1 };
  table.set(info.ino, e);
  return e;
}

export function lookupGmem(dev: bigint, ino: bigint): GmemInfo | undefined {
  const e = table.get(ino);
  return e?.info.dev === dev ? e.info : undefined;
}

/** Take another reference on a known inode (a dup, a mapping); undefined if the inode is unknown. */
export function retainGmem(dev: bigint, ino: bigint): GmemRef | undefined {
  const e = table.get(ino);
  if (e?.info.dev !== dev) return undefined;
  e.refs++;
  return e;
}

export function releaseGmem(ref: GmemRef): void {
  const e = ref as Entry;
  if (--e.refs <= 0 && table.get(e.info.ino) === e) table.delete(e.info.ino);
}

export function knownGmemCount(): number {
  return table.size;
}
