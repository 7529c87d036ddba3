/**
 * Intel TDX (arch/x86/kvm/vmx/tdx.c; Linux 6.16+, KVM_X86_TDX_VM = 5). Sources read: kvm-x86/linux
 * tdx.c @09c6f74e (tdx_vm_ioctl, tdx_get_cmd, tdx_td_init, setup_tdparams,
 * setup_tdparams_eptp_controls, tdx_td_finalize, tdx_vcpu_create, tdx_vcpu_init,
 * tdx_vcpu_init_mem_region, tdx_gmem_post_populate, the vCPU ioctl gate), the 6.16 form of
 * tdx_vcpu_pre_run, virt/kvm/guest_memfd.c kvm_gmem_populate / kvm_gmem_error_folio, and
 * MEASUREMENT.md §2 for the MRTD records.
 *
 * The TD's life: KVM_CREATE_VM(5) is TD_STATE_UNINITIALIZED; KVM_TDX_INIT_VM (TDH.MNG.CREATE/INIT)
 * makes it INITIALIZED and fixes the GPA width, hence the shared bit; vCPUs can be created only
 * now, and each needs KVM_TDX_INIT_VCPU; KVM_TDX_INIT_MEM_REGION (a vCPU ioctl) adds guest_memfd
 * pages (kvm_gmem_populate -> tdx_gmem_post_populate: TDH.MEM.PAGE.ADD, then 16 x TDH.MR.EXTEND
 * with KVM_TDX_MEASURE_MEMORY_REGION); KVM_TDX_FINALIZE_VM (TDH.MR.FINALIZE) makes it RUNNABLE,
 * after which the initial memory is fixed. The measurement records go to `log`, in KVM's order.
 *
 * Secure-EPT: a private SPTE of a TD is an S-EPT entry. PAGE.ADDed pages are mapped and accepted;
 * pages a private fault adds (TDH.MEM.PAGE.AUG) are pending until the guest's TDG.MEM.PAGE.ACCEPT.
 * Host access to TD memory: with the host's key the integrity check fails and the consumed poison
 * raises a machine check; memory_failure() poisons the folio and, through guest_memfd's
 * error_remove_folio (kvm_gmem_error_folio), zaps its mappings without truncating it, so the guest's
 * next access ends in KVM_EXIT_MEMORY_FAULT with EHWPOISON (KERNEL-SPEC G9). (Real TDX lets a host
 * write through and poisons lazily; the model faults every host access, reads and writes alike.)
 */
import type { GuestOp, MemoryEncryptCommand, MemoryEncryptResult } from '../../api.js';
import type { Sha384Factory } from '../../measure/hash.js';
import { MR_EXTEND_CHUNK, type TdxMeasureOp, TdxMrtdContext } from '../../measure/tdx.js';
import {
  KVM_MAX_CPUID_ENTRIES,
  KVM_TDX_MEASURE_MEMORY_REGION,
  kvm_tdx_cmd,
  kvm_tdx_init_mem_region,
  kvm_tdx_init_vm,
  SEV_CMD,
  TDX_CMD,
  TDX_STATUS,
  TDX_TD_ATTR,
} from '../../uapi/coco.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../uapi/constants.js';
import type { ErrnoName } from '../../uapi/errno.js';
import { decode, encode, scalar } from '../../uapi/layout.js';
import { fail } from '../fail.js';
import type { PrivateFile } from '../memslots.js';
import type { Spte } from '../mmu.js';
import { CocoPlatform, type CocoVcpu, type CocoVm, commandId, failWith } from './base.js';
import { gmemPopulate, type PopulatePage } from './populate.js';

/** What the model host's TDX module supports (tdx_get_supported_attrs/xfam, num_cpuid_config). */
export const MODEL_TDX_MODULE = {
  supportedAttrs: TDX_TD_ATTR.DEBUG | TDX_TD_ATTR.SEPT_VE_DISABLE | TDX_TD_ATTR.PKS | TDX_TD_ATTR.PERFMON,
  /** x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM), PKRU, AMX (XTILECFG, XTILEDATA) */
  supportedXfam: 0x602e7n,
  numCpuidConfig: 8,
} as const;

const NAME_OF: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(TDX_CMD).map(([k, v]) => [v, k]));

export type TdState = 'uninitialized' | 'initialized' | 'runnable';

