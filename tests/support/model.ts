/**
 * Test support for the model: a KVM whose every call, on every object it hands out, is followed by
 * the invariant checker. A test that breaks an invariant fails at the call that broke it.
 */
import type { GuestMemfd } from '../../src/api.js';
import type { GmemFile, GmemInode } from '../../src/model/guest-memfd.js';
import { checkInvariants, createModelKvm, type ModelKvm } from '../../src/model/index.js';

export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

function wrap<T extends object>(target: T, kvm: ModelKvm, seen: WeakMap<object, object>): T {
  const existing = seen.get(target);
  if (existing) return existing as T;
  const proxy = new Proxy(target, {
    get(t, prop, receiver) {
      const v = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v && typeof v === 'object' && prop === 'files' ? wrap(v, kvm, seen) : v;
      return (...args: unknown[]) => {
        let result: unknown;
        let failure: { e: unknown } | undefined;
        try {
          result = v.apply(t, args);
        } catch (e) {
          failure = { e };
        }
        // A broken invariant outranks the call's own error: it is the bug.
        const broken = checkInvariants(kvm);
        if (broken.length) throw new InvariantError(`after ${String(prop)}(): ${broken.join('; ')}`);
        if (failure) throw failure.e;
        if (result && typeof result === 'object' && !(result instanceof Uint8Array) && !('reason' in result) && !('ino' in result)) {
          return wrap(result as object, kvm, seen);
        }
        return result;
      };
    },
  });
  seen.set(target, proxy);
  return proxy;
}

/** A fresh model KVM (profile `kernel`) with invariants checked after every call. */
export function checkedKvm(kernel = '6.18'): ModelKvm {
  const kvm = createModelKvm({ kernel });
  return wrap(kvm, kvm, new WeakMap());
}

/** The errno a call fails with, or 'ok'. */
export function errnoOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    const err = e as { errno?: string; signal?: string };
    if (err.errno) return err.errno;
    if (err.signal) return err.signal;
    throw e;
  }
}

/** The model's file behind a GuestMemfd handle. */
export function gmemFile(g: GuestMemfd): GmemFile {
  return (g as unknown as { file: GmemFile }).file;
}

/** The model's inode behind a GuestMemfd handle. */
export function inodeOf(g: GuestMemfd): GmemInode {
  return gmemFile(g).inode;
}
