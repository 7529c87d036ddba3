/** The planted bugs the self-test must find, each a rule of the kernel broken on purpose. */
import type { PlantedBug } from '../model/index.js';

export const MUTANTS: readonly { bug: PlantedBug; rule: string }[] = [
  { bug: 'punch-without-invalidation', rule: 'kvm_gmem_punch_hole: invalidate KVM mappings before truncating (H6)' },
  { bug: 'bind-without-overlap-check', rule: 'kvm_gmem_bind: a file range may back one memslot only (E7.5)' },
  { bug: 'fallocate-check-order', rule: 'kvm_gmem_fallocate: mode checks (EOPNOTSUPP) before alignment (EINVAL) (C1-C3)' },
  { bug: 'mmap-without-mmap-flag', rule: 'kvm_gmem_mmap: ENODEV without GUEST_MEMFD_FLAG_MMAP (D2)' },
];
