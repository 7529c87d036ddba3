/**
 * The one interface both backends implement (DESIGN.md "The interface"). Objects are named after
 * the kernel's and carry one method per uAPI call. u64 fields are bigint, so that out-of-range
 * inputs (2^64-1, a gpa+size that wraps) reach the same checks the kernel makes. Every failure is a
 * KvmError carrying the kernel's errno, never a remapped one; a host access the kernel would answer
 * with SIGBUS or a machine check is a HostFault.
 */

import type { Sha384Factory } from './measure/hash.js';
import { PROT_READ, PROT_WRITE, type VmType } from './uapi/constants.js';
import { ERRNO, type ErrnoName, errnoName, type KvmErrno } from './uapi/errno.js';

export type { VmType } from './uapi/constants.js';
export type { ErrnoName, KvmErrno } from './uapi/errno.js';

export class KvmError extends Error {
  override readonly name = 'KvmError';
  /** errno name, e.g. 'EINVAL' (`E<number>` only for a number guestmem has no name for) */
  readonly errno: KvmErrno;
  /** errno number; the kernel returned -code */
  readonly code: number;
  /** the uAPI call, e.g. 'KVM_CREATE_GUEST_MEMFD' or 'fallocate' */
  readonly op: string;
  /** what the kernel copied back before failing (KVM_PRE_FAULT_MEMORY's gpa/size) */
  readonly data: Readonly<Record<string, bigint>> | undefined;

  constructor(op: string, errno: ErrnoName | number, reason?: string, data?: Record<string, bigint>) {
    const code = typeof errno === 'number' ? errno : ERRNO[errno];
    const name = typeof errno === 'number' ? errnoName(errno) : errno;
    super(`${op}: ${name}${reason ? ` (${reason})` : ''}`);
    this.errno = name;
    this.code = code;
    this.op = op;
    this.data = data;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, op: this.op, errno: this.errno, code: this.code, message: this.message };
  }
}

export type HostSignal = 'SIGBUS' | 'SIGSEGV' | 'MCE';

/** A host load or store the kernel would answer with a signal (SIGBUS) or a machine check. */
export class HostFault extends Error {
  override readonly name = 'HostFault';
  constructor(
    readonly signal: HostSignal,
    /** host virtual address of the first byte that faulted */
    readonly addr: bigint,
    /** its offset inside the mapping the access went through */
    readonly offset: bigint,
    reason: string,
  ) {
    super(`${signal} at offset 0x${offset.toString(16)} (${reason})`);
  }
  toJSON(): Record<string, unknown> {
    return { name: this.name, signal: this.signal, offset: `0x${this.offset.toString(16)}`, message: this.message };
  }
}

export interface Stat {
  readonly ino: bigint;
  readonly mode: number;
  readonly nlink: number;
  readonly size: bigint;
  readonly blksize: bigint;
  readonly blocks: bigint;
}

/** A host virtual mapping: anonymous memory, or an mmap of a file. */
export interface HostMapping {
  readonly addr: bigint;
  readonly length: bigint;
  /**
   * A host load of `len` bytes. Throws HostFault at the first byte whose page the kernel would
   * refuse (SIGBUS); nothing is returned then.
   */
  read(offset: bigint, len: number): Uint8Array;
  /**
   * A host store, performed byte by byte in address order like memset: bytes before the first
   * faulting page are stored, then HostFault is thrown.
   */
  write(offset: bigint, data: Uint8Array): void;
  /** madvise(2) over [offset, offset+length) of the mapping; advice is an MADV_* number. */
  madvise(offset: bigint, length: bigint, advice: number): void;
  /** mbind(2) over [offset, offset+length): `mode` an MPOL_* number, `nodemask` one bit per node. */
  mbind(offset: bigint, length: bigint, mode: number, nodemask: bigint): void;
  /** get_mempolicy(2) with MPOL_F_ADDR at offset: the policy governing that address. */
  getMempolicy(offset: bigint): { mode: number; nodemask: bigint };
  /** move_pages(2) as a query (nodes NULL): each page's node, or -errno (-ENOENT: not present). */
  pageNodes(offset: bigint, count: number): number[];
  unmap(): void;
}

