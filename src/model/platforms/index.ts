/**
 * Confidential-computing platforms of the model (DESIGN.md "model/ platforms/"; issue 5): what a
 * VM of type snp (4) or tdx (5) adds to the guest_memfd core.
 *  - snp.ts: SEV-SNP. KVM_SEV_INIT2 and the SNP launch commands of KVM_MEMORY_ENCRYPT_OP, the RMP
 *    (host writes to guest-assigned pages fault, PVALIDATE flips the Validated bit), the launch
 *    digest's PAGE_INFO log.
 *  - tdx.ts: TDX. KVM_TDX_INIT_VM / INIT_VCPU / INIT_MEM_REGION / FINALIZE_VM, the Secure-EPT
 *    (pages added at launch are accepted, pages a fault adds are pending until TDG.MEM.PAGE.ACCEPT),
 *    host access to TD memory as a machine check that poisons the page, the MRTD record log.
 * Both share the fault-path rule the vCPU already applies (model-vcpu.ts isPrivate: the guest's C-bit or
 * shared bit, not the attributes, says whether an access is private; a mismatch with the attributes
 * is KVM_EXIT_MEMORY_FAULT with EFAULT in fault.ts), guest_memfd flags without INIT_SHARED (model-vm.ts
 * createGuestMemfd: kvm_arch_supports_gmem_init_shared is false with private memory), and
 * kvm_gmem_populate (populate.ts), the only way either puts data into guest_memfd before launch.
 *
 * Lifecycle gates (KVM_RUN, KVM_PRE_FAULT_MEMORY and TDX KVM_CREATE_VCPU refused before the launch
 * got far enough) apply where the kernel profile says the host has this platform (profiles.ts
 * withPlatform); a profile that only lists the type keeps them off, so the fault-path rules can be
 * exercised without a launch (tests/model/faults.test.ts). Nothing here runs for other VM types.
 */
import type { MemoryEncryptCommand, MemoryEncryptResult, Vcpu, Vm } from '../../api.js';
import type { Sha384Factory } from '../../measure/hash.js';
import type { TdxMeasureOp } from '../../measure/tdx.js';
import { fail } from '../fail.js';
import { type CocoPlatform, type CocoVcpu, type CocoVm, hostPlatform } from './base.js';
import { type SnpLogEntry, SnpPlatform, type SnpVcpuRegs, sevOnOtherVm } from './snp.js';
import { TdxPlatform } from './tdx.js';

export { CocoPlatform, cocoInstruction, type InstructionResult } from './base.js';
export { gmemPopulate, type PopulateResult } from './populate.js';
export { MODEL_SEV_VMSA_FEATURES, type RmpEntry, type SnpLogEntry, SnpPlatform, type SnpVcpuRegs } from './snp.js';
export { MODEL_TDX_MODULE, type TdState, TdxPlatform } from './tdx.js';

/** The platform state of a new struct kvm (kvm_arch_init_vm -> sev_vm_init / tdx_vm_init). */
export function createPlatform(vm: CocoVm): CocoPlatform | undefined {
  if (vm.type === 'snp') return new SnpPlatform(vm);
  if (vm.type === 'tdx') return new TdxPlatform(vm);
  return undefined;
}

/**
 * KVM_MEMORY_ENCRYPT_OP on a VM fd (kvm_arch_vm_ioctl -> kvm_x86_ops.mem_enc_ioctl): on an AMD host
 * sev_mem_enc_ioctl, on an Intel host vt_mem_enc_ioctl (ENOTTY unless the VM is a TD); a host
 * with neither has no handler (ENOTTY).
 */
export function vmMemoryEncryptOp(vm: CocoVm, cmd: MemoryEncryptCommand): MemoryEncryptResult {
  const op = 'KVM_MEMORY_ENCRYPT_OP';
  const host = hostPlatform(vm);
  if (!host) return fail(op, 'ENOTTY', 'this host has no memory encryption (kvm_x86_ops.mem_enc_ioctl)');
  const p = vm.platform;
  if (host === 'snp') return p instanceof SnpPlatform ? p.vmOp(cmd) : sevOnOtherVm(vm, cmd, vm.vcpuIds.size);
  if (!(p instanceof TdxPlatform)) return fail(op, 'ENOTTY', 'vt_mem_enc_ioctl: not a TD');
  return p.vmOp(cmd);
}

