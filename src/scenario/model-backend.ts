/** The model as a scenario backend: a fresh model process per scenario, invariants after every step. */
import type { Kvm } from '../api.js';
import { checkInvariants, createModelKvm, DEFAULT_PROFILE, type KernelProfile, ModelKvm, PROFILES } from '../model/index.js';
import type { Backend } from './runner.js';

export interface ModelBackendOptions {
  /** profile for every scenario, overriding each file's own `kernel` */
  kernel?: string | KernelProfile;
  /** the profile 'host' resolves to (from a capability probe of the live kernel) */
  host?: KernelProfile;
  /** run the invariant checker after every step (default true) */
  invariants?: boolean;
}

export function modelBackend(opts: ModelBackendOptions = {}): Backend {
  return {
    name: 'model',
    // the model host has two NUMA nodes (HostMm), so the NUMA selftests run
    numaNodes: 2,
    open(kernel) {
      const want = opts.kernel ?? kernel ?? DEFAULT_PROFILE;
      let profile: KernelProfile | undefined;
      if (typeof want !== 'string') profile = want;
      else if (want === 'host') profile = opts.host;
      else profile = PROFILES[want];
      if (!profile) return { skip: want === 'host' ? 'profile "host" needs a probe of /dev/kvm (guestmem caps)' : `unknown kernel profile ${want}` };
      return { kvm: createModelKvm({ kernel: profile }), profile: profile.name };
    },
    ...(opts.invariants !== false && {
      check: (kvm: Kvm) => (kvm instanceof ModelKvm ? checkInvariants(kvm) : []),
    }),
  };
}