/**
 * The part of the HostMapping contract that is the same for every backend: an access to an
 * unmapped mapping, outside its span, or against its protection is SIGSEGV (a real process would
 * die; both backends throw instead). Returns the fault, or undefined when the access may proceed.
 */
export function hostAccessFault(
  addr: bigint,
  span: bigint,
  prot: number,
  unmapped: boolean,
  offset: bigint,
  len: number,
  write: boolean,
): HostFault | undefined {
  const at = addr + offset;
  if (unmapped) return new HostFault('SIGSEGV', at, offset, 'mapping was unmapped');
  if (offset < 0n || offset + BigInt(len) > span) {
    return new HostFault('SIGSEGV', at, offset, `access of ${len} bytes at 0x${offset.toString(16)} outside a mapping of 0x${span.toString(16)} bytes`);
  }
  if (!(prot & (write ? PROT_WRITE : PROT_READ))) return new HostFault('SIGSEGV', at, offset, `mapping is not ${write ? 'writable' : 'readable'}`);
  return undefined;
}

/** File syscalls on any fd number of the process (the fd may be closed, foreign, or made up). */
export interface FileOps {
  read(fd: number, length: number): Uint8Array;
  write(fd: number, data: Uint8Array): number;
  pread(fd: number, length: number, offset: bigint): Uint8Array;
  pwrite(fd: number, data: Uint8Array, offset: bigint): number;
  lseek(fd: number, offset: bigint, whence: number): bigint;
  ftruncate(fd: number, length: bigint): void;
  fstat(fd: number): Stat;
  dup(fd: number): number;
  close(fd: number): void;
  fallocate(fd: number, mode: number, offset: bigint, len: bigint): void;
  mmap(fd: number, offset: bigint, length: bigint, prot: number, flags: number): HostMapping;
  /** memfd_create(2) with flags 0, for tests that need a file that is not a guest_memfd. */
  memfdCreate(name: string): number;
}

export interface UserspaceMemoryRegion {
  slot: number;
  flags: number;
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
}
export interface UserspaceMemoryRegion2 extends UserspaceMemoryRegion {
  guestMemfdOffset: bigint;
  guestMemfd: number;
}
export interface MemoryAttributes {
  address: bigint;
  size: bigint;
  attributes: bigint;
  flags: bigint;
}
export interface PreFaultMemory {
  gpa: bigint;
  size: bigint;
  flags: bigint;
}

export type Width = 1 | 2 | 4 | 8;
export type GuestOp =
  | { readonly op: 'write'; readonly gpa: bigint; readonly width: Width; readonly value: bigint; readonly shared?: boolean }
  | { readonly op: 'read'; readonly gpa: bigint; readonly width: Width; readonly shared?: boolean }
  | { readonly op: 'map_gpa_range'; readonly gpa: bigint; readonly npages: bigint; readonly attrs: bigint }
  | { readonly op: 'out'; readonly port: number; readonly value: bigint }
  | { readonly op: 'hlt' }
  // Confidential guests (issue 5): instructions only an SNP or a TDX guest has; each is a private
  // access to gpa, and its status (RAX) is reported among the run's reads. Elsewhere they are #UD.
  /** SNP PVALIDATE of the 4 KiB page at gpa: set (validate) or clear the RMP Validated bit */
  | { readonly op: 'pvalidate'; readonly gpa: bigint; readonly validate: boolean }
  /** TDX TDCALL TDG.MEM.PAGE.ACCEPT of the 4 KiB page at gpa */
  | { readonly op: 'tdg_mem_page_accept'; readonly gpa: bigint };
export type GuestProgram = readonly GuestOp[];

export type ExitReason = 'hlt' | 'io' | 'mmio' | 'memory_fault' | 'hypercall' | 'shutdown';

/** What KVM_RUN left in struct kvm_run. */
export interface VcpuExit {
  readonly reason: ExitReason;
  /** values the program read since this run began, in order */
  readonly reads: readonly bigint[];
  /** set when KVM_RUN returned -1 with a meaningful exit (KVM_EXIT_MEMORY_FAULT: EFAULT/EHWPOISON) */
  readonly errno?: string;
  readonly io?: { readonly direction: 'in' | 'out'; readonly port: number; readonly size: number; readonly value: bigint };
  readonly mmio?: { readonly physAddr: bigint; readonly len: number; readonly isWrite: boolean; readonly data: bigint };
  readonly memoryFault?: { readonly flags: bigint; readonly gpa: bigint; readonly size: bigint };
  readonly hypercall?: { readonly nr: bigint; readonly args: readonly bigint[]; readonly ret: bigint; readonly flags: bigint };
}

