/**
 * Known, intended differences between the model and the live kernel, each with its reason. Every
 * outcome passes through these masks before comparison; nothing else is ever ignored.
 */
export interface KnownDivergence {
  id: string;
  reason: string;
  /** rewrite an outcome string so that the intended difference disappears */
  mask(got: string): string;
}

export const KNOWN_DIVERGENCES: readonly KnownDivergence[] = [
  {
    id: 'fd-numbers',
    reason:
      'fd numbers depend on what else the process holds open: the model process starts with fds 0-2 only, the Node process running the kvm backend holds many more. Both hand out the lowest free number; only the numbering base differs.',
    mask: (got) => got.replace(/^ok fd \d+$/, 'ok fd #'),
  },
];

/**
 * Guest accesses the tester does not compare, with the reason. They are skipped on both sides (not
 * run), counted, and reported; nothing else is ever left out.
 */
export const UNCOMPARED_ACCESSES = {
  id: 'hva-not-ours',
  reason:
    "a guest access through a memslot's userspace_addr where the slot's own mapping is not (munmapped, or the slot is larger than it): what the host has there depends on the process's address-space layout (the Node process running the kvm backend maps far more than the model's process), so the outcomes cannot be compared",
} as const;

export function normalize(got: string): string {
  let g = got;
  for (const d of KNOWN_DIVERGENCES) g = d.mask(g);
  return g;
}

/**
 * Setting an existing slot again: the kernel takes it as a no-op only when userspace_addr is the
 * slot's own (kvm_set_memory_region: a changed userspace_addr of an existing slot is EINVAL).
 * Whether a mapping made since landed at the old one's address is the process's address-space
 * layout (the Node process running the kvm backend maps and unmaps far more than the model's), so
 * where that equality differs between the two sides the step runs on both and is not compared.
 */
export const UNCOMPARED_SLOT_ADDRESS = {
  id: 'userspace-addr-layout',
  reason:
    "KVM_SET_USER_MEMORY_REGION(2) on an existing slot where its userspace_addr equals the slot's own on one side and not on the other: a new mapping reusing a freed address is the process's layout, not a kernel rule",
} as const;

/** What a report says was left out, by id. */
export const UNCOMPARED_IDS = `${UNCOMPARED_ACCESSES.id}, ${UNCOMPARED_SLOT_ADDRESS.id}`;
