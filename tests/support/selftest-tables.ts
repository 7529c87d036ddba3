/** Tables from the kernel's own selftests, shared by the model and kvm suites so both check the same cases. */

const PS = 4096n;

/** guest_memfd_test.c test_invalid_punch_hole (GM-12): every (offset, len) is EINVAL. */
export const INVALID_PUNCH_HOLE: readonly (readonly [bigint, bigint])[] = [
  [0n, 1n],
  [0n, PS - 1n],
  [0n, PS + 1n],
  [1n, 1n],
  [1n, PS - 1n],
  [1n, PS],
  [1n, PS + 1n],
  [PS, 1n],
  [PS, PS - 1n],
  [PS, PS + 1n],
];