export interface RunOptions {
  /** written to kvm_run.hypercall.ret before re-entering after a KVM_EXIT_HYPERCALL */
  hypercallRet?: bigint;
}

export interface Vcpu {
  readonly id: number;
  readonly fd: number;
  /** Place a guest program in the reserved code slot and point the vCPU at its first op. */
  load(program: GuestProgram): void;
  /** KVM_RUN: run until the next exit. */
  run(options?: RunOptions): VcpuExit;
  /** KVM_PRE_FAULT_MEMORY; returns the gpa/size the kernel copied back. */
  preFaultMemory(r: PreFaultMemory): { gpa: bigint; size: bigint };
  /** KVM_MEMORY_ENCRYPT_OP on the vCPU fd (TDX: KVM_TDX_INIT_VCPU, KVM_TDX_INIT_MEM_REGION); where implemented */
  memoryEncryptOp?(cmd: MemoryEncryptCommand): MemoryEncryptResult;
  close(): void;
}

export interface GuestMemfd {
  readonly fd: number;
  size(): bigint;
  fallocate(mode: number, offset: bigint, len: bigint): void;
  mmap(offset: bigint, length: bigint, prot: number, flags?: number): HostMapping;
  close(): void;
}

export interface CreateGuestMemfd {
  size: bigint;
  flags: bigint;
  reserved?: readonly bigint[];
}

export interface Vm {
  readonly fd: number;
  readonly type: VmType;
  checkExtension(cap: number): number;
  enableCap(cap: number, args?: readonly bigint[], flags?: number): number;
  createGuestMemfd(a: CreateGuestMemfd): GuestMemfd;
  setUserMemoryRegion(r: UserspaceMemoryRegion): void;
  setUserMemoryRegion2(r: UserspaceMemoryRegion2): void;
  setMemoryAttributes(a: MemoryAttributes): void;
  mmapAnonymous(length: bigint): HostMapping;
  createVcpu(id: number): Vcpu;
  /** KVM_MEMORY_ENCRYPT_OP on the VM fd (SEV-SNP launch, TDX INIT_VM/FINALIZE_VM); where implemented */
  memoryEncryptOp?(cmd: MemoryEncryptCommand): MemoryEncryptResult;
  close(): void;
}

export interface Kvm {
  readonly backend: 'model' | 'kvm';
  readonly fd: number;
  /** the kernel profile whose rules this backend follows ('host' for the real kernel) */
  readonly profile: string;
  apiVersion(): number;
  checkExtension(cap: number): number;
  createVm(type?: VmType | number): Vm;
  mmapAnonymous(length: bigint): HostMapping;
  readonly files: FileOps;
  /** The host kernel's own accesses to guest memory (model only: the kvm backend cannot make them safely). */
  readonly hostKernel?: HostKernelAccess;
  /** What a confidential launch needs beyond the uAPI (model only: see LaunchAccess). */
  readonly launch?: LaunchAccess;
  close(): void;
}

// ---- Confidential VMs (issue 5): KVM_MEMORY_ENCRYPT_OP and its sub-commands (src/uapi/coco.ts
// has the structs and numbers). Field names are the structs', camelCased; what the kernel copies
// back comes in MemoryEncryptResult.data, or in KvmError.data when the call failed. ----

/** struct kvm_cpuid_entry2, as KVM_TDX_INIT_VM takes it */
export interface CpuidEntry {
  readonly function: number;
  readonly index?: number;
  readonly flags?: number;
  readonly eax?: number;
  readonly ebx?: number;
  readonly ecx?: number;
  readonly edx?: number;
}

