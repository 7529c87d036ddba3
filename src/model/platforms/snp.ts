/**
 * AMD SEV-SNP (arch/x86/kvm/svm/sev.c; Linux 6.11+, KVM_X86_SNP_VM = 4). Sources read:
 * kvm-x86/linux sev.c @1a27afa0 (sev_mem_enc_ioctl, sev_guest_init2, __sev_guest_init,
 * snp_launch_start, snp_launch_update, sev_gmem_post_populate, snp_launch_update_vmsa,
 * snp_launch_finish, sev_vm_init), svm.c svm_vcpu_pre_run, virt/kvm/guest_memfd.c
 * kvm_gmem_populate, and MEASUREMENT.md §1 for what the firmware measures.
 *
 * The VM's life: KVM_CREATE_VM(4) leaves need_init set (sev_vm_init); KVM_SEV_INIT2 makes it an
 * SNP guest; KVM_SEV_SNP_LAUNCH_START creates the guest context; KVM_SEV_SNP_LAUNCH_UPDATE
 * populates guest_memfd pages (kvm_gmem_populate -> sev_gmem_post_populate: RMP-assign the page,
 * SNP_LAUNCH_UPDATE measures it); KVM_SEV_SNP_LAUNCH_FINISH measures one VMSA per vCPU and closes
 * the launch. Every measured page is one PAGE_INFO step of the launch digest, recorded in `log`.
 *
 * The RMP (reverse map table) is per physical page. The model keeps one entry per guest_memfd
 * folio it assigned: a host write to an assigned page takes an RMP #PF (a user access gets
 * SIGBUS: arch/x86/mm/fault.c do_user_addr_fault, X86_PF_RMP), a host read sees ciphertext; the
 * guest's PVALIDATE sets or clears the Validated bit. Launch pages are assigned and validated by
 * the firmware; pages a private fault adds (sev_gmem_prepare) are assigned but not validated.
 */
import type { GuestOp, MemoryEncryptCommand, MemoryEncryptResult } from '../../api.js';
import { hasContents, SNP_PAGE_TYPE, SnpGuestContext, type SnpPageType, VMSA_GPA } from '../../measure/gctx.js';
import type { Sha384Factory } from '../../measure/hash.js';
import { buildVmsa } from '../../measure/vmsa.js';
import {
  GHCB_VERSION_MAX,
  KVM_SEV_SNP_PAGE_TYPE,
  kvm_sev_init,
  kvm_sev_snp_launch_finish,
  kvm_sev_snp_launch_start,
  kvm_sev_snp_launch_update,
  PVALIDATE,
  SEV_CMD,
  SEV_RET,
  SNP_POLICY,
  SNP_POLICY_MASK_VALID,
  SVM_SEV_FEAT,
  TDX_CMD,
} from '../../uapi/coco.js';
import { PAGE_SIZE_N } from '../../uapi/constants.js';
import { decode, encode, scalar } from '../../uapi/layout.js';
import { fail } from '../fail.js';
import type { PrivateFile } from '../memslots.js';
import type { Spte } from '../mmu.js';
import { CocoPlatform, type CocoVcpu, type CocoVm, commandId, failWith } from './base.js';
import { gmemPopulate, type PopulatePage } from './populate.js';

/** The model host's sev_supported_vmsa_features (KVM_X86_SEV_VMSA_FEATURES): DebugSwap. */
export const MODEL_SEV_VMSA_FEATURES = SVM_SEV_FEAT.DEBUG_SWAP;

const NAME_OF: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(SEV_CMD).map(([k, v]) => [v, k]));
/** the commands sev_mem_enc_ioctl's switch handles (the others fall to its default: EINVAL) */
const LEGACY_HANDLED = new Set<number>([2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 18, 20, 21]);
const VALID_TYPES = new Set<number>(Object.values(KVM_SEV_SNP_PAGE_TYPE));

/** One RMP entry (SNP ABI "RMP entry": Assigned, Validated, GPA; ASID implied by the VM). */
export interface RmpEntry {
  assigned: boolean;
  validated: boolean;
  gpa: bigint;
}

