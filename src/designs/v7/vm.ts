/**
 * struct kvm and the VM fd as v7 has them: private memslots bound through the memfile notifier
 * (09/14, 13/14), the per-VM private/shared xarray set by KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION
 * (11/14), and the fault path of 12/14. There is no guest_memfd, no KVM_SET_USER_MEMORY_REGION2 and
 * no KVM_SET_MEMORY_ATTRIBUTES: those ioctls are unknown (ENOTTY). A TD also carries the TDX host
 * state the hazards need (src/designs/host/tdx.ts).
 */
import type {
  CreateGuestMemfd,
  GuestMemfd,
  GuestProgram,
  PreFaultMemory,
  RunOptions,
  UserspaceMemoryRegion,
  UserspaceMemoryRegion2,
  Vcpu,
  VcpuExit,
} from '../../api.js';
import type { DesignVmOps, EncRegion, TdxInitMemRegion, UserspaceMemoryRegionExt } from '../../design-api.js';
import { fail } from '../../model/fail.js';
import type { FaultOutcome } from '../../model/fault.js';
import { Mmu } from '../../model/mmu.js';
import { ModelVm } from '../../model/model-vm.js';
import { KvmVm } from '../../model/vm.js';
import { KVM_MEMORY_ATTRIBUTE_PRIVATE, PAGE_SIZE, PAGE_SIZE_N, U64_MAX } from '../../uapi/constants.js';
import { backingPages } from '../host/hazard-ops.js';
import { hostOf } from '../host/host.js';
import { TdState, type TdxHost, TdxMmu } from '../host/tdx.js';
import { V7_PATCH } from './constants.js';
import { faultInV7 } from './fault.js';
import { V7Memslots } from './memslots.js';
import { v7CheckExtension } from './profile.js';

/** struct kvm under v7 */
export class V7KvmVm extends KvmVm {
  override readonly memslots: V7Memslots = this.createMemslots();
  readonly tdxHost: TdxHost = hostOf(this.mm).tdx;
  override readonly mmu: Mmu = this.type === 'tdx' ? new TdxMmu(this.tdxHost) : new Mmu();
  /** the TD's launch state, on a TDX VM */
  readonly td: TdState | undefined = this.type === 'tdx' ? new TdState() : undefined;

  /** The memslots of this design (the negotiated variant swaps its own in). */
  protected createMemslots(): V7Memslots {
    return new V7Memslots(this);
  }

  /** kvm_arch_private_mem_supported (11/14): the TDX tree's TDs, and software-protected VMs (profile.ts) */
  get privateMemSupported(): boolean {
    return this.hasPrivateMem;
  }

  /**
   * No upstream confidential-computing platform (src/model/platforms/): a v7 TD follows the TDX tree
   * of its time as far as src/designs/host/tdx.ts models it (no KVM_TDX_INIT_VM state machine).
   */
  override get platform(): undefined {
    return undefined;
  }

  /** 5.19 had no VMs with protected state: two address spaces and READONLY for every VM */
  override get hasProtectedState(): boolean {
    return false;
  }

  override faultIn(gfn: number, write: boolean, isPrivate: boolean): FaultOutcome {
    return faultInV7(this, gfn, write, isPrivate);
  }

  /** kvm_zap_gfn_range: one invalidation over [start, end) */
  zapGfnRange(start: number, end: number): void {
    this.mmu.invalidateBegin();
    this.mmu.unmapGfnRange(start, end);
    this.mmu.invalidateEnd();
  }

