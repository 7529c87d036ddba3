/** The model as a scenario backend: a fresh model process per scenario, invariants after every step. */
import type { Kvm } from '../api.js';
import { checkInvariants, createModelKvm, DEFAULT_PROFILE, type KernelProfile, ModelKvm, PROFILES } from '../model/index.js';

import { inKernelRange, parseKernelRange, releaseVersion } from './kernels.js';
import type { Backend } from './runner.js';

export interface ModelBackendOptions {
  /** profile for every scenario, overriding each file's own `kernel` */
  kernel?: string | KernelProfile;
  /** the profile 'host' resolves to (from a capability probe of the live kernel) */
  host?: KernelProfile;
  /** run the invariant checker after every step (default true) */
  invariants?: boolean;
  /** model designs a scenario may select with "design" (src/designs/ DESIGNS; scenario/ never imports designs/) */
  designs?: Readonly<Record<string, DesignFactory>>;
}

// ---- Designs: model variants a scenario selects with its "design" field. src/designs/ provides the
// factories and the CLI and tests pass them in, so this layer does not depend on the designs. ----

/** Opens a fresh model KVM of one design for a scenario written for `kernel` (or says why not). */
export type DesignFactory = (kernel: string | undefined) => { kvm: Kvm; profile: string } | { skip: string };

export function modelBackend(opts: ModelBackendOptions = {}): Backend {
  const resolve = (kernel: string | undefined): KernelProfile | undefined => {
    const want = opts.kernel ?? kernel ?? DEFAULT_PROFILE;
    if (typeof want !== 'string') return want;
    return want === 'host' ? opts.host : PROFILES[want];
  };
  return {
    name: 'model',
    // the model host has two NUMA nodes (HostMm), so the NUMA selftests run
    numaNodes: 2,
    // a profile stands for its kernel release: a scenario declared for other releases is skipped
    incompatible(sc, kernel) {
      const profile = resolve(kernel);
      if (sc.kernels === undefined || sc.design !== undefined || !profile) return undefined;
      const v = releaseVersion(profile.version);
      if (!v || inKernelRange(v, parseKernelRange(sc.kernels))) return undefined;
      return `declared for kernels ${sc.kernels}; profile ${profile.name} follows ${profile.version}`;
    },
    open(kernel) {
      const want = opts.kernel ?? kernel ?? DEFAULT_PROFILE;
      const profile = resolve(kernel);
      if (!profile) return { skip: want === 'host' ? 'profile "host" needs a probe of /dev/kvm (guestmem caps)' : `unknown kernel profile ${want}` };
      return { kvm: createModelKvm({ kernel: profile }), profile: profile.name };
    },
    openDesign(design, kernel) {
      const factory = opts.designs?.[design];
      if (factory) return factory(typeof opts.kernel === 'string' ? opts.kernel : kernel);
      // guest_memfd is this model itself
      if (design === 'guest_memfd') return this.open(kernel);
      return { skip: `requires design:${design}: the designs registry, modelBackend({ designs: DESIGNS }) with DESIGNS from src/designs/` };
    },
    // The model's guest side follows its profile (the 'host' profile copies the live kernel's).
    guest: (kvm: Kvm) => {
      const p = kvm instanceof ModelKvm ? kvm.kernel : undefined;
      return { gmemOnlyFaults: p?.gmemOnlySlots ?? true, hypercallExits: true, emulatedAccess: p?.emulatedGuestAccess ?? false };
    },
    ...(opts.invariants !== false && {
      check: (kvm: Kvm) => (kvm instanceof ModelKvm ? checkInvariants(kvm) : []),
    }),
  };
}