/** One PAGE_INFO step the firmware took (MEASUREMENT.md §1.1): its type, GPA and, for NORMAL/VMSA, the page. */
export interface SnpLogEntry {
  readonly type: SnpPageType;
  readonly gpa: bigint;
  readonly page?: Uint8Array;
}

/** The parts of a vCPU's register state that reach its VMSA (sev_es_sync_vmsa), at KVM's reset values. */
export interface SnpVcpuRegs {
  /** CS.base (KVM_SET_SREGS); reset 0xffff0000 */
  csBase: bigint;
  /** RIP (KVM_SET_REGS); reset 0xfff0 */
  rip: bigint;
  /** RDX: the CPUID signature KVM_SET_CPUID2 gave leaf 1 (kvm_vcpu_reset), 0x600 without one */
  rdx: bigint;
  /** vcpu->arch.guest_state_protected: set once LAUNCH_FINISH encrypted the VMSA */
  protectedState: boolean;
}

export class SnpPlatform extends CocoPlatform {
  readonly kind = 'snp' as const;
  /** sev->need_init: set by sev_vm_init for KVM_X86_SNP_VM, cleared by KVM_SEV_INIT2 */
  needInit = true;
  /** sev_snp_guest(kvm): KVM_SEV_INIT2 succeeded */
  active = false;
  vmsaFeatures = 0n;
  ghcbVersion = 0;
  /** sev->snp_context: KVM_SEV_SNP_LAUNCH_START created the guest context */
  snpContext = false;
  policy = 0n;
  /** SNP_LAUNCH_FINISH succeeded: the firmware's guest state is RUNNING */
  finished = false;
  /** the firmware status of the last failed command (kvm_sev_cmd.error) */
  private fwError = 0;
  readonly rmp = new WeakMap<Uint8Array, RmpEntry>();
  /** the measurement log: every page the firmware measured, in order */
  readonly log: SnpLogEntry[] = [];
  private readonly regs = new WeakMap<CocoVcpu, SnpVcpuRegs>();

  constructor(vm: CocoVm) {
    super(vm);
  }

  get guestActive(): boolean {
    return this.active;
  }

  vcpuRegs(v: CocoVcpu): SnpVcpuRegs {
    let r = this.regs.get(v);
    if (!r) this.regs.set(v, (r = { csBase: 0xffff0000n, rip: 0xfff0n, rdx: 0x600n, protectedState: false }));
    return r;
  }

  /** KVM_SET_REGS / KVM_SET_SREGS for the fields the VMSA takes: refused once the state is protected. */
  setRegs(v: CocoVcpu, r: Partial<Omit<SnpVcpuRegs, 'protectedState'>>): void {
    const s = this.vcpuRegs(v);
    if (s.protectedState) fail('KVM_SET_REGS', 'EINVAL', 'the vCPU state is protected (guest_state_protected)');
    Object.assign(s, r);
  }

