/**
 * A real host mapping (mmap) behind the HostMapping interface, reached through koffi.view. A host
 * load or store that the kernel answers with SIGBUS kills Node (STYLE-AND-STACK B5), so no byte is
 * touched unless the mapping knows the access is safe:
 *
 * - Outside the mapping, after unmap, or against its protection: HostFault('SIGSEGV') before
 *   anything is touched (the model's host.ts makes the same checks, so both backends agree).
 * - Anonymous memory never faults.
 * - A guest_memfd whose size and flags are known (created through this backend) follows
 *   kvm_gmem_fault_user_mapping (KERNEL-SPEC D5): a page at file offset >= i_size faults, and
 *   without GUEST_MEMFD_FLAG_INIT_SHARED every page faults. The size cannot change (ftruncate on a
 *   gmem is EINVAL), so the prediction is exact.
 * - Anything else (a regular file or memfd whose size can change, a gmem of unknown flags, a
 *   device) is accessed *kernel-checked*: process_vm_readv/process_vm_writev on our own address,
 *   which fault pages in through get_user_pages. A page the fault handler refuses ends the copy
 *   with a short count (or EFAULT) instead of a signal, at page granularity, in address order.
 *
 * Either way the access proceeds in address order like memcpy/memset: the pages before the first
 * faulting one are read or written (and thereby faulted in), then HostFault('SIGBUS') is thrown at
 * the first byte of the faulting page (or at `offset` if that page is the first one).
 */
import { HostFault, type HostMapping, hostAccessFault, KvmError } from '../api.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MPOL_F_ADDR, PAGE_SIZE_N, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { ERRNO } from '../uapi/errno.js';
import { adoptMapping, releaseMapping } from './fd-table.js';
import { type GmemRef, releaseGmem } from './known-files.js';
import { IOVEC_SIZE, MAP_FAILED, sys } from './sys.js';

export type Backing =
  | { readonly kind: 'anon' }
  /** a guest_memfd of known size and flags; `fileOffset` is the mmap offset */
  | { readonly kind: 'gmem'; readonly ref: GmemRef; readonly fileOffset: bigint; readonly initShared: boolean }
  /** a regular file or memfd: its size can change under the mapping */
  | { readonly kind: 'file' }
  | { readonly kind: 'unknown' };

/** How a mapping decides whether a page may be touched. */
export type AccessMode = 'direct' | 'predicted' | 'kernel-checked';

/** Copy through a bounce buffer this big at a time on the kernel-checked path. */
const BOUNCE = 1 << 20;

export class KvmMapping implements HostMapping {
  readonly addr: bigint;
  readonly length: bigint;
  readonly prot: number;
  readonly flags: number;
  /** the length rounded up to whole pages: what the kernel maps */
  readonly span: bigint;
  readonly backing: Backing;
  private unmapped = false;
  private readonly onUnmap: ((m: KvmMapping) => void) | undefined;

