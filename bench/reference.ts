/**
 * The kernel's C figures for operations this host cannot run (its /dev/kvm has no guest_memfd): the
 * medians of the shared perf probes (`perf-probes/results/`, bench_host.c, bench_guest.c and the C half
 * of run_ffi_pair.sh), measured on 6.18.44 (PVM) on 2026-11-24 when that kernel still had guest_memfd.
 * Copied here, not read at bench time, so the benchmark runs from a clone alone.
 */
export const C_REF_SOURCE = 'perf-probes/results/ (Linux 6.18.44 PVM with guest_memfd, 2026-11-24)';

/** ns per operation */
export const C_REF = {
  /** KVM_CREATE_GUEST_MEMFD 2M MMAP|INIT_SHARED + close (ffi_pair.txt, C median) */
  gmemCreateClose: 3912.1,
  /** fallocate alloc+punch one 4K page (ffi_pair.txt, C median) */
  allocPunch4k: 5153.9,
  /** one 1 GiB fallocate alloc, 155.131 ms, per 2 MiB (bench_host.txt) */
  alloc2m: 155.131e6 / 512,
  /** host first touch via mmap(gmem), per 4K page (ffi_pair.txt, C median) */
  hostFirstTouch: 2225.5,
  /** long-mode guest, gmem(MMAP|INIT_SHARED) slot: first touch, incl. the emulated loop (bench_guest.txt) */
  guestFirstTouch: 5273.3,
  /** SET_USER_MEMORY_REGION2 create+delete 2M gmem slot (ffi_pair.txt, C min) */
  slotCreateDeleteMin: 26421.8,
  /** KVM_RUN round trip, OUT exit, long-mode guest (ffi_pair.txt, C median) */
  runExit: 7452.1,
} as const;
