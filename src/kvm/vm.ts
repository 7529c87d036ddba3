/**
 * A VM fd (KVM_CREATE_VM). One method per VM ioctl, each passing the caller's values through the
 * uapi layouts unchanged and returning the kernel's errno unchanged.
 *
 * The VM object owns its vCPUs and the reserved code slot (code-slot.ts, bound on first
 * Vcpu.load), and releases them in close(). It does not own guest_memfds: they are separate files,
 * and closing the VM fd leaves them open (KERNEL-SPEC I1).
 */
import {
  type CreateGuestMemfd,
  KvmError,
  type MemoryAttributes,
  type UserspaceMemoryRegion,
  type UserspaceMemoryRegion2,
  type Vm,
  type VmType,
} from '../api.js';
import type { HypercallInsn } from '../guest/x86.js';
import { IOCTL } from '../uapi/ioctls.js';
import { encode } from '../uapi/layout.js';
import * as S from '../uapi/structs.js';
import { check } from './check.js';
import { CodeSlot } from './code-slot.js';
import { adoptFd, type FdOwner, releaseFd } from './fd-table.js';
import type { KvmFiles } from './files.js';
import { KvmGuestMemfd } from './guest-memfd.js';
import type { KvmMapping } from './mapping.js';
import type { Session } from './session.js';
import { sys } from './sys.js';
import { KvmVcpu, type VcpuParent } from './vcpu.js';

/**
 * What a VM uses of the /dev/kvm that created it (KvmSystem). An interface, not the class, so that
 * imports run one way, system -> vm -> vcpu.
 */
export interface VmParent {
  readonly session: Session;
  readonly files: KvmFiles;
  mmapAnonymous(length: bigint): KvmMapping;
  cpuVendor(): string;
  vcpuMmapSize(): number;
  supportedCpuid(): Uint8Array;
}

export class KvmVm implements Vm, FdOwner, VcpuParent {
  readonly fd: number;
  readonly type: VmType;
  readonly system: VmParent;
  private fdOpen = true;
  private closed = false;
  private readonly vcpus = new Set<KvmVcpu>();
  private slot: CodeSlot | undefined;
  // Reused argument buffers: memslot and gmem ioctls are the hot ones (PERFORMANCE.md §5).
  private readonly regionBuf = new Uint8Array(S.kvm_userspace_memory_region2.size);
  private readonly gmemBuf = new Uint8Array(S.kvm_create_guest_memfd.size);

  constructor(fd: number, type: VmType, system: VmParent) {
    this.fd = fd;
    this.type = type;
    this.system = system;
    adoptFd(fd, this, 'vm');
    system.session.track(this);
  }

  checkExtension(cap: number): number {
    this.live('KVM_CHECK_EXTENSION');
    return check('KVM_CHECK_EXTENSION', sys().ioctlVal(this.fd, IOCTL.KVM_CHECK_EXTENSION, cap));
  }

  enableCap(cap: number, args: readonly bigint[] = [], flags = 0): number {
    this.live('KVM_ENABLE_CAP');
    const buf = encode(S.kvm_enable_cap, { cap, flags, args });
    return check('KVM_ENABLE_CAP', sys().ioctlPtr(this.fd, IOCTL.KVM_ENABLE_CAP, buf));
  }

  createGuestMemfd(a: CreateGuestMemfd): KvmGuestMemfd {
    this.live('KVM_CREATE_GUEST_MEMFD');
    encode(S.kvm_create_guest_memfd, { size: a.size, flags: a.flags, reserved: a.reserved ?? [] }, this.gmemBuf);
    const fd = check('KVM_CREATE_GUEST_MEMFD', sys().ioctlPtr(this.fd, IOCTL.KVM_CREATE_GUEST_MEMFD, this.gmemBuf));
    // The kernel accepted the size as a positive loff_t, so it fits 63 bits unchanged.
    return new KvmGuestMemfd(fd, a.size, a.flags, this.system.files, this.system.session);
  }

  setUserMemoryRegion(r: UserspaceMemoryRegion): void {
    this.live('KVM_SET_USER_MEMORY_REGION');
    const buf = encode(S.kvm_userspace_memory_region, {
      slot: r.slot,
      flags: r.flags,
      guest_phys_addr: r.guestPhysAddr,
      memory_size: r.memorySize,
      userspace_addr: r.userspaceAddr,
    });
    check('KVM_SET_USER_MEMORY_REGION', sys().ioctlPtr(this.fd, IOCTL.KVM_SET_USER_MEMORY_REGION, buf));
  }

