/**
 * Turning a raw libc result into the API's error: the kernel's errno, unchanged, in a KvmError
 * named after the uAPI call. errno must be read before any other koffi call, so `check` is applied
 * directly to the call's result.
 */
import { KvmError } from '../api.js';
import { sys } from './sys.js';

/** Throw KvmError(op, errno) if `r` is negative; return `r` otherwise. */
export function check(op: string, r: number, reason?: string): number {
  if (r < 0) throw new KvmError(op, sys().errno(), reason);
  return r;
}

/** The same for calls returning a bigint (-1n on failure). */
export function checkBig(op: string, r: bigint, reason?: string): bigint {
  if (r < 0n) throw new KvmError(op, sys().errno(), reason);
  return r;
}

export function fail(op: string, errno: number, reason?: string): never {
  throw new KvmError(op, errno, reason);
}
