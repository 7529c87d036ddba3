/**
 * A deadline for KVM_RUN. KVM_RUN blocks the calling thread until the guest exits, and a guest can
 * fail to exit at all: on this machine's PVM kvm, VMCALL/VMMCALL make the emulator re-execute the
 * instruction forever. Node cannot interrupt its own thread from JS, so the deadline is a kernel
 * timer that sends a signal to this thread, which makes KVM_RUN return -1/EINTR
 * (KVM_EXIT_INTR), the way QEMU kicks its vCPU threads.
 *
 * The signal (a real-time one, so nothing else in Node uses it) stays blocked in the thread, so it
 * can never be delivered to a handler or kill the process; each vCPU gets KVM_SET_SIGNAL_MASK with
 * the thread's mask minus that signal, so it is unblocked only while the thread is inside KVM_RUN.
 * Whether the deadline passed is read from the timer itself (the time left when it is disarmed), so
 * a run costs two timer_settime calls and no clock reads; a signal that fired after KVM_RUN had
 * already returned stays pending and is consumed with sigtimedwait right away.
 */

import { kvm_signal_mask } from '../uapi/x86.js';
import { check } from './check.js';
import { sys } from './sys.js';

/** SIGRTMAX-2 with glibc (SIGRTMAX is 64): unused by Node, libuv and V8. */
export const WATCHDOG_SIGNAL = 62;
const SIG_BLOCK = 0;
const SIGEV_THREAD_ID = 4;
const CLOCK_MONOTONIC = 1;
/** glibc's sigset_t is 128 bytes; the kernel's (and KVM's) is 8. */
const GLIBC_SIGSET = 128;
const KERNEL_SIGSET = 8;

function sigset(sig: number): Uint8Array {
  const s = new Uint8Array(GLIBC_SIGSET);
  const bit = sig - 1;
  s[bit >> 3] = 1 << (bit & 7);
  return s;
}

let instance: RunWatchdog | undefined;

export class RunWatchdog {
  readonly tid: number;
  private readonly timerId: bigint;
  /** struct itimerspec { it_interval; it_value } */
  private readonly spec = new Uint8Array(32);
  private readonly specView = new DataView(this.spec.buffer);
  private readonly disarmSpec = new Uint8Array(32);
  private readonly oldSpec = new Uint8Array(32);
  private readonly oldView = new DataView(this.oldSpec.buffer);
  private readonly waitSet = sigset(WATCHDOG_SIGNAL);
  private readonly noWait = new Uint8Array(16);
  /** the KVM_SET_SIGNAL_MASK argument for vCPUs run on this thread */
  readonly vcpuSignalMask: Uint8Array;

  /** The watchdog of the calling thread (module state is per isolate, i.e. per thread in Node). */
  static get(): RunWatchdog {
    instance ??= new RunWatchdog();
    return instance;
  }

  private constructor() {
    const s = sys();
    this.tid = s.gettid();
    const old = new Uint8Array(GLIBC_SIGSET);
    const err = s.pthreadSigmask(SIG_BLOCK, sigset(WATCHDOG_SIGNAL), old);
    if (err !== 0) throw new Error(`pthread_sigmask: errno ${err}`);
    // struct sigevent: sigev_value @0, sigev_signo @8, sigev_notify @12, _tid @16 (64 bytes)
    const sev = new Uint8Array(64);
    const v = new DataView(sev.buffer);
    v.setInt32(8, WATCHDOG_SIGNAL, true);
    v.setInt32(12, SIGEV_THREAD_ID, true);
    v.setInt32(16, this.tid, true);
    const id = new Uint8Array(8);
    check('timer_create', s.timerCreate(CLOCK_MONOTONIC, sev, id));
    this.timerId = new DataView(id.buffer).getBigInt64(0, true);
    const mask = new Uint8Array(kvm_signal_mask.size + KERNEL_SIGSET);
    new DataView(mask.buffer).setUint32(kvm_signal_mask.fields.len.offset, KERNEL_SIGSET, true);
    mask.set(old.subarray(0, KERNEL_SIGSET), kvm_signal_mask.size);
    const bit = WATCHDOG_SIGNAL - 1;
    mask[kvm_signal_mask.size + (bit >> 3)] = (mask[kvm_signal_mask.size + (bit >> 3)] ?? 0) & ~(1 << (bit & 7));
    this.vcpuSignalMask = mask;
  }

  /** Fire once, `ns` nanoseconds from now (it_value; it_interval stays 0). */
  arm(ns: bigint): void {
    const n = ns > 0n ? ns : 1n;
    this.specView.setBigInt64(16, n / 1_000_000_000n, true);
    this.specView.setBigInt64(24, n % 1_000_000_000n, true);
    sys().timerSettime(this.timerId, 0, this.spec, null);
  }

  /**
   * Stop the timer. Returns the nanoseconds it had left, 0n if it fired; a signal it fired is
   * consumed here if KVM_RUN did not already take it, so none is ever left for a later run.
   */
  disarm(): bigint {
    sys().timerSettime(this.timerId, 0, this.disarmSpec, this.oldSpec);
    const left = this.oldView.getBigInt64(16, true) * 1_000_000_000n + this.oldView.getBigInt64(24, true);
    if (left === 0n) this.drain();
    return left;
  }

  /** Consume a pending watchdog signal, if any. Returns whether there was one. */
  drain(): boolean {
    return sys().sigtimedwait(this.waitSet, this.noWait) === WATCHDOG_SIGNAL;
  }

  /** Whether this thread is the one the timer signals (a vCPU must run on it to be interruptible). */
  isCurrentThread(): boolean {
    return sys().gettid() === this.tid;
  }
}
