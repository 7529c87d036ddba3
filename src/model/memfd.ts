/**
 * A plain memfd (memfd_create(2) over shmem): readable, writable, seekable, resizable, mappable. It is
 * the "not a guest_memfd" file of the binding checks (kvm_gmem_bind: f_op != &kvm_gmem_fops ->
 * EINVAL), and the host memory that the fd-based design started from.
 */
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, PAGE_SIZE, PAGE_SIZE_N } from '../uapi/constants.js';
import { fail } from './fail.js';
import { type FaultResult, type FMode, type MmapBacking, ModelFile, type StatFields } from './file.js';
import type { HostMm } from './host.js';
import { nodeFor, type Policy, PolicyMap } from './mempolicy.js';

export class MemfdFile extends ModelFile {
  readonly kind = 'memfd';
  readonly fmode: FMode = { read: true, write: true, pread: true, lseek: true };
  override readonly regular = true;
  readonly pages = new Map<number, Uint8Array>();
  /** shmem's shared NUMA policy (shmem_set_policy) */
  protected readonly policy = new PolicyMap();
  size = 0n;

  constructor(
    ino: bigint,
    readonly name: string,
    protected readonly mm: HostMm,
  ) {
    super(ino);
  }

  statFields(): StatFields {
    return { mode: 0o100777, size: this.size, blocks: BigInt(this.pages.size * (PAGE_SIZE / 512)) };
  }

  protected page(index: number): Uint8Array {
    let p = this.pages.get(index);
    if (!p) {
      p = this.mm.allocPage(nodeFor(this.policy.get(index), index));
      this.pages.set(index, p);
    }
    return p;
  }

  override read(len: number, pos: bigint): Uint8Array {
    const n = pos >= this.size ? 0 : Number(BigInt(len) < this.size - pos ? BigInt(len) : this.size - pos);
    const out = new Uint8Array(n);
    for (let done = 0; done < n; ) {
      const at = pos + BigInt(done);
      const inPage = Number(at % PAGE_SIZE_N);
      const k = Math.min(n - done, PAGE_SIZE - inPage);
      const p = this.pages.get(Number(at / PAGE_SIZE_N));
      if (p) out.set(p.subarray(inPage, inPage + k), done);
      done += k;
    }
    return out;
  }

  override write(data: Uint8Array, pos: bigint): number {
    for (let done = 0; done < data.length; ) {
      const at = pos + BigInt(done);
      const inPage = Number(at % PAGE_SIZE_N);
      const k = Math.min(data.length - done, PAGE_SIZE - inPage);
      this.page(Number(at / PAGE_SIZE_N)).set(data.subarray(done, done + k), inPage);
      done += k;
    }
    const end = pos + BigInt(data.length);
    if (end > this.size) this.size = end;
    return data.length;
  }

  /** shmem_setattr -> truncate_setsize: pages past the new size go, the tail of the last is zeroed. */
  override truncate(size: bigint): void {
    if (size < this.size) this.dropRange(size, this.size);
    this.size = size;
  }

  /** truncate_inode_pages_range over bytes [start, end): whole pages freed, partial ones zeroed. */
  protected dropRange(start: bigint, end: bigint): void {
    const first = Number((start + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
    const last = Number(end / PAGE_SIZE_N);
    const head = this.pages.get(Number(start / PAGE_SIZE_N));
    if (head && start % PAGE_SIZE_N !== 0n) {
      const from = Number(start % PAGE_SIZE_N);
      const to = Number(start / PAGE_SIZE_N) === last ? Number(end % PAGE_SIZE_N) : PAGE_SIZE;
      head.fill(0, from, to);
    }
    const tail = this.pages.get(last);
    if (tail && end % PAGE_SIZE_N !== 0n && last >= first) tail.fill(0, 0, Number(end % PAGE_SIZE_N));
    for (const k of [...this.pages.keys()]) if (k >= first && k < last) this.pages.delete(k);
    // shmem_fallocate / shmem_setattr: unmap_mapping_range over the whole range first
    if (last > first) this.mm.truncated(this, first, last - first, true);
  }

  override fallocate(mode: number, offset: bigint, len: bigint): void {
    // shmem_fallocate: only KEEP_SIZE and PUNCH_HOLE are supported
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) fail('fallocate', 'EOPNOTSUPP', 'shmem supports only allocate and punch');
    if (mode & FALLOC_FL_PUNCH_HOLE) {
      this.dropRange(offset, offset + len);
      return;
    }
    for (let i = Number(offset / PAGE_SIZE_N); i < Number((offset + len + PAGE_SIZE_N - 1n) / PAGE_SIZE_N); i++) this.page(i);
    if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > this.size) this.size = offset + len;
  }

  override mmap(): MmapBacking {
    return {
      file: this,
      mappingKey: this,
      collapsible: true,
      // shmem_fault: a page at or past i_size is SIGBUS
      fault: (pgoff: number): FaultResult =>
        BigInt(pgoff) * PAGE_SIZE_N >= this.size ? { signal: 'SIGBUS', reason: 'page beyond the end of the memfd' } : { page: this.page(pgoff) },
      punch: (pgoff: number, n: number) => this.dropRange(BigInt(pgoff) * PAGE_SIZE_N, BigInt(pgoff + n) * PAGE_SIZE_N),
      peek: (pgoff: number) => this.pages.get(pgoff),
      setPolicy: (pgoff: number, n: number, p: Policy) => this.policy.set(pgoff, pgoff + n, p),
      getPolicy: (pgoff: number) => this.policy.get(pgoff),
    };
  }
}
