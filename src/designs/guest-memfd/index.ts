/**
 * Upstream guest_memfd as a design beside v7: the existing model, unchanged, on a host that also
 * offers TDX VMs (KVM_X86_TDX_VM, 6.16+), with the host events and probes the hazards use. Nothing
 * here changes what the model answers; it only adds calls that were not there.
 */
import type { HostMapping, Vm } from '../../api.js';
import type { DesignKvmOps, DesignVmOps } from '../../design-api.js';
import { ModelKvm } from '../../model/kvm.js';
import { ModelVm } from '../../model/model-vm.js';
import { DEFAULT_PROFILE, getProfile, type KernelProfile } from '../../model/profiles.js';
import type { VmType } from '../../uapi/constants.js';
import { backingPages, mmMigrate, mmReclaim } from '../host/hazard-ops.js';
import { forkMapping, pinUserPages } from '../host/pins.js';

/** A kernel profile on a TDX-capable host: the same rules, with KVM_X86_TDX_VM among the VM types. */
export function withTdx(p: KernelProfile): KernelProfile {
  return p.vmTypes.includes('tdx') ? p : { ...p, vmTypes: [...p.vmTypes, 'tdx'] };
}

export class GuestMemfdVm extends ModelVm implements DesignVmOps {
  backingPages(gpa: bigint): number {
    return backingPages(this.kvm('backing_pages'), gpa);
  }
}

export class GuestMemfdKvm extends ModelKvm implements DesignKvmOps {
  constructor(kernel: string | KernelProfile = DEFAULT_PROFILE) {
    super(withTdx(typeof kernel === 'string' ? getProfile(kernel) : kernel));
  }

  protected override newVmHandle(fd: number, type: VmType): Vm {
    const h = new GuestMemfdVm(this.proc, fd, type);
    h.profile = this.kernel;
    return h;
  }

  mmMigrate(fd: number, offset: bigint): void {
    mmMigrate(this.proc, fd, offset);
  }

  mmReclaim(fd: number, offset: bigint): string {
    return mmReclaim(this.proc, fd, offset);
  }

  pinUserPages(map: HostMapping, offset: bigint, length: bigint): HostMapping {
    return pinUserPages(this.proc.mm, map, offset, length);
  }

  fork(map: HostMapping): HostMapping {
    return forkMapping(this.proc.mm, map);
  }
}
