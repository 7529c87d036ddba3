/**
 * Raw libc calls through koffi: every function returns what the C call returns (a number, or a
 * bigint for pointers and 64-bit results) and leaves errno to `sys.errno()`, read right after the
 * call (koffi saves errno per thread after each call, so nothing may run in between). Nothing here
 * throws for a failed syscall and nothing interprets an errno: the typed objects above do that.
 *
 * Buffer rules, the same for every call taking a `Uint8Array`: koffi passes a pointer to the
 * array's own memory for the duration of the call only, so the kernel reads and writes it in place
 * and nothing keeps the pointer afterwards. Pass a reused buffer on hot paths; never pass koffi
 * struct objects (PERFORMANCE.md §5: +1.7 µs per call).
 *
 * koffi is loaded lazily (createRequire), so that importing src/kvm/ on a machine without koffi's
 * native binary still lets `kvmAvailable()` report why instead of failing at import time.
 */
import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

type Koffi = typeof KoffiModule.default;
// biome-ignore lint/suspicious/noExplicitAny: koffi's function objects are untyped by nature
type Fn = (...args: any[]) => any;

/** MAP_FAILED as koffi returns it: (void *)-1 read as an unsigned pointer. */
export const MAP_FAILED = 0xffffffffffffffffn;

/** x86-64 `struct stat` (asm/stat.h): 144 bytes. */
export const STAT_SIZE = 144;
/** `struct iovec`: void *iov_base; size_t iov_len. */
export const IOVEC_SIZE = 16;

export interface RawStat {
  dev: bigint;
  ino: bigint;
  nlink: bigint;
  mode: number;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
}

/** Decode x86-64 struct stat: st_dev@0, st_ino@8, st_nlink@16, st_mode@24, st_size@48, st_blksize@56, st_blocks@64. */
export function decodeStat(buf: Uint8Array): RawStat {
  const v = new DataView(buf.buffer, buf.byteOffset, STAT_SIZE);
  return {
    dev: v.getBigUint64(0, true),
    ino: v.getBigUint64(8, true),
    nlink: v.getBigUint64(16, true),
    mode: v.getUint32(24, true),
    size: v.getBigInt64(48, true),
    blksize: v.getBigInt64(56, true),
    blocks: v.getBigInt64(64, true),
  };
}

/** glibc's x86-64 `struct sigaction`: sa_handler, sa_mask (128 bytes), sa_flags, sa_restorer. */
export const SIGACTION_SIZE = 152;
export const SIGACTION = { handler: 0, mask: 8, flags: 136, restorer: 144 } as const;

/** x86-64 syscall numbers (asm/unistd_64.h) for calls glibc does not wrap. */
const SYS_mbind = 237;
const SYS_get_mempolicy = 239;
const SYS_move_pages = 279;

/** int64_t arguments: u64 values from the API boundary keep their bit pattern (2^64-1 -> -1). */
const i64 = (v: bigint): bigint => BigInt.asIntN(64, v);
/** size_t / unsigned long arguments. */
const u64 = (v: bigint | number): bigint => BigInt.asUintN(64, BigInt(v));
/** koffi returns 64-bit integers as numbers when they are safe integers, else as bigint. */
const big = (v: number | bigint): bigint => (typeof v === 'bigint' ? v : BigInt(v));

export interface Sys {
  readonly koffi: Koffi;
  /** errno of the last call made through koffi on this thread. */
  errno(): number;