  constructor(addr: bigint, length: bigint, prot: number, flags: number, backing: Backing, onUnmap?: (m: KvmMapping) => void) {
    this.addr = addr;
    this.length = length;
    this.prot = prot;
    this.flags = flags;
    this.span = (length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
    this.backing = backing;
    this.onUnmap = onUnmap;
    adoptMapping(addr, this.span, this);
  }

  /** mmap(2) and wrap the result; throws KvmError('mmap', errno) on failure. */
  static map(
    length: bigint,
    prot: number,
    flags: number,
    fd: number,
    offset: bigint,
    backing: (addr: bigint) => Backing,
    onUnmap?: (m: KvmMapping) => void,
  ): KvmMapping {
    const s = sys();
    const addr = s.mmap(0n, length, prot, flags, fd, offset);
    if (addr === MAP_FAILED) throw new KvmError('mmap', s.errno());
    let b: Backing;
    try {
      b = backing(addr);
    } catch (e) {
      s.munmap(addr, length);
      throw e;
    }
    return new KvmMapping(addr, length, prot, flags, b, onUnmap);
  }

  get isMapped(): boolean {
    return !this.unmapped;
  }

  get accessMode(): AccessMode {
    const k = this.backing.kind;
    return k === 'anon' ? 'direct' : k === 'gmem' ? 'predicted' : 'kernel-checked';
  }

  read(offset: bigint, len: number): Uint8Array {
    this.check(offset, len, false);
    if (len === 0) return new Uint8Array(0);
    if (this.accessMode === 'kernel-checked') return this.readChecked(offset, len);
    const bad = this.firstFault(offset, BigInt(len));
    const ok = bad === undefined ? len : Number(bad.at - offset);
    // Copy out of the view at once: the view dies with the mapping, the copy does not.
    const out = ok > 0 ? new Uint8Array(sys().view(this.addr + offset, ok)).slice() : new Uint8Array(0);
    if (bad) throw new HostFault('SIGBUS', this.addr + bad.at, bad.at, bad.reason);
    return out;
  }

  write(offset: bigint, data: Uint8Array): void {
    this.check(offset, data.length, true);
    if (data.length === 0) return;
    if (this.accessMode === 'kernel-checked') {
      this.writeChecked(offset, data);
      return;
    }
    const bad = this.firstFault(offset, BigInt(data.length));
    const ok = bad === undefined ? data.length : Number(bad.at - offset);
    if (ok > 0) new Uint8Array(sys().view(this.addr + offset, ok)).set(data.subarray(0, ok));
    if (bad) throw new HostFault('SIGBUS', this.addr + bad.at, bad.at, bad.reason);
  }

  madvise(offset: bigint, length: bigint, advice: number): void {
    // The real range must stay inside this mapping: madvise beyond it would act on whatever else
    // the process has mapped there (MADV_DONTNEED on Node's heap). The model answers the same way.
    if (offset < 0n || offset % PAGE_SIZE_N !== 0n) throw new KvmError('madvise', 'EINVAL', 'start not page aligned');
    const end = offset + ((length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n));
    if (this.unmapped || end > this.span) throw new KvmError('madvise', 'ENOMEM', 'range not fully mapped');
    const s = sys();
    if (s.madvise(this.addr + offset, length, advice) < 0) throw new KvmError('madvise', s.errno());
  }

  /**
   * mbind(2). A range outside this mapping is never passed to the kernel (it would change the
   * policy of whatever else is mapped there): the kernel still validates mode and nodemask (a
   * zero-length call), then the answer is EFAULT, as the model gives.
   */
  mbind(offset: bigint, length: bigint, mode: number, nodemask: bigint): void {
    const s = sys();
    const mask = nodemaskBuf(nodemask);
    if (offset < 0n) throw new KvmError('mbind', 'EINVAL', 'start below the mapping');
    const end = offset + ((length + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n));
    if (this.unmapped || end > this.span) {
      if (s.mbind(this.addr, 0n, mode, mask, NODEMASK_BITS + 1, 0) < 0) throw new KvmError('mbind', s.errno());
      throw new KvmError('mbind', 'EFAULT', 'range not fully mapped');
    }
    if (s.mbind(this.addr + offset, length, mode, mask, NODEMASK_BITS + 1, 0) < 0) throw new KvmError('mbind', s.errno());
  }

  /** get_mempolicy(2) with MPOL_F_ADDR: the policy that governs the page at `offset`. */
  getMempolicy(offset: bigint): { mode: number; nodemask: bigint } {
    if (this.unmapped || offset < 0n || offset >= this.span) throw new KvmError('get_mempolicy', 'EFAULT', 'address not mapped');
    const s = sys();
    const mode = new Uint8Array(4);
    const mask = new Uint8Array(NODEMASK_BITS / 8);
    if (s.getMempolicy(mode, mask, NODEMASK_BITS + 1, this.addr + offset, MPOL_F_ADDR) < 0) throw new KvmError('get_mempolicy', s.errno());
    return { mode: new DataView(mode.buffer).getInt32(0, true), nodemask: new DataView(mask.buffer).getBigUint64(0, true) };
  }

  /** move_pages(2) as a query: each page's node, -ENOENT (not present), -EFAULT outside the mapping. */
  pageNodes(offset: bigint, count: number): number[] {
    const out: number[] = new Array<number>(count).fill(-14);
    const inside: number[] = [];
    for (let i = 0; i < count; i++) {
      const at = offset + BigInt(i) * PAGE_SIZE_N;
      if (!this.unmapped && at >= 0n && at < this.span) inside.push(i);
    }
    if (inside.length === 0) return out;
    const pages = new Uint8Array(8 * inside.length);
    const pv = new DataView(pages.buffer);
    inside.forEach((i, k) => {
      pv.setBigUint64(8 * k, this.addr + offset + BigInt(i) * PAGE_SIZE_N, true);
    });
    const status = new Uint8Array(4 * inside.length);
    const s = sys();
    if (s.movePages(inside.length, pages, null, status, 0) < 0) throw new KvmError('move_pages', s.errno());
    const sv = new DataView(status.buffer);
    inside.forEach((i, k) => {
      out[i] = sv.getInt32(4 * k, true);
    });
    return out;
  }

  unmap(): void {
    if (this.unmapped) return;
    this.unmapped = true;
    const err = releaseMapping(this.addr);
    if (this.backing.kind === 'gmem') releaseGmem(this.backing.ref);
    this.onUnmap?.(this);
    if (err !== 0) throw new KvmError('munmap', err);
  }

  /** The same as unmap(): lets a session release mappings and files alike. */
  close(): void {
    this.unmap();
  }

  private check(offset: bigint, len: number, write: boolean): void {
    if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`access length ${len}`);
    const fault = hostAccessFault(this.addr, this.span, this.prot, this.unmapped, offset, len, write);
    if (fault) throw fault;
  }