export class TdxPlatform extends CocoPlatform {
  readonly kind = 'tdx' as const;
  /** kvm_tdx->state (TD_STATE_*); the HKID is assigned from INITIALIZED on */
  state: TdState = 'uninitialized';
  /** guest physical address width (48 or 52), from CPUID 0x80000008.EAX[23:16] at KVM_TDX_INIT_VM */
  gpaw = 0;
  attributes = 0n;
  xfam = 0n;
  /** vcpu_tdx->state: KVM_TDX_INIT_VCPU done */
  private readonly vcpuInit = new WeakSet<CocoVcpu>();
  /** S-EPT entries the guest accepted (PAGE.ADDed at launch, or TDG.MEM.PAGE.ACCEPTed); others pending */
  private readonly accepted = new WeakSet<Spte>();
  /** the guest_memfd folios given to the TD, for memory_failure */
  private readonly tdPages = new WeakMap<Uint8Array, { file: PrivateFile; index: number }>();
  /** the MRTD records, in the order the SEAMCALLs ran */
  readonly log: TdxMeasureOp[] = [];

  constructor(vm: CocoVm) {
    super(vm);
  }

  /** kvm_gfn_direct_bits as a GPA: the shared bit (47 with GPAW 48, 51 with GPAW 52) */
  get sharedBit(): bigint {
    return this.gpaw ? 1n << BigInt(this.gpaw - 1) : 0n;
  }

  get guestActive(): boolean {
    return this.state !== 'uninitialized';
  }

  isVcpuInitialized(v: CocoVcpu): boolean {
    return this.vcpuInit.has(v);
  }

  /** tdx_get_cmd + tdx_vm_ioctl (vt_mem_enc_ioctl already checked is_td). */
  vmOp(cmd: MemoryEncryptCommand): MemoryEncryptResult {
    // An AMD kvm_sev_cmd reaching tdx_vm_ioctl is read as a kvm_tdx_cmd: same id field.
    const { vendor, id } = commandId(cmd, SEV_CMD, TDX_CMD);
    const raw = typeof cmd.id === 'number' || vendor !== 'tdx';
    const op = NAME_OF[id] ?? 'KVM_MEMORY_ENCRYPT_OP';
    const hdr = this.header(cmd, raw);
    if (hdr.hwError !== 0n) fail(op, 'EINVAL', 'tdx_get_cmd: hw_error must be 0 (KVM reports into it)');
    switch (id) {
      case TDX_CMD.KVM_TDX_CAPABILITIES: {
        if (hdr.flags !== 0) fail(op, 'EINVAL', 'tdx_get_capabilities: flags must be 0');
        if (raw) fail(op, 'EFAULT', 'get_user of cpuid.nent from a NULL data pointer');
        const nent = (cmd as { nent?: number }).nent ?? 0;
        if (nent < MODEL_TDX_MODULE.numCpuidConfig)
          fail(op, 'E2BIG', `tdx_get_capabilities: cpuid.nent ${nent} < ${MODEL_TDX_MODULE.numCpuidConfig} configurable leaves`);
        return {
          hwError: 0n,
          data: {
            supported_attrs: MODEL_TDX_MODULE.supportedAttrs,
            supported_xfam: MODEL_TDX_MODULE.supportedXfam,
            nent: BigInt(MODEL_TDX_MODULE.numCpuidConfig),
          },
        };
      }
      case TDX_CMD.KVM_TDX_INIT_VM:
        return this.tdInit(op, hdr.flags, raw ? undefined : (cmd as Extract<MemoryEncryptCommand, { id: 'KVM_TDX_INIT_VM' }>));
      case TDX_CMD.KVM_TDX_FINALIZE_VM:
        return this.tdFinalize(op);
      default:
        return fail(op, 'EINVAL', `tdx_vm_ioctl: command ${id} is not a VM command`);
    }
  }

  private header(cmd: MemoryEncryptCommand, raw: boolean): { flags: number; hwError: bigint } {
    if (raw) return { flags: 0, hwError: 0n };
    const c = cmd as { flags?: number; hwError?: bigint };
    const d = decode(kvm_tdx_cmd, encode(kvm_tdx_cmd, { flags: c.flags ?? 0, hw_error: c.hwError ?? 0n }));
    return { flags: Number(scalar(d.flags)), hwError: scalar(d.hw_error) };
  }

