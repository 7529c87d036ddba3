/**
 * An open /dev/kvm: the system ioctls, the session that owns everything made through it, and the
 * file syscalls (FileOps) on any fd. Backend 'kvm', profile 'host': its rules are whatever the
 * running kernel does.
 */
import { type Kvm, KvmError, type VmType } from '../api.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, VM_TYPE, VM_TYPE_NAMES } from '../uapi/constants.js';
import { IOCTL } from '../uapi/ioctls.js';
import { encode } from '../uapi/layout.js';
import { IOCTL_X86, kvm_cpuid_entry2, kvm_cpuid2 } from '../uapi/x86.js';
import { check } from './check.js';
import { adoptFd, type FdOwner, releaseFd } from './fd-table.js';
import { KvmFiles } from './files.js';
import type { KvmMapping } from './mapping.js';
import { Session, type SessionOptions } from './session.js';
import { sys } from './sys.js';
import { KvmVm } from './vm.js';

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const E2BIG = 7;

export class KvmSystem implements Kvm, FdOwner {
  readonly backend = 'kvm' as const;
  readonly profile = 'host';
  readonly fd: number;
  readonly path: string;
  readonly session: Session;
  readonly files: KvmFiles;
  private fdOpen = true;
  private closed = false;
  private mmapSize: number | undefined;
  private cpuid: Uint8Array | undefined;
  private vendor: string | undefined;

  constructor(path = '/dev/kvm', options: SessionOptions = {}) {
    const s = sys();
    this.path = path;
    this.fd = s.open(path, O_RDWR | O_CLOEXEC);
    if (this.fd < 0) throw new KvmError('open', s.errno(), path);
    adoptFd(this.fd, this, 'kvm');
    this.session = new Session(options);
    this.files = new KvmFiles(this.session);
  }

  apiVersion(): number {
    this.live('KVM_GET_API_VERSION');
    return check('KVM_GET_API_VERSION', sys().ioctlVal(this.fd, IOCTL.KVM_GET_API_VERSION, 0));
  }

  checkExtension(cap: number): number {
    this.live('KVM_CHECK_EXTENSION');
    return check('KVM_CHECK_EXTENSION', sys().ioctlVal(this.fd, IOCTL.KVM_CHECK_EXTENSION, cap));
  }

  createVm(type: VmType | number = 'default'): KvmVm {
    this.live('KVM_CREATE_VM');
    const n = typeof type === 'number' ? type : VM_TYPE[type];
    const fd = check('KVM_CREATE_VM', sys().ioctlVal(this.fd, IOCTL.KVM_CREATE_VM, n));
    const name = VM_TYPE_NAMES.find((t) => VM_TYPE[t] === n);
    if (name === undefined) {
      // The kernel accepted a type the API cannot name (Vm.type is a VmType): release the VM and
      // say so, without inventing an errno the kernel did not return.
      new KvmVm(fd, 'default', this).close();
      throw new Error(`KVM_CREATE_VM: type ${n} was accepted, but src/uapi VM_TYPE has no name for it`);
    }
    return new KvmVm(fd, name, this);
  }

  /** Anonymous private host memory (MAP_NORESERVE: a large guest costs nothing until touched). */
  mmapAnonymous(length: bigint): KvmMapping {
    return this.files.map(-1, 0n, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, { kind: 'anon' });
  }

  /** Close /dev/kvm and everything made through it that is still open. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const errors = this.session.closeAll();
    this.files.closeOwned();
    if (this.fdOpen) {
      this.fdOpen = false;
      const err = releaseFd(this.fd, this);
      if (err !== 0) errors.push(new KvmError('close', err));
    }
    if (errors.length > 0) throw errors[0];
  }

  fdClosedElsewhere(): void {
    this.fdOpen = false;
  }

  /** KVM_GET_VCPU_MMAP_SIZE: the size of a vCPU's kvm_run mapping. */
  vcpuMmapSize(): number {
    this.mmapSize ??= check('KVM_GET_VCPU_MMAP_SIZE', sys().ioctlVal(this.fd, IOCTL.KVM_GET_VCPU_MMAP_SIZE, 0));
    return this.mmapSize;
  }

  /** KVM_GET_SUPPORTED_CPUID as a kvm_cpuid2 buffer, ready for KVM_SET_CPUID2. */
  supportedCpuid(): Uint8Array {
    if (this.cpuid) return this.cpuid;
    for (let nent = 256; ; nent *= 2) {
      const buf = new Uint8Array(kvm_cpuid2.size + nent * kvm_cpuid_entry2.size);
      encode(kvm_cpuid2, { nent }, buf);
      const s = sys();
      if (s.ioctlPtr(this.fd, IOCTL_X86.KVM_GET_SUPPORTED_CPUID, buf) >= 0) {
        this.cpuid = buf;
        return buf;
      }
      const e = s.errno();
      if (e !== E2BIG || nent >= 4096) throw new KvmError('KVM_GET_SUPPORTED_CPUID', e);
    }
  }

  /** The CPU vendor string of CPUID leaf 0 as KVM reports it ('AuthenticAMD', 'GenuineIntel', ...). */
  cpuVendor(): string {
    if (this.vendor !== undefined) return this.vendor;
    const buf = this.supportedCpuid();
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const nent = v.getUint32(0, true);
    let vendor = '';
    for (let i = 0; i < nent; i++) {
      const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
      if (v.getUint32(at + kvm_cpuid_entry2.fields.function.offset, true) !== 0) continue;
      const bytes = new Uint8Array(12);
      const w = new DataView(bytes.buffer);
      w.setUint32(0, v.getUint32(at + kvm_cpuid_entry2.fields.ebx.offset, true), true);
      w.setUint32(4, v.getUint32(at + kvm_cpuid_entry2.fields.edx.offset, true), true);
      w.setUint32(8, v.getUint32(at + kvm_cpuid_entry2.fields.ecx.offset, true), true);
      vendor = new TextDecoder().decode(bytes);
      break;
    }
    this.vendor = vendor;
    return vendor;
  }

  private live(op: string): void {
    if (this.closed || !this.fdOpen) throw new KvmError(op, 'EBADF', '/dev/kvm was closed');
  }
}
