/**
 * What every backend's tests share: uAPI numbers spelled as the tests use them, and errno
 * assertions that compare the answer exactly (a KvmError's errno, or a HostFault's signal).
 */
import assert from 'node:assert/strict';
import { HostFault, KvmError } from '../../src/api.js';

export const PS = 4096n;
export const KiB = 1024n;
export const MiB = 1n << 20n;
export const GiB = 1n << 30n;
export const TiB = 1n << 40n;
export const U64_MAX = (1n << 64n) - 1n;
export const GMEM_MMAP = 1n;
export const GMEM_INIT_SHARED = 2n;
export const GMEM_SHARED = GMEM_MMAP | GMEM_INIT_SHARED;
export const MEM_LOG_DIRTY = 1;
export const MEM_READONLY = 2;
export const MEM_GUEST_MEMFD = 4;
export const PRIVATE = 8n;
export const KEEP = 0x01;
export const PUNCH = 0x02;
export const KEEP_PUNCH = KEEP | PUNCH;
export const RW = 3;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;

/** 'ok', the errno name of a KvmError, or the signal of a HostFault. */
export function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof KvmError) return e.errno;
    if (e instanceof HostFault) return e.signal;
    throw e;
  }
}

export function expectErrno(fn: () => unknown, errno: string, msg?: string): void {
  assert.equal(outcome(fn), errno, msg);
}

export function expectOk(fn: () => unknown, msg?: string): void {
  assert.equal(outcome(fn), 'ok', msg);
}

/** The HostFault fn throws (fails the test if it throws anything else or nothing). */
export function hostFault(fn: () => unknown): HostFault {
  try {
    fn();
  } catch (e) {
    if (e instanceof HostFault) return e;
    throw e;
  }
  assert.fail('expected a HostFault');
}

export function fill(byte: number, n: number | bigint): Uint8Array {
  return new Uint8Array(Number(n)).fill(byte);
}

/** Every byte equals `byte`. */
export function allBytes(data: Uint8Array, byte: number): boolean {
  return data.every((b) => b === byte);
}
