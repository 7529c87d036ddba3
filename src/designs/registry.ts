/**
 * The designs a scenario can run under, as model factories for the scenario backend
 * (modelBackend({ designs: DESIGNS })): the scenario layer never imports src/designs/, so whoever
 * builds the backend passes these in.
 */
import type { ModelKvm } from '../model/kvm.js';
import { DEFAULT_PROFILE, PROFILES } from '../model/profiles.js';
import type { DesignFactory } from '../scenario/model-backend.js';
import { GuestMemfdKvm } from './guest-memfd/index.js';
import { InplaceKvm } from './inplace/index.js';
import { NegotiatedKvm } from './negotiated/index.js';
import { V7Kvm } from './v7/kvm.js';

export const DESIGN_NAMES = ['v7', 'negotiated', 'guest_memfd', 'inplace'] as const;
export type DesignName = (typeof DESIGN_NAMES)[number];

/** One line per design, for reports. */
export const DESIGN_TITLES: Readonly<Record<DesignName, string>> = {
  v7: 'v7 (Jul 2022): memfd_create(MFD_INACCESSIBLE) + memfile_notifier + KVM_MEM_PRIVATE',
  negotiated: 'negotiated (proposed in review): plain memfd, restrictions set when KVM binds it, mapped files refused',
  guest_memfd: 'guest_memfd (6.8+, model profile 6.18): KVM_CREATE_GUEST_MEMFD, file bound to its VM',
  inplace:
    'inplace (PENDING: linux-next next-20260923, in-place conversion v13 as applied, + direct-map removal v12): KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd, shared pages held by the same file',
};

export function isDesignName(s: string): s is DesignName {
  return (DESIGN_NAMES as readonly string[]).includes(s);
}

/** A fresh model process with /dev/kvm open, under `design`. */
export function createDesignKvm(design: DesignName, kernel?: string): ModelKvm {
  switch (design) {
    case 'v7':
      return new V7Kvm();
    case 'negotiated':
      return new NegotiatedKvm();
    case 'guest_memfd':
      return new GuestMemfdKvm(kernel ?? DEFAULT_PROFILE);
    case 'inplace':
      return new InplaceKvm(undefined, kernel ?? 'next');
  }
}

/** v7 and the negotiated variant have one kernel each: a scenario naming another is not theirs to run. */
function ownKernel(design: DesignName): DesignFactory {
  return (kernel) => {
    if (kernel !== undefined) return { skip: `design ${design} has its own kernel (5.19-rc + the v7 series); kernel "${kernel}" does not apply` };
    const kvm = createDesignKvm(design);
    return { kvm, profile: kvm.profile };
  };
}

export const DESIGNS: Readonly<Record<DesignName, DesignFactory>> = {
  v7: ownKernel('v7'),
  negotiated: ownKernel('negotiated'),
  guest_memfd: (kernel) => {
    const k = kernel ?? DEFAULT_PROFILE;
    if (!PROFILES[k]) return { skip: k === 'host' ? 'design guest_memfd runs the model profiles, not "host"' : `unknown kernel profile ${k}` };
    const kvm = createDesignKvm('guest_memfd', k);
    return { kvm, profile: kvm.profile };
  },
  // linux-next with the two pending series: one kernel, on a host with SNP and TDX as well
  inplace: (kernel) => {
    if (kernel !== undefined && kernel !== 'next' && kernel !== 'next+snp' && kernel !== 'next+tdx') {
      return { skip: `design inplace is linux-next (next-20260923) with the pending series; kernel "${kernel}" does not apply` };
    }
    const kvm = createDesignKvm('inplace', kernel);
    return { kvm, profile: kvm.profile };
  },
};