  /** KVM_TDX_INIT_VM -> tdx_td_init -> setup_tdparams (-> TDH.MNG.CREATE/KEY.CONFIG/ADDCX/INIT). */
  private tdInit(op: string, flags: number, cmd: Extract<MemoryEncryptCommand, { id: 'KVM_TDX_INIT_VM' }> | undefined): MemoryEncryptResult {
    if (this.state !== 'uninitialized') fail(op, 'EINVAL', 'tdx_td_init: the TD is already initialized');
    if (flags !== 0) fail(op, 'EINVAL', 'tdx_td_init: flags must be 0');
    if (!cmd) return fail(op, 'EFAULT', 'get_user of cpuid.nent from a NULL data pointer');
    if (cmd.cpuid.length > KVM_MAX_CPUID_ENTRIES) fail(op, 'E2BIG', `tdx_td_init: ${cmd.cpuid.length} CPUID entries, at most ${KVM_MAX_CPUID_ENTRIES}`);
    const d = decode(
      kvm_tdx_init_vm,
      encode(kvm_tdx_init_vm, { attributes: cmd.attributes ?? 0n, xfam: cmd.xfam ?? 0n, reserved: [...(cmd.reserved ?? [])], cpuid_nent: cmd.cpuid.length }),
    );
    if ((d.reserved as bigint[]).some((x) => x !== 0n)) fail(op, 'EINVAL', 'tdx_td_init: reserved[] must be zero');
    // setup_tdparams
    if (this.createdVcpus > 0) fail(op, 'EBUSY', 'setup_tdparams: vCPUs already exist');
    const attributes = scalar(d.attributes);
    const xfam = scalar(d.xfam);
    if (attributes & ~MODEL_TDX_MODULE.supportedAttrs)
      fail(op, 'EINVAL', `setup_tdparams: attributes 0x${attributes.toString(16)} not supported by the TDX module`);
    if (xfam & ~MODEL_TDX_MODULE.supportedXfam) fail(op, 'EINVAL', `setup_tdparams: XFAM 0x${xfam.toString(16)} not supported by the TDX module`);
    // setup_tdparams_eptp_controls: the GPA width comes from CPUID 0x80000008.EAX[23:16]
    const e = cmd.cpuid.find((x) => x.function === 0x80000008 && (x.index ?? 0) === 0);
    if (!e) fail(op, 'EINVAL', 'setup_tdparams_eptp_controls: no CPUID 0x80000008 entry to take the GPA width from');
    const guestPa = ((e.eax ?? 0) >>> 16) & 0xff;
    if (guestPa !== 48 && guestPa !== 52) fail(op, 'EINVAL', `setup_tdparams_eptp_controls: GPA width ${guestPa}, only 48 and 52 are supported`);
    this.attributes = attributes;
    this.xfam = xfam;
    this.gpaw = guestPa;
    this.state = 'initialized';
    return { hwError: 0n };
  }

  /** KVM_TDX_FINALIZE_VM -> tdx_td_finalize (TDH.MR.FINALIZE). */
  private tdFinalize(op: string): MemoryEncryptResult {
    if (this.state !== 'initialized') fail(op, 'EINVAL', 'tdx_td_finalize: the TD is not initialized, or already finalized');
    this.state = 'runnable';
    this.preFaultAllowed = true;
    return { hwError: 0n };
  }

  /** tdx_vcpu_ioctl (vt_vcpu_mem_enc_ioctl already checked is_td_vcpu). */
  vcpuOp(v: CocoVcpu, cmd: MemoryEncryptCommand): MemoryEncryptResult {
    const { vendor, id } = commandId(cmd, SEV_CMD, TDX_CMD);
    const raw = typeof cmd.id === 'number' || vendor !== 'tdx';
    const op = NAME_OF[id] ?? 'KVM_MEMORY_ENCRYPT_OP';
    if (this.state !== 'initialized') fail(op, 'EINVAL', 'tdx_vcpu_ioctl: the TD has no HKID yet, or is finalized (TD_STATE_RUNNABLE)');
    const hdr = this.header(cmd, raw);
    if (hdr.hwError !== 0n) fail(op, 'EINVAL', 'tdx_get_cmd: hw_error must be 0');
    switch (id) {
      case TDX_CMD.KVM_TDX_INIT_VCPU:
        if (hdr.flags !== 0) fail(op, 'EINVAL', 'tdx_vcpu_init: flags must be 0');
        if (this.vcpuInit.has(v)) fail(op, 'EINVAL', 'tdx_vcpu_init: the vCPU is already initialized');
        this.vcpuInit.add(v);
        return { hwError: 0n };
      case TDX_CMD.KVM_TDX_INIT_MEM_REGION:
        return this.initMemRegion(op, v, hdr.flags, raw ? undefined : (cmd as Extract<MemoryEncryptCommand, { id: 'KVM_TDX_INIT_MEM_REGION' }>));
      case TDX_CMD.KVM_TDX_GET_CPUID:
        throw new Error('KVM_TDX_GET_CPUID is not modelled');
      default:
        return fail(op, 'EINVAL', `tdx_vcpu_ioctl: command ${id} is not a vCPU command`);
    }
  }

