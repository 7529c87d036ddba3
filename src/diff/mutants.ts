/**
 * The planted bugs the self-test must find, each a rule of the kernel broken on purpose. They live
 * here, outside the model: each is a guest_memfd file whose one operation is broken, made by a
 * model KVM that overrides __kvm_gmem_create (ModelVm.gmemCreate), so the model itself shows only
 * the kernel's checks.
 */
import type { VmType } from '../api.js';
import { fail } from '../model/fail.js';
import type { MmapBacking } from '../model/file.js';
import { GmemFile, GmemInode } from '../model/guest-memfd.js';
import type { KernelProfile } from '../model/index.js';
import { ModelKvm } from '../model/kvm.js';
import type { Memslot } from '../model/memslots.js';
import { ModelVm } from '../model/model-vm.js';
import type { KvmVm } from '../model/vm.js';
import { PAGE_SIZE_N } from '../uapi/constants.js';

export type PlantedBug = 'punch-without-invalidation' | 'bind-without-overlap-check' | 'fallocate-check-order' | 'mmap-without-mmap-flag';

type GmemFileClass = new (ino: bigint, inode: GmemInode, vm: KvmVm) => GmemFile;

/** kvm_gmem_punch_hole truncating without kvm_gmem_invalidate_begin/end: KVM keeps mapping freed pages. */
class PunchWithoutInvalidation extends GmemFile {
  protected override punchHole(offset: bigint, len: bigint): void {
    this.inode.truncate(Number(offset / PAGE_SIZE_N), Number((offset + len) / PAGE_SIZE_N));
  }
}

/** kvm_gmem_bind without its xa_find over the file range: one file range backs two memslots. */
class BindWithoutOverlapCheck extends GmemFile {
  protected override bindingsFind(_start: number, _end: number): Memslot | undefined {
    return undefined;
  }
}

/** kvm_gmem_fallocate checking alignment (EINVAL) before the mode (EOPNOTSUPP). */
class FallocateCheckOrder extends GmemFile {
  override fallocate(mode: number, offset: bigint, len: bigint): void {
    if (offset % PAGE_SIZE_N !== 0n || len % PAGE_SIZE_N !== 0n) fail('fallocate', 'EINVAL', 'planted bug: alignment checked first');
    super.fallocate(mode, offset, len);
  }
}

/** kvm_gmem_mmap without kvm_gmem_supports_mmap: a guest_memfd made without the MMAP flag maps. */
class MmapWithoutMmapFlag extends GmemFile {
  override mmap(shared: boolean): MmapBacking {
    if (!shared) fail('mmap', 'EINVAL', 'kvm_gmem_mmap: only MAP_SHARED mappings');
    return this.vmOps();
  }
}

export const MUTANTS: readonly { bug: PlantedBug; rule: string; file: GmemFileClass }[] = [
  { bug: 'punch-without-invalidation', rule: 'kvm_gmem_punch_hole: invalidate KVM mappings before truncating (H6)', file: PunchWithoutInvalidation },
  { bug: 'bind-without-overlap-check', rule: 'kvm_gmem_bind: a file range may back one memslot only (E7.5)', file: BindWithoutOverlapCheck },
  { bug: 'fallocate-check-order', rule: 'kvm_gmem_fallocate: mode checks (EOPNOTSUPP) before alignment (EINVAL) (C1-C3)', file: FallocateCheckOrder },
  { bug: 'mmap-without-mmap-flag', rule: 'kvm_gmem_mmap: ENODEV without GUEST_MEMFD_FLAG_MMAP (D2)', file: MmapWithoutMmapFlag },
];

/** The model of `profile` with one planted bug: every guest_memfd it creates is the broken file. */
export function mutantKvm(bug: PlantedBug, profile: KernelProfile): ModelKvm {
  const m = MUTANTS.find((x) => x.bug === bug);
  if (!m) throw new Error(`no planted bug ${bug}`);
  const File = m.file;
  class MutantVm extends ModelVm {
    protected override gmemCreate(vm: KvmVm, size: bigint, flags: bigint): GmemFile {
      return new File(this.proc.nextIno(), new GmemInode(size, flags, this.proc.mm, vm.profile.gmemMempolicy), vm);
    }
  }
  class MutantKvm extends ModelKvm {
    protected override newVmHandle(fd: number, type: VmType): ModelVm {
      const h = new MutantVm(this.proc, fd, type);
      h.profile = this.kernel;
      return h;
    }
  }
  return new MutantKvm(profile);
}
