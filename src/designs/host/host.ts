/**
 * What a design's model needs to know about the host beyond one process's address space: today,
 * the TDX page ownership. Keyed by the process's HostMm so that files and VMs created anywhere in
 * that process (each only holds its HostMm) find the same host.
 */
import type { HostMm } from '../../model/host.js';
import { TdxHost } from './tdx.js';

export interface DesignHost {
  readonly tdx: TdxHost;
}

const hosts = new WeakMap<HostMm, DesignHost>();

export function hostOf(mm: HostMm): DesignHost {
  let h = hosts.get(mm);
  if (!h) hosts.set(mm, (h = { tdx: new TdxHost() }));
  return h;
}
