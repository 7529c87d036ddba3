/**
 * Every `requires` entry, defined once: how a backend is asked (KVM_CHECK_EXTENSION on /dev/kvm, or
 * what guest programs found out), what the entry means (the README's list), and which entries it
 * implies. The loader, the runner, the kvm test gate and the README read this table.
 */
import type { Kvm } from '../api.js';
import { CAP, GUEST_MEMFD_FLAGS, KVM_HC_MAP_GPA_RANGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, VM_TYPE, type VmType } from '../uapi/constants.js';
import { ScenarioError } from './values.js';

/** What guest code can do on a backend, found by running it. */
export interface GuestFacts {
  /** guest_memfd-only slots serve guest faults without a host mapping (6.18 GMEM_ONLY with TDP) */
  gmemOnlyFaults: boolean;
  /** KVM_HC_MAP_GPA_RANGE exits to userspace */
  hypercallExits: boolean;
  /** guest code is emulated: every access goes through userspace_addr (PVM) */
  emulatedAccess: boolean;
}

interface Probe {
  kvm: Kvm;
  arg: string | undefined;
  numaNodes: number;
  guest: ((kvm: Kvm) => GuestFacts) | undefined;
}

export interface Requirement {
  /** `name` or `name:ARG` */
  readonly name: string;
  /** the values ARG may take; 'N' for a number */
  readonly args?: readonly string[] | 'N';
  /** README: what it asks */
  readonly about: string;
  /** Why the backend lacks it, or undefined when it has it. */
  check(p: Probe): string | undefined;
  /** entries that hold whenever this one does (a scenario that declares it may use their ops) */
  readonly implies?: (arg: string | undefined) => readonly string[];
}

const cap = (p: Probe, c: number) => p.kvm.checkExtension(c);