  /** sev_mem_enc_ioctl for an SNP VM. */
  vmOp(cmd: MemoryEncryptCommand): MemoryEncryptResult {
    // An Intel kvm_tdx_cmd reaching sev_mem_enc_ioctl is read as a kvm_sev_cmd: same id field.
    const { vendor, id } = commandId(cmd, SEV_CMD, TDX_CMD);
    const raw = typeof cmd.id === 'number' || vendor !== 'sev';
    const op = NAME_OF[id] ?? 'KVM_MEMORY_ENCRYPT_OP';
    if (this.active && id < SEV_CMD.KVM_SEV_SNP_LAUNCH_START) {
      fail(op, 'EPERM', 'sev_mem_enc_ioctl: once KVM_SEV_INIT2 made this an SNP guest, only SNP commands are allowed');
    }
    switch (id) {
      case SEV_CMD.KVM_SEV_INIT:
      case SEV_CMD.KVM_SEV_ES_INIT:
        return fail(op, 'EINVAL', 'sev_guest_init: the legacy init is for KVM_X86_DEFAULT_VM only');
      case SEV_CMD.KVM_SEV_INIT2:
        if (!this.needInit) fail(op, 'EINVAL', 'sev_guest_init2: the VM was already initialized (need_init clear)');
        if (raw) fail(op, 'EFAULT', 'copy_from_user of struct kvm_sev_init from a NULL data pointer');
        return this.init2(op, cmd as Extract<MemoryEncryptCommand, { id: 'KVM_SEV_INIT2' }>);
      case SEV_CMD.KVM_SEV_SNP_LAUNCH_START:
        if (!this.active) fail(op, 'ENOTTY', 'snp_launch_start: not an SNP guest (KVM_SEV_INIT2 first)');
        if (raw) fail(op, 'EFAULT', 'copy_from_user from a NULL data pointer');
        return this.launchStart(op, cmd as Extract<MemoryEncryptCommand, { id: 'KVM_SEV_SNP_LAUNCH_START' }>);
      case SEV_CMD.KVM_SEV_SNP_LAUNCH_UPDATE:
        if (!this.active || !this.snpContext) fail(op, 'EINVAL', 'snp_launch_update: no SNP guest context (KVM_SEV_INIT2 and KVM_SEV_SNP_LAUNCH_START first)');
        if (raw) fail(op, 'EFAULT', 'copy_from_user from a NULL data pointer');
        return this.launchUpdate(op, cmd as Extract<MemoryEncryptCommand, { id: 'KVM_SEV_SNP_LAUNCH_UPDATE' }>);
      case SEV_CMD.KVM_SEV_SNP_LAUNCH_FINISH:
        if (!this.active) fail(op, 'ENOTTY', 'snp_launch_finish: not an SNP guest');
        if (!this.snpContext) fail(op, 'EINVAL', 'snp_launch_finish: no guest context (KVM_SEV_SNP_LAUNCH_START first)');
        if (raw) fail(op, 'EFAULT', 'copy_from_user from a NULL data pointer');
        return this.launchFinish(op, cmd as Extract<MemoryEncryptCommand, { id: 'KVM_SEV_SNP_LAUNCH_FINISH' }>);
      default:
        // the legacy SEV commands check sev_guest(kvm) first; an SNP VM before INIT2 is not one
        if (LEGACY_HANDLED.has(id)) return fail(op, 'ENOTTY', `${op}: not a SEV guest`);
        return fail(op, 'EINVAL', `sev_mem_enc_ioctl: unknown command ${id}`);
    }
  }

  /** KVM_SEV_INIT2 -> __sev_guest_init for KVM_X86_SNP_VM. */
  private init2(op: string, cmd: Extract<MemoryEncryptCommand, { id: 'KVM_SEV_INIT2' }>): MemoryEncryptResult {
    const d = decode(kvm_sev_init, encode(kvm_sev_init, { vmsa_features: cmd.vmsaFeatures ?? 0n, flags: cmd.flags ?? 0, ghcb_version: cmd.ghcbVersion ?? 0 }));
    const features = scalar(d.vmsa_features);
    let ghcb = Number(scalar(d.ghcb_version));
    if (this.createdVcpus > 0) fail(op, 'EINVAL', '__sev_guest_init: vCPUs already exist (kvm->created_vcpus)');
    if (scalar(d.flags) !== 0n) fail(op, 'EINVAL', '__sev_guest_init: flags must be 0');
    if (features & ~MODEL_SEV_VMSA_FEATURES) fail(op, 'EINVAL', `__sev_guest_init: VMSA features 0x${features.toString(16)} not supported`);
    if (ghcb > GHCB_VERSION_MAX) fail(op, 'EINVAL', `__sev_guest_init: GHCB version ${ghcb} above ${GHCB_VERSION_MAX}`);
    // KVM defaults SEV-ES+ guests to GHCB version 2; SNP needs at least 2
    if (ghcb === 0) ghcb = 2;
    if (ghcb < 2) fail(op, 'EINVAL', '__sev_guest_init: SNP needs GHCB protocol version 2');
    this.active = true;
    this.needInit = false;
    this.ghcbVersion = ghcb;
    this.vmsaFeatures = features | SVM_SEV_FEAT.SNP_ACTIVE;
    return { error: 0 };
  }

