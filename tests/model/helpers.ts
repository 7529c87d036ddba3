/**
 * Shared helpers for the per-rule model tests (tests/model/<area>.test.ts). Every KVM here is a
 * checkedKvm: each call is followed by the invariant checker. Model internals are reached the way
 * the tests are allowed to: kvm.vms[i] (struct kvm), the GmemFile behind a GuestMemfd, the VcpuFile
 * behind a vCPU fd. uAPI numbers and errno assertions are the ones every backend's tests share.
 */
import type { GuestMemfd, GuestProgram, UserspaceMemoryRegion2, Vcpu, VcpuExit, Vm, VmType } from '../../src/api.js';
import { getProfile, hostProfile, type KernelProfile, type ModelKvm } from '../../src/model/index.js';
import type { VcpuFile } from '../../src/model/vcpu.js';
import type { KvmVm } from '../../src/model/vm.js';
import { checkedKvm, errnoOf, gmemFile, inodeOf } from '../support/model.js';
import { MEM_GUEST_MEMFD } from '../support/uapi.js';

// the uAPI numbers and errno assertions every backend's tests share ('fill' below is this file's own)
export * from '../support/uapi.js';
export { checkedKvm, errnoOf, gmemFile, inodeOf };

/** The live 6.18.44 machine's KVM_CHECK_EXTENSION values (KERNEL-SPEC §1.3 "Values live on 6.18"). */
export const LIVE_CAPS: Readonly<Record<number, number>> = { 201: 4096, 231: 1, 232: 1, 233: 0, 234: 1, 235: 1, 236: 0, 244: 3 };

export function liveHostProfile(): KernelProfile {
  return hostProfile({ release: '6.18.44', system: LIVE_CAPS });
}

/** A checked model KVM for a profile name or a profile object (checkedKvm's createModelKvm takes both). */
export function kvmFor(kernel: string | KernelProfile = '6.18'): ModelKvm {
  return checkedKvm(kernel as string);
}

/** 6.18 rules plus the SNP VM type, so that the guest's C-bit decides privacy (G1, G2.2). */
export function snpKvm(): ModelKvm {
  const p = getProfile('6.18');
  return kvmFor({ ...p, name: '6.18+snp', vmTypes: [...p.vmTypes, 'snp'] });
}

export interface Setup {
  kvm: ModelKvm;
  vm: Vm;
  /** struct kvm of the first VM (stays reachable after the VM fd is closed) */
  k: KvmVm;
}

export function setup(kernel: string | KernelProfile = '6.18', type: VmType = 'default'): Setup {
  const kvm = kvmFor(kernel);
  const vm = kvm.createVm(type);
  const k = kvm.vms[kvm.vms.length - 1] as KvmVm;
  return { kvm, vm, k };
}

export function vcpuFile(kvm: ModelKvm, vcpu: Vcpu): VcpuFile {
  return kvm.proc.fdt.lookup(vcpu.fd) as VcpuFile;
}

export function region(r: Partial<UserspaceMemoryRegion2> & { slot: number }): UserspaceMemoryRegion2 {
  return { flags: 0, guestPhysAddr: 0n, memorySize: 0n, userspaceAddr: 0n, guestMemfd: 0, guestMemfdOffset: 0n, ...r };
}

/** Bind `g` at [gpa, gpa+size) through slot `slot` (KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD). */
export function bindGmem(vm: Vm, slot: number, gpa: bigint, size: bigint, g: GuestMemfd, offset = 0n, userspaceAddr = 0n): void {
  vm.setUserMemoryRegion2(
    region({ slot, flags: MEM_GUEST_MEMFD, guestPhysAddr: gpa, memorySize: size, userspaceAddr, guestMemfd: g.fd, guestMemfdOffset: offset }),
  );
}

export function deleteSlot(vm: Vm, slot: number, flags = 0): void {
  vm.setUserMemoryRegion2(region({ slot, flags, memorySize: 0n }));
}

/** Load a program and run it once. */
export function runProgram(vcpu: Vcpu, program: GuestProgram): VcpuExit {
  vcpu.load(program);
  return vcpu.run();
}

export function read(gpa: bigint, width: 1 | 2 | 4 | 8 = 4, shared?: boolean): GuestProgram[number] {
  return shared === undefined ? { op: 'read', gpa, width } : { op: 'read', gpa, width, shared };
}

export function write(gpa: bigint, value: bigint, width: 1 | 2 | 4 | 8 = 4, shared?: boolean): GuestProgram[number] {
  return shared === undefined ? { op: 'write', gpa, width, value } : { op: 'write', gpa, width, value, shared };
}

export const hlt: GuestProgram[number] = { op: 'hlt' };

export function fill(byte: number, n: number): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

/** Every byte equals `byte`. */
export function allBytes(data: Uint8Array, byte: number): boolean {
  return data.every((b) => b === byte);
}