  /**
   * kvm_vm_ioctl_set_encrypted_region (11/14): size 0 or a wrapping range -> EINVAL, unaligned ->
   * EINVAL, then xa_store_range over the GFNs and kvm_zap_gfn_range over them. The zap happens even
   * when nothing changes, and with no regard to memslots.
   */
  setEncryptedRegion(op: string, r: EncRegion, toPrivate: boolean): void {
    if (r.size === 0n || ((r.addr + r.size) & U64_MAX) < r.addr) fail(op, 'EINVAL', `${V7_PATCH.regions}: size 0 or addr + size wraps`);
    if (r.addr % PAGE_SIZE_N !== 0n || r.size % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', `${V7_PATCH.regions}: addr or size not page aligned`);
    const start = Number(r.addr / PAGE_SIZE_N);
    const end = Number((r.addr + r.size - 1n) / PAGE_SIZE_N) + 1;
    // the xarray holds KVM_MEM_ATTR_PRIVATE; the model keeps upstream's bit so the shared views read it
    this.attributes.map.set(start, end, toPrivate ? Number(KVM_MEMORY_ATTRIBUTE_PRIVATE) : 0);
    this.zapGfnRange(start, end);
  }
}

/** KVM_RUN launches the TD (the model's TDH.MR.FINALIZE) before the vCPU runs. */
class V7Vcpu implements Vcpu {
  constructor(
    private readonly inner: Vcpu,
    private readonly vm: V7KvmVm,
  ) {}
  get id(): number {
    return this.inner.id;
  }
  get fd(): number {
    return this.inner.fd;
  }
  load(program: GuestProgram): void {
    this.inner.load(program);
  }
  run(options?: RunOptions): VcpuExit {
    const td = this.vm.td;
    if (td) td.launched = true;
    return this.inner.run(options);
  }
  preFaultMemory(r: PreFaultMemory): { gpa: bigint; size: bigint } {
    return this.inner.preFaultMemory(r);
  }
  close(): void {
    this.inner.close();
  }
}

/** The VM fd under v7: every call is the ioctl on that fd number, as userspace makes it. */
export class V7Vm extends ModelVm implements DesignVmOps {
  protected v7(op: string): V7KvmVm {
    return this.kvm(op) as V7KvmVm;
  }

  override checkExtension(cap: number): number {
    const f = this.proc.fdt.get(this.fd, 'KVM_CHECK_EXTENSION');
    if (f.kind !== 'kvm') this.kvm('KVM_CHECK_EXTENSION');
    return v7CheckExtension(cap);
  }

  override createGuestMemfd(_a: CreateGuestMemfd): GuestMemfd {
    this.kvm('KVM_CREATE_GUEST_MEMFD');
    return fail('KVM_CREATE_GUEST_MEMFD', 'ENOTTY', 'no such ioctl before guest_memfd (6.8)');
  }

  override setUserMemoryRegion2(_r: UserspaceMemoryRegion2): void {
    this.kvm('KVM_SET_USER_MEMORY_REGION2');
    fail('KVM_SET_USER_MEMORY_REGION2', 'ENOTTY', 'no such ioctl before 6.8');
  }

  /**
   * KVM_SET_USER_MEMORY_REGION with the 32-byte struct. With KVM_MEM_PRIVATE in flags the kernel
   * reads the 160-byte _ext struct (09/14); the model takes what follows the struct as zeros.
   */
  override setUserMemoryRegion(r: UserspaceMemoryRegion): void {
    this.setUserMemoryRegionExt({ ...r, privateOffset: 0n, privateFd: 0 });
  }

  /** KVM_SET_USER_MEMORY_REGION with struct kvm_userspace_memory_region_ext (09/14, 13/14) */
  setUserMemoryRegionExt(r: UserspaceMemoryRegionExt): void {
    const op = 'KVM_SET_USER_MEMORY_REGION';
    const vm = this.v7(op);
    vm.memslots.set(
      {
        slot: r.slot >>> 0,
        flags: r.flags >>> 0,
        guestPhysAddr: r.guestPhysAddr,
        memorySize: r.memorySize,
        userspaceAddr: r.userspaceAddr,
        guestMemfdOffset: r.privateOffset,
        guestMemfd: r.privateFd >>> 0,
      },
      false,
      (fd) => this.proc.fdt.lookup(fd),
      op,
    );
  }

  /** KVM_MEMORY_ENCRYPT_REG_REGION (11/14): GPA range -> private. Without private memory: the arch ioctl, ENOTTY. */
  memoryEncryptRegRegion(r: EncRegion): void {
    this.encRegion('KVM_MEMORY_ENCRYPT_REG_REGION', r, true);
  }