  /** open(2). The path string is copied by koffi for the call. */
  open(path: string, flags: number, mode?: number): number;
  /** close(2). */
  close(fd: number): number;
  /** ioctl(2) whose argument is a value (KVM_CREATE_VM type, KVM_CHECK_EXTENSION cap, KVM_RUN 0). */
  ioctlVal(fd: number, request: number, arg: number | bigint): number;
  /**
   * ioctl(2) whose argument is a pointer to `buf` (or NULL). The kernel reads and writes `buf` in
   * place during the call; the caller keeps ownership.
   */
  ioctlPtr(fd: number, request: number, buf: Uint8Array | null): number;
  /**
   * mmap(2). Returns the address as a bigint, MAP_FAILED on error. The mapping is owned by whoever
   * called this until munmap; views made on it (`view`) are valid only until then.
   */
  mmap(addr: bigint, length: bigint, prot: number, flags: number, fd: number, offset: bigint): bigint;
  /** munmap(2). Every view on the range becomes a dangling pointer: drop them first. */
  munmap(addr: bigint, length: bigint): number;
  /** madvise(2) on [addr, addr+length): the caller must own the whole range. */
  madvise(addr: bigint, length: bigint, advice: number): number;
  /** fallocate(2); offset and len are passed as signed loff_t, bit pattern preserved. */
  fallocate(fd: number, mode: number, offset: bigint, len: bigint): number;
  /** read(2) into buf[0, count): count must not exceed buf.length. */
  read(fd: number, buf: Uint8Array, count: number): number;
  /** write(2) from buf[0, count). */
  write(fd: number, buf: Uint8Array, count: number): number;
  /** pread(2) into buf[0, count). */
  pread(fd: number, buf: Uint8Array, count: number, offset: bigint): number;
  /** pwrite(2) from buf[0, count). */
  pwrite(fd: number, buf: Uint8Array, count: number, offset: bigint): number;
  /** lseek(2); -1n on error. */
  lseek(fd: number, offset: bigint, whence: number): bigint;
  /** ftruncate(2). */
  ftruncate(fd: number, length: bigint): number;
  /** fstat(2) into buf (STAT_SIZE bytes); decode with decodeStat. */
  fstat(fd: number, buf: Uint8Array): number;
  /** stat(2) (follows symlinks, so /proc/self/map_files/... gives the mapped file). */
  stat(path: string, buf: Uint8Array): number;
  /** readlink(2) into buf; returns the length (no NUL terminator). */
  readlink(path: string, buf: Uint8Array, size: number): number;
  /** dup(2). */
  dup(fd: number): number;
  /** memfd_create(2). */
  memfdCreate(name: string, flags: number): number;
  getpid(): number;
  gettid(): number;
  /**
   * process_vm_readv(2)/process_vm_writev(2) on this process: `local` and `remote` are arrays of
   * struct iovec holding raw addresses the caller owns for the duration of the call. The kernel
   * copies through get_user_pages, so an address whose fault would raise SIGBUS ends the copy with
   * a short count or -1/EFAULT instead of a signal.
   */
  processVmReadv(pid: number, local: Uint8Array, lcount: number, remote: Uint8Array, rcount: number): bigint;
  processVmWritev(pid: number, local: Uint8Array, lcount: number, remote: Uint8Array, rcount: number): bigint;
  /** pthread_sigmask(3) with glibc's 128-byte sigset_t buffers; returns an errno, not -1. */
  pthreadSigmask(how: number, set: Uint8Array | null, old: Uint8Array | null): number;
  /** timer_create(2); the timer id is written to idOut (8 bytes, glibc timer_t). */
  timerCreate(clock: number, sigevent: Uint8Array, idOut: Uint8Array): number;
  /** timer_settime(2) with 32-byte struct itimerspecs; the previous setting is written to `old`. */
  timerSettime(id: bigint, flags: number, spec: Uint8Array, old: Uint8Array | null): number;
  timerDelete(id: bigint): number;
  /** sigtimedwait(2): consume one pending signal of `set` (128-byte sigset_t); timeout is a timespec. */
  sigtimedwait(set: Uint8Array, timeout: Uint8Array): number;
  /** sigpending(2): the signals pending for this thread or the process, into a 128-byte sigset_t. */
  sigpending(set: Uint8Array): number;
  /**
   * sigaction(2) with glibc's x86-64 struct sigaction (SIGACTION_SIZE bytes: sa_handler @0,
   * sa_mask @8, sa_flags @136, sa_restorer @144); glibc supplies the restorer itself.
   */
  sigaction(sig: number, act: Uint8Array | null, old: Uint8Array | null): number;
  /** dlsym(RTLD_DEFAULT, name): the address of a symbol of the process, 0n if there is none. */
  dlsym(name: string): bigint;
  /** pipe2(2): the two fds are written to fds (2 ints). */
  pipe2(fds: Uint8Array, flags: number): number;
  /** mbind(2) (no glibc wrapper: raw syscall); nodemask is a bitmap of maxnode-1 bits, read in place. */
  mbind(addr: bigint, length: bigint, mode: number, nodemask: Uint8Array, maxnode: number, flags: number): number;
  /** get_mempolicy(2); mode (4 bytes) and nodemask (maxnode-1 bits) are written in place. */
  getMempolicy(mode: Uint8Array, nodemask: Uint8Array, maxnode: number, addr: bigint, flags: number): number;
  /** move_pages(2) on this process: `pages` holds count addresses, `status` gets count ints. */
  movePages(count: number, pages: Uint8Array, nodes: Uint8Array | null, status: Uint8Array, flags: number): number;
  /**
   * A zero-copy ArrayBuffer over [addr, addr+len) of a live mapping. Valid until that mapping is
   * unmapped; a view used after munmap touches freed address space and can kill the process, so
   * views never leave the object that owns the mapping.
   */
  view(addr: bigint, len: number): ArrayBuffer;
}

