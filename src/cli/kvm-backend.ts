/**
 * The real kernel as a scenario backend, and the capability probe behind the 'host' profile.
 * The kvm module is loaded lazily so that the model works where koffi or /dev/kvm is missing.
 */
import { readdirSync } from 'node:fs';
import { release } from 'node:os';
import type { Kvm } from '../api.js';
import { hostProfile, type KernelProfile, type ProbedCaps } from '../model/index.js';
import type { Backend } from '../scenario/index.js';
import { CAP } from '../uapi/constants.js';
import { UserError } from './run.js';

interface KvmModule {
  openKvm(path?: string): Kvm;
  kvmAvailable(): { ok: true } | { ok: false; reason: string };
}

export async function loadKvmModule(): Promise<KvmModule> {
  const path = '../kvm/index.js';
  try {
    return (await import(path)) as KvmModule;
  } catch (e) {
    throw new UserError(`the kvm backend could not be loaded: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** KVM_CHECK_EXTENSION on /dev/kvm for every capability uapi/ names: read-only, nothing created. */
export function probe(kvm: Kvm): ProbedCaps {
  const system: Record<number, number> = {};
  for (const cap of Object.values(CAP)) system[cap] = kvm.checkExtension(cap);
  return { release: release(), system };
}

export function numaNodes(): number {
  try {
    return readdirSync('/sys/devices/system/node').filter((n) => /^node\d+$/.test(n)).length || 1;
  } catch {
    return 1;
  }
}

/** major.minor of a kernel release string: '6.18.44-foo' -> '6.18' */
export const majorMinor = (r: string): string => r.split('.').slice(0, 2).join('.');

export async function kvmBackend(): Promise<Backend & { hostProfile(): KernelProfile }> {
  const mod = await loadKvmModule();
  const avail = mod.kvmAvailable();
  if (!avail.ok) throw new UserError(`--backend kvm: ${avail.reason}`);
  let caps: ProbedCaps | undefined;
  const probed = (): ProbedCaps => {
    if (!caps) {
      const kvm = mod.openKvm();
      try {
        caps = probe(kvm);
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
    hostProfile: () => hostProfile(probed()),
    open(kernel) {
      // A scenario pinned to another kernel's rules describes that kernel, not this one.
      if (kernel !== undefined && kernel !== 'host' && kernel !== majorMinor(rel)) {
        return { skip: `written for kernel ${kernel}; this kernel is ${rel}` };
      }
      return { kvm: mod.openKvm(), profile: `host ${rel}` };
    },
  };
}
