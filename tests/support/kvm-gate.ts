/**
 * The gate for tests that need the real /dev/kvm. Without it a test is skipped with a loud reason
 * (`# SKIP no KVM: ...`), never silently passed; with GUESTMEM_REQUIRE_KVM=1 (CI) a would-be skip
 * is a failure instead, so a CI machine that lost /dev/kvm cannot go green.
 * GUESTMEM_KVM_DEVICE names another device path to probe (a missing one shows both behaviours).
 */

import { release } from 'node:os';
import { type TestContext, test } from 'node:test';
import { kvmAvailable, openKvm } from '../../src/kvm/index.js';
import { unmetRequirement } from '../../src/scenario/runner.js';

export const REQUIRE_KVM = process.env.GUESTMEM_REQUIRE_KVM === '1';
const DEVICE = process.env.GUESTMEM_KVM_DEVICE ?? '/dev/kvm';

let cached: { ok: true } | { ok: false; reason: string } | undefined;

/** Whether the kvm backend can run here (probed once per test file). */
export function kvmGate(): { ok: true } | { ok: false; reason: string } {
  cached ??= usable();
  return cached;
}

/** /dev/kvm opens, speaks API 12, and runs a guest that only halts on a default VM. */
function usable(): { ok: true } | { ok: false; reason: string } {
  const avail = kvmAvailable(DEVICE);
  if (!avail.ok) return avail;
  const kvm = openKvm(DEVICE, { runTimeoutMs: 10_000 });
  try {
    const vcpu = kvm.createVm('default').createVcpu(0);
    vcpu.load([{ op: 'hlt' }]);
    const exit = vcpu.run();
    return exit.reason === 'hlt' ? { ok: true } : { ok: false, reason: `a halting guest exited with '${exit.reason}' on ${DEVICE}` };
  } catch (e) {
    return { ok: false, reason: `a halting guest could not run on ${DEVICE}: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    kvm.close();
  }
}

type Body = (t: TestContext) => void | Promise<void>;

/** A node:test test that runs only where /dev/kvm works. */
export function kvmTest(name: string, fn: Body): void {
  const gate = kvmGate();
  if (gate.ok) {
    test(name, fn);
  } else if (REQUIRE_KVM) {
    test(name, () => {
      throw new Error(`GUESTMEM_REQUIRE_KVM=1 but the kvm backend cannot run: ${gate.reason}`);
    });
  } else {
    test(name, { skip: `no KVM: ${gate.reason}` }, () => {});
  }
}

/**
 * What a test needs of the live kernel, in the scenario files' `requires` vocabulary
 * ('guest_memfd', 'guest_memfd_flags:mmap', 'vm_type:sw_protected', 'memory_attributes', ...), or
 * a function that names what is missing. Checked with KVM_CHECK_EXTENSION on /dev/kvm: facts the
 * kernel reports, never what the model predicts.
 */
export type Needs = readonly string[] | (() => string | undefined);

const unmetCache = new Map<string, string | undefined>();

/** The first of `needs` this kernel does not offer, as the kernel reports it; undefined if none. */
export function kernelLacks(needs: readonly string[]): string | undefined {
  for (const req of needs) {
    if (!unmetCache.has(req)) {
      const kvm = openKvm(DEVICE);
      try {
        unmetCache.set(req, unmetRequirement(kvm, req, 1));
      } finally {
        kvm.close();
      }
    }
    const why = unmetCache.get(req);
    if (why) return why;
  }
  return undefined;
}

/**
 * A test that needs a capability of the live kernel: skipped with the capability and the kernel
 * named when it is missing (a kernel limitation, not a broken machine, so GUESTMEM_REQUIRE_KVM does
 * not turn it into a failure). The lab runs the same tests on kernels that have it.
 */
export function kvmTestIf(name: string, needs: Needs, fn: Body): void {
  kvmTest(name, (t) => {
    const missing = typeof needs === 'function' ? needs() : kernelLacks(needs);
    if (missing) {
      t.skip(`kernel ${release()} lacks it: ${missing}`);
      return;
    }
    return fn(t);
  });
}

/** The needs of a test that creates a guest_memfd mapped the QEMU way (MMAP|INIT_SHARED). */
export const SHARED_GMEM = ['guest_memfd', 'guest_memfd_flags:mmap', 'guest_memfd_flags:init_shared'] as const;