  /**
   * KVM_TDX_INIT_MEM_REGION -> tdx_vcpu_init_mem_region: one kvm_gmem_populate per page, its errno
   * returned as is; the struct (source_addr, gpa, nr_pages) is copied back, on failure too.
   */
  private initMemRegion(
    op: string,
    v: CocoVcpu,
    flags: number,
    cmd: Extract<MemoryEncryptCommand, { id: 'KVM_TDX_INIT_MEM_REGION' }> | undefined,
  ): MemoryEncryptResult {
    if (!this.vcpuInit.has(v)) fail(op, 'EINVAL', 'tdx_vcpu_init_mem_region: the vCPU needs KVM_TDX_INIT_VCPU first');
    if (flags & ~KVM_TDX_MEASURE_MEMORY_REGION) fail(op, 'EINVAL', 'tdx_vcpu_init_mem_region: unknown flags');
    if (!cmd) return fail(op, 'EFAULT', 'copy_from_user of struct kvm_tdx_init_mem_region from a NULL data pointer');
    const d = decode(kvm_tdx_init_mem_region, encode(kvm_tdx_init_mem_region, { source_addr: cmd.sourceAddr, gpa: cmd.gpa, nr_pages: cmd.nrPages }));
    let src = scalar(d.source_addr);
    let gpa = scalar(d.gpa);
    let nr = scalar(d.nr_pages);
    const end = BigInt.asUintN(64, gpa + BigInt.asUintN(64, nr << 12n));
    const shared = this.sharedBit;
    if (
      src % PAGE_SIZE_N !== 0n ||
      src === 0n ||
      gpa % PAGE_SIZE_N !== 0n ||
      nr === 0n ||
      end <= gpa ||
      gpa & shared ||
      BigInt.asUintN(64, end - 1n) & shared
    ) {
      fail(op, 'EINVAL', 'tdx_vcpu_init_mem_region: source or gpa unaligned or NULL, nr_pages 0, gpa range wraps, or it reaches the shared bit');
    }
    const measure = (flags & KVM_TDX_MEASURE_MEMORY_REGION) !== 0;
    let err: { errno: ErrnoName; why: string } | undefined;
    while (nr > 0n) {
      const gfn = gpa / PAGE_SIZE_N < 1n << 52n ? Number(gpa / PAGE_SIZE_N) : -1;
      const r =
        gfn < 0 ? ({ errno: 'EINVAL', why: 'no memslot' } as const) : gmemPopulate(this.vm, this.prepared, gfn, src, 1, (p) => this.postPopulate(p, measure));
      if ('errno' in r) {
        err = r;
        break;
      }
      if (r.count !== 1) {
        err = { errno: 'EIO', why: 'kvm_gmem_populate did not populate the page' };
        break;
      }
      src += PAGE_SIZE_N;
      gpa += PAGE_SIZE_N;
      nr--;
    }
    const data = { source_addr: src, gpa, nr_pages: nr };
    if (err) failWith(op, err.errno, err.why, data);
    return { hwError: 0n, data };
  }

