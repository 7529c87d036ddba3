/**
 * A vCPU running a guest program (virt/kvm/kvm_main.c kvm_vcpu_ioctl KVM_RUN; x86 exits). Each
 * memory access goes through the fault path unless a mapping is already installed; an access that
 * cannot be completed exits to userspace with the struct kvm_run contents KVM would leave, and the
 * next KVM_RUN re-executes it (memory faults) or completes it (MMIO, hypercalls).
 */
import type { GuestOp, GuestProgram, MemoryEncryptCommand, MemoryEncryptResult, PreFaultMemory, RunOptions, Vcpu, VcpuExit, Vm, Width } from '../api.js';
import { CODE_GPA, CODE_SIZE, CODE_SLOT, KvmError } from '../api.js';
import { KVM_EXIT_HYPERCALL_LONG_MODE, KVM_HC_MAP_GPA_RANGE, PAGE_SIZE_N } from '../uapi/constants.js';
import { KVM_EINVAL, KVM_ENOSYS } from '../uapi/errno.js';
import { fail } from './fail.js';
import type { FaultOutcome } from './fault.js';
import type { Spte } from './mmu.js';
import { cocoInstruction, vcpuMemoryEncryptOp } from './platforms/index.js';
import type { ModelProcess } from './process.js';
import { freeObsoleteRoots, mmuReload, rootObsolete, VcpuFile } from './vcpu.js';
import type { KvmVm } from './vm.js';

/** Guest ops one KVM_RUN may execute before the model reports a runaway program. */
const STEP_BUDGET = 1_000_000;