/**
 * KVM_MEMORY_ENCRYPT_OP on a vCPU fd (kvm_arch_vcpu_ioctl -> kvm_x86_ops.vcpu_mem_enc_ioctl): SVM
 * has none (ENOTTY); VMX's vt_vcpu_mem_enc_ioctl refuses vCPUs of other VMs (EINVAL).
 */
export function vcpuMemoryEncryptOp(v: CocoVcpu, cmd: MemoryEncryptCommand): MemoryEncryptResult {
  const op = 'KVM_MEMORY_ENCRYPT_OP';
  const host = hostPlatform(v.vm);
  if (host !== 'tdx') return fail(op, 'ENOTTY', 'kvm_arch_vcpu_ioctl: no vcpu_mem_enc_ioctl on this host');
  const p = v.vm.platform;
  if (!(p instanceof TdxPlatform)) return fail(op, 'EINVAL', 'vt_vcpu_mem_enc_ioctl: not a TD vCPU');
  return p.vcpuOp(v, cmd);
}

// ---- what a VMM or a test reads out of the model (no uAPI gives a host these) ----

/** struct kvm behind a model Vm handle (ModelVm.vm), or the argument itself. */
function kvmOf(vm: Vm | CocoVm): CocoVm {
  const k = (vm as { vm?: CocoVm }).vm ?? (vm as CocoVm);
  if (!k || typeof k !== 'object' || !('memslots' in k)) throw new Error('not a VM of the model backend');
  return k;
}

/** The platform of a model VM, or undefined where it has none (not snp/tdx, or not a model VM). */
export function platformOf(vm: Vm | CocoVm): CocoPlatform | undefined {
  try {
    return kvmOf(vm).platform;
  } catch {
    return undefined;
  }
}

export type LaunchLog =
  | { readonly platform: 'snp'; readonly entries: readonly SnpLogEntry[] }
  | { readonly platform: 'tdx'; readonly entries: readonly TdxMeasureOp[] };

/** The model's measurement log: every page SNP measured, or every TDX measurement SEAMCALL, in order. */
export function launchLog(vm: Vm | CocoVm): LaunchLog {
  const p = platformOf(vm);
  if (p instanceof SnpPlatform) return { platform: 'snp', entries: p.log };
  if (p instanceof TdxPlatform) return { platform: 'tdx', entries: p.log };
  throw new Error('launchLog: not an SNP or TDX VM of the model');
}

/**
 * The launch measurement the model's log folds to, with an injected SHA-384: the SNP launch digest
 * (the attestation report's MEASUREMENT) or the TDX MRTD.
 */
export function launchDigest(vm: Vm | CocoVm, sha384: Sha384Factory): Uint8Array {
  const p = platformOf(vm);
  if (p instanceof SnpPlatform) return p.digest(sha384);
  if (p instanceof TdxPlatform) return p.digest(sha384);
  throw new Error('launchDigest: not an SNP or TDX VM of the model');
}

/**
 * The vCPU register state an SNP VMSA is built from (KVM_SET_REGS / KVM_SET_SREGS / KVM_SET_CPUID2
 * stand-in: the model does not implement those ioctls). QEMU gives APs the OVMF SEV-ES reset
 * vector this way, and every vCPU its CPUID signature in RDX. EINVAL once the state is protected.
 */
export function setSnpVcpuRegs(vcpu: Vcpu, regs: Partial<Omit<SnpVcpuRegs, 'protectedState'>>): void {
  const v = (vcpu as { vcpuFile?: CocoVcpu }).vcpuFile;
  if (!v) throw new Error('setSnpVcpuRegs: not a vCPU of the model backend');
  const p = v.vm.platform;
  if (!(p instanceof SnpPlatform)) throw new Error('setSnpVcpuRegs: not a vCPU of an SNP VM');
  p.setRegs(v, regs);
}
