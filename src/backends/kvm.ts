/**
 * The real kernel as a scenario backend, and the capability probe behind the 'host' profile.
 * The kvm module is loaded lazily so that the model works where koffi or /dev/kvm is missing.
 *
 * Here rather than in scenario/ (which bundles for the browser) or kvm/ (which sits below
 * scenario/ and may not import it): a Node-side layer just above scenario/, beside diff/.
 */
import { readdirSync } from 'node:fs';
import { release } from 'node:os';
import type { Kvm } from '../api.js';
import { hostProfile, type KernelProfile, type ProbedCaps } from '../model/index.js';
import { type Backend, inKernelRange, parseKernelRange, releaseVersion } from '../scenario/index.js';
import { CAP } from '../uapi/constants.js';
import { KvmUnavailable } from './errors.js';

export { KvmUnavailable } from './errors.js';

interface KvmModule {
  openKvm(path?: string, options?: { hostAccess?: 'predict' | 'kernel-checked' }): Kvm;
  kvmAvailable(): { ok: true } | { ok: false; reason: string };
  probeCaps(
    kvm: Kvm,
    o: { guest?: boolean },
  ): {
    maxGpaBits?: number;
    guest?: { gmemFaultsWithoutHva?: boolean | undefined; emulatedAccess?: boolean | undefined; hypercallExit: boolean };
  };
}

export async function loadKvmModule(): Promise<KvmModule> {
  const path = '../kvm/index.js';
  try {
    return (await import(path)) as KvmModule;
  } catch (e) {
    throw new KvmUnavailable(`the kvm backend could not be loaded: ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * KVM_CHECK_EXTENSION on /dev/kvm for every capability uapi/ names (read-only), and with `guest`
 * what tiny guest programs on a throwaway VM show (guest_memfd-only faults, hypercall exits).
 */
export function probe(kvm: Kvm, mod?: KvmModule): ProbedCaps {
  const system: Record<number, number> = {};
  for (const cap of Object.values(CAP)) system[cap] = kvm.checkExtension(cap);
  const report = mod?.probeCaps(kvm, { guest: true });
  const guest = report?.guest;
  return {
    release: release(),
    // what the kernel itself accepts for a memslot, not what /proc/cpuinfo says
    ...(report?.maxGpaBits !== undefined && { physAddrBits: report.maxGpaBits }),
    system,
    ...(guest && { guest: { gmemFaultsWithoutHva: guest.gmemFaultsWithoutHva, emulatedAccess: guest.emulatedAccess, hypercallExit: guest.hypercallExit } }),
  };
}

export function numaNodes(): number {
  try {
    return readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n)).length || 1;
  } catch {
    return 1;
  }
}

export async function kvmBackend(): Promise<Backend & { hostProfile(): KernelProfile }> {
  const mod = await loadKvmModule();
  const avail = mod.kvmAvailable();
  if (!avail.ok) throw new KvmUnavailable(`--backend kvm: ${avail.reason}`);
  let caps: ProbedCaps | undefined;
  const probed = (): ProbedCaps => {
    if (!caps) {
      const kvm = mod.openKvm();
      try {
        caps = probe(kvm, mod);
      } finally {
        kvm.close();
      }
    }
    return caps;
  };
  const rel = release();
  return {
    name: 'kvm',
    numaNodes: numaNodes(),
    guest: () => ({
      gmemOnlyFaults: probed().guest?.gmemFaultsWithoutHva === true,
      hypercallExits: probed().guest?.hypercallExit === true,
      emulatedAccess: hostProfile(probed()).emulatedGuestAccess,
    }),
    hostProfile: () => hostProfile(probed()),
    /**
     * A scenario runs wherever this kernel's release is inside the range it declares (`kernels`),
     * and the kernel judges it. The model is never asked: a skip rests on the release and on the
     * capabilities `requires` names, both reported by the kernel.
     */
    incompatible(sc) {
      if (sc.kernels === undefined) return undefined;
      const v = releaseVersion(rel);
      if (v && inKernelRange(v, parseKernelRange(sc.kernels))) return undefined;
      return `declared for kernels ${sc.kernels}; this kernel is ${rel}`;
    },
    open() {
      // the kernel, not a prediction, says where a host access to a guest_memfd mapping faults
      return { kvm: mod.openKvm('/dev/kvm', { hostAccess: 'kernel-checked' }), profile: `host ${rel}` };
    },
  };
}