/** AMD: struct kvm_sev_cmd with the sub-command's struct behind .data (sev_fd is not modelled) */
export type SevCommand =
  | { readonly id: 'KVM_SEV_INIT2'; readonly vmsaFeatures?: bigint; readonly flags?: number; readonly ghcbVersion?: number }
  | { readonly id: 'KVM_SEV_SNP_LAUNCH_START'; readonly policy: bigint; readonly gosvw?: Uint8Array; readonly flags?: number }
  | {
      readonly id: 'KVM_SEV_SNP_LAUNCH_UPDATE';
      readonly gfnStart: bigint;
      readonly uaddr: bigint;
      readonly len: bigint;
      /** KVM_SEV_SNP_PAGE_TYPE_* */
      readonly type: number;
      readonly flags?: number;
    }
  | {
      readonly id: 'KVM_SEV_SNP_LAUNCH_FINISH';
      readonly idBlockEn?: number;
      readonly authKeyEn?: number;
      readonly vcekDisabled?: number;
      readonly hostData?: Uint8Array;
      readonly flags?: number;
    };

/** Intel: struct kvm_tdx_cmd (id, flags, data, hw_error) with the sub-command's struct behind .data */
export type TdxCommand = { readonly flags?: number; readonly hwError?: bigint } & (
  | { readonly id: 'KVM_TDX_CAPABILITIES'; readonly nent?: number }
  | {
      readonly id: 'KVM_TDX_INIT_VM';
      readonly attributes?: bigint;
      readonly xfam?: bigint;
      readonly reserved?: readonly bigint[];
      readonly cpuid: readonly CpuidEntry[];
    }
  | { readonly id: 'KVM_TDX_FINALIZE_VM' }
  | { readonly id: 'KVM_TDX_INIT_VCPU'; readonly rcx?: bigint }
  | { readonly id: 'KVM_TDX_INIT_MEM_REGION'; readonly sourceAddr: bigint; readonly gpa: bigint; readonly nrPages: bigint }
);

/** A sub-command by number, with no data: what the kernel's dispatch does with an id alone. */
export interface RawEncryptCommand {
  readonly vendor: 'sev' | 'tdx';
  readonly id: number;
}

export type MemoryEncryptCommand = SevCommand | TdxCommand | RawEncryptCommand;

export interface MemoryEncryptResult {
  /** kvm_sev_cmd.error: the SEV firmware status (SEV_RET_*) */
  readonly error?: number;
  /** kvm_tdx_cmd.hw_error: a TDX module status */
  readonly hwError?: bigint;
  /** fields of the sub-command struct the kernel copied back */
  readonly data?: Readonly<Record<string, bigint>>;
}

/**
 * The host kernel touching a guest_memfd page through its direct map (a driver bug, /dev/mem, a
 * device): no user-mapping check applies, only what the hardware does (SNP: RMP write check;
 * TDX: integrity, so a machine check). `fd` is a guest_memfd, `offset` a byte offset in it.
 */
export interface HostKernelAccess {
  directMapRead(fd: number, offset: bigint, len: number): Uint8Array;
  directMapWrite(fd: number, offset: bigint, data: Uint8Array): void;
}

/** The vCPU state an SNP VMSA is built from, as QEMU sets it before KVM_SEV_SNP_LAUNCH_UPDATE of the VMSAs. */
export interface SnpVcpuState {
  /** CS.base (KVM_SET_SREGS) */
  readonly csBase?: bigint;
  /** RIP (KVM_SET_REGS) */
  readonly rip?: bigint;
  /** RDX: the CPUID signature */
  readonly rdx?: bigint;
}

/**
 * What the VMM launch flows (vmm/launch.ts) need that the uAPI does not give the model: the vCPU
 * state an SNP VMSA is built from (QEMU sets it with KVM_SET_REGS/SREGS/CPUID2, which the model
 * lacks), and the launch digest (SNP MEASUREMENT, TDX MRTD), which no uAPI gives the host (the
 * guest's attestation report carries it). Both throw for an object that is not the model's.
 */
export interface LaunchAccess {
  setSnpVcpuRegs(vcpu: Vcpu, regs: SnpVcpuState): void;
  launchDigest(vm: Vm, sha384: Sha384Factory): Uint8Array;
}

/** The reserved guest code region both backends use (DESIGN.md, scenario/). */
export const CODE_SLOT = 32763;
export const CODE_GPA = 0xffe00000n;
export const CODE_SIZE = 0x100000n;
