/**
 * A vCPU fd and its struct kvm_run page. `load` writes a guest program into the VM's code slot
 * (guest/x86.ts) and points the vCPU at it in 64-bit long mode; `run` is one KVM_RUN, turned into a
 * VcpuExit with the same fields the model reports, including the values the program read since the
 * run began (taken from the program's read log in the code slot).
 *
 * KVM_RUN errors: -1/EFAULT or EHWPOISON with exit_reason KVM_EXIT_MEMORY_FAULT is an exit
 * (api.rst: the one exit that comes with -1), anything else throws KvmError with the kernel's errno.
 * A guest that does not exit within the session's deadline is interrupted by the watchdog signal
 * and reported as KvmError('KVM_RUN', 'EINTR'); KVM_PRE_FAULT_MEMORY has a deadline of its own
 * (KvmError('KVM_PRE_FAULT_MEMORY', 'EINTR')).
 */
import { type GuestProgram, KvmError, type PreFaultMemory, type RunOptions, type Vcpu, type VcpuExit } from '../api.js';
import { type HypercallInsn, LONG_MODE, type LoadedProgram, opIndexAt } from '../guest/x86.js';
import { KVM_EXIT, KVM_EXIT_IO_IN, MAP_SHARED, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { ERRNO, errnoName } from '../uapi/errno.js';
import { IOCTL } from '../uapi/ioctls.js';
import { decode, encode, scalar } from '../uapi/layout.js';
import * as S from '../uapi/structs.js';
import { IOCTL_X86, KVM_EXIT_INTR, kvm_regs, kvm_sregs, type SEGMENTS } from '../uapi/x86.js';
import { check } from './check.js';
import type { CodeSlot } from './code-slot.js';
import { adoptFd, adoptMapping, type FdOwner, releaseFd, releaseMapping } from './fd-table.js';
import type { Session } from './session.js';
import { MAP_FAILED, sys } from './sys.js';
import { RunWatchdog } from './watchdog.js';

const EXIT_REASON = S.kvm_run.fields.exit_reason.offset;
const IMMEDIATE_EXIT = S.kvm_run.fields.immediate_exit.offset;
const IO = S.kvm_run_io.fields;
const MMIO = S.kvm_run_mmio.fields;
const HC = S.kvm_run_hypercall.fields;
const MF = S.kvm_run_memory_fault.fields;

const EXIT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(KVM_EXIT).map(([k, v]) => [v, `KVM_EXIT_${k}`]));

/** What the last exit left for KVM to finish on the next KVM_RUN (complete_userspace_io). */
type Pending = 'io' | 'mmio-read' | 'mmio-write' | 'hypercall' | undefined;

/**
 * What a vCPU uses of the VM that created it (KvmVm). An interface, not the class, so that imports
 * run one way, system -> vm -> vcpu.
 */
export interface VcpuParent {
  readonly system: { readonly session: Session; vcpuMmapSize(): number; supportedCpuid(): Uint8Array };
  codeSlot(): CodeSlot;
  readonly hypercallInsn: HypercallInsn;
  /** @internal the vCPU closed: the VM may be gone with it */
  vcpuClosed(v: KvmVcpu): void;
}

export class KvmVcpu implements Vcpu, FdOwner {
  readonly id: number;
  readonly fd: number;
  readonly vm: VcpuParent;
  private runAddr: bigint | undefined;
  private readonly runSize: number;
  /** the kvm_run page; valid until close() unmaps it, and never handed out */
  private runBytes: Uint8Array | undefined;
  private runView: DataView | undefined;
  private fdOpen = true;
  private closed = false;
  private region: number | undefined;
  private loaded: LoadedProgram | undefined;
  private loadedOps: GuestProgram = [];
  private readCursor = 0;
  private pending: Pending;
  private readonly regsBuf = new Uint8Array(kvm_regs.size);
  private readonly sregsBuf = new Uint8Array(kvm_sregs.size);

