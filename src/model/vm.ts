/**
 * struct kvm (virt/kvm/kvm_main.c kvm_create_vm, kvm_put_kvm, kvm_destroy_vm). The VM lives while
 * anything holds a reference: its fd (vm-file.ts), its vCPUs, and every guest_memfd created on it
 * (KERNEL-SPEC I1). Its MMU notifier hears about host mappings that change under shared memslots.
 * The ioctls on its fd are model-vm.ts.
 */
import type { HostMapping, VmType } from '../api.js';
import { PAGE_SIZE_N } from '../uapi/constants.js';
import { MemAttributes } from './attributes.js';
import { type FaultContext, type FaultOutcome, faultIn } from './fault.js';
import type { HostMm, MmuNotifier } from './host.js';
import { Memslots } from './memslots.js';
import { Mmu } from './mmu.js';
import { type CocoPlatform, createPlatform } from './platforms/index.js';
import type { KernelProfile } from './profiles.js';

/** struct kvm */
export class KvmVm implements MmuNotifier {
  private users = 0;
  destroyed = false;
  readonly memslots = new Memslots(this);
  readonly attributes = new MemAttributes(this);
  readonly mmu = new Mmu();
  /** kvm->arch.hypercall_exit_enabled */
  hypercallExitMask = 0n;
  readonly vcpuIds = new Set<number>();
  /** the anonymous mapping behind the reserved code slot, once a program was loaded */
  codeMapping: HostMapping | undefined;

  constructor(
    readonly type: VmType,
    readonly profile: KernelProfile,
    readonly mm: HostMm,
  ) {
    mm.register(this);
  }

  /** kvm_arch_has_private_mem */
  get hasPrivateMem(): boolean {
    return this.type === 'sw_protected' || this.type === 'snp' || this.type === 'tdx';
  }
  /** kvm->arch.has_protected_state: SEV-ES, SNP, TDX */
  get hasProtectedState(): boolean {
    return this.type === 'sev_es' || this.type === 'snp' || this.type === 'tdx';
  }
  /** kvm_arch_has_readonly_mem */
  get hasReadonlyMem(): boolean {
    return !this.hasProtectedState;
  }

  get(): void {
    this.users++;
  }

  /** kvm_put_kvm: the last reference destroys the VM and frees (unbinds) its memslots. */
  put(): void {
    if (--this.users > 0) return;
    this.destroyed = true;
    this.memslots.clear();
    this.mm.unregister(this);
  }

  get refCount(): number {
    return this.users;
  }

  // ---- Confidential computing (issue 5): SNP and TDX state, created with the VM (sev_vm_init /
  // tdx_vm_init); undefined for the other VM types. ----
  private cocoPlatform: CocoPlatform | undefined | null = null;
  get platform(): CocoPlatform | undefined {
    if (this.cocoPlatform === null) this.cocoPlatform = createPlatform(this);
    return this.cocoPlatform;
  }

  /** The guest page-fault path (fault.ts); src/designs/v7 overrides it with the 2022 fault path. */
  faultIn(gfn: number, write: boolean, isPrivate: boolean, ctx?: FaultContext): FaultOutcome {
    return faultIn(this, gfn, write, isPrivate, ctx);
  }

  /**
   * kvm_mmu_notifier_invalidate_range_start/end: host PTEs in [start, end) changed; zap the
   * GFNs of every slot whose userspace_addr range intersects it. (The SHARED attr filter selects
   * roots only on TDX; on other VMs every SPTE in the range goes.)
   */
  invalidateHvaRange(start: bigint, end: bigint): void {
    let begun = false;
    for (const s of this.memslots.all()) {
      const sStart = s.userspaceAddr;
      const sEnd = s.userspaceAddr + BigInt(s.npages) * PAGE_SIZE_N;
      const lo = start > sStart ? start : sStart;
      const hi = end < sEnd ? end : sEnd;
      if (lo >= hi) continue;
      if (!begun) {
        this.mmu.invalidateBegin();
        begun = true;
      }
      const g0 = s.baseGfn + Number((lo - sStart) / PAGE_SIZE_N);
      const g1 = s.baseGfn + Number((hi - sStart + PAGE_SIZE_N - 1n) / PAGE_SIZE_N);
      this.mmu.unmapGfnRange(g0, g1);
    }
    if (begun) this.mmu.invalidateEnd();
  }
}