  /** KVM_SEV_SNP_LAUNCH_START -> snp_launch_start. */
  private launchStart(op: string, cmd: Extract<MemoryEncryptCommand, { id: 'KVM_SEV_SNP_LAUNCH_START' }>): MemoryEncryptResult {
    const d = decode(kvm_sev_snp_launch_start, encode(kvm_sev_snp_launch_start, { policy: cmd.policy, flags: cmd.flags ?? 0 }));
    const policy = scalar(d.policy);
    if (this.snpContext) fail(op, 'EINVAL', 'snp_launch_start: the VM already has an SNP context');
    if (scalar(d.flags) !== 0n) fail(op, 'EINVAL', 'snp_launch_start: flags must be 0');
    if (policy & ~SNP_POLICY_MASK_VALID) fail(op, 'EINVAL', `snp_launch_start: policy 0x${policy.toString(16)} has bits KVM does not support`);
    if (!(policy & SNP_POLICY.RSVD_MBO)) fail(op, 'EINVAL', 'snp_launch_start: policy bit 17 (reserved, must be one) is clear');
    this.snpContext = true;
    this.policy = policy;
    return { error: 0 };
  }

  /**
   * KVM_SEV_SNP_LAUNCH_UPDATE -> snp_launch_update: every failure of kvm_gmem_populate on the first
   * page (not PRIVATE, already populated, no source, the firmware refusing) is EIO, with the
   * firmware status in kvm_sev_cmd.error; progress is copied back into the struct.
   */
  private launchUpdate(op: string, cmd: Extract<MemoryEncryptCommand, { id: 'KVM_SEV_SNP_LAUNCH_UPDATE' }>): MemoryEncryptResult {
    const d = decode(
      kvm_sev_snp_launch_update,
      encode(kvm_sev_snp_launch_update, { gfn_start: cmd.gfnStart, uaddr: cmd.uaddr, len: cmd.len, type: cmd.type, flags: cmd.flags ?? 0 }),
    );
    const gfnStart = scalar(d.gfn_start);
    const uaddr = scalar(d.uaddr);
    const len = scalar(d.len);
    const type = Number(scalar(d.type));
    if (len === 0n || len % PAGE_SIZE_N !== 0n || scalar(d.flags) !== 0n || !VALID_TYPES.has(type)) {
      fail(op, 'EINVAL', 'snp_launch_update: len zero or unaligned, flags set, or page type not NORMAL/ZERO/UNMEASURED/SECRETS/CPUID');
    }
    const zero = type === KVM_SEV_SNP_PAGE_TYPE.ZERO;
    // 7.0 (kvm-x86-gmem-6.20) requires a 4 KiB-aligned source for every type but ZERO (a
    // retroactive ABI tightening); 6.11-6.19 took any uaddr and a NULL one meant "no source"
    // (src = u64_to_user_ptr(uaddr), copied only `if (src)` in sev_gmem_post_populate). The NULL
    // refusal on 7.0+ is this model's reading, not verified in source.
    const gupFirst = this.vm.profile.populateGupFirst;
    if (gupFirst && !zero && (uaddr === 0n || uaddr % PAGE_SIZE_N !== 0n)) fail(op, 'EINVAL', 'snp_launch_update: uaddr NULL or not page aligned (7.0)');
    const gfn = gfnStart < 1n << 52n ? Number(gfnStart) : -1;
    const slot = gfn >= 0 ? this.vm.memslots.find(gfn) : undefined;
    if (!slot?.gmem) fail(op, 'EINVAL', 'snp_launch_update: gfn_start is not in a guest_memfd memslot (kvm_slot_has_gmem)');
    const npages = len / PAGE_SIZE_N > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(len / PAGE_SIZE_N);
    this.fwError = 0;
    const r = gmemPopulate(this.vm, this.prepared, gfn, zero || uaddr === 0n ? undefined : uaddr, npages, (p) => this.postPopulate(p, type));
    if ('errno' in r) failWith(op, 'EIO', `kvm_gmem_populate: ${r.errno}: ${r.why}`, { error: BigInt(this.fwError) });
    const done = BigInt(r.count);
    return {
      error: 0,
      data: { gfn_start: gfnStart + done, uaddr: zero ? uaddr : uaddr + done * PAGE_SIZE_N, len: len - done * PAGE_SIZE_N },
    };
  }

