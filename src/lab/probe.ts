/**
 * A raw probe of /dev/kvm through koffi (libc open/ioctl/close), independent of the kvm backend:
 * what the kernel offers (KVM_CHECK_EXTENSION), whether KVM_CREATE_VM makes a software-protected VM,
 * and the answers of KVM_CREATE_GUEST_MEMFD (per flag) and KVM_SET_MEMORY_ATTRIBUTES on it. It runs
 * inside the lab's VM (and on any host: there it reports what that host's KVM refuses).
 */
import { readFileSync } from 'node:fs';
import { CAP, encode, errnoName, GUEST_MEMFD_FLAGS, IOCTL, KVM_MEMORY_ATTRIBUTE_PRIVATE, structs, VM_TYPE } from '../uapi/index.js';

/** An ioctl's answer: a value (fd, cap value, 0) or the errno's name. */
export type Answer = { ok: number } | { errno: string };

export interface VmProbe {
  type: number;
  created: Answer;
  caps?: Record<string, number>;
  guestMemfd?: Record<string, Answer>;
  setMemoryAttributesPrivate?: Answer;
}

export interface ProbeResult {
  t: 'probe';
  device: string;
  open: Answer;
  apiVersion?: number;
  system?: Record<string, number>;
  vmTypes?: string[];
  vms?: Record<string, VmProbe>;
  /** KVM's module parameters in sysfs that say how it runs (nested paging, TDP MMU). */
  params?: Record<string, string>;
  /** The headline: a SW_PROTECTED VM was created. */
  swProtectedVm: boolean;
}

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;

interface Libc {
  open(path: string, flags: number): number;
  ioctlPtr(fd: number, req: number, arg: Uint8Array): number;
  ioctlInt(fd: number, req: number, arg: number): number;
  close(fd: number): number;
  errno(): number;
}

async function loadLibc(): Promise<Libc> {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load('libc.so.6');
  // ioctl is variadic; on x86-64 one pointer or integer argument is passed the same either way.
  const open = lib.func('open', 'int', ['str', 'int']);
  const ioctlPtr = lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']);
  const ioctlInt = lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
  const close = lib.func('close', 'int', ['int']);
  return {
    open: (p, f) => open(p, f) as number,
    ioctlPtr: (fd, r, a) => ioctlPtr(fd, r, a) as number,
    ioctlInt: (fd, r, a) => ioctlInt(fd, r, a) as number,
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
  };
}

function answer(libc: Libc, r: number): Answer {
  return r < 0 ? { errno: errnoName(libc.errno()) } : { ok: r };
}

const capNames = Object.entries(CAP) as [string, number][];

function readParams(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of ['kvm_amd/parameters/npt', 'kvm_amd/parameters/nested', 'kvm_intel/parameters/ept', 'kvm/parameters/tdp_mmu']) {
    try {
      out[p.replace('/parameters/', '.')] = readFileSync(`/sys/module/${p}`, 'utf8').trim();
    } catch {
      // module or parameter absent
    }
  }
  return out;
}

export async function probeKvm(device = '/dev/kvm'): Promise<ProbeResult> {
  const libc = await loadLibc();
  const kvm = libc.open(device, O_RDWR | O_CLOEXEC);
  const res: ProbeResult = { t: 'probe', device, open: answer(libc, kvm), swProtectedVm: false, params: readParams() };
  if (kvm < 0) return res;
  const fds: number[] = [];
  try {
    res.apiVersion = libc.ioctlInt(kvm, IOCTL.KVM_GET_API_VERSION, 0);
    const caps = (fd: number) => Object.fromEntries(capNames.map(([n, c]) => [n.replace(/^KVM_CAP_/, ''), libc.ioctlInt(fd, IOCTL.KVM_CHECK_EXTENSION, c)]));
    res.system = caps(kvm);
    const mask = res.system.VM_TYPES ?? 0;
    res.vmTypes = (Object.entries(VM_TYPE) as [string, number][]).filter(([, t]) => mask & (1 << t)).map(([n]) => n);
    res.vms = {};
    for (const [name, type] of [
      ['default', VM_TYPE.default],
      ['sw_protected', VM_TYPE.sw_protected],
    ] as const) {
      const vm = libc.ioctlInt(kvm, IOCTL.KVM_CREATE_VM, type);
      const p: VmProbe = { type, created: answer(libc, vm) };
      res.vms[name] = p;
      if (vm < 0) continue;
      fds.push(vm);
      if (name === 'sw_protected') res.swProtectedVm = true;
      p.caps = caps(vm);
      p.guestMemfd = {};
      for (const [label, flags] of [
        ['none', 0n],
        ['mmap', GUEST_MEMFD_FLAGS.mmap],
        ['init_shared', GUEST_MEMFD_FLAGS.init_shared],
        ['mmap|init_shared', GUEST_MEMFD_FLAGS.mmap | GUEST_MEMFD_FLAGS.init_shared],
      ] as const) {
        const arg = encode(structs.kvm_create_guest_memfd, { size: 0x200000n, flags });
        const fd = libc.ioctlPtr(vm, IOCTL.KVM_CREATE_GUEST_MEMFD, arg);
        p.guestMemfd[label] = fd < 0 ? answer(libc, fd) : { ok: 0 };
        if (fd >= 0) libc.close(fd);
      }
      const attrs = encode(structs.kvm_memory_attributes, { address: 0x100000n, size: 0x1000n, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0n });
      p.setMemoryAttributesPrivate = answer(libc, libc.ioctlPtr(vm, IOCTL.KVM_SET_MEMORY_ATTRIBUTES, attrs));
    }
  } finally {
    for (const fd of fds) libc.close(fd);
    libc.close(kvm);
  }
  return res;
}
