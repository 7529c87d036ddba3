/**
 * The base of the confidential-computing platforms (index.ts says what they are): what a
 * VM of type snp (4) or tdx (5) adds to the guest_memfd core.
 *  - snp.ts: SEV-SNP. KVM_SEV_INIT2 and the SNP launch commands of KVM_MEMORY_ENCRYPT_OP, the RMP
 *    (host writes to guest-assigned pages fault, PVALIDATE flips the Validated bit), the launch
 *    digest's PAGE_INFO log.
 *  - tdx.ts: TDX. KVM_TDX_INIT_VM / INIT_VCPU / INIT_MEM_REGION / FINALIZE_VM, the Secure-EPT
 *    (pages added at launch are accepted, pages a fault adds are pending until TDG.MEM.PAGE.ACCEPT),
 *    host access to TD memory as a machine check that poisons the page, the MRTD record log.
 * Both share the fault-path rule the vCPU already applies (model-vcpu.ts isPrivate: the guest's C-bit or
 * shared bit, not the attributes, says whether an access is private; a mismatch with the attributes
 * is KVM_EXIT_MEMORY_FAULT in fault.ts), guest_memfd flags without INIT_SHARED (model-vm.ts
 * createGuestMemfd: kvm_arch_supports_gmem_init_shared is false with private memory), and
 * kvm_gmem_populate (populate.ts).
 *
 * Lifecycle gates (KVM_RUN, KVM_PRE_FAULT_MEMORY and TDX KVM_CREATE_VCPU refused before the launch
 * got far enough) apply where the kernel profile says the host has this platform (profiles.ts
 * withPlatform); a profile that only lists the type keeps them off, so the fault-path rules can be
 * exercised without a launch (tests/model/faults.test.ts). Nothing here runs for other VM types.
 */
import type { GuestOp, MemoryEncryptCommand, MemoryEncryptResult, VcpuExit } from '../../api.js';
import { KvmError } from '../../api.js';
import { PAGE_SIZE_N } from '../../uapi/constants.js';
import type { ErrnoName } from '../../uapi/errno.js';
import type { FaultContext, FaultOutcome, FaultVm } from '../fault.js';
import type { PhysicalPageOwner } from '../host.js';
import type { PrivateFile } from '../memslots.js';
import type { Spte } from '../mmu.js';
import type { Platform } from '../profiles.js';

/**
 * struct kvm as the platform code reads it. The platform state hangs off struct kvm (kvm->arch:
 * kvm_sev_info, kvm_tdx), so it names what it needs here rather than importing vm.ts, which
 * creates it.
 */
export interface CocoVm extends Omit<FaultVm, 'platform'> {
  readonly vcpuIds: ReadonlySet<number>;
  readonly platform: CocoPlatform | undefined;
  /** the guest page-fault path (fault.ts), as a private access of PVALIDATE or TDG.MEM.PAGE.ACCEPT takes it */
  faultIn(gfn: number, write: boolean, isPrivate: boolean, ctx?: FaultContext): FaultOutcome;
}

/** struct kvm_vcpu as the platform code reads it: the platforms keep per-vCPU state keyed by it. */
export interface CocoVcpu {
  readonly id: number;
  readonly vm: CocoVm;
}

/** What a guest instruction (PVALIDATE, TDG.MEM.PAGE.ACCEPT) left: its RAX, or the exit it caused. */
export type InstructionResult = { status: bigint } | { exit: Omit<VcpuExit, 'reads'> };

export abstract class CocoPlatform implements PhysicalPageOwner {
  abstract readonly kind: Platform;
  /** every vCPU created on the VM, in creation order (kvm_for_each_vcpu) */
  readonly vcpus: CocoVcpu[] = [];
  /** kvm->created_vcpus */
  createdVcpus = 0;
  /** kvm->arch.pre_fault_allowed: false for SNP/TDX until the launch is finished */
  preFaultAllowed = false;
  /** folios guest_memfd marked prepared / up to date (kvm_gmem_mark_prepared): populate refuses them */
  readonly prepared = new WeakSet<Uint8Array>();

  constructor(readonly vm: CocoVm) {}

  /** Whether the host profile says this hardware is there: the lifecycle gates apply. */
  get strict(): boolean {
    return this.vm.profile.platform === this.kind;
  }

