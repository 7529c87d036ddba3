/**
 * A syscall's failure: the errno userspace sees, the operation that returned it, and the kernel
 * function whose check gave it. Below struct file so that every model layer, mempolicy.ts included,
 * fails the same way without importing the VFS.
 */
import { KvmError } from '../api.js';
import type { ErrnoName } from '../uapi/errno.js';

export function fail(op: string, errno: ErrnoName, why: string): never {
  throw new KvmError(op, errno, why);
}
