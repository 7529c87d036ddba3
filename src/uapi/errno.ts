/**
 * Linux errno numbers (x86-64, asm-generic/errno-base.h and errno.h) for every errno guestmem
 * produces or compares. Names are the public currency: `KvmError.errno` carries the name, `code`
 * the number, exactly as the kernel would have returned `-code`.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  /** KVM_TDX_INIT_VM / KVM_TDX_CAPABILITIES: a CPUID array of the wrong size (confidential computing) */
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  ERANGE: 34,
  ENOSYS: 38,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  EHWPOISON: 133,
} as const;

export type ErrnoName = keyof typeof ERRNO;

/**
 * What `KvmError.errno` holds: a known errno name, or `E<number>` for a number guestmem has no name
 * for (the kvm backend passes the kernel's errno through untouched). A typo in a comparison
 * (`e.errno === 'EINVALL'`) is a type error.
 */
export type KvmErrno = ErrnoName | `E${number}`;

const BY_NUMBER = new Map<number, ErrnoName>((Object.entries(ERRNO) as [ErrnoName, number][]).map(([name, code]) => [code, name]));

/** The name of an errno number, or `E<number>` for one guestmem has no name for. */
export function errnoName(code: number): KvmErrno {
  return BY_NUMBER.get(code) ?? `E${code}`;
}

export function isErrnoName(s: string): s is ErrnoName {
  return Object.hasOwn(ERRNO, s);
}

/** Hypercall return codes the guest sees in RAX (include/uapi/linux/kvm_para.h). */
export const KVM_ENOSYS = 1000;
export const KVM_EINVAL = 22;