  /** KVM_MEMORY_ENCRYPT_OP on the VM fd. */
  abstract vmOp(cmd: MemoryEncryptCommand): MemoryEncryptResult;
  /** KVM_MEMORY_ENCRYPT_OP on a vCPU fd. */
  abstract vcpuOp(vcpu: CocoVcpu, cmd: MemoryEncryptCommand): MemoryEncryptResult;
  /** KVM_CREATE_VCPU: the arch check before the vCPU exists (throws the errno). */
  vcpuCreate(_op: string): void {}
  vcpuCreated(v: CocoVcpu): void {
    this.createdVcpus++;
    this.vcpus.push(v);
  }
  /** KVM_RUN: kvm_x86_ops.vcpu_pre_run (throws the errno). */
  abstract preRun(v: CocoVcpu): void;
  /**
   * A private fault handed guest_memfd folio `page` at `gfn` to the guest (kvm_gmem_get_pfn ->
   * kvm_gmem_prepare_folio -> kvm_arch_gmem_prepare).
   */
  abstract prepare(page: Uint8Array, gfn: number, file: PrivateFile, index: number): void;
  /** The guest instruction on the private page the SPTE maps; null: gpa not 4 KiB aligned. */
  abstract instruction(op: GuestOp, spte: Spte | null): bigint;
  /** Whether the guest runs in the platform's protected mode (else the instruction is #UD). */
  abstract get guestActive(): boolean;
  abstract hostAccess(page: Uint8Array, write: boolean): { signal: 'SIGBUS' | 'MCE'; reason: string } | undefined;
  hostView?(page: Uint8Array): Uint8Array | undefined;

  /** Mark a page as this guest's in the host's eyes (physOwner): host accesses go through hostAccess. */
  protected own(page: Uint8Array): void {
    this.vm.mm.physOwner.set(page, this);
  }
}

// ---- dispatch ----

export type CmdVendor = 'sev' | 'tdx';

/** The vendor a command belongs to, and its number. */
export function commandId(
  cmd: MemoryEncryptCommand,
  sev: Readonly<Record<string, number>>,
  tdx: Readonly<Record<string, number>>,
): { vendor: CmdVendor; id: number } {
  if (typeof cmd.id === 'number') return { vendor: (cmd as { vendor: CmdVendor }).vendor, id: cmd.id };
  if (cmd.id in sev) return { vendor: 'sev', id: sev[cmd.id] as number };
  if (cmd.id in tdx) return { vendor: 'tdx', id: tdx[cmd.id] as number };
  throw new Error(`unknown memory encryption command ${cmd.id}`);
}

/** The host's CPU vendor for KVM_MEMORY_ENCRYPT_OP: the profile's platform, else the VM's own type. */
export function hostPlatform(vm: CocoVm): Platform | undefined {
  if (vm.profile.platform) return vm.profile.platform;
  return vm.type === 'snp' || vm.type === 'tdx' ? vm.type : undefined;
}

/** Fail with what the kernel copied back before failing (KvmError.data). */
export function failWith(op: string, errno: ErrnoName, why: string, data?: Record<string, bigint>): never {
  throw new KvmError(op, errno, why, data);
}

/** A private page the guest touches with a PVALIDATE / TDG.MEM.PAGE.ACCEPT: fault it in like a private read. */
export function cocoInstruction(v: CocoVcpu, op: GuestOp & { gpa: bigint }): InstructionResult {
  const vm = v.vm;
  const p = vm.platform;
  const want = op.op === 'pvalidate' ? 'snp' : 'tdx';
  // PVALIDATE outside an SEV-SNP guest and TDCALL outside a TD are #UD; with no handler: shutdown
  if (!p || p.kind !== want || !p.guestActive) return { exit: { reason: 'shutdown' } };
  if (op.gpa % PAGE_SIZE_N !== 0n) return { status: p.instruction(op, null) };
  const gfn = Number(op.gpa / PAGE_SIZE_N);
  let spte = vm.mmu.sptes.get(gfn);
  if (!spte?.private) {
    const r = vm.faultIn(gfn, false, true);
    if (r.kind === 'memory_fault') {
      return {
        exit: {
          reason: 'memory_fault',
          ...(r.errno !== undefined && { errno: r.errno }),
          memoryFault: { flags: r.flags, gpa: BigInt(gfn) * PAGE_SIZE_N, size: PAGE_SIZE_N },
        },
      };
    }
    if (r.kind !== 'mapped') throw new Error(`${op.op}: a private access cannot be ${r.kind}`);
    spte = r.spte;
  }
  return { status: p.instruction(op, spte) };
}