export const REQUIREMENT_TABLE: readonly Requirement[] = [
  {
    name: 'vm_type',
    args: Object.keys(VM_TYPE),
    about: 'the VM type is in `KVM_CAP_VM_TYPES`',
    check: (p) => (cap(p, CAP.KVM_CAP_VM_TYPES) & (1 << VM_TYPE[p.arg as VmType]) ? undefined : `KVM_CAP_VM_TYPES lacks ${p.arg}`),
    // every private-memory VM type selects KVM_GENERIC_MEMORY_ATTRIBUTES (kvm_supported_mem_attributes)
    implies: (arg) => (arg === 'default' || arg === 'sev' || arg === 'sev_es' ? [] : ['memory_attributes']),
  },
  {
    name: 'guest_memfd',
    about: '`KVM_CAP_GUEST_MEMFD` is not 0 (the kernel has `KVM_CREATE_GUEST_MEMFD`)',
    check: (p) => (cap(p, CAP.KVM_CAP_GUEST_MEMFD) ? undefined : 'KVM_CAP_GUEST_MEMFD is 0'),
  },
  {
    name: 'guest_memfd_flags',
    args: Object.keys(GUEST_MEMFD_FLAGS),
    about: 'the flag is in `KVM_CAP_GUEST_MEMFD_FLAGS`',
    check: (p) =>
      BigInt(cap(p, CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) & GUEST_MEMFD_FLAGS[p.arg as keyof typeof GUEST_MEMFD_FLAGS]
        ? undefined
        : `KVM_CAP_GUEST_MEMFD_FLAGS lacks ${p.arg}`,
    // KVM_CAP_GUEST_MEMFD_FLAGS is 0 without guest_memfd
    implies: () => ['guest_memfd'],
  },
  {
    name: 'memory_attributes',
    about: '`KVM_CAP_MEMORY_ATTRIBUTES` has `PRIVATE`',
    check: (p) => (BigInt(cap(p, CAP.KVM_CAP_MEMORY_ATTRIBUTES)) & KVM_MEMORY_ATTRIBUTE_PRIVATE ? undefined : 'KVM_CAP_MEMORY_ATTRIBUTES lacks PRIVATE'),
  },
  {
    name: 'pre_fault_memory',
    about: '`KVM_CAP_PRE_FAULT_MEMORY` is not 0',
    check: (p) => (cap(p, CAP.KVM_CAP_PRE_FAULT_MEMORY) ? undefined : 'KVM_CAP_PRE_FAULT_MEMORY is 0'),
  },
  {
    name: 'exit_hypercall',
    about: '`KVM_CAP_EXIT_HYPERCALL` has `KVM_HC_MAP_GPA_RANGE`',
    check: (p) => (cap(p, CAP.KVM_CAP_EXIT_HYPERCALL) & (1 << KVM_HC_MAP_GPA_RANGE) ? undefined : 'KVM_CAP_EXIT_HYPERCALL lacks KVM_HC_MAP_GPA_RANGE'),
  },
  {
    name: 'gmem_only_faults',
    about: 'a guest program found that guest_memfd-only slots serve guest faults without a host mapping',
    check(p) {
      if (!cap(p, CAP.KVM_CAP_GUEST_MEMFD_FLAGS)) return 'KVM_CAP_GUEST_MEMFD_FLAGS is 0';
      return !p.guest || p.guest(p.kvm).gmemOnlyFaults ? undefined : 'guest accesses reach memory only through userspace_addr here (guest code is emulated)';
    },
    implies: () => ['guest_memfd'],
  },
  {
    name: 'hypercall_exits',
    about: 'a guest program found that `KVM_HC_MAP_GPA_RANGE` exits to userspace',
    check: (p) => (!p.guest || p.guest(p.kvm).hypercallExits ? undefined : 'KVM_HC_MAP_GPA_RANGE never exits to userspace here'),
  },
  {
    name: 'emulated_guest_access',
    about: 'guest code is emulated through `userspace_addr`, as on PVM',
    check: (p) => (p.guest?.(p.kvm).emulatedAccess ? undefined : 'guest code runs on the CPU here (no emulation through userspace_addr)'),
  },
  {
    name: 'hardware_guest_access',
    about: "guest code is not emulated: the scenario is about KVM's own MMU faults",
    // the scenario is about KVM's MMU faults (hva_to_pfn, SPTE permissions), which PVM's emulator bypasses
    check: (p) => (p.guest?.(p.kvm).emulatedAccess ? 'guest code is emulated here: its accesses go through userspace_addr, not KVM faults' : undefined),
  },
  {
    name: 'address_spaces',
    args: 'N',
    about: 'the kernel has exactly N memslot address spaces (`KVM_CAP_MULTI_ADDRESS_SPACE`)',
    check(p) {
      const n = cap(p, CAP.KVM_CAP_MULTI_ADDRESS_SPACE) || 1;
      return n === Number(p.arg) ? undefined : `this kernel has ${n} memslot address space(s), the scenario is about ${p.arg}`;
    },
  },
  {
    name: 'numa_nodes',
    args: 'N',
    about: 'the host has at least N NUMA nodes',
    check: (p) => (p.numaNodes >= Number(p.arg) ? undefined : `the host has ${p.numaNodes} NUMA node(s), ${p.arg} needed`),
  },
];

const BY_NAME = new Map(REQUIREMENT_TABLE.map((r) => [r.name, r]));

/** Every spelling a scenario may use, `N` standing for a number. */
export const REQUIREMENTS: readonly string[] = REQUIREMENT_TABLE.flatMap((r) =>
  r.args === undefined ? [r.name] : r.args === 'N' ? [`${r.name}:N`] : r.args.map((a) => `${r.name}:${a}`),
);

function parse(req: string): { r: Requirement; arg: string | undefined } | undefined {
  const [name, arg] = req.split(':') as [string, string | undefined];
  const r = BY_NAME.get(name);
  if (!r) return undefined;
  if (r.args === undefined) return arg === undefined ? { r, arg } : undefined;
  if (r.args === 'N') return arg !== undefined && /^\d+$/.test(arg) ? { r, arg } : undefined;
  return arg !== undefined && r.args.includes(arg) ? { r, arg } : undefined;
}

export const isRequirement = (req: string): boolean => parse(req) !== undefined;

/** The entries that hold when `req` does, itself included. */
export function implied(req: string): string[] {
  const p = parse(req);
  if (!p) return [req];
  return [req, ...(p.r.implies?.(p.arg) ?? []).flatMap(implied)];
}

/** Why the backend lacks `req`, or undefined when it has it. */
export function unmetRequirement(kvm: Kvm, req: string, numaNodes: number, guest?: (kvm: Kvm) => GuestFacts): string | undefined {
  const p = parse(req);
  if (!p) throw new ScenarioError(`requires: unknown requirement '${req}'`);
  return p.r.check({ kvm, arg: p.arg, numaNodes, guest });
}