  constructor(vm: VcpuParent, id: number, fd: number) {
    this.vm = vm;
    this.id = id;
    this.fd = fd;
    adoptFd(fd, this, 'vcpu');
    const s = sys();
    this.runSize = vm.system.vcpuMmapSize();
    try {
      const addr = s.mmap(0n, BigInt(this.runSize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
      if (addr === MAP_FAILED) throw new KvmError('mmap', s.errno(), 'struct kvm_run');
      this.runAddr = addr;
      adoptMapping(addr, BigInt(this.runSize), this);
      this.runBytes = new Uint8Array(s.view(addr, this.runSize));
      this.runView = new DataView(this.runBytes.buffer, this.runBytes.byteOffset, this.runSize);
      // Every VMM sets CPUID before the first KVM_RUN; long mode needs the LM bit in it.
      check('KVM_SET_CPUID2', s.ioctlPtr(fd, IOCTL_X86.KVM_SET_CPUID2, vm.system.supportedCpuid()));
      // Let the watchdog's signal through only while this vCPU is inside KVM_RUN.
      check('KVM_SET_SIGNAL_MASK', s.ioctlPtr(fd, IOCTL_X86.KVM_SET_SIGNAL_MASK, RunWatchdog.get().vcpuSignalMask));
    } catch (e) {
      this.release();
      throw e;
    }
  }

  load(program: GuestProgram): void {
    this.live('load');
    const slot = this.vm.codeSlot();
    this.region ??= slot.allocRegion();
    this.completePending();
    const loaded = slot.image.load(this.region, program, { hypercall: this.vm.hypercallInsn });
    const s = sys();
    check('KVM_GET_SREGS', s.ioctlPtr(this.fd, IOCTL_X86.KVM_GET_SREGS, this.sregsBuf));
    const sr = decode(kvm_sregs, this.sregsBuf);
    const setSeg = (name: (typeof SEGMENTS)[number], seg: Readonly<Record<string, bigint>>) => {
      for (const [k, v] of Object.entries(seg)) (sr as Record<string, bigint | bigint[]>)[`${name}_${k}`] = v;
      (sr as Record<string, bigint | bigint[]>)[`${name}_unusable`] = 0n;
    };
    setSeg('cs', LONG_MODE.codeSegment);
    for (const d of ['ds', 'es', 'fs', 'gs', 'ss'] as const) setSeg(d, LONG_MODE.dataSegment);
    sr.cr0 = LONG_MODE.cr0;
    sr.cr3 = loaded.cr3;
    sr.cr4 = LONG_MODE.cr4;
    sr.efer = LONG_MODE.efer;
    encode(kvm_sregs, sr, this.sregsBuf);
    check('KVM_SET_SREGS', s.ioctlPtr(this.fd, IOCTL_X86.KVM_SET_SREGS, this.sregsBuf));
    encode(kvm_regs, { rip: loaded.entry, rflags: LONG_MODE.rflags }, this.regsBuf);
    check('KVM_SET_REGS', s.ioctlPtr(this.fd, IOCTL_X86.KVM_SET_REGS, this.regsBuf));
    this.loaded = loaded;
    this.loadedOps = program;
    this.readCursor = 0;
  }

  run(options: RunOptions = {}): VcpuExit {
    return this.runWithDeadline(this.vm.system.session.runTimeoutMs, options);
  }

  /** KVM_RUN with an explicit deadline (caps probing uses a short one). */
  runWithDeadline(timeoutMs: number, options: RunOptions = {}): VcpuExit {
    this.live('KVM_RUN');
    // The model has no reset state to run from either; both backends refuse the same way.
    if (!this.loaded) throw new Error('KVM_RUN: no guest program loaded (call load() first)');
    const v = this.runView as DataView;
    if (options.hypercallRet !== undefined) v.setBigUint64(HC.ret.offset, BigInt.asUintN(64, options.hypercallRet), true);
    // An MMIO read completes with whatever kvm_run.mmio.data holds: make that a defined 0.
    if (this.pending === 'mmio-read') v.setBigUint64(MMIO.data.offset, 0n, true);
    v.setUint32(EXIT_REASON, KVM_EXIT.UNKNOWN, true);
    const s = sys();
    const wd = RunWatchdog.get();
    let left = BigInt(Math.max(1, Math.round(timeoutMs * 1e6)));
    let r: number;
    let errno = 0;
    for (;;) {
      wd.arm(left);
      r = s.ioctlVal(this.fd, IOCTL.KVM_RUN, 0);
      errno = r < 0 ? s.errno() : 0;
      left = wd.disarm();
      if (r >= 0 || errno !== ERRNO.EINTR) break;
      if (left === 0n) {
        this.pending = undefined;
        throw new KvmError('KVM_RUN', 'EINTR', `no exit within ${timeoutMs} ms: ${this.whereStuck()}`);
      }
      // Another signal (SIGCHLD, SIGINT with a handler, ...) interrupted the run: KVM_RUN returned
      // with KVM_EXIT_INTR and the guest can simply continue, for the time that is left.
    }
    const reason = v.getUint32(EXIT_REASON, true);
    const reads = this.collectReads();
    this.pending = undefined;
    if (r < 0) {
      if ((errno === ERRNO.EFAULT || errno === ERRNO.EHWPOISON) && reason === KVM_EXIT.MEMORY_FAULT) {
        return { reason: 'memory_fault', reads, errno: errnoName(errno), memoryFault: this.memoryFault() };
      }
      throw new KvmError('KVM_RUN', errno);
    }
    switch (reason) {
      case KVM_EXIT.HLT:
        return { reason: 'hlt', reads };
      case KVM_EXIT.IO: {
        const bytes = this.runBytes as Uint8Array;
        const direction = v.getUint8(IO.direction.offset) === KVM_EXIT_IO_IN ? 'in' : 'out';
        const size = v.getUint8(IO.size.offset);
        const port = v.getUint16(IO.port.offset, true);
        const at = Number(v.getBigUint64(IO.data_offset.offset, true));
        let value = 0n;
        if (direction === 'out' && at + size <= this.runSize) value = le(bytes, at, size);
        this.pending = 'io';
        return { reason: 'io', reads, io: { direction, port, size, value } };
      }
      case KVM_EXIT.MMIO: {
        const len = v.getUint32(MMIO.len.offset, true);
        const isWrite = v.getUint8(MMIO.is_write.offset) !== 0;
        const data = isWrite ? le(this.runBytes as Uint8Array, MMIO.data.offset, Math.min(len, 8)) : 0n;
        this.pending = isWrite ? 'mmio-write' : 'mmio-read';
        return { reason: 'mmio', reads, mmio: { physAddr: v.getBigUint64(MMIO.phys_addr.offset, true), len, isWrite, data } };
      }
      case KVM_EXIT.HYPERCALL: {
        const d = decode(S.kvm_run_hypercall, this.runBytes as Uint8Array);
        this.pending = 'hypercall';
        return {
          reason: 'hypercall',
          reads,
          hypercall: { nr: scalar(d.nr), args: d.args as bigint[], ret: scalar(d.ret), flags: scalar(d.flags) },
        };
      }
      case KVM_EXIT.SHUTDOWN:
        return { reason: 'shutdown', reads };
      case KVM_EXIT.MEMORY_FAULT:
        return { reason: 'memory_fault', reads, memoryFault: this.memoryFault() };
      default:
        throw new Error(`KVM_RUN: exit reason ${reason} (${this.exitName(reason)}) has no VcpuExit form; ${this.whereStuck()}`);
    }
  }

  /**
   * KVM_PRE_FAULT_MEMORY under the session's pre-fault deadline (watchdog callWithDeadline): the
   * kernel retries a fault until a signal is pending (kvm_tdp_map_page), which on 6.12 can be
   * forever (an obsolete MMU root after a memslot delete, src/model/vcpu.ts). An EINTR from
   * another signal comes only without progress (with progress the kernel returns 0 and the range
   * advanced), leaves the range unchanged, and the call is simply made again for the time left.
   */
  preFaultMemory(r: PreFaultMemory): { gpa: bigint; size: bigint } {
    const op = 'KVM_PRE_FAULT_MEMORY';
    this.live(op);
    const buf = encode(S.kvm_pre_fault_memory, { gpa: r.gpa, size: r.size, flags: r.flags });
    const s = sys();
    const timeoutMs = this.vm.system.session.preFaultTimeoutMs;
    const res = RunWatchdog.get().callWithDeadline(timeoutMs, () => {
      const ret = s.ioctlPtr(this.fd, IOCTL.KVM_PRE_FAULT_MEMORY, buf);
      return { r: ret, errno: ret < 0 ? s.errno() : 0 };
    });
    // The kernel copies gpa/size back even on error (KERNEL-SPEC J2).
    const d = decode(S.kvm_pre_fault_memory, buf);
    const out = { gpa: scalar(d.gpa), size: scalar(d.size) };
    if (res.r < 0 && res.expired) {
      throw new KvmError(
        op,
        'EINTR',
        `no return within ${timeoutMs} ms: the kernel kept retrying the fault at gpa 0x${out.gpa.toString(16)} until the deadline signal (on 6.12 an obsolete MMU root after a memslot delete or move; a KVM_RUN frees it)`,
        out,
      );
    }
    if (res.r < 0) throw new KvmError(op, res.errno, undefined, out);
    return out;
  }

  /** KVM_GET_REGS, for diagnostics and tests. */
  regs(): Record<string, bigint> {
    this.live('KVM_GET_REGS');
    check('KVM_GET_REGS', sys().ioctlPtr(this.fd, IOCTL_X86.KVM_GET_REGS, this.regsBuf));
    return decode(kvm_regs, this.regsBuf) as Record<string, bigint>;
  }

  /** The program loaded last (entry, op addresses, read count). */
  get program(): LoadedProgram | undefined {
    return this.loaded;
  }

  close(): void {
    if (this.closed) return;
    this.release();
    this.vm.vcpuClosed(this);
  }

  fdClosedElsewhere(): void {
    this.fdOpen = false;
  }

  /**
   * Let KVM finish what the last exit left pending (the rest of an OUT, an MMIO load, a hypercall's
   * return) without entering the guest, before the registers are replaced (api.rst: KVM_RUN with
   * immediate_exit set completes pending operations and returns EINTR).
   */
  private completePending(): void {
    if (this.pending === undefined) return;
    const v = this.runView as DataView;
    if (this.pending === 'mmio-read') v.setBigUint64(MMIO.data.offset, 0n, true);
    v.setUint8(IMMEDIATE_EXIT, 1);
    const s = sys();
    const r = s.ioctlVal(this.fd, IOCTL.KVM_RUN, 0);
    const errno = r < 0 ? s.errno() : 0;
    v.setUint8(IMMEDIATE_EXIT, 0);
    this.pending = undefined;
    if (r < 0 && errno !== ERRNO.EINTR) throw new KvmError('KVM_RUN', errno, 'completing the previous exit');
  }

  private collectReads(): bigint[] {
    const loaded = this.loaded;
    if (!loaded || loaded.reads === 0) return [];
    const image = this.vm.codeSlot().image;
    const count = Math.min(image.readCount(loaded.region), loaded.reads);
    const out: bigint[] = [];
    for (let k = this.readCursor; k < count; k++) out.push(image.readValue(loaded.region, k));
    this.readCursor = Math.max(this.readCursor, count);
    return out;
  }

  private memoryFault(): { flags: bigint; gpa: bigint; size: bigint } {
    const v = this.runView as DataView;
    return {
      flags: v.getBigUint64(MF.flags.offset, true),
      gpa: v.getBigUint64(MF.gpa.offset, true),
      size: v.getBigUint64(MF.size.offset, true),
    };
  }

  private exitName(reason: number): string {
    if (reason === KVM_EXIT_INTR) return 'KVM_EXIT_INTR';
    return EXIT_NAMES[reason] ?? 'unknown';
  }

  /** Where the guest is, in terms of the loaded program, for error messages. */
  private whereStuck(): string {
    let rip: bigint;
    try {
      rip = this.regs().rip as bigint;
    } catch {
      return 'guest position unknown';
    }
    const loaded = this.loaded;
    const i = loaded ? opIndexAt(loaded, rip) : undefined;
    if (i === undefined) return `guest rip 0x${rip.toString(16)} (outside the loaded program)`;
    const n = (loaded?.opStarts.length ?? 1) - 1;
    if (i >= n) return `guest rip 0x${rip.toString(16)} is past the program's last op`;
    const op = this.loadedOps[i];
    const hint = op?.op === 'map_gpa_range' ? ': a VMCALL/VMMCALL that this kernel neither completed nor forwarded as KVM_EXIT_HYPERCALL' : '';
    return `guest rip 0x${rip.toString(16)} is in op #${i} (${op?.op ?? '?'}) of the loaded program${hint}`;
  }

  private release(): void {
    this.closed = true;
    // Drop the views before the memory behind them goes away.
    this.runBytes = undefined;
    this.runView = undefined;
    let err = 0;
    if (this.runAddr !== undefined) err = releaseMapping(this.runAddr);
    if (this.fdOpen) {
      this.fdOpen = false;
      const e = releaseFd(this.fd, this);
      if (err === 0) err = e;
    }
    if (err !== 0) throw new KvmError('close', err);
  }

  private live(op: string): void {
    if (this.closed || !this.fdOpen) throw new KvmError(op, 'EBADF', 'the vCPU fd was closed');
  }
}

/** Little-endian unsigned value of `n` bytes at `at`. */
function le(bytes: Uint8Array, at: number, n: number): bigint {
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i] ?? 0);
  return v;
}
