/**
 * mm/memfile_notifier.c (v7 03/14 mm: Introduce memfile_notifier): the glue between a memory
 * backing store (shmem, 04/14) and a consumer (KVM, 13/14). A node hangs off each file of the store
 * and holds the MEMFILE_F_* flags and the registered notifiers; the store hands out pages by file
 * offset (get_pfn) and calls the notifiers before it frees them.
 */
import { fail } from '../../model/fail.js';
import type { ModelFile } from '../../model/file.js';
import type { ErrnoName } from '../../uapi/errno.js';
import { MEMFILE_F_ALLOWED_MASK, V7_PATCH } from './constants.js';

export interface MemfileNotifierOps {
  /** memfile_notifier_ops.invalidate: file pages [start, end) are about to be freed */
  invalidate(start: number, end: number): void;
}

/** struct memfile_notifier: the consumer's ops and, once registered, the store it talks to. */
export class MemfileNotifier {
  bs: MemfileBackingStore | null = null;
  constructor(readonly ops: MemfileNotifierOps) {}
}

/** struct memfile_node, embedded in the store's inode. */
export class MemfileNode {
  readonly notifiers = new Set<MemfileNotifier>();
  flags = 0;
}

/** struct memfile_backing_store */
export interface MemfileBackingStore {
  lookupMemfileNode(file: ModelFile): MemfileNode | null;
  /** get_pfn: the page at file page `offset`, allocating it (shmem: SGP_WRITE), or the errno */
  getPfn(file: ModelFile, offset: number): { page: Uint8Array } | { errno: ErrnoName };
  /** memfile_node_update_flags: what the node's flags do to the file's mapping (gfp, unevictable) */
  updateFlags(file: ModelFile, flags: number): void;
  /** not in the kernel: the page at `offset` without allocating, for the model's invariant checks */
  peek(file: ModelFile, offset: number): Uint8Array | undefined;
}

/** backing_store_list: stores register themselves at boot (memfile_register_backing_store). */
const backingStores: MemfileBackingStore[] = [];

export function memfileRegisterBackingStore(bs: MemfileBackingStore): void {
  if (!backingStores.includes(bs)) backingStores.push(bs);
}

function lookup(file: ModelFile): { bs: MemfileBackingStore; node: MemfileNode } | undefined {
  for (const bs of backingStores) {
    const node = bs.lookupMemfileNode(file);
    if (node) return { bs, node };
  }
  return undefined;
}

/** memfile_node_set_flags: -EINVAL for unknown flags, -EOPNOTSUPP if no store knows the file. */
export function memfileNodeSetFlags(op: string, file: ModelFile, flags: number): void {
  if (flags & ~MEMFILE_F_ALLOWED_MASK) fail(op, 'EINVAL', `${V7_PATCH.notifier}: unknown MEMFILE_F_ flags`);
  const found = lookup(file);
  if (!found) fail(op, 'EOPNOTSUPP', `${V7_PATCH.notifier}: memfile_node_set_flags: no backing store knows ${file.kind}`);
  found.node.flags = flags;
  found.bs.updateFlags(file, flags);
}

/**
 * memfile_register_notifier. The first notifier on a node sets its flags; later ones must bring the
 * same flags (-EINVAL). A file no store recognises is -EOPNOTSUPP. The list is not exclusive: any
 * number of consumers (VMs, slots) may register on one file.
 */
export function memfileRegisterNotifier(op: string, file: ModelFile, flags: number, notifier: MemfileNotifier): void {
  if (flags & ~MEMFILE_F_ALLOWED_MASK) fail(op, 'EINVAL', `${V7_PATCH.notifier}: unknown MEMFILE_F_ flags`);
  const found = lookup(file);
  if (!found) fail(op, 'EOPNOTSUPP', `${V7_PATCH.notifier}: memfile_register_notifier: ${file.kind} is not from a memfile backing store`);
  const { bs, node } = found;
  notifier.bs = bs;
  if (node.notifiers.size === 0) node.flags = flags;
  else if (node.flags ^ flags) fail(op, 'EINVAL', `${V7_PATCH.notifier}: flags differ from the ones the file's notifiers agreed on`);
  node.notifiers.add(notifier);
  bs.updateFlags(file, flags);
}

/** memfile_unregister_notifier: the node keeps its flags (nothing resets them). */
export function memfileUnregisterNotifier(notifier: MemfileNotifier, node: MemfileNode): void {
  node.notifiers.delete(notifier);
}

/** memfile_notifier_invalidate: every registered notifier hears about [start, end). */
export function memfileNotifierInvalidate(node: MemfileNode, start: number, end: number): void {
  for (const n of [...node.notifiers]) n.ops.invalidate(start, end);
}