  /** sev_gmem_post_populate: the page must still be shared in the RMP; copy, assign, measure. */
  private postPopulate(p: PopulatePage, type: number) {
    const gpa = BigInt(p.gfn) * PAGE_SIZE_N;
    if (this.rmp.get(p.page)?.assigned) return 'EEXIST' as const;
    if (this.finished) {
      // SNP_LAUNCH_UPDATE after SNP_LAUNCH_FINISH: the guest is RUNNING; the page is reclaimed
      this.fwError = SEV_RET.INVALID_GUEST_STATE;
      return 'EIO' as const;
    }
    if (p.src) p.page.set(p.src);
    else p.page.fill(0);
    // rmp_make_private, then SNP_LAUNCH_UPDATE validates the page for the guest
    this.rmp.set(p.page, { assigned: true, validated: true, gpa });
    this.own(p.page);
    const t = type as SnpPageType;
    this.log.push(hasContents(t) ? { type: t, gpa, page: p.page.slice() } : { type: t, gpa });
    return undefined;
  }

  /** KVM_SEV_SNP_LAUNCH_FINISH -> snp_launch_update_vmsa (every vCPU, in order), then SNP_LAUNCH_FINISH. */
  private launchFinish(op: string, cmd: Extract<MemoryEncryptCommand, { id: 'KVM_SEV_SNP_LAUNCH_FINISH' }>): MemoryEncryptResult {
    const d = decode(
      kvm_sev_snp_launch_finish,
      encode(kvm_sev_snp_launch_finish, {
        flags: cmd.flags ?? 0,
        id_block_en: cmd.idBlockEn ?? 0,
        auth_key_en: cmd.authKeyEn ?? 0,
        vcek_disabled: cmd.vcekDisabled ?? 0,
        host_data: [...(cmd.hostData ?? [])],
      }),
    );
    if (scalar(d.flags) !== 0n) fail(op, 'EINVAL', 'snp_launch_finish: flags must be 0');
    for (const v of this.vcpus) {
      const s = this.vcpuRegs(v);
      if (s.protectedState) fail(op, 'EINVAL', `sev_es_sync_vmsa: vCPU ${v.id} state is already protected`);
      const vmsa = buildVmsa({
        eip: Number(BigInt.asUintN(32, s.csBase + s.rip)),
        sevFeatures: this.vmsaFeatures,
        vcpuSig: Number(s.rdx & 0xffffffffn),
        vmm: 'qemu',
      });
      this.log.push({ type: SNP_PAGE_TYPE.VMSA, gpa: VMSA_GPA, page: vmsa });
      s.protectedState = true;
    }
    if (this.finished) failWith(op, 'EIO', 'SNP_LAUNCH_FINISH: the guest is already RUNNING', { error: BigInt(SEV_RET.INVALID_GUEST_STATE) });
    this.finished = true;
    // "Now that there will be no more SNP_LAUNCH_UPDATE ioctls, private pages can be given to the guest"
    this.preFaultAllowed = true;
    return { error: 0 };
  }

  vcpuOp(_v: CocoVcpu, _cmd: MemoryEncryptCommand): MemoryEncryptResult {
    return fail('KVM_MEMORY_ENCRYPT_OP', 'ENOTTY', 'kvm_arch_vcpu_ioctl: SVM has no vcpu_mem_enc_ioctl');
  }

  /** svm_vcpu_pre_run */
  preRun(_v: CocoVcpu): void {
    if (this.strict && this.needInit) fail('KVM_RUN', 'EINVAL', 'svm_vcpu_pre_run: KVM_SEV_INIT2 has not run (need_init)');
  }

  /** sev_gmem_prepare: a private fault's folio becomes guest-assigned, not validated. */
  prepare(page: Uint8Array, gfn: number, _file: PrivateFile, _index: number): void {
    this.prepared.add(page);
    if (!this.active || this.rmp.get(page)?.assigned) return;
    this.rmp.set(page, { assigned: true, validated: false, gpa: BigInt(gfn) * PAGE_SIZE_N });
    this.own(page);
  }

