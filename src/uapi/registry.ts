/**
 * Capability and flag numbers, each with where it comes from: mainline (the release that first
 * had it), a pending series (the version whose number this is; numbers drift with rebases), or an
 * out-of-tree tree. Several of them share a number: mainline 245-249 were taken by ARM_SEA_TO_USER
 * and the s390 caps while the in-place conversion series and Firecracker's USERFAULT used 245-250
 * for other things (UPSTREAM-2026.md §1). So only a mainline number may ever be asked of a kernel
 * as if it meant that capability: KVM_CHECK_EXTENSION(245) on a 7.x kernel answers for
 * ARM_SEA_TO_USER, not for MEMORY_ATTRIBUTES2.
 */
export type Origin =
  | { readonly kind: 'mainline'; readonly since: string }
  | { readonly kind: 'pending'; readonly series: string }
  | { readonly kind: 'out-of-tree'; readonly tree: string };

export interface RegistryEntry {
  readonly name: string;
  readonly value: number;
  readonly origin: Origin;
}

const mainline = (since: string): Origin => ({ kind: 'mainline', since });
const pending = (series: string): Origin => ({ kind: 'pending', series });
const outOfTree = (tree: string): Origin => ({ kind: 'out-of-tree', tree });

/** KVM_CAP_* numbers (include/uapi/linux/kvm.h, and the series that propose more). */
export const CAPS: readonly RegistryEntry[] = [
  { name: 'KVM_CAP_USER_MEMORY', value: 3, origin: mainline('2.6.20') },
  { name: 'KVM_CAP_NR_MEMSLOTS', value: 10, origin: mainline('2.6.26') },
  { name: 'KVM_CAP_READONLY_MEM', value: 81, origin: mainline('3.8') },
  { name: 'KVM_CAP_X86_SMM', value: 117, origin: mainline('4.3') },
  { name: 'KVM_CAP_MULTI_ADDRESS_SPACE', value: 118, origin: mainline('4.3') },
  { name: 'KVM_CAP_EXIT_HYPERCALL', value: 201, origin: mainline('5.12') },
  { name: 'KVM_CAP_USER_MEMORY2', value: 231, origin: mainline('6.8') },
  { name: 'KVM_CAP_MEMORY_FAULT_INFO', value: 232, origin: mainline('6.8') },
  { name: 'KVM_CAP_MEMORY_ATTRIBUTES', value: 233, origin: mainline('6.8') },
  { name: 'KVM_CAP_GUEST_MEMFD', value: 234, origin: mainline('6.8') },
  { name: 'KVM_CAP_VM_TYPES', value: 235, origin: mainline('6.8') },
  { name: 'KVM_CAP_PRE_FAULT_MEMORY', value: 236, origin: mainline('6.11') },
  // first named KVM_CAP_GUEST_MEMFD_MMAP, renamed in the 6.18 cycle (returns the flags mask)
  { name: 'KVM_CAP_GUEST_MEMFD_FLAGS', value: 244, origin: mainline('6.18') },
  { name: 'KVM_CAP_ARM_SEA_TO_USER', value: 245, origin: mainline('7.1') },
  { name: 'KVM_CAP_S390_USER_OPEREXEC', value: 246, origin: mainline('7.1') },
  { name: 'KVM_CAP_S390_KEYOP', value: 247, origin: mainline('7.2') },
  { name: 'KVM_CAP_S390_VSIE_ESAMODE', value: 248, origin: mainline('7.2') },
  { name: 'KVM_CAP_S390_HPAGE_2G', value: 249, origin: mainline('7.2') },
  // in-place conversion (Ackerley Tng et al.): 245 in the v8-era postings, 248 after rebases
  { name: 'KVM_CAP_MEMORY_ATTRIBUTES2', value: 245, origin: pending('in-place conversion v8 (2026-06-18)') },
  { name: 'KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES', value: 250, origin: pending('in-place conversion v12 (2026-08-30)') },
  { name: 'KVM_CAP_GUEST_MEMFD_NO_DIRECT_MAP', value: 245, origin: pending('direct-map removal v5 (2025-08)') },
  { name: 'KVM_CAP_ARM_RMI', value: 247, origin: pending('Arm CCA v13 (2026-04-14)') },
  { name: 'KVM_CAP_USERFAULT', value: 245, origin: outOfTree('firecracker feature/secret-hiding') },
];

/** Flag bits whose meaning depends on the tree (guest_memfd flags, memslot flags). */
export const FLAGS: readonly RegistryEntry[] = [
  { name: 'GUEST_MEMFD_FLAG_MMAP', value: 1 << 0, origin: mainline('6.18') },
  { name: 'GUEST_MEMFD_FLAG_INIT_SHARED', value: 1 << 1, origin: mainline('6.18') },
  { name: 'GUEST_MEMFD_FLAG_NO_DIRECT_MAP', value: 1 << 2, origin: pending('direct-map removal v12 (2026-04-10)') },
  { name: 'GUEST_MEMFD_FLAG_WRITE', value: 1 << 3, origin: outOfTree('firecracker feature/secret-hiding') },
  { name: 'KVM_MEM_GUEST_MEMFD', value: 1 << 2, origin: mainline('6.8') },
  { name: 'KVM_MEM_USERFAULT', value: 1 << 3, origin: outOfTree('firecracker feature/secret-hiding') },
];

/** The mainline capabilities by name: the only ones a probe asks a kernel about. */
export function mainlineCaps(): Readonly<Record<string, number>> {
  return Object.fromEntries(CAPS.filter((c) => c.origin.kind === 'mainline').map((c) => [c.name, c.value]));
}

/** A capability's number, refusing one that is not mainline unless the caller says it knows. */
export function capNumber(name: string, allow: 'mainline' | 'any' = 'mainline'): number {
  const e = CAPS.find((c) => c.name === name);
  if (!e) throw new Error(`unknown capability ${name}`);
  if (allow === 'mainline' && e.origin.kind !== 'mainline') {
    const from = e.origin.kind === 'pending' ? `pending series ${e.origin.series}` : `out-of-tree ${e.origin.tree}`;
    throw new Error(`${name} = ${e.value} is from a ${from}; on a mainline kernel that number means something else`);
  }
  return e.value;
}
