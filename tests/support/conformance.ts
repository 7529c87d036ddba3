/**
 * One conformance suite per uAPI area (tests/conformance/), each case written once and run against
 * every backend that has what it needs:
 * - the model, once per kernel profile (6.12, 6.18 and 7.3 unless the case names others), with
 *   invariants checked after every call (tests/support/model.ts);
 * - /dev/kvm, through the gate of kvm-gate.ts: skipped loudly without a working /dev/kvm (a failure
 *   under GUESTMEM_REQUIRE_KVM=1), and skipped with the kernel's own answer when it lacks a
 *   capability the case needs (KVM_CHECK_EXTENSION, never the model's opinion).
 *
 * Version-dependent expectations are written as kernel ranges (`b.kernelIn('>=7.2')`) taken from the
 * kernel source: the live kernel's release on the kvm side, the profile's version on the model side,
 * so a model profile is held to the same facts as the kernel it follows.
 */

import { release } from 'node:os';
import { type TestContext, test } from 'node:test';
import type { Kvm, Vm } from '../../src/api.js';
import { openKvm } from '../../src/kvm/index.js';
import { getProfile, type KernelProfile, type ModelKvm } from '../../src/model/index.js';
import { inKernelRange, parseKernelRange, releaseVersion } from '../../src/scenario/index.js';
import { unmetRequirement } from '../../src/scenario/runner.js';
import { bindableVm, kernelIn as liveKernelIn } from '../kvm/helpers.js';
import { kernelLacks, kvmTestIf } from './kvm-gate.js';
import { checkedKvm } from './model.js';
import { outcome } from './uapi.js';

/**
 * GUESTMEM_CONFORMANCE=kvm registers only the /dev/kvm side (the lab, where the model side would only
 * repeat what the host already ran, under emulation); =model only the model side. Unset: both.
 */
const ONLY = process.env.GUESTMEM_CONFORMANCE;
if (ONLY === 'model' && process.env.GUESTMEM_REQUIRE_KVM === '1')
  throw new Error('GUESTMEM_CONFORMANCE=model leaves out the kvm side that GUESTMEM_REQUIRE_KVM=1 requires');

/** The model profiles a case runs under unless it names its own: the lab's kernels and this host's. */
export const DEFAULT_PROFILES = ['6.12', '6.18', '7.3'] as const;

export interface Backend {
  /** 'model 6.18', 'kvm 6.12.118-amd64', ...: also the suffix of the test's name */
  readonly label: string;
  readonly kind: 'model' | 'kvm';
  /** a fresh session, closed when the case ends */
  readonly kvm: Kvm;
  /** the kernel version whose rules apply: the live release, or the model profile's version */
  readonly version: string;
  /** Whether that kernel lies in a range like '>=7.2 || >=6.12.118 <6.13' (scenario `kernels` syntax). */
  kernelIn(range: string): boolean;
  /**
   * A VM that can bind a guest_memfd to a memslot: a default VM where its KVM_CAP_GUEST_MEMFD says
   * so (6.18 and later), else a software-protected one (before 6.18 only VMs with private memory bind).
   */
  bindableVm(): Vm;
  /**
   * The model behind `kvm` (undefined on /dev/kvm), for assertions about its internal state next to
   * the observable ones; never a source of expected outcomes.
   */
  readonly model: ModelKvm | undefined;
}

/** A case body: synchronous, since the session it is given is closed when it returns. */
export type CaseBody = (b: Backend, t: TestContext) => void;

/** A model profile by name, or a modified one with a label of its own ('6.18 without guest_memfd'). */
export type ProfileSpec = string | { readonly label: string; readonly profile: KernelProfile };

export interface CaseOptions {
  /** model profiles to run under (default DEFAULT_PROFILES); those that lack `needs` are left out */
  readonly profiles?: readonly ProfileSpec[];
  /**
   * A further condition of the live kernel only (e.g. "guest code is emulated here"): the reason it
   * does not hold, or undefined. Like `needs`, a kernel fact that skips loudly, never a failure.
   */
  readonly kvmUnless?: () => string | undefined;
  /** run on the model only for these, not on /dev/kvm (for facts of kernels the lab does not boot); default false */
  readonly modelOnly?: boolean;
}

/** The version a profile follows; 'next' (kvm-x86 next) is newer than every release. */
function modelVersion(p: KernelProfile): string {
  return releaseVersion(p.version) === undefined && p.version.includes('next') ? '999.0' : p.version;
}

/** Whether a version string lies in a kernel range. */
function versionIn(version: string, range: string): boolean {
  const v = releaseVersion(version);
  if (v === undefined) throw new Error(`conformance: kernel version '${version}' cannot be compared with '${range}'`);
  return inKernelRange(v, parseKernelRange(range));
}

function backend(label: string, kvm: Kvm, version: string, model?: ModelKvm): Backend {
  return {
    label,
    kind: model ? 'model' : 'kvm',
    kvm,
    version,
    kernelIn: model ? (range) => versionIn(version, range) : liveKernelIn,
    bindableVm: () => bindableVm(kvm),
    model,
  };
}

function resolve(spec: ProfileSpec): { label: string; profile: KernelProfile } {
  return typeof spec === 'string' ? { label: spec, profile: getProfile(spec) } : spec;
}

/** What the profile lacks of `needs`, asked the way the kernel is asked: KVM_CHECK_EXTENSION. */
function profileLacks(profile: KernelProfile, needs: readonly string[]): string | undefined {
  const kvm = checkedKvm(profile as unknown as string);
  try {
    for (const req of needs) {
      const why = unmetRequirement(kvm, req, 1);
      if (why) return why;
    }
    return undefined;
  } finally {
    kvm.close();
  }
}

/**
 * Register `name` once per backend: `name [model <profile>]` for every profile that has `needs`, and
 * `name [kvm]` behind the /dev/kvm gate. A case no model profile can run is a mistake in the test and
 * throws at registration.
 */
export function forEachBackend(name: string, needs: readonly string[], fn: CaseBody, opts: CaseOptions = {}): void {
  let models = 0;
  for (const spec of ONLY === 'kvm' ? [] : (opts.profiles ?? DEFAULT_PROFILES)) {
    const { label, profile } = resolve(spec);
    const lacks = profileLacks(profile, needs);
    if (lacks) {
      // said, not dropped: the profile's kernel would skip the case for the same reason
      test(`${name} [model ${label}]`, { skip: `profile ${label} lacks it: ${lacks}` }, () => {});
      continue;
    }
    models++;
    test(`${name} [model ${label}]`, (t) => {
      const kvm = checkedKvm(profile as unknown as string);
      try {
        fn(backend(`model ${label}`, kvm, modelVersion(profile), kvm), t);
      } finally {
        // a case may have closed /dev/kvm itself: a second close is EBADF on the model
        outcome(() => kvm.close());
      }
    });
  }
  if (models === 0 && ONLY !== 'kvm') throw new Error(`conformance case '${name}': no model profile has ${needs.join(', ')}`);
  if (opts.modelOnly || ONLY === 'model') return;
  const unless = opts.kvmUnless;
  kvmTestIf(`${name} [kvm]`, unless ? () => unless() ?? kernelLacksAll(needs) : [...needs], (t) => {
    // the kernel, not the backend's prediction, says where a host access to guest_memfd faults
    const kvm = openKvm('/dev/kvm', { hostAccess: 'kernel-checked' });
    try {
      fn(backend(`kvm ${release()}`, kvm, release()), t);
    } finally {
      kvm.close();
    }
  });
}

function kernelLacksAll(needs: readonly string[]): string | undefined {
  return needs.length ? kernelLacks(needs) : undefined;
}