  /** PVALIDATE rAX=gpa, ECX=0 (4 KiB), EDX=validate: RAX 0, FAIL_INPUT, or FAIL_NOUPDATE (CF=1). */
  instruction(op: GuestOp, spte: Spte | null): bigint {
    if (op.op !== 'pvalidate') throw new Error(`SNP guests have no ${op.op}`);
    if (!spte) return PVALIDATE.FAIL_INPUT;
    const e = this.rmp.get(spte.page);
    if (!e?.assigned) return PVALIDATE.FAIL_INPUT;
    if (e.validated === op.validate) return PVALIDATE.FAIL_NOUPDATE;
    e.validated = op.validate;
    return PVALIDATE.SUCCESS;
  }

  /** RMP check on a host access: writes to assigned pages fault; reads go through (ciphertext). */
  hostAccess(page: Uint8Array, write: boolean): { signal: 'SIGBUS'; reason: string } | undefined {
    const e = this.rmp.get(page);
    if (!e?.assigned || !write) return undefined;
    return { signal: 'SIGBUS', reason: `RMP violation: host write to a page assigned to the SNP guest (GPA 0x${e.gpa.toString(16)})` };
  }

  /**
   * What a host read of an assigned page returns: the guest's ciphertext. The model's "cipher" is a
   * fixed byte mask (not AES-XTS): enough to show the host never reads the plaintext.
   */
  hostView(page: Uint8Array): Uint8Array | undefined {
    if (!this.rmp.get(page)?.assigned) return undefined;
    return page.map((b, i) => b ^ (0xa5 ^ (i & 0xff)));
  }

  /** The launch digest (MEASUREMENT in the attestation report): LD folded over the log. */
  digest(sha: Sha384Factory): Uint8Array {
    const g = new SnpGuestContext(sha);
    for (const e of this.log) g.measure(e.type, e.gpa, e.page);
    return g.digest();
  }
}

/**
 * sev_mem_enc_ioctl on an AMD host for a VM that is not an SNP VM (default, sw_protected): no
 * SEV-SNP state exists, and the model host gives legacy SEV/SEV-ES no ASIDs (all are SNP ASIDs),
 * so KVM_SEV_INIT/ES_INIT end in sev_asid_new's ENOTTY.
 */
export function sevOnOtherVm(vm: CocoVm, cmd: MemoryEncryptCommand, createdVcpus: number): MemoryEncryptResult {
  const { id } = commandId(cmd, SEV_CMD, TDX_CMD);
  const op = NAME_OF[id] ?? 'KVM_MEMORY_ENCRYPT_OP';
  switch (id) {
    case SEV_CMD.KVM_SEV_INIT:
    case SEV_CMD.KVM_SEV_ES_INIT:
      if (vm.type !== 'default') fail(op, 'EINVAL', 'sev_guest_init: the legacy init is for KVM_X86_DEFAULT_VM only');
      if (createdVcpus > 0) fail(op, 'EINVAL', '__sev_guest_init: vCPUs already exist');
      return fail(op, 'ENOTTY', 'sev_asid_new: this host has no SEV/SEV-ES ASIDs');
    case SEV_CMD.KVM_SEV_INIT2:
      return fail(op, 'EINVAL', 'sev_guest_init2: only SEV, SEV-ES and SNP VM types need KVM_SEV_INIT2');
    case SEV_CMD.KVM_SEV_SNP_LAUNCH_START:
    case SEV_CMD.KVM_SEV_SNP_LAUNCH_FINISH:
      return fail(op, 'ENOTTY', `${op}: not an SNP guest`);
    case SEV_CMD.KVM_SEV_SNP_LAUNCH_UPDATE:
      return fail(op, 'EINVAL', 'snp_launch_update: not an SNP guest');
    default:
      if (LEGACY_HANDLED.has(id)) return fail(op, 'ENOTTY', `${op}: not a SEV guest`);
      return fail(op, 'EINVAL', `sev_mem_enc_ioctl: unknown command ${id}`);
  }
}
