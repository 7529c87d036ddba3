/**
 * ioctl numbers, computed the way include/uapi/asm-generic/ioctl.h does from the struct layouts,
 * never typed in as hex (tests pin the results against KERNEL-SPEC §1.1).
 */
import type { Layout } from './layout.js';
import * as S from './structs.js';

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;
export const KVMIO = 0xae;

export function ioc(dir: number, type: number, nr: number, size: number): number {
  // (dir << 30) overflows int32 in JS bit ops: build it with arithmetic.
  return dir * 2 ** 30 + ((size & 0x3fff) << 16) + (type << 8) + nr;
}
const io = (nr: number) => ioc(IOC_NONE, KVMIO, nr, 0);
const iow = (nr: number, l: Layout) => ioc(IOC_WRITE, KVMIO, nr, l.size);
const iowr = (nr: number, l: Layout) => ioc(IOC_READ | IOC_WRITE, KVMIO, nr, l.size);

export const IOCTL = {
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, S.kvm_userspace_memory_region),
  KVM_SET_USER_MEMORY_REGION2: iow(0x49, S.kvm_userspace_memory_region2),
  KVM_RUN: io(0x80),
  KVM_ENABLE_CAP: iow(0xa3, S.kvm_enable_cap),
  KVM_SET_MEMORY_ATTRIBUTES: iow(0xd2, S.kvm_memory_attributes),
  KVM_CREATE_GUEST_MEMFD: iowr(0xd4, S.kvm_create_guest_memfd),
  KVM_PRE_FAULT_MEMORY: iowr(0xd5, S.kvm_pre_fault_memory),
} as const;
export type IoctlName = keyof typeof IOCTL;