let loaded: Sys | undefined;
let loadError: Error | undefined;

/** The libc bindings, loaded on first use. Throws if koffi or libc cannot be loaded. */
export function sys(): Sys {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  try {
    loaded = bind();
    return loaded;
  } catch (e) {
    loadError = e instanceof Error ? e : new Error(String(e));
    throw loadError;
  }
}

function bind(): Sys {
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as Koffi;
  const libc = koffi.load('libc.so.6');
  const f = (decl: string): Fn => libc.func(decl) as Fn;

  const open = f('int open(const char *path, int flags, unsigned int mode)');
  const close = f('int close(int fd)');
  // glibc's ioctl is variadic; x86-64 SysV passes a third integer or pointer argument the same way
  // either way, so two fixed-arity aliases avoid koffi's slower variadic path.
  const ioctlVal = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as Fn;
  const ioctlPtr = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as Fn;
  const mmap = f('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
  const munmap = f('int munmap(void *addr, size_t len)');
  const madvise = f('int madvise(void *addr, size_t len, int advice)');
  const fallocate = f('int fallocate(int fd, int mode, int64_t off, int64_t len)');
  const read = f('int64_t read(int fd, void *buf, size_t count)');
  const write = f('int64_t write(int fd, void *buf, size_t count)');
  const pread = f('int64_t pread64(int fd, void *buf, size_t count, int64_t off)');
  const pwrite = f('int64_t pwrite64(int fd, void *buf, size_t count, int64_t off)');
  const lseek = f('int64_t lseek(int fd, int64_t off, int whence)');
  const ftruncate = f('int ftruncate(int fd, int64_t len)');
  const fstat = f('int fstat(int fd, void *buf)');
  const stat = f('int stat(const char *path, void *buf)');
  const readlink = f('int64_t readlink(const char *path, void *buf, size_t size)');
  const dup = f('int dup(int fd)');
  const memfdCreate = f('int memfd_create(const char *name, unsigned int flags)');
  const getpid = f('int getpid(void)');
  const gettid = f('int gettid(void)');
  const pvr = f('int64_t process_vm_readv(int pid, void *local, unsigned long lc, void *remote, unsigned long rc, unsigned long flags)');
  const pvw = f('int64_t process_vm_writev(int pid, void *local, unsigned long lc, void *remote, unsigned long rc, unsigned long flags)');
  const sigmask = f('int pthread_sigmask(int how, void *set, void *old)');
  // timer_t is glibc's opaque pointer-sized id; declaring it as intptr_t keeps it a plain integer.
  const timerCreate = f('int timer_create(int clock, void *sevp, void *timerid)');
  const timerSettime = f('int timer_settime(intptr_t timerid, int flags, void *nv, void *ov)');
  const timerDelete = f('int timer_delete(intptr_t timerid)');
  const sigtimedwait = f('int sigtimedwait(void *set, void *info, void *timeout)');
  const sigpending = f('int sigpending(void *set)');
  const sigaction = f('int sigaction(int sig, void *act, void *old)');
  const pipe2 = f('int pipe2(void *fds, int flags)');
  // dlsym moved into libc.so.6 with glibc 2.34; older glibc has it in libdl.so.2 only.
  let dlsymFn: Fn;
  try {
    dlsymFn = f('void *dlsym(void *handle, const char *name)');
  } catch {
    dlsymFn = koffi.load('libdl.so.2').func('void *dlsym(void *handle, const char *name)') as Fn;
  }
  // The NUMA calls have no glibc wrappers: fixed-arity aliases of syscall(2), one per shape.
  const mbind = libc.func('syscall', 'long', ['long', 'unsigned long', 'unsigned long', 'unsigned long', 'void *', 'unsigned long', 'unsigned long']) as Fn;
  const getMempolicy = libc.func('syscall', 'long', ['long', 'void *', 'void *', 'unsigned long', 'unsigned long', 'unsigned long']) as Fn;
  const movePages = libc.func('syscall', 'long', ['long', 'long', 'unsigned long', 'void *', 'void *', 'void *', 'long']) as Fn;

  return {
    koffi,
    errno: () => koffi.errno(),
    open: (path, flags, mode = 0) => open(path, flags, mode),
    close: (fd) => close(fd),
    ioctlVal: (fd, request, arg) => ioctlVal(fd, request, u64(arg)),
    ioctlPtr: (fd, request, buf) => ioctlPtr(fd, request, buf),
    mmap: (addr, length, prot, flags, fd, offset) => big(mmap(addr === 0n ? null : addr, u64(length), prot, flags, fd, i64(offset))),
    munmap: (addr, length) => munmap(addr, u64(length)),
    madvise: (addr, length, advice) => madvise(addr, u64(length), advice),
    fallocate: (fd, mode, offset, len) => fallocate(fd, mode, i64(offset), i64(len)),
    read: (fd, buf, count) => Number(read(fd, buf, count)),
    write: (fd, buf, count) => Number(write(fd, buf, count)),
    pread: (fd, buf, count, offset) => Number(pread(fd, buf, count, i64(offset))),
    pwrite: (fd, buf, count, offset) => Number(pwrite(fd, buf, count, i64(offset))),
    lseek: (fd, offset, whence) => big(lseek(fd, i64(offset), whence)),
    ftruncate: (fd, length) => ftruncate(fd, i64(length)),
    fstat: (fd, buf) => fstat(fd, buf),
    stat: (path, buf) => stat(path, buf),
    readlink: (path, buf, size) => Number(readlink(path, buf, size)),
    dup: (fd) => dup(fd),
    memfdCreate: (name, flags) => memfdCreate(name, flags),
    getpid: () => getpid(),
    gettid: () => gettid(),
    processVmReadv: (pid, local, lc, remote, rc) => big(pvr(pid, local, lc, remote, rc, 0)),
    processVmWritev: (pid, local, lc, remote, rc) => big(pvw(pid, local, lc, remote, rc, 0)),
    pthreadSigmask: (how, set, old) => sigmask(how, set, old),
    timerCreate: (clock, sev, idOut) => timerCreate(clock, sev, idOut),
    timerSettime: (id, flags, spec, old) => timerSettime(id, flags, spec, old),
    timerDelete: (id) => timerDelete(id),
    sigtimedwait: (set, timeout) => sigtimedwait(set, null, timeout),
    sigpending: (set) => sigpending(set),
    sigaction: (sig, act, old) => sigaction(sig, act, old),
    // RTLD_DEFAULT is ((void *) 0) in glibc: search the global scope of the process
    dlsym: (name) => {
      const p = dlsymFn(null, name) as number | bigint | null;
      return p === null ? 0n : big(p);
    },
    pipe2: (fds, flags) => pipe2(fds, flags),
    mbind: (addr, length, mode, nodemask, maxnode, flags) => Number(mbind(SYS_mbind, addr, u64(length), mode, nodemask, maxnode, flags)),
    getMempolicy: (mode, nodemask, maxnode, addr, flags) => Number(getMempolicy(SYS_get_mempolicy, mode, nodemask, maxnode, addr, flags)),
    movePages: (count, pages, nodes, status, flags) => Number(movePages(SYS_move_pages, 0, count, pages, nodes, status, flags)),
    view: (addr, len) => koffi.view(addr, len),
  };
}
