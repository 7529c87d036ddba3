/**
 * The gate for tests that need the real /dev/kvm. Without it a test is skipped with a loud reason
 * (`# SKIP no KVM: ...`), never silently passed; with GUESTMEM_REQUIRE_KVM=1 (CI) a would-be skip
 * is a failure instead, so a CI machine that lost /dev/kvm cannot go green.
 * GUESTMEM_KVM_DEVICE names another device path to probe (a missing one shows both behaviours).
 */
import { type TestContext, test } from 'node:test';
import { kvmAvailable } from '../../src/kvm/index.js';

export const REQUIRE_KVM = process.env.GUESTMEM_REQUIRE_KVM === '1';
const DEVICE = process.env.GUESTMEM_KVM_DEVICE ?? '/dev/kvm';

let cached: { ok: true } | { ok: false; reason: string } | undefined;

/** Whether the kvm backend can run here (probed once per test file). */
export function kvmGate(): { ok: true } | { ok: false; reason: string } {
  cached ??= kvmAvailable(DEVICE);
  return cached;
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
 * A test that needs a capability of the live kernel: skipped with the capability named when it is
 * missing (a kernel limitation, not a broken machine, so GUESTMEM_REQUIRE_KVM does not turn it into
 * a failure).
 */
export function kvmTestIf(name: string, needs: () => string | undefined, fn: Body): void {
  kvmTest(name, (t) => {
    const missing = needs();
    if (missing) {
      t.skip(`this kernel lacks ${missing}`);
      return;
    }
    return fn(t);
  });
}
