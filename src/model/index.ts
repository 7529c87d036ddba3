/**
 * The model backend: KVM's guest_memfd subsystem as an executable, errno-exact model.
 * `createModelKvm({ kernel: '6.18' })` opens the model's /dev/kvm in a fresh model process.
 */
import { ModelKvm } from './kvm.js';
import { DEFAULT_PROFILE, getProfile, type KernelProfile } from './profiles.js';

export { checkInvariants } from './invariants.js';
export { ModelKvm } from './kvm.js';
export {
  COCO_PROFILE_NAMES,
  DEFAULT_PROFILE,
  getProfile,
  hostProfile,
  type KernelProfile,
  PROFILE_NAMES,
  PROFILES,
  type ProbedCaps,
  type ProfileName,
  VERSION_PROFILE_NAMES,
} from './profiles.js';
export { RangeMap } from './range-map.js';

export interface ModelOptions {
  /** a profile name ('6.8', '6.12', '6.18', '7.3', 'next') or a profile object (e.g. hostProfile(caps)) */
  kernel?: string | KernelProfile;
}

export function createModelKvm(options: ModelOptions = {}): ModelKvm {
  const k = options.kernel ?? DEFAULT_PROFILE;
  return new ModelKvm(typeof k === 'string' ? getProfile(k) : k);
}
// every entry point throws these: catch them from whichever you imported
export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';
export { mappedLine, type PageView, pageMap, pageMapLine } from './inspect.js';
export { ModelVm } from './model-vm.js';
// confidential computing (issue 5): SNP/TDX hosts and what the model's platforms expose
export { type LaunchLog, launchDigest, launchLog, platformOf, setSnpVcpuRegs } from './platforms/index.js';
export { PLATFORMS, type Platform, withPlatform } from './profiles.js';
export { attributeRuns, type GmemView, observeInvalidations, PAGE, type PageRun, pageRuns, type SlotView, snapshotKvm, type VmView } from './snapshot.js';
export type { KvmVm } from './vm.js';
