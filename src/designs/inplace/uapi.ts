/**
 * The uAPI of two pending guest_memfd series, as this design models them. Nothing here is mainline:
 * the numbers belong to this design's profile only and are never asked of a real kernel
 * (src/uapi/registry.ts says why: mainline reuses 245-250 for other capabilities).
 *
 * 1. In-place shared<->private conversion (Ackerley Tng, Sean Christopherson, Fuad Tabba, Michael
 *    Roth et al.): the version modelled is the one APPLIED to linux-next in next-20260923 (v13 of
 *    2026-09-10, msg-id 20260910-gmem-inplace-conversion-v13-0-dd6fbf94f4e1), read in
 *    virt/kvm/guest_memfd.c @ 856852ef2108 and kvm_main.c @ 537ec2b15fdd (shared/spec/
 *    IN-PLACE-CONVERSION.md, "LN-GMEM", "LN-MAIN"). The newest full patch text read was v8.
 * 2. Direct-map removal (Patrick Roy, Nikita Kalyazin, Takahiro Itazuri): v12 of 2026-04-10
 *    (msg-id 20260410151746.61150-1-kalyazin@amazon.com), patch 10 "KVM: guest_memfd: Add flag to
 *    remove from direct map". Not applied anywhere upstream; based on a tree without in-place
 *    conversion, so how the two combine is this model's choice (see index.ts).
 */
import { PAGE_SIZE_N } from '../../uapi/constants.js';
import { IOC_READ, IOC_WRITE, ioc, KVMIO } from '../../uapi/ioctls.js';
import { defineLayout } from '../../uapi/layout.js';
import { capNumber } from '../../uapi/registry.js';

export const SERIES = {
  inPlace: 'in-place conversion v13, as applied in next-20260923 (virt/kvm/guest_memfd.c @ 856852ef2108)',
  noDirectMap: 'direct-map removal v12 (2026-04-10, Nikita Kalyazin), not applied',
} as const;

/**
 * struct kvm_memory_attributes2 (RFC v2 .. applied): 128 bytes. The first four fields sit where
 * struct kvm_memory_attributes has them (the header static-asserts it); `offset` is a union with
 * `address` and is a byte offset into the guest_memfd file.
 */
export const kvm_memory_attributes2 = defineLayout('kvm_memory_attributes2', 128, {
  offset: { type: 'u64', offset: 0 },
  size: { type: 'u64', offset: 8 },
  attributes: { type: 'u64', offset: 16 },
  flags: { type: 'u64', offset: 24 },
  error_offset: { type: 'u64', offset: 32 },
  reserved: { type: 'u64', offset: 40, count: 11 },
});

/** _IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2) = 0xC080AED2 (0xd2 as KVM_SET_MEMORY_ATTRIBUTES, other size and direction). */
export const KVM_SET_MEMORY_ATTRIBUTES2 = ioc(IOC_READ | IOC_WRITE, KVMIO, 0xd2, kvm_memory_attributes2.size);

/**
 * KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES: 250 in v8 (after KVM_CAP_S390_HPAGE_2G 249). The applied
 * number could not be seen (linux-next's include/uapi/linux/kvm.h is not stored): assumed unchanged.
 */
export const KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = capNumber('KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES', 'any');

/** GUEST_MEMFD_FLAG_NO_DIRECT_MAP (1ULL << 2) in v12, after INIT_SHARED took bit 1 upstream. */
export const GUEST_MEMFD_FLAG_NO_DIRECT_MAP = 1n << 2n;

/** The module parameter and Kconfig of the applied series (kvm_main.c @ 537ec2b15fdd). */
export interface InPlaceKernelConfig {
  /**
   * CONFIG_KVM_VM_MEMORY_ATTRIBUTES (x86, "If unsure, say N"): with it the per-VM attribute ioctl
   * exists and `kvm.gmem_in_place_conversion` is a module parameter (default off); without it
   * in-place conversion is always on and there is no knob.
   */
  readonly vmMemoryAttributesConfig: boolean;
  /** kvm.gmem_in_place_conversion (bool, 0444, __ro_after_init); only settable with the Kconfig above */
  readonly gmemInPlaceConversion: boolean;
}

/**
 * What the selftests need (guest_memfd_conversions_test main(): the cap on /dev/kvm has PRIVATE):
 * the Kconfig on and the parameter set, as a distribution kernel booted with
 * kvm.gmem_in_place_conversion=1 runs them.
 */
export const DEFAULT_CONFIG: InPlaceKernelConfig = { vmMemoryAttributesConfig: true, gmemInPlaceConversion: true };

/** The config a kernel booted with `params` has ("gmem_in_place_conversion=0", "vm_memory_attributes=n"). */
export function parseConfig(params: readonly string[]): InPlaceKernelConfig {
  let c: InPlaceKernelConfig = DEFAULT_CONFIG;
  for (const p of params) {
    const [k, v] = p.split('=') as [string, string | undefined];
    const on = v === undefined || v === '1' || v === 'y' || v === 'Y';
    if (k === 'gmem_in_place_conversion') c = { ...c, gmemInPlaceConversion: on };
    else if (k === 'vm_memory_attributes' || k === 'CONFIG_KVM_VM_MEMORY_ATTRIBUTES') c = { ...c, vmMemoryAttributesConfig: on };
    else throw new Error(`unknown in-place kernel option '${p}' (gmem_in_place_conversion=0|1, vm_memory_attributes=y|n)`);
  }
  // module_param() exists only #ifdef CONFIG_KVM_VM_MEMORY_ATTRIBUTES: without it the default
  // !IS_ENABLED(CONFIG_KVM_VM_MEMORY_ATTRIBUTES) = true holds
  if (!c.vmMemoryAttributesConfig) c = { ...c, gmemInPlaceConversion: true };
  return c;
}

export const pageIndex = (offset: bigint): number => Number(offset / PAGE_SIZE_N);