  /**
   * The first byte of [offset, offset+len) whose page the kernel would refuse, by the rules of the
   * backing (only called for 'direct' and 'predicted' mappings).
   */
  private firstFault(offset: bigint, len: bigint): { at: bigint; reason: string } | undefined {
    const b = this.backing;
    if (b.kind !== 'gmem') return undefined;
    if (!b.initShared) {
      return { at: offset, reason: 'guest_memfd without GUEST_MEMFD_FLAG_INIT_SHARED: every host fault is SIGBUS (kvm_gmem_fault_user_mapping)' };
    }
    // kvm_gmem_fault_user_mapping: (pgoff << PAGE_SHIFT) >= i_size -> VM_FAULT_SIGBUS. The size is
    // fixed, so the first page at or past it decides: every later page is past it too.
    const size = b.ref.info.size;
    const first = offset / PAGE_SIZE_N;
    const last = (offset + len - 1n) / PAGE_SIZE_N;
    const limit = size > b.fileOffset ? (size - b.fileOffset + PAGE_SIZE_N - 1n) / PAGE_SIZE_N : 0n;
    const page = limit > first ? limit : first;
    if (page > last) return undefined;
    const fileOff = b.fileOffset + page * PAGE_SIZE_N;
    return {
      at: page === first ? offset : page * PAGE_SIZE_N,
      reason: `file offset 0x${fileOff.toString(16)} >= i_size 0x${size.toString(16)} (kvm_gmem_fault_user_mapping)`,
    };
  }

  private readChecked(offset: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.copyChecked(offset, len, 'read', (bounce, done, n) => out.set(bounce.subarray(0, n), done));
    return out;
  }

  private writeChecked(offset: bigint, data: Uint8Array): void {
    this.copyChecked(offset, data.length, 'write', (bounce, done, n) => bounce.set(data.subarray(done, done + n)));
  }

  /**
   * Copy `len` bytes at `offset` through process_vm_readv/writev on our own address space, in
   * chunks through an anonymous bounce buffer: a page the kernel refuses ends the copy short
   * instead of raising a signal. `chunk` moves bytes between the bounce buffer (valid only during
   * the call) and the caller's data: after the read for reads, before the write for writes; for a
   * short read it is called with the bytes that did arrive.
   */
  private copyChecked(offset: bigint, len: number, dir: 'read' | 'write', chunk: (bounce: Uint8Array, done: number, n: number) => void): void {
    const s = sys();
    const size = Math.min(len, BOUNCE);
    const buf = s.mmap(0n, BigInt(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
    if (buf === MAP_FAILED) throw new KvmError('mmap', s.errno(), 'bounce buffer');
    try {
      const local = new Uint8Array(IOVEC_SIZE);
      const remote = new Uint8Array(IOVEC_SIZE);
      const lv = new DataView(local.buffer);
      const rv = new DataView(remote.buffer);
      const op = dir === 'read' ? 'process_vm_readv' : 'process_vm_writev';
      for (let done = 0; done < len; ) {
        const n = Math.min(size, len - done);
        const at = offset + BigInt(done);
        if (dir === 'write') chunk(new Uint8Array(s.view(buf, n)), done, n);
        lv.setBigUint64(0, buf, true);
        lv.setBigUint64(8, BigInt(n), true);
        rv.setBigUint64(0, this.addr + at, true);
        rv.setBigUint64(8, BigInt(n), true);
        const r = dir === 'read' ? s.processVmReadv(s.getpid(), local, 1, remote, 1) : s.processVmWritev(s.getpid(), local, 1, remote, 1);
        const moved = r < 0n ? this.checkedError(op) : Number(r);
        if (dir === 'read' && moved > 0) chunk(new Uint8Array(s.view(buf, moved)), done, moved);
        if (moved < n) throw this.kernelFault(at + BigInt(moved));
        done += n;
      }
    } finally {
      s.munmap(buf, BigInt(size));
    }
  }

  /** EFAULT from a kernel-checked copy is a refused fault at the first byte; anything else is an error. */
  private checkedError(op: string): number {
    const e = sys().errno();
    if (e === ERRNO.EFAULT) return 0;
    throw new KvmError(op, e);
  }

  private kernelFault(at: bigint): HostFault {
    return new HostFault('SIGBUS', this.addr + at, at, 'the kernel refused the page fault (get_user_pages returned EFAULT)');
  }
}

/** Node masks passed to and from the kernel hold this many bits (far above any nr_node_ids). */
const NODEMASK_BITS = 1024;

function nodemaskBuf(mask: bigint): Uint8Array {
  const buf = new Uint8Array(NODEMASK_BITS / 8);
  const v = new DataView(buf.buffer);
  for (let i = 0; i < NODEMASK_BITS / 64; i++) v.setBigUint64(8 * i, BigInt.asUintN(64, mask >> BigInt(64 * i)), true);
  return buf;
}