  /** tdx_gmem_post_populate: map the pfn into the S-EPT (TDH.MEM.PAGE.ADD copies the source), then MR.EXTEND. */
  private postPopulate(p: PopulatePage, measure: boolean): ErrnoName | undefined {
    if (!p.src) return 'EFAULT';
    // 7.0 no longer stops a second populate at EEXIST (populateGupFirst): TDH.MEM.PAGE.ADD of a GPA
    // already in the S-EPT fails (TDX_EPT_ENTRY_STATE_INCORRECT), which KVM reports as EIO (the
    // errno is this model's reading of tdx_gmem_post_populate, not checked on hardware)
    if (this.tdPages.has(p.page)) return 'EIO';
    const gpa = BigInt(p.gfn) * PAGE_SIZE_N;
    p.page.set(p.src);
    // kvm_tdp_map_page with a private access: the S-EPT entry, mapped and accepted
    const spte: Spte = { page: p.page, writable: true, private: true, slot: p.slot, source: { kind: 'gmem', file: p.file, index: p.index } };
    if (!this.vm.mmu.install(p.gfn, spte, this.vm.mmu.seq)) return 'EAGAIN';
    this.accepted.add(spte);
    this.own(p.page);
    this.tdPages.set(p.page, { file: p.file, index: p.index });
    this.log.push({ op: 'MEM.PAGE.ADD', gpa });
    if (measure) {
      const copy = p.page.slice();
      for (let c = 0; c < PAGE_SIZE; c += MR_EXTEND_CHUNK)
        this.log.push({ op: 'MR.EXTEND', gpa: gpa + BigInt(c), data: copy.subarray(c, c + MR_EXTEND_CHUNK) });
    }
    return undefined;
  }

  /** tdx_vcpu_create: vCPUs only between KVM_TDX_INIT_VM and KVM_TDX_FINALIZE_VM. */
  override vcpuCreate(op: string): void {
    if (this.strict && this.state !== 'initialized') fail(op, 'EIO', 'tdx_vcpu_create: the TD is not in TD_STATE_INITIALIZED');
  }

  /** tdx_vcpu_pre_run: only a finalized TD with an initialized vCPU runs. */
  preRun(v: CocoVcpu): void {
    if (this.strict && (this.state !== 'runnable' || !this.vcpuInit.has(v))) {
      fail('KVM_RUN', 'EINVAL', 'tdx_vcpu_pre_run: the TD is not finalized or the vCPU not initialized (KVM_TDX_INIT_VCPU)');
    }
  }

  /** A private fault gave the TD a folio (TDH.MEM.PAGE.AUG): the S-EPT entry starts pending. */
  prepare(page: Uint8Array, _gfn: number, file: PrivateFile, index: number): void {
    this.prepared.add(page);
    // only a page cache that memory_failure() can reach (guest_memfd's) gets poisoned by a host access
    if (this.state === 'uninitialized' || !file.errorRemoveFolio) return;
    this.own(page);
    this.tdPages.set(page, { file, index });
  }

  /** TDG.MEM.PAGE.ACCEPT: pending -> accepted (RAX 0), or TDX_PAGE_ALREADY_ACCEPTED. */
  instruction(op: GuestOp, spte: Spte | null): bigint {
    if (op.op !== 'tdg_mem_page_accept') throw new Error(`TDs have no ${op.op}`);
    if (!spte) return TDX_STATUS.OPERAND_INVALID;
    if (this.accepted.has(spte)) return TDX_STATUS.PAGE_ALREADY_ACCEPTED;
    this.accepted.add(spte);
    return TDX_STATUS.SUCCESS;
  }

  /** Whether the S-EPT entry of a private SPTE was accepted. */
  isAccepted(spte: Spte): boolean {
    return this.accepted.has(spte);
  }

  /** Host access to TD memory: #MC, memory_failure -> kvm_gmem_error_folio (poisoned, zapped, kept). */
  hostAccess(page: Uint8Array, write: boolean): { signal: 'MCE'; reason: string } | undefined {
    const td = this.tdPages.get(page);
    if (!td) return undefined;
    td.file.errorRemoveFolio?.(td.index);
    return { signal: 'MCE', reason: `host ${write ? 'write to' : 'read of'} TD private memory: integrity check failed, machine check; the page is poisoned` };
  }

  /** MRTD: SHA-384 over the PAGE.ADD and MR.EXTEND records, in order (TDH.MR.FINALIZE). */
  digest(sha: Sha384Factory): Uint8Array {
    const m = new TdxMrtdContext(sha);
    for (const r of this.log) {
      if (r.op === 'MEM.PAGE.ADD') m.pageAdd(r.gpa);
      else m.mrExtend(r.gpa, r.data);
    }
    return m.digest();
  }
}