  setUserMemoryRegion2(r: UserspaceMemoryRegion2): void {
    this.live('KVM_SET_USER_MEMORY_REGION2');
    encode(
      S.kvm_userspace_memory_region2,
      {
        slot: r.slot,
        flags: r.flags,
        guest_phys_addr: r.guestPhysAddr,
        memory_size: r.memorySize,
        userspace_addr: r.userspaceAddr,
        guest_memfd_offset: r.guestMemfdOffset,
        guest_memfd: r.guestMemfd,
      },
      this.regionBuf,
    );
    check('KVM_SET_USER_MEMORY_REGION2', sys().ioctlPtr(this.fd, IOCTL.KVM_SET_USER_MEMORY_REGION2, this.regionBuf));
  }

  setMemoryAttributes(a: MemoryAttributes): void {
    this.live('KVM_SET_MEMORY_ATTRIBUTES');
    const buf = encode(S.kvm_memory_attributes, { address: a.address, size: a.size, attributes: a.attributes, flags: a.flags });
    check('KVM_SET_MEMORY_ATTRIBUTES', sys().ioctlPtr(this.fd, IOCTL.KVM_SET_MEMORY_ATTRIBUTES, buf));
  }

  mmapAnonymous(length: bigint): KvmMapping {
    return this.system.mmapAnonymous(length);
  }

  createVcpu(id: number): KvmVcpu {
    this.live('KVM_CREATE_VCPU');
    const fd = check('KVM_CREATE_VCPU', sys().ioctlVal(this.fd, IOCTL.KVM_CREATE_VCPU, id));
    const vcpu = new KvmVcpu(this, id, fd);
    this.vcpus.add(vcpu);
    return vcpu;
  }

  /** Whether the VM fd is still open (files.close(vm.fd) closes it without closing the object). */
  get isFdOpen(): boolean {
    return this.fdOpen;
  }

  /**
   * Close the VM fd. As in the kernel, the VM lives on while its vCPUs (and guest_memfds) are open:
   * the vCPUs and the code slot they run from stay until the last vCPU is closed, or until
   * Kvm.close() releases everything (it calls close() again, which then tears them down).
   */
  close(): void {
    const errors: unknown[] = [];
    if (this.fdOpen) {
      this.fdOpen = false;
      const err = releaseFd(this.fd, this);
      if (err !== 0) errors.push(new KvmError('close', err));
    }
    if (!this.closed && this.system.session.isClosed) {
      // Kvm.close(): release the vCPUs that kept the VM alive
      for (const v of [...this.vcpus]) {
        try {
          v.close();
        } catch (e) {
          errors.push(e);
        }
      }
    }
    if (this.vcpus.size === 0) errors.push(...this.dispose());
    if (errors.length > 0) throw errors[0];
  }

  /** The VM is gone for us: unmap the code slot and stop being tracked. */
  private dispose(): unknown[] {
    if (this.closed) return [];
    this.closed = true;
    this.system.session.untrack(this);
    const errors: unknown[] = [];
    try {
      this.slot?.unmap();
    } catch (e) {
      errors.push(e);
    }
    this.slot = undefined;
    return errors;
  }

  fdClosedElsewhere(): void {
    this.fdOpen = false;
  }

  /** The instruction KVM_HC_MAP_GPA_RANGE uses: the vendor's own one (KVM patches the other). */
  get hypercallInsn(): HypercallInsn {
    return this.system.cpuVendor() === 'AuthenticAMD' || this.system.cpuVendor() === 'HygonGenuine' ? 'vmmcall' : 'vmcall';
  }

  /** The code slot, created on first use: anonymous memory bound at CODE_GPA as memslot CODE_SLOT. */
  codeSlot(): CodeSlot {
    if (this.slot) return this.slot;
    this.live('KVM_SET_USER_MEMORY_REGION2');
    this.slot = CodeSlot.create(this);
    return this.slot;
  }

  /** @internal a vCPU closed */
  vcpuClosed(v: KvmVcpu): void {
    this.vcpus.delete(v);
    // the last vCPU of a VM whose fd is closed: the VM is gone
    if (!this.fdOpen && this.vcpus.size === 0) this.dispose();
  }

  private live(op: string): void {
    if (this.closed || !this.fdOpen) throw new KvmError(op, 'EBADF', 'the VM fd was closed');
  }
}