function toBytes(value: bigint, width: Width): Uint8Array {
  const out = new Uint8Array(width);
  let v = BigInt.asUintN(width * 8, value);
  for (let i = 0; i < width; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function fromBytes(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
  return v;
}

type AccessResult = { ok: true; value: bigint } | { ok: false; exit: Omit<VcpuExit, 'reads'> };

export class ModelVcpu implements Vcpu {
  constructor(
    private readonly proc: ModelProcess,
    readonly fd: number,
    readonly id: number,
    private readonly vmHandle: Vm,
  ) {}

  private file(op: string): VcpuFile {
    const f = this.proc.fdt.get(this.fd, op);
    // a vCPU ioctl elsewhere: /dev/kvm's kvm_arch_dev_ioctl default is EINVAL (x86), a VM's
    // kvm_arch_vm_ioctl default and a file without ioctls are ENOTTY
    if (!(f instanceof VcpuFile)) fail(op, f.kind === 'kvm' ? 'EINVAL' : 'ENOTTY', `fd ${this.fd} is not a vCPU`);
    return f;
  }

  /**
   * Reserve the code slot as the kvm backend does (an anonymous mapping at CODE_GPA in slot
   * CODE_SLOT), so both backends see the same memslot layout, then point the vCPU at the program.
   */
  load(program: GuestProgram): void {
    const v = this.file('load');
    if (!v.vm.codeMapping) {
      const map = this.vmHandle.mmapAnonymous(CODE_SIZE);
      // the v1 ioctl: a flags-0 slot is the same through either, and src/designs/v7 has only v1
      this.vmHandle.setUserMemoryRegion({ slot: CODE_SLOT, flags: 0, guestPhysAddr: CODE_GPA, memorySize: CODE_SIZE, userspaceAddr: map.addr });
      v.vm.codeMapping = map;
    }
    v.program = program;
    v.pc = 0;
    v.pending = undefined;
  }

  run(options: RunOptions = {}): VcpuExit {
    const v = this.file('KVM_RUN');
    // confidential computing: kvm_x86_ops.vcpu_pre_run (SNP need_init, TDX not finalized)
    v.vm.platform?.preRun(v);
    if (!v.program) throw new Error('KVM_RUN: no guest program loaded (call load() first)');
    // vcpu_enter_guest: KVM_REQ_MMU_FREE_OBSOLETE_ROOTS -> kvm_mmu_free_obsolete_roots, then
    // kvm_mmu_reload, so the guest always runs on a current root (on every kernel)
    freeObsoleteRoots(v);
    mmuReload(v);
    const reads: bigint[] = [];
    const done = (e: Omit<VcpuExit, 'reads'>): VcpuExit => ({ ...e, reads });
    // complete_userspace_io for the exit we left at
    if (v.pending === 'hypercall') {
      v.hypercallRet = options.hypercallRet ?? 0n;
      v.pc++;
    } else if (v.pending === 'mmio_read') {
      reads.push(0n); // userspace left kvm_run.mmio.data zeroed
      v.pc++;
    }
    v.pending = undefined;

    for (let steps = 0; steps < STEP_BUDGET; steps++) {
      const op: GuestOp | undefined = v.program[v.pc];
      // Past the end the guest sits in its final hlt loop.
      if (!op) return done({ reason: 'hlt' });
      switch (op.op) {
        case 'hlt':
          v.pc++;
          return done({ reason: 'hlt' });
        // confidential guests: PVALIDATE / TDG.MEM.PAGE.ACCEPT, status reported as a read
        case 'pvalidate':
        case 'tdg_mem_page_accept': {
          const r = cocoInstruction(v, op);
          if ('exit' in r) return done(r.exit);
          reads.push(r.status);
          v.pc++;
          break;
        }
        case 'out':
          v.pc++;
          return done({ reason: 'io', io: { direction: 'out', port: op.port, size: 4, value: BigInt.asUintN(32, op.value) } });
        case 'map_gpa_range': {
          const exit = this.hypercall(v, op.gpa, op.npages, op.attrs);
          if (exit) {
            v.pending = 'hypercall';
            return done(exit);
          }
          v.pc++;
          break;
        }
        case 'read':
        case 'write': {
          const r = this.access(v, op.gpa, op.width, op.op === 'write' ? op.value : undefined, op.shared);
          if (!r.ok) return done(r.exit);
          if (op.op === 'read') reads.push(r.value);
          v.pc++;
          break;
        }
      }
    }
    throw new Error(`KVM_RUN: the guest program ran ${STEP_BUDGET} ops without exiting`);
  }

  /** kvm_emulate_hypercall, KVM_HC_MAP_GPA_RANGE: exit to userspace, or return an error in RAX. */
  private hypercall(v: VcpuFile, gpa: bigint, npages: bigint, attrs: bigint): Omit<VcpuExit, 'reads'> | undefined {
    if (!(v.vm.hypercallExitMask & (1n << BigInt(KVM_HC_MAP_GPA_RANGE)))) {
      v.hypercallRet = BigInt.asUintN(64, -BigInt(KVM_ENOSYS));
      return undefined;
    }
    const gfn = gpa / PAGE_SIZE_N;
    if (gpa % PAGE_SIZE_N !== 0n || npages === 0n || gfn + npages > (1n << 64n) - 1n || BigInt.asUintN(64, gfn + npages) <= gfn) {
      v.hypercallRet = BigInt.asUintN(64, -BigInt(KVM_EINVAL));
      return undefined;
    }
    return {
      reason: 'hypercall',
      hypercall: { nr: BigInt(KVM_HC_MAP_GPA_RANGE), args: [gpa, npages, attrs, 0n, 0n, 0n], ret: 0n, flags: KVM_EXIT_HYPERCALL_LONG_MODE },
    };
  }

  /** Whether an access to gfn is private: the attribute on software-protected VMs, never on default VMs. */
  private isPrivate(vm: KvmVm, gfn: number, shared: boolean | undefined): boolean {
    if (vm.type === 'snp' || vm.type === 'tdx') return !shared;
    return vm.hasPrivateMem && vm.attributes.isPrivate(gfn);
  }

  private access(v: VcpuFile, gpa: bigint, width: Width, value: bigint | undefined, shared: boolean | undefined): AccessResult {
    const write = value !== undefined;
    const vm = v.vm;
    const first = Number(gpa / PAGE_SIZE_N);
    const last = Number((gpa + BigInt(width) - 1n) / PAGE_SIZE_N);
    const sptes: Spte[] = [];
    for (let gfn = first; gfn <= last; gfn++) {
      let spte = vm.mmu.sptes.get(gfn);
      const isPrivate = this.isPrivate(vm, gfn, shared);
      // A shared access does not use a private mapping (SNP/TDX keep them apart; elsewhere the
      // attributes decide both, so they always agree): src/designs/v7 runs TDs.
      if (!spte || (write && !spte.writable) || spte.private !== isPrivate) {
        // An MMIO SPTE (mmu.ts mmioSptes) makes this a reserved-bit fault, which is never private:
        // emulated MMIO while its generation is current, else a shared fault like any other.
        const mmioGen = spte ? undefined : vm.mmu.mmioSptes.get(gfn);
        const r =
          mmioGen === undefined
            ? vm.faultIn(gfn, write, isPrivate)
            : mmioGen === vm.memslots.generation
              ? ({ kind: 'mmio' } as const)
              : vm.faultIn(gfn, write, false);
        if (r.kind === 'mmio') {
          if (!write) v.pending = 'mmio_read';
          else v.pc++;
          return { ok: false, exit: { reason: 'mmio', mmio: { physAddr: gpa, len: width, isWrite: write, data: write ? (value as bigint) : 0n } } };
        }
        if (r.kind === 'error') throw new KvmError('KVM_RUN', r.errno, `kvm_handle_error_pfn: no page for gpa 0x${gpa.toString(16)} behind userspace_addr`);
        if (r.kind === 'memory_fault') {
          return {
            ok: false,
            exit: {
              reason: 'memory_fault',
              // no errno: KVM_RUN returned 0 (src/designs/v7's exit)
              ...(r.errno !== undefined && { errno: r.errno }),
              memoryFault: { flags: r.flags, gpa: BigInt(gfn) * PAGE_SIZE_N, size: PAGE_SIZE_N },
            },
          };
        }
        if (r.kind !== 'mapped') throw new Error('unreachable');
        spte = r.spte;
      }
      sptes.push(spte);
    }
    const bytes = write ? toBytes(value as bigint, width) : new Uint8Array(width);
    for (let i = 0; i < width; i++) {
      const at = gpa + BigInt(i);
      const page = (sptes[Number(at / PAGE_SIZE_N) - first] as Spte).page;
      const off = Number(at % PAGE_SIZE_N);
      if (write) page[off] = bytes[i] as number;
      else bytes[i] = page[off] as number;
    }
    return { ok: true, value: write ? 0n : fromBytes(bytes) };
  }

  /** KVM_PRE_FAULT_MEMORY (kvm_vcpu_pre_fault_memory, x86 kvm_arch_vcpu_pre_fault_memory). */
  preFaultMemory(r: PreFaultMemory): { gpa: bigint; size: bigint } {
    try {
      return this.preFault(r);
    } finally {
      this.proc.deliverSignals();
    }
  }

  private preFault(r: PreFaultMemory): { gpa: bigint; size: bigint } {
    const op = 'KVM_PRE_FAULT_MEMORY';
    const v = this.file(op);
    const profile = v.vm.profile;
    // Before 6.11 the ioctl is unknown: kvm_arch_vcpu_ioctl's default is EINVAL
    if (profile.preFault === 'absent') fail(op, 'EINVAL', 'unknown vCPU ioctl on this kernel');
    // kvm_vcpu_pre_fault_memory: flags must be 0; gpa and size page aligned, size not 0, no wrap
    if (r.flags !== 0n) fail(op, 'EINVAL', 'flags must be 0');
    if (r.gpa % PAGE_SIZE_N !== 0n || r.size % PAGE_SIZE_N !== 0n || BigInt.asUintN(64, r.gpa + r.size) <= r.gpa) {
      fail(op, 'EINVAL', 'gpa/size unaligned, size 0, or gpa+size wraps');
    }
    let gpa = r.gpa;
    let size = r.size;
    const full = size;
    let err: KvmError | undefined;
    while (size > 0n) {
      // kvm_arch_vcpu_pre_fault_memory: shadow paging cannot pre-fault
      // confidential computing: kvm->arch.pre_fault_allowed is false until the launch finished
      if (v.vm.platform?.strict && !v.vm.platform.preFaultAllowed) {
        err = new KvmError(op, 'EOPNOTSUPP', 'kvm_arch_vcpu_pre_fault_memory: pre-faulting waits for the end of the launch', { gpa, size });
        break;
      }
      if (profile.preFault === 'unsupported') {
        // kvm_arch_vcpu_pre_fault_memory: !tdp_mmu_enabled (shadow paging, e.g. PVM) -> EOPNOTSUPP
        err = new KvmError(op, 'EOPNOTSUPP', 'kvm_arch_vcpu_pre_fault_memory: pre-faulting needs the TDP MMU', { gpa, size });
        break;
      }
      // "reload is efficient when called repeatedly, so we can do it on every iteration"
      mmuReload(v);
      const gfn = Number(gpa / PAGE_SIZE_N);
      const isPrivate = v.vm.hasPrivateMem && v.vm.attributes.isPrivate(gfn);
      // kvm_tdp_map_page: do { if (signal_pending(current)) return -EINTR; cond_resched();
      // r = kvm_mmu_do_page_fault(...) } while (r == RET_PF_RETRY). is_page_fault_stale() makes every
      // attempt on an obsolete root RET_PF_RETRY (6.12's kvm_mmu_reload keeps the root a memslot
      // delete or move made obsolete), so only a signal ends the loop, with nothing mapped on this
      // page; a KVM_RUN (vcpu_enter_guest frees the root) or a fresh vCPU makes the call work again.
      let f: FaultOutcome | undefined;
      while (!this.proc.signalPending()) {
        f = v.vm.faultIn(gfn, false, isPrivate, { obsoleteRoot: rootObsolete(v) });
        if (f.kind !== 'obsolete_root') break;
        this.proc.waitForSignal();
      }
      if (!f || f.kind === 'obsolete_root') {
        err = new KvmError(op, 'EINTR', 'kvm_tdp_map_page: a signal is pending (the fault kept retrying on an obsolete MMU root: is_page_fault_stale)', {
          gpa,
          size,
        });
        break;
      }
      if (f.kind !== 'mapped') {
        // kvm_tdp_map_page: RET_PF_EMULATE (no slot, MMIO) -> ENOENT; fault errors pass through
        err = new KvmError(
          op,
          f.kind === 'mmio' ? 'ENOENT' : f.kind === 'memory_fault' ? (f.errno ?? 'EFAULT') : f.kind === 'error' ? f.errno : 'EIO',
          'page could not be mapped',
          {
            gpa,
            size,
          },
        );
        break;
      }
      gpa += PAGE_SIZE_N;
      size -= PAGE_SIZE_N;
    }
    // "Return success if at least one page was mapped successfully"; the struct is copied back
    if (err && size === full) throw err;
    return { gpa, size };
  }

  /** KVM_MEMORY_ENCRYPT_OP on the vCPU fd (confidential computing, issue 5: src/model/platforms/). */
  memoryEncryptOp(cmd: MemoryEncryptCommand): MemoryEncryptResult {
    return vcpuMemoryEncryptOp(this.file('KVM_MEMORY_ENCRYPT_OP'), cmd);
  }

  /** struct kvm_vcpu behind the fd, for model-side helpers (src/model/platforms setSnpVcpuRegs). */
  get vcpuFile(): VcpuFile {
    return this.file('vcpu');
  }

  close(): void {
    this.proc.vfs.close(this.fd);
  }
}