  /** KVM_MEMORY_ENCRYPT_UNREG_REGION (11/14): GPA range -> shared. */
  memoryEncryptUnregRegion(r: EncRegion): void {
    this.encRegion('KVM_MEMORY_ENCRYPT_UNREG_REGION', r, false);
  }

  private encRegion(op: string, r: EncRegion, toPrivate: boolean): void {
    const vm = this.v7(op);
    // !kvm_arch_private_mem_supported -> kvm_arch_vm_ioctl: no mem_enc_register_region on VMX, !sev_guest on SVM
    if (!vm.privateMemSupported) fail(op, 'ENOTTY', `${V7_PATCH.regions}: no private memory on this VM, and it is no SEV guest`);
    vm.setEncryptedRegion(op, r, toPrivate);
  }

  override createVcpu(id: number): Vcpu {
    const vcpu = super.createVcpu(id);
    // the vCPU holds its VM: KVM_RUN works after the VM fd is closed
    const vm = this.v7('KVM_CREATE_VCPU');
    return new V7Vcpu(vcpu, vm);
  }

  /**
   * The TDX tree's KVM_TDX_INIT_MEM_REGION (KVM_MEMORY_ENCRYPT_OP): before the TD runs, copy source
   * pages into private GPAs (TDH.MEM.PAGE.ADD) and extend them into the measurement (TDH.MR.EXTEND).
   * Not part of v7; what the TD's initial contents had to go through. The model's rules: a TD only,
   * before launch (EINVAL after), page-aligned, and every GPA private in a private slot (EINVAL).
   */
  tdxInitMemRegion(r: TdxInitMemRegion): void {
    const op = 'KVM_TDX_INIT_MEM_REGION';
    const vm = this.v7(op);
    const td = vm.td;
    if (!td) fail(op, 'ENOTTY', 'not a TD: KVM_MEMORY_ENCRYPT_OP has no handler');
    if (td.launched) fail(op, 'EINVAL', 'the TD was finalized (it has run)');
    if (r.gpa % PAGE_SIZE_N !== 0n || r.npages === 0n || r.sourceOffset % PAGE_SIZE_N !== 0n) fail(op, 'EINVAL', 'unaligned or empty range');
    for (let i = 0n; i < r.npages; i++) {
      const gfn = Number(r.gpa / PAGE_SIZE_N + i);
      const slot = vm.memslots.find(gfn);
      if (!slot?.gmem?.file || !vm.attributes.isPrivate(gfn)) fail(op, 'EINVAL', `gpa 0x${(BigInt(gfn) * PAGE_SIZE_N).toString(16)} is not private memory`);
      const index = slot.gmem.pgoff + gfn - slot.baseGfn;
      const got = slot.gmem.file.getPfn(slot, index);
      if ('errno' in got) fail(op, got.errno, 'get_pfn failed');
      const src = r.source.read(r.sourceOffset + i * PAGE_SIZE_N, PAGE_SIZE);
      got.page.set(src);
      vm.tdxHost.owner.set(got.page, vm);
      vm.tdxHost.added.add(got.page);
      // TDH.MEM.PAGE.ADD maps the page in the secure EPT too
      vm.mmu.install(gfn, { page: got.page, writable: true, private: true, slot, source: { kind: 'gmem', file: slot.gmem.file, index } }, vm.mmu.seq);
      if (r.measure) td.measured.set(gfn, src.slice());
    }
  }

  /** Whether the TD's launch measurement includes `data` at `gpa` (a probe of the model, not an ioctl). */
  tdxMeasurementCovers(gpa: bigint, data: Uint8Array): boolean {
    const td = this.v7('tdx_measurement').td;
    if (!td) fail('tdx_measurement', 'ENOTTY', 'not a TD');
    return td.covers(gpa, data);
  }

  backingPages(gpa: bigint): number {
    return backingPages(this.v7('backing_pages'), gpa);
  }
}
